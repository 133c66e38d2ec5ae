"""``sadkit study`` and ``sadkit study show``: through Typer's CliRunner, and as real processes that are
interrupted (SIGINT) and killed (SIGKILL) mid-trial and then resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

FAST = ["-p", "n_epochs=3", "-p", "ae_n_epochs=1", "-p", "lr_milestones=[2]", "-p", "ae_lr_milestones=[1]"]
SYNTH = ["deepsad", "synthetic", *FAST, "-d", "n_samples=400", "--sampler", "random", "--threads", "1"]



def _states(storage: str, name: str) -> list[str]:
    study = optuna.load_study(study_name=name, storage=storage)
    return [t.state.name for t in study.get_trials()]


def test_study_json_resume_and_param_leaves_the_space(cli, tracking_uri, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [*SYNTH, "-p", "lr=0.001", "--storage", storage, "--n-trials", "2", "--json"]
    result = cli("study", *args)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    for key in ("study_name", "n_trials", "best_value", "best_params", "best_run_id", "parent_run_id"):
        assert key in out, key
    assert out["study_name"] == "deepsad-synthetic" and out["n_trials"] == 2 and out["n_run"] == 2
    assert "lr" not in out["best_params"] and {"eta", "batch_size"} <= set(out["best_params"])
    best = MlflowClient(tracking_uri).get_run(out["best_run_id"])
    assert best.data.params["lr"] == "0.001" and best.data.tags["mlflow.parentRunId"] == out["parent_run_id"]
    assert best.data.metrics["val_auroc"] == pytest.approx(out["best_value"])

    again = json.loads(cli("study", *args[:-3], "--n-trials", "3", "--json").stdout)
    assert again["n_trials"] == 3 and again["n_run"] == 1 and again["parent_run_id"] != out["parent_run_id"]
    assert _states(storage, "deepsad-synthetic") == ["COMPLETE"] * 3

    other = cli("study", *args[:-1], "--metric", "val_auprc")
    assert other.exit_code == 1 and "metric: study has 'val_auroc', asked for 'val_auprc'" in other.stderr


def test_study_from_a_spec_then_show_and_export_best(cli, tracking_uri, tmp_path):
    spec = tmp_path / "study_quick.yaml"
    spec.write_text(
        "detector: deepsad\ndataset: synthetic\nseed: 0\ndata: {n_samples: 400}\nthreads: 1\n"
        "params: {n_epochs: 3, ae_n_epochs: 1, lr_milestones: [2], ae_lr_milestones: [1]}\n"
        f"study_name: quick\nstorage: journal:///{tmp_path / 'quick.log'}\nn_trials: 2\nsampler: tpe\n"
        "pruner: {type: median, n_warmup_steps: 1}\n"
        "space: {lr: {type: float, low: 1e-4, high: 1e-2, log: true}, batch_size: {type: categorical,"
        " choices: [64, 128]}, weight_decay: null}\n"
    )
    result = cli("study", str(spec))
    assert result.exit_code == 0, result.stderr
    assert "best val_auroc" in result.stdout and "trial   1" in result.stderr
    storage = f"journal:///{tmp_path / 'quick.log'}"

    shown = cli("study", "show", "quick", "--storage", storage, "--export-best", str(tmp_path / "best.yaml"))
    assert shown.exit_code == 0, shown.stderr
    assert "top 2 trials" in shown.stdout and "parameter importances" in shown.stdout
    report = json.loads(cli("study", "show", "quick", "--storage", storage, "--json").stdout)
    assert report["n_trials"] == 2 and report["metric"] == "val_auroc" and len(report["top"]) == 2
    if report["importances"] is None:  # the 2 trials may tie (val_auroc 1.0 on this easy data)
        assert "need trials that differ" in report["importance_note"]
    else:
        assert set(report["importances"]) == {"lr", "batch_size", "ae_lr", "eta"}  # weight_decay left the space
    assert report["top"][0]["value"] == pytest.approx(report["best_value"])

    run = cli("run", str(tmp_path / "best.yaml"), "--json", "--no-model")
    assert run.exit_code == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["val_auroc"] == pytest.approx(report["best_value"])
    assert out["params"]["lr"] == pytest.approx(report["best_params"]["lr"])

    listing = cli("study", "show", "--storage", storage)
    assert "quick" in listing.stdout
    missing = cli("study", "show", "slow", "--storage", storage)
    assert missing.exit_code == 1 and "no study named 'slow'" in missing.stderr and "it holds: quick" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*SYNTH, "--sampler", "bayes"], "unknown sampler 'bayes'; choose one of tpe, random, cmaes, grid"),
        ([*SYNTH, "--pruner", "sha"], "unknown pruner 'sha'; choose one of median, hyperband, none"),
        (
            [*SYNTH, "--storage", "postgresql://postgres@127.0.0.1:1/test"],
            "cannot open the Optuna storage postgresql+psycopg://postgres@127.0.0.1:1/test",
        ),
        ([*SYNTH, "-p", "learning_rate=0.1"], "detector 'deepsad' has no parameter 'learning_rate'"),
        ([*SYNTH, "--metric", "test_auroc"], "unknown metric 'test_auroc'"),
        ([*SYNTH, "--seeds", "0,x"], "seeds must be an integer, got 'x'"),
        (["deepsad"], "missing DATASET"),
        (["show", "nosuch", "--storage", "sqlite:///optuna.db"], "no Optuna storage at sqlite:///optuna.db"),
        (["show", "x", "--n-trials", "3"], "takes --storage, --top, --export-best and --json only, not --n-trials"),
    ],
)
def test_bad_input_is_one_clear_line(cli, tracking_uri, args, message):
    result = cli("study", *args)
    assert result.exit_code == 1, result.stdout
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().startswith("error:")
    assert not Path("optuna.db").exists()


def test_an_existing_study_with_another_direction(cli, tracking_uri, tmp_path):
    storage = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(storage=storage, study_name="theirs", direction="minimize")
    result = cli("study", *SYNTH, "--storage", storage, "--study-name", "theirs")
    assert result.exit_code == 1
    assert "direction is minimize, but a sadkit study maximizes val_auroc" in result.stderr


# ------------------------------------------------------------------------------------ real processes


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    exe = shutil.which("sadkit", path=str(Path(sys.executable).parent))
    assert exe, "the sadkit console script is not installed next to this Python"
    return subprocess.Popen(
        [exe, "study", *args], cwd=cwd, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_running(storage: str, name: str, proc: subprocess.Popen, timeout: float = 120) -> int:
    """The number of a trial once it is RUNNING (and training has begun)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        except KeyError:  # the study does not exist yet
            trials = []
        running = [t for t in trials if t.state.name == "RUNNING" and "sadkit.run_id" in t.user_attrs]
        if running:
            return running[0].number
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no RUNNING trial within {timeout} s")


@pytest.mark.slow
def test_interrupted_and_killed_studies_resume(tracking_uri, tmp_path):
    """Ctrl-C ends the trial FAILED (run KILLED); SIGKILL leaves it RUNNING until its heartbeat is
    stale, then the resumed study fails it (and its MLflow runs) and completes new trials."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [
        "deepsad",
        "synthetic",
        *["-p", "n_epochs=400", "-p", "ae_n_epochs=1", "-p", "lr_milestones=[200]", "-p", "ae_lr_milestones=[1]"],
        *["-d", "n_samples=400", "--threads", "1", "--sampler", "random", "--pruner", "none"],
        *["--storage", storage, "--study-name", "killme", "--n-trials", "1", "--heartbeat", "1"],
    ]
    client = MlflowClient(tracking_uri)

    proc = _start(args, tmp_path)
    first = _wait_running(storage, "killme", proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    trial = optuna.load_study(study_name="killme", storage=storage).get_trials()[first]
    assert trial.state.name == "FAIL"
    assert client.get_run(trial.user_attrs["sadkit.run_id"]).info.status == "KILLED"
    assert client.get_run(trial.user_attrs["sadkit.parent_run_id"]).info.status == "KILLED"

    proc = _start(args, tmp_path)
    killed = _wait_running(storage, "killme", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    stale = optuna.load_study(study_name="killme", storage=storage).get_trials()[killed]
    assert stale.state.name == "RUNNING"  # nobody could end it
    assert client.get_run(stale.user_attrs["sadkit.run_id"]).info.status == "RUNNING"

    time.sleep(3.5)  # the grace period: 3 heartbeats
    proc = _start([*args, "--json"], tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["n_complete"] == 1 and result["n_failed"] == 2
    states = _states(storage, "killme")
    assert states[first] == states[killed] == "FAIL" and states.count("COMPLETE") == 1 and len(states) == 3
    stale = optuna.load_study(study_name="killme", storage=storage).get_trials()[killed]
    run = client.get_run(stale.user_attrs["sadkit.run_id"])
    assert run.info.status == "FAILED" and run.data.tags["sadkit.trial_state"] == "FAILED"
    assert "heartbeats" in run.data.tags["error"]
    assert client.get_run(stale.user_attrs["sadkit.parent_run_id"]).info.status == "FAILED"


@pytest.mark.slow
def test_two_invocations_share_one_postgresql_study(tracking_uri, tmp_path):
    """The same command on two machines (here: two processes) against one RDB URL shares the study."""
    import uuid

    from sadkit import SadkitError
    from sadkit.tuning import open_storage

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        open_storage(url)
    except SadkitError as err:
        pytest.skip(f"PostgreSQL is not reachable at {url} ({err})")
    name = f"sadkit-shared-{uuid.uuid4().hex[:12]}"
    args = [*SYNTH, "--storage", url, "--study-name", name, "--n-trials", "4", "--json"]
    try:
        procs = [_start(args, tmp_path) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
        results = [json.loads(out) for out, _ in outs]
        states = _states(url, name)
        assert 4 <= states.count("COMPLETE") <= 5 and "RUNNING" not in states  # at most one extra in a race
        assert sum(r["n_run"] for r in results) >= 4 and len({r["parent_run_id"] for r in results}) == 2
    finally:
        optuna.delete_study(study_name=name, storage=url)


@pytest.mark.slow
def test_a_study_resumed_at_once_after_kill_9_runs_every_trial_asked(tracking_uri, tmp_path):
    """Resumed right after kill -9 (before the dead trial's heartbeat is stale), the study used to count
    that trial as running-and-will-finish and stop one short (5 of 6 complete, exit 0). Now the dead
    trial is waited for until the heartbeat fails it, then replaced."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [
        "deepsad",
        "synthetic",
        *["-p", "n_epochs=200", "-p", "ae_n_epochs=1", "-p", "lr_milestones=[100]", "-p", "ae_lr_milestones=[1]"],
        *["-d", "n_samples=400", "--threads", "1", "--sampler", "random", "--pruner", "none"],
        # 10 s heartbeats: the killed trial stays RUNNING (grace 30 s) while the second invocation starts,
        # even on a loaded machine (a start took 15 s there); with 1 s the start alone outlived the grace
        *["--storage", storage, "--study-name", "resume", "--n-trials", "2", "--heartbeat", "10"],
    ]
    proc = _start(args, tmp_path)
    killed = _wait_running(storage, "resume", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert _states(storage, "resume")[killed] == "RUNNING"

    proc = _start([*args, "--json"], tmp_path)  # at once: the killed trial still looks RUNNING
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["n_complete"] == 2 and result["n_failed"] == 1, result
    states = _states(storage, "resume")
    assert states[killed] == "FAIL" and states.count("COMPLETE") == 2
