"""A run tracked through a real MLflow tracking server whose backend store is PostgreSQL.

The server is `mlflow server` on 127.0.0.1 (one worker, job execution off), its backend a fresh
PostgreSQL database created for this test and dropped after it, its artifacts served by the server
(`--serve-artifacts`). Skips with the reason where PostgreSQL is not reachable (a laptop without it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from sadkit.cli import app

BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_database():
    """A fresh, empty PostgreSQL database (dropped afterwards); skips where PostgreSQL is absent."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN}: {err}")
    name = f"sadkit_mlflow_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def mlflow_server(postgres_database, tmp_path):
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", postgres_database,
        "--serve-artifacts", "--artifacts-destination", str(tmp_path / "artifacts"),
    ]  # fmt: skip
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}: {(tmp_path / 'server.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not listen within 180 s: {(tmp_path / 'server.log').read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_a_run_through_a_tracking_server_on_postgresql(mlflow_server):
    args = [
        "run", "deepsad", "synthetic", "--tracking-uri", mlflow_server, "--experiment", "on-server",
        "-p", "n_epochs=2", "-p", "ae_n_epochs=1", "-p", "lr_milestones=[1]", "-p", "ae_lr_milestones=[1]",
        "--device", "cpu", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("{"), f"stdout is not one JSON object: {result.stdout[:300]!r}"
    out = json.loads(result.stdout)
    run = MlflowClient(mlflow_server).get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_auroc"] == pytest.approx(out["test_auroc"])
    assert [m.step for m in MlflowClient(mlflow_server).get_metric_history(run.info.run_id, "train_loss")] == [0, 1]
    artifacts = {a.path for a in MlflowClient(mlflow_server).list_artifacts(run.info.run_id)}
    assert {"plots", "arrays", "scores"} <= artifacts
    models = [MlflowClient(mlflow_server).get_logged_model(o.model_id) for o in run.outputs.model_outputs]
    assert [m.name for m in models] == ["model"] and out["model_uri"] == f"models:/{models[0].model_id}"
    assert "View run" in result.stderr  # MLflow's link to the run, moved off stdout
