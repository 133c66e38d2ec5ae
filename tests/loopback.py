"""Real servers on 127.0.0.1 for integration tests and benchmarks (a plain module: ``from loopback import ...``).

- ``postgres_database()``: a fresh PostgreSQL database, dropped afterwards (``Unavailable`` where
  PostgreSQL does not answer at :data:`PG_ADMIN`);
- ``mlflow_server(backend, folder)``: ``mlflow server`` (one worker by default, job execution off) on a free port,
  its artifacts served by itself;
- ``dask_cluster(n_workers, folder)``: ``dask scheduler`` and ``n_workers`` ``dask worker`` processes (one
  thread each, no nanny, so a killed worker stays dead), as :class:`Cluster`.

- ``signal_after(proc, prefix)``: signal a command once a line of its stderr starts with ``prefix`` (to
  interrupt a reproduction after its k-th cell).

Every process is started with the venv's own command-line tools and stopped (terminated, then killed) on
exit. Used by tests/core/test_tracking_server.py, tests/cli/test_cluster.py and benchmarks/cluster_throughput.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
#: seconds a server has to start listening
START_TIMEOUT = 180.0


class Unavailable(RuntimeError):
    """What a test skips on: PostgreSQL (or its driver) is not there."""


def signal_after(proc: subprocess.Popen, prefix: str, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to ``proc`` (started with ``stderr=PIPE, text=True``) once a line of its stderr starts
    with ``prefix``; fails (AssertionError) if it ends before."""
    for line in proc.stderr:
        if line.startswith(prefix):
            proc.send_signal(signum)
            return
    raise AssertionError(f"the command ended (exit {proc.wait()}) before printing a line starting with {prefix!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards), as a SQLAlchemy URL."""
    try:
        import psycopg
    except ImportError as err:
        raise Unavailable("psycopg is not installed") from err
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        raise Unavailable(f"PostgreSQL is not reachable at {PG_ADMIN}: {err}") from err
    name = f"sadkit_mlflow_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _wait_listening(proc: subprocess.Popen, port: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"{what} did not listen within {START_TIMEOUT:.0f} s: {tail}") from None
            time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(cmd: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(cmd, env=env or dict(os.environ), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def mlflow_server(backend: str, folder: Path, workers: int = 1) -> Iterator[str]:
    """``mlflow server`` on a free port of 127.0.0.1 with ``backend`` as its store; yields its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--backend-store-uri", backend, "--serve-artifacts", "--artifacts-destination", str(folder / "artifacts"),
    ]  # fmt: skip
    log = folder / "mlflow-server.log"
    proc = _start(cmd, log, folder, env)
    try:
        _wait_listening(proc, port, log, "mlflow server")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@dataclass
class Cluster:
    """A loopback Dask cluster: its scheduler's address and its worker processes."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL one worker process (no nanny restarts it)."""
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait()


def _worker_count(address: str) -> int:
    from distributed import Client

    with Client(address, timeout="10s", set_as_default=False) as client:
        return len(client.scheduler_info()["workers"])


@contextlib.contextmanager
def dask_cluster(n_workers: int, folder: Path, env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """``dask scheduler`` and ``n_workers`` ``dask worker`` processes (1 thread, no nanny) on 127.0.0.1."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    scheduler = _start(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        folder / "scheduler.log",
        folder,
        env,
    )
    cluster = Cluster(address, scheduler)
    try:
        _wait_listening(scheduler, port, folder / "scheduler.log", "dask scheduler")
        for i in range(n_workers):
            cmd = [
                str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                "--name", f"w{i}", "--local-directory", str(folder / f"w{i}"), "--memory-limit", "0",
            ]  # fmt: skip
            cluster.workers.append(_start(cmd, folder / f"worker{i}.log", folder, env))
        deadline = time.monotonic() + START_TIMEOUT
        while _worker_count(address) < n_workers:
            if time.monotonic() > deadline or any(w.poll() is not None for w in cluster.workers):
                logs = "".join((folder / f"worker{i}.log").read_text()[-1500:] for i in range(n_workers))
                raise RuntimeError(f"the dask workers did not all join within {START_TIMEOUT:.0f} s: {logs}")
            time.sleep(0.3)
        yield cluster
    finally:
        for proc in [*cluster.workers, scheduler]:
            _stop(proc)
