"""A run tracked through a real MLflow tracking server whose backend store is PostgreSQL.

The server is `mlflow server` on 127.0.0.1 (one worker, job execution off), its backend a fresh
PostgreSQL database created for this test and dropped after it, its artifacts served by the server
(`--serve-artifacts`), both from tests/loopback.py. Skips with the reason where PostgreSQL is not reachable
(a laptop without it).
"""

from __future__ import annotations

import json

import pytest
from loopback import Unavailable, mlflow_server, postgres_database
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from sadkit.cli import app


@pytest.fixture
def server(tmp_path):
    """An MLflow server on a fresh PostgreSQL database."""
    try:
        with postgres_database() as database, mlflow_server(database, tmp_path) as url:
            yield url
    except Unavailable as why:
        pytest.skip(str(why))


@pytest.mark.slow
def test_a_run_through_a_tracking_server_on_postgresql(server):
    args = [
        "run", "deepsad", "synthetic", "--tracking-uri", server, "--experiment", "on-server",
        "-p", "n_epochs=2", "-p", "ae_n_epochs=1", "-p", "lr_milestones=[1]", "-p", "ae_lr_milestones=[1]",
        "--device", "cpu", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("{"), f"stdout is not one JSON object: {result.stdout[:300]!r}"
    out = json.loads(result.stdout)
    run = MlflowClient(server).get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_auroc"] == pytest.approx(out["test_auroc"])
    assert [m.step for m in MlflowClient(server).get_metric_history(run.info.run_id, "train_loss")] == [0, 1]
    artifacts = {a.path for a in MlflowClient(server).list_artifacts(run.info.run_id)}
    assert {"plots", "arrays", "scores"} <= artifacts
    models = [MlflowClient(server).get_logged_model(o.model_id) for o in run.outputs.model_outputs]
    assert [m.name for m in models] == ["model"] and out["model_uri"] == f"models:/{models[0].model_id}"
    assert "View run" in result.stderr  # MLflow's link to the run, moved off stdout
