"""Opening a tracking store: a store that cannot work fails in a second or two with one line naming it
(no MLflow retry loop), and four processes creating the same new SQLite store at once all succeed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sadkit.errors import SadkitError
from sadkit.tracking import Tracker


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bad_stores(tmp_path: Path, silent_port: int) -> dict[str, str]:
    """URI -> a part of the message."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("these are my notes, not a database")
    closed = _closed_port()
    return {
        "bogus://x": "unknown scheme 'bogus'",
        "not a uri": "it is not a URI",
        "sqlite:////proc/mlflow.db": "cannot create files in its folder /proc",
        f"sqlite:///{a_file}/mlflow.db": "cannot create files in its folder",
        f"sqlite:///{not_sqlite}": "is not a SQLite database",
        f"postgresql://postgres@127.0.0.1:{closed}/test": "Connection refused",
        f"postgresql://postgres@127.0.0.1:{silent_port}/test": "timeout",
        f"http://127.0.0.1:{closed}": "Connection refused",
        f"http://127.0.0.1:{silent_port}": "timed out",
    }


@pytest.mark.parametrize(
    "index",
    range(9),
    ids=[
        "bogus",
        "no-uri",
        "proc",
        "under-a-file",
        "not-sqlite",
        "pg-refused",
        "pg-silent",
        "http-refused",
        "http-silent",
    ],
)
def test_a_store_that_cannot_work_fails_fast_with_one_line(index, tmp_path, silent_server):
    uri, expected = list(_bad_stores(tmp_path, silent_server).items())[index]
    started = time.monotonic()
    with pytest.raises(SadkitError) as info:
        Tracker(uri)
    seconds = time.monotonic() - started
    message = str(info.value)
    assert message.startswith(f"cannot use the MLflow tracking store {uri}: "), message
    assert expected in message and "\n" not in message, message
    assert seconds < 5, f"{uri}: {seconds:.1f} s"  # 2 s timeouts; MLflow's own retries took ~114 s


def test_the_cli_says_it_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from sadkit.cli import app

    result = CliRunner().invoke(app, ["run", "iforest", "synthetic", "--tracking-uri", "bogus://x"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot use the MLflow tracking store bogus://x")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_four_processes_create_one_new_store_at_once(tmp_path):
    """Without the file lock, MLflow's schema migration raced: `duplicate column name: step`, `table
    alembic_version already exists` (3 of 3 tries failed with 2 processes, 4 of 4 processes with 4)."""
    exe = shutil.which("sadkit", path=str(Path(sys.executable).parent))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the default ./mlflow.db
    procs = [
        subprocess.Popen(
            [exe, "run", "iforest", "synthetic", "--no-model", "--seed", str(i), "--threads", "1"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in results] == [0] * 4, [err[-500:] for _, err in results]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sadkit")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
