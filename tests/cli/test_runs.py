"""No run is left RUNNING: a real `sadkit run` killed with SIGKILL is ended by the heartbeat sweep (by
hand with `sadkit runs sweep`, and automatically when sadkit next opens the store); SIGHUP ends it KILLED
like SIGTERM; runs without a heartbeat are never swept."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from sadkit.cli import app
from sadkit.tracking import HEARTBEAT_TAG, SWEPT_TAG, Tracker

BEAT = 0.2  # seconds between heartbeats in these tests; stale after 30 beats = 6 s by default


def _sadkit_run(tracking_uri: str, cwd: Path, experiment: str) -> subprocess.Popen:
    exe = shutil.which("sadkit", path=str(Path(sys.executable).parent))
    assert exe, "the sadkit console script is not installed next to this Python"
    return subprocess.Popen(
        [exe, "run", "deepsad", "synthetic", "-p", "n_epochs=100000", "-p", "pretrain=false"]
        + ["--experiment", experiment, "--threads", "1"],
        cwd=cwd,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "SADKIT_HEARTBEAT_SECONDS": str(BEAT)},
        stdout=subprocess.DEVNULL,
        stderr=(cwd / f"{experiment}.stderr").open("a"),  # a file: a pipe nobody reads can fill up
        text=True,
    )


def _training_run(client: MlflowClient, experiment: str, proc: subprocess.Popen, cwd: Path):
    """The process's run once it trains and has beaten since its start."""
    deadline = time.monotonic() + 120
    first = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, (cwd / f"{experiment}.stderr").read_text()
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs([found.experiment_id]) if found else []
        if runs and client.get_metric_history(runs[0].info.run_id, "n_train"):
            beat = runs[0].data.tags[HEARTBEAT_TAG]
            if first is not None and beat != first:
                return runs[0]
            first = first or beat
        time.sleep(BEAT)
    proc.kill()
    raise AssertionError(f"the run never trained and beat: {(cwd / f'{experiment}.stderr').read_text()[-2000:]}")


@pytest.mark.slow
def test_a_sigkilled_run_is_swept_by_hand_and_on_open(tracking_uri, tmp_path, monkeypatch):
    client = MlflowClient(tracking_uri)
    runner = CliRunner()
    foreign = client.create_run(Tracker(tracking_uri, "other").experiment_id).info.run_id  # no heartbeat tag

    proc = _sadkit_run(tracking_uri, tmp_path, "kill9")
    run = _training_run(client, "kill9", proc, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert client.get_run(run.info.run_id).info.status == "RUNNING"  # nobody could end it

    # by hand: not stale yet for 60 s, then stale for 1 s
    result = runner.invoke(app, ["runs", "sweep", "--stale-after", "60", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    time.sleep(1.5)
    result = runner.invoke(app, ["runs", "sweep", "--stale-after", "1", "--json"])
    assert result.exit_code == 0, result.stderr
    swept = json.loads(result.stdout)
    assert [s["run_id"] for s in swept] == [run.info.run_id] and swept[0]["silent_seconds"] > 1
    ended = client.get_run(run.info.run_id)
    assert ended.info.status == "KILLED" and "no heartbeat since" in ended.data.tags[SWEPT_TAG]
    last_beat = ended.data.tags[HEARTBEAT_TAG]
    assert abs(ended.info.end_time / 1000 - _timestamp(last_beat)) < 1  # ends when it last beat
    assert client.get_run(foreign).info.status == "RUNNING"  # no heartbeat tag: never swept

    # automatically, when sadkit opens the store: the default rule (30 heartbeats) after a second kill
    proc = _sadkit_run(tracking_uri, tmp_path, "kill9")
    second = _training_run(client, "kill9", proc, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert Tracker(tracking_uri, "kill9").swept == []  # silent for less than 30 x 0.2 s
    time.sleep(30 * BEAT + 1)
    tracker = Tracker(tracking_uri, "kill9")
    assert [s.run_id for s in tracker.swept] == [second.info.run_id]
    assert client.get_run(second.info.run_id).info.status == "KILLED"
    assert client.get_run(foreign).info.status == "RUNNING"


def _timestamp(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


@pytest.mark.slow
def test_sighup_ends_the_run_killed(tracking_uri, tmp_path):
    """A closed terminal or a dropped SSH session (SIGHUP) used to kill the process and leave the run RUNNING."""
    client = MlflowClient(tracking_uri)
    proc = _sadkit_run(tracking_uri, tmp_path, "hangup")
    run = _training_run(client, "hangup", proc, tmp_path)
    proc.send_signal(signal.SIGHUP)
    proc.wait(timeout=60)
    stderr = (tmp_path / "hangup.stderr").read_text()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert client.get_run(run.info.run_id).info.status == "KILLED"


def test_the_heartbeat_stops_when_the_run_ends(tracking_uri, monkeypatch):
    monkeypatch.setenv("SADKIT_HEARTBEAT_SECONDS", "0.05")
    tracker = Tracker(tracking_uri, "beats")
    with tracker.start_run("r") as run:
        first = tracker.get_run(run.run_id).data.tags[HEARTBEAT_TAG]
        time.sleep(1.1)
        later = tracker.get_run(run.run_id).data.tags[HEARTBEAT_TAG]
        assert later > first
    assert tracker.get_run(run.run_id).data.tags["sadkit.heartbeat_interval"] == "0.05"
    after = tracker.get_run(run.run_id).data.tags[HEARTBEAT_TAG]
    time.sleep(0.3)
    assert tracker.get_run(run.run_id).data.tags[HEARTBEAT_TAG] == after
    assert not [t for t in __import__("threading").enumerate() if t.name.startswith("sadkit-heartbeat")]


def test_a_bad_heartbeat_setting_is_a_clear_error(tracking_uri, monkeypatch):
    monkeypatch.setenv("SADKIT_HEARTBEAT_SECONDS", "often")
    result = CliRunner().invoke(app, ["run", "iforest", "synthetic"])
    assert result.exit_code == 1 and "SADKIT_HEARTBEAT_SECONDS must be a positive number" in result.stderr


def test_runs_sweep_prints_what_it_ended(tracking_uri):
    tracker = Tracker(tracking_uri, "old")
    run_id = tracker.client.create_run(tracker.experiment_id, run_name="old-run").info.run_id
    tracker.set_run_tags(run_id, {HEARTBEAT_TAG: "2020-01-01T00:00:00+00:00"})
    result = CliRunner().invoke(app, ["runs", "sweep", "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.stderr
    assert f"ended KILLED: run {run_id} (old-run" in result.stdout
    assert "1 run(s) ended" in result.stderr
    again = CliRunner().invoke(app, ["runs", "sweep", "--tracking-uri", tracking_uri])
    assert again.exit_code == 0 and again.stdout == "" and "no stale run" in again.stderr


def test_end_orphans_ends_the_matching_running_runs_at_once(tracking_uri):
    """What a reproduction calls when it knows a run's worker is gone: fresh heartbeat or not, the runs that
    carry every given tag end KILLED; others (other tags, no heartbeat, already ended) are left alone."""
    from datetime import datetime, timezone

    tracker = Tracker(tracking_uri, "orphans")
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")

    def run(name: str, **tags: str) -> str:
        run_id = tracker.client.create_run(tracker.experiment_id, run_name=name).info.run_id
        tracker.set_run_tags(run_id, tags)
        return run_id

    orphan = run("orphan", **{HEARTBEAT_TAG: now, "k": "a", "p": "1"})
    other_key = run("other-key", **{HEARTBEAT_TAG: now, "k": "b", "p": "1"})
    no_beat = run("no-beat", k="a", p="1")
    ended = tracker.end_orphans({"k": "a", "p": "1"}, "its worker was lost")
    assert [r.run_id for r in ended] == [orphan]
    assert tracker.run_status(orphan) == "KILLED"
    assert tracker.get_run(orphan).data.tags[SWEPT_TAG] == "its worker was lost"
    assert tracker.run_status(other_key) == tracker.run_status(no_beat) == "RUNNING"
    assert tracker.end_orphans({"k": "a", "p": "1"}, "again") == []


def test_a_run_carries_its_heartbeat_from_the_moment_it_is_created(tracking_uri, monkeypatch):
    """A worker killed between creating a run and its first beat left a RUNNING run that neither the sweep
    nor a reproduction's orphan search (both keyed on the heartbeat tag) could end (seen in CI: a Dask
    worker killed mid-cell). Here the process "dies" right after the store created the run."""
    tracker = Tracker(tracking_uri, "created")
    created: list[str] = []
    real_create = tracker.client.create_run

    def create_then_die(*args, **kwargs):
        run = real_create(*args, **kwargs)
        created.append(run.info.run_id)
        raise SystemExit("killed after create_run")

    monkeypatch.setattr(tracker.client, "create_run", create_then_die)
    with pytest.raises(SystemExit), tracker.start_run("cell", tags={"k": "a"}):
        pass
    assert tracker.run_status(created[0]) == "RUNNING"  # nobody ended it: its process is "gone"
    assert HEARTBEAT_TAG in tracker.get_run(created[0]).data.tags
    assert [r.run_id for r in tracker.end_orphans({"k": "a"}, "its worker was lost")] == created
    assert tracker.run_status(created[0]) == "KILLED"
