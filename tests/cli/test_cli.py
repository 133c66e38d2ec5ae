"""The command line, driven through Typer's CliRunner (and once as a real console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from sadkit.cli import app
from sadkit.testing import CHECKS

FAST = ["-p", "n_epochs=3", "-p", "ae_n_epochs=2", "-p", "lr_milestones=[2]", "-p", "ae_lr_milestones=[1]"]



def test_run_json_has_the_promised_keys_and_is_tracked(cli, tracking_uri):
    result = cli("run", "deepsad", "synthetic", *FAST, "--data", "n_samples=500", "--seed", "1", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    for key in ("run_id", "val_auroc", "test_auroc", "test_auprc", "train_seconds", "n_train"):
        assert key in out, key
    assert out["seed"] == 1 and out["params"]["n_epochs"] == 3
    run = MlflowClient(tracking_uri).get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_auroc"] == pytest.approx(out["test_auroc"])


def test_run_paper_default_on_real_odds_data(cli, tracking_uri, odds_root):
    result = cli(
        "run",
        "deepsad",
        "odds",
        *FAST,
        "--data",
        "name=cardio",
        "--data",
        "ratio_known_outlier=0.01",
        "--data",
        f"root={odds_root}",
        "--seed",
        "0",
        "--json",
        "--no-model",
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["params"]["net_name"] == "cardio_mlp"
    assert out["n_train"] + out["n_val"] > 900 and out["n_test"] == 733
    assert out["model_uri"] is None


def test_readable_summary_without_json(cli, tracking_uri):
    result = cli("run", "deepsvdd", "synthetic", *FAST, "--data", "n_samples=400", "--no-model")
    assert result.exit_code == 0, result.stderr
    assert "test_auroc" in result.stdout and "deepsvdd on synthetic" in result.stdout
    assert "MLflow run" in result.stderr


def test_run_from_a_spec_file(cli, tracking_uri, tmp_path):
    spec = tmp_path / "quick.yaml"
    spec.write_text(
        "detector: deepsad\ndataset: synthetic\nseed: 4\nexperiment: from-spec\n"
        "params: {n_epochs: 2, ae_n_epochs: 1, lr_milestones: [1], ae_lr_milestones: [1]}\n"
        "data: {n_samples: 400}\nlog_model: false\n"
    )
    result = cli("run", str(spec), "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["seed"] == 4
    run = MlflowClient(tracking_uri).get_run(out["run_id"])
    assert MlflowClient(tracking_uri).get_experiment(run.info.experiment_id).name == "from-spec"


def test_plugins_list_json(cli):
    result = cli("plugins", "list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {"group": "sadkit.detectors", "name": "deepsad", "distribution": "sadkit"} in rows
    assert all(set(r) <= {"group", "name", "distribution", "error"} for r in rows)


def test_plugins_list_check_shows_a_broken_plugin(cli, fake_distribution):
    fake_distribution("brokendist", {"sadkit.datasets": {"brokends": "no_such_module_xyz:Data"}})
    listed = cli("plugins", "list", "--json")  # metadata only: listed, not imported
    assert listed.exit_code == 0
    assert {"group": "sadkit.datasets", "name": "brokends", "distribution": "brokendist"} in json.loads(listed.stdout)
    checked = cli("plugins", "list", "--check", "--json")
    assert checked.exit_code == 1
    broken = [r for r in json.loads(checked.stdout) if r["name"] == "brokends"]
    assert broken and broken[0]["distribution"] == "brokendist" and "no_such_module_xyz" in broken[0]["error"]
    assert all("error" not in r for r in json.loads(checked.stdout) if r["name"] != "brokends")
    table = cli("plugins", "list", "--check")
    assert "brokends" in table.stdout and "failed" in table.stdout
    result = cli("run", "deepsad", "brokends")
    assert result.exit_code == 1
    assert "brokendist failed to load" in result.stderr


def test_plugins_check_passes_for_a_builtin(cli):
    result = cli("plugins", "check", "deepsvdd")
    assert result.exit_code == 0, result.stdout
    assert f"{len(CHECKS)} passed, 0 failed" in result.stdout
    assert all(f"PASS {check.__name__.removeprefix('check_')}" in result.stdout for check in CHECKS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nosuch", "synthetic"], "no detector named 'nosuch'; installed: active, deepsad, deepsvdd, esad"),
        (["run", "deepsad", "nosuchdata"], "no dataset named 'nosuchdata'"),
        (["run", "deepsad", "synthetic", "-p", "net_name=nosuchnet", *FAST], "no network named 'nosuchnet'"),
        (["run", "deepsad", "synthetic", "-p", "learning_rate=1"], "no parameter 'learning_rate'"),
        (["run", "deepsad", "synthetic", "--data", "ratio_known_outlier=1.5"], "ratio_known_outlier must be in"),
        (["run", "deepsad", "synthetic", "--data", "ratio_pollution=-0.1"], "ratio_pollution must be in"),
        (["run", "deepsad", "synthetic", "-p", "lr"], "--param expects key=value"),
        (["run", "deepsad"], "missing DATASET"),
        (["run", "nosuch.yaml"], "does not exist"),
    ],
)
def test_errors_are_one_clear_line(cli, tracking_uri, args, message):
    result = cli(*args)
    assert result.exit_code == 1, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(cli, tracking_uri):
    result = cli("run", "deepsad", "synthetic", *FAST, "--device", "cuda")
    assert result.exit_code == 1
    assert "sees no CUDA GPU" in result.stderr and "--device cpu" in result.stderr


def test_debug_shows_the_traceback(cli, tracking_uri):
    result = CliRunner().invoke(app, ["--debug", "run", "nosuch", "synthetic"])
    assert result.exit_code != 0
    from sadkit import PluginNotFoundError

    assert isinstance(result.exception, PluginNotFoundError)


def test_more_labeled_anomalies_than_exist(cli, tracking_uri, odds_root):
    result = cli(
        "run",
        "deepsad",
        "odds",
        "--data",
        "name=thyroid",
        "--data",
        f"root={odds_root}",
        "--data",
        "ratio_known_outlier=0.5",
    )
    assert result.exit_code == 1
    assert "labeled anomalies but the training pool holds only" in result.stderr


def test_missing_and_corrupt_data_files(cli, tracking_uri, tmp_path, odds_root):
    from httpserver import closed_port

    empty = tmp_path / "empty"
    result = cli(
        "run",
        "deepsad",
        "odds",
        "--data",
        "name=cardio",
        "--data",
        f"root={empty}",
        "--data",
        f"url=http://127.0.0.1:{closed_port()}",
    )
    assert result.exit_code == 1 and "cannot download" in result.stderr
    corrupt = tmp_path / "corrupt"
    (corrupt / "odds").mkdir(parents=True)
    data = (odds_root / "odds" / "cardio.mat").read_bytes()
    (corrupt / "odds" / "cardio.mat").write_bytes(data[: len(data) // 2])
    result = cli("run", "deepsad", "odds", "--data", "name=cardio", "--data", f"root={corrupt}")
    assert result.exit_code == 1 and "corrupt" in result.stderr


def test_nan_features_and_wrong_shapes(cli, tracking_uri, tmp_path):
    root = tmp_path / "data"
    (root / "odds").mkdir(parents=True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    X[5, 2] = np.nan
    y = np.r_[np.zeros(180), np.ones(20)][:, None]
    scipy.io.savemat(root / "odds" / "mine.mat", {"X": X, "y": y})
    result = cli("run", "deepsad", "odds", "--data", "name=mine", "--data", f"root={root}")
    assert result.exit_code == 1 and "NaN" in result.stderr
    X[5, 2] = 0.0
    scipy.io.savemat(root / "odds" / "mine.mat", {"X": X, "y": y})
    result = cli(
        "run", "deepsad", "odds", "--data", "name=mine", "--data", f"root={root}", "-p", "net_name=thyroid_mlp", *FAST
    )
    assert result.exit_code == 1 and "6 features" in result.stderr and "(4,)" in result.stderr


def test_console_script_is_installed():
    exe = shutil.which("sadkit", path=str(Path(sys.executable).parent))
    assert exe, "the sadkit console script is not installed next to this Python"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "run" in out.stdout and "plugins" in out.stdout


@pytest.mark.slow
def test_a_killed_run_ends_killed_not_running(tracking_uri, tmp_path):
    """A real `kill` (SIGTERM) of `sadkit run` mid-training leaves the MLflow run KILLED."""
    import os
    import signal
    import time

    exe = shutil.which("sadkit", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen(
        [exe, "run", "deepsad", "synthetic", "-p", "n_epochs=100000", "-p", "ae_n_epochs=0", "--experiment", "kill"],
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = MlflowClient(tracking_uri)
    deadline = time.monotonic() + 90
    run = None
    while time.monotonic() < deadline and run is None:
        time.sleep(0.5)
        experiment = client.get_experiment_by_name("kill")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        run = runs[0] if runs and client.get_metric_history(runs[0].info.run_id, "n_train") else None
    assert run is not None, "the run never started"
    time.sleep(1.0)  # inside the training loop
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert client.get_run(run.info.run_id).info.status == "KILLED"
