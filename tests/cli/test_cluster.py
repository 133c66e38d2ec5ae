"""`sadkit reproduce --cluster`: the cells on a real Dask cluster, tracked by a real MLflow server.

The slow tests start their own `dask scheduler` and two `dask worker` processes on 127.0.0.1 and an
`mlflow server` whose store is a fresh PostgreSQL database (tests/loopback.py); they skip with the reason
where PostgreSQL or the ODDS data is absent. The fast ones check what needs no cluster: a local store is
refused, an unreachable scheduler is named, the options' usage.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from loopback import Unavailable, dask_cluster, mlflow_server, postgres_database, signal_after
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from sadkit.cli import app
from sadkit.reproduce import KEY_TAG, ReproductionSpec, reproduce
from sadkit.reproduce.tasks import HOST_TAG

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _quick_spec(tmp_path: Path, experiment: str, epochs: int | None = None) -> Path:
    """projects/odds_quick.yaml under another experiment name (longer cells with ``epochs``)."""
    raw = yaml.safe_load((REPO / "projects" / "odds_quick.yaml").read_text())
    raw["experiment"] = experiment
    raw["paper"]["file"] = str(REPO / "projects" / "paper_results.yaml")
    if epochs:
        for method in raw["methods"]:
            method["params"].update(n_epochs=epochs, ae_n_epochs=epochs)
    path = tmp_path / f"{experiment}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _aurocs(out: Path) -> dict[tuple[str, str, str], float]:
    with (out / "runs.csv").open() as f:
        return {(r["label"], r["setting"], r["seed"]): float(r["test_auroc"]) for r in csv.DictReader(f)}


def _runs(url: str, experiment: str) -> list:
    client = MlflowClient(url)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)


# ------------------------------------------------------------------ fast: no cluster needed


def test_a_local_sqlite_store_is_refused_with_a_cluster(tmp_path):
    spec = _quick_spec(tmp_path, "refused")
    result = CliRunner().invoke(
        app, ["reproduce", str(spec), "--cluster", "tcp://127.0.0.1:1", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    )
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "is a file on this machine" in message and "Dask workers on other machines cannot write to" in message
    assert "http://" in message and "postgresql://" in message
    assert not (tmp_path / "m.db").exists(), "the store was opened before the check"


def test_the_default_store_is_refused_with_a_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["reproduce", str(_quick_spec(tmp_path, "x")), "--cluster", "tcp://127.0.0.1:1"])
    assert result.exit_code == 1 and "sqlite:///mlflow.db is a file on this machine" in " ".join(result.stderr.split())


def test_an_unreachable_scheduler_is_named(tmp_path, monkeypatch):
    from httpserver import closed_port

    import sadkit.reproduce.cluster as cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    address = f"tcp://127.0.0.1:{closed_port()}"
    args = ["reproduce", str(_quick_spec(tmp_path, "x")), "--cluster", address, "--tracking-uri", "http://127.0.0.1:9"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])  # before data, store or outputs
    assert result.exit_code == 1 and not (tmp_path / "out").exists()
    message = " ".join(result.stderr.split())
    assert f"cannot reach the Dask scheduler at {address}" in message
    assert f"`dask worker {address}`" in message


def test_workers_without_sadkit_or_with_another_version_are_refused():
    from sadkit.reproduce.cluster import check_workers

    check_workers({"tcp://a:1": "0.1.0", "tcp://b:1": "0.1.0"}, "0.1.0")
    check_workers({}, "0.1.0")  # no worker yet: they are waited for
    missing = {"tcp://a:1": "0.1.0", "tcp://b:1": ModuleNotFoundError("No module named 'sadkit'")}
    with pytest.raises(Exception, match=r"worker\(s\) tcp://b:1 cannot import sadkit: install it there"):
        check_workers(missing, "0.1.0")
    with pytest.raises(Exception, match=r"tcp://a:1 \(0.0.9\) run another version of sadkit than this machine"):
        check_workers({"tcp://a:1": "0.0.9"}, "0.1.0")


def test_workers_and_cluster_together_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(
        app, ["reproduce", str(_quick_spec(tmp_path, "x")), "--workers", "2", "--cluster", "tcp://127.0.0.1:1"]
    )
    assert result.exit_code == 2 and "--workers" in result.stderr


def test_the_help_shows_the_cluster_option():
    result = CliRunner().invoke(app, ["reproduce", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0 and "--cluster" in result.stdout and "dask scheduler" in result.stdout


# ------------------------------------------------------------------ slow: a loopback cluster and server


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """An MLflow server on a fresh PostgreSQL database, shared by this module's tests."""
    try:
        with postgres_database() as database, mlflow_server(database, tmp_path_factory.mktemp("server")) as url:
            yield url
    except Unavailable as why:
        pytest.skip(str(why))


@pytest.fixture
def cluster(tmp_path, odds_root):
    with dask_cluster(2, tmp_path / "dask", env={"SADKIT_DATA": str(odds_root)}) as running:
        yield running


@pytest.mark.slow
def test_the_cluster_gives_the_local_table_and_a_rerun_reads_it_back(
    tracking_server, cluster, tmp_path, odds_root, tracking_uri, monkeypatch
):
    monkeypatch.setenv("SADKIT_DATA", str(odds_root))
    spec = _quick_spec(tmp_path, "same-table")
    local = reproduce(ReproductionSpec.from_yaml(spec), tmp_path / "local", workers=1)  # into a local SQLite store
    assert local["n_computed"] == 8
    args = ["reproduce", str(spec), "--cluster", cluster.address, "--tracking-uri", tracking_server]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "dask"), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["n_computed"], summary["n_reused"]) == (8, 0)
    assert _aurocs(tmp_path / "dask") == _aurocs(tmp_path / "local")  # same seeds, same scores, to the bit
    table = lambda out: (out / "table.md").read_text().split("Median wall time")[0]  # noqa: E731
    assert table(tmp_path / "dask") == table(tmp_path / "local")
    runs = _runs(tracking_server, "same-table")
    hosts = {r.data.tags[HOST_TAG] for r in runs if KEY_TAG in r.data.tags}
    assert len(hosts) == 2, f"both workers ran cells: {hosts}"
    parent = MlflowClient(tracking_server).get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED" and "dask cluster" in parent.data.params["executor"]
    # a rerun reads every cell back from the server
    again = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "again"), "--json"])
    assert again.exit_code == 0, again.stderr
    assert (json.loads(again.stdout)["n_computed"], json.loads(again.stdout)["n_reused"]) == (0, 8)


@pytest.mark.slow
def test_a_worker_killed_mid_cell_still_gives_a_complete_table(
    tracking_server, cluster, tmp_path, odds_root, monkeypatch
):
    monkeypatch.setenv("SADKIT_DATA", str(odds_root))  # the command's own preflight reads the data too
    spec = ReproductionSpec.from_yaml(_quick_spec(tmp_path, "killed", epochs=60))  # cells of several seconds
    spec.tracking_uri = tracking_server
    client = MlflowClient(tracking_server)
    pids = {w.pid: i for i, w in enumerate(cluster.workers)}
    killed: dict[str, str] = {}

    def kill_a_worker_mid_cell() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            experiment = client.get_experiment_by_name("killed")
            running = [] if experiment is None else client.search_runs(
                [experiment.experiment_id], f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` LIKE '%'"
            )  # fmt: skip
            for run in running:
                pid = int(run.data.tags[HOST_TAG].rsplit(":", 1)[1])
                if pid in pids:
                    cluster.kill_worker(pids[pid])
                    killed["run_id"] = run.info.run_id
                    return
            time.sleep(0.2)

    thread = threading.Thread(target=kill_a_worker_mid_cell, daemon=True)
    thread.start()
    summary = reproduce(spec, tmp_path / "out", cluster=cluster.address)
    thread.join(timeout=5)
    assert "run_id" in killed, "no worker was killed"
    assert summary["n_computed"] == 8 and all(c["n"] == 2 for c in summary["cells"])
    assert sum(1 for w in cluster.workers if w.poll() is None) == 1
    runs = _runs(tracking_server, "killed")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    victim = client.get_run(killed["run_id"])
    assert victim.info.status == "KILLED", "the killed attempt's run must not stay RUNNING (nor pass as FINISHED)"
    assert "retried" in victim.data.tags["sadkit.swept"]
    finished = [r.data.tags[KEY_TAG] for r in runs if r.info.status == "FINISHED" and KEY_TAG in r.data.tags]
    assert sorted(finished) == sorted(c.key for c in spec.cells()), "a cell was lost or computed twice"
    assert victim.data.tags[KEY_TAG] in finished  # the retry finished it


@pytest.mark.slow
def test_interrupting_the_command_cancels_the_submitted_tasks(tracking_server, cluster, tmp_path, odds_root):
    from distributed import Client

    spec = _quick_spec(tmp_path, "interrupted", epochs=30)
    env = {**os.environ, "SADKIT_DATA": str(odds_root)}
    # one cell per task (--no-stack), so that tasks are still queued when the signal comes
    cmd = [str(BIN / "sadkit"), "reproduce", str(spec), "--cluster", cluster.address, "--tracking-uri", tracking_server,
           "--no-stack"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    signal_after(proc, "[1/", signal.SIGTERM)  # after its first cell; handled like Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    with Client(cluster.address, timeout="10s", set_as_default=False) as client:
        deadline = time.monotonic() + 60  # a cell already running finishes; nothing else starts
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
    runs = _runs(tracking_server, "interrupted")
    parent = next(r for r in runs if r.info.run_name == "reproduce odds-quick")
    assert parent.info.status == "KILLED"
    assert len([r for r in runs if KEY_TAG in r.data.tags]) < 8, "the cells went on running after the interrupt"
