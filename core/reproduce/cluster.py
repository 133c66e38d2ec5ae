"""Running a reproduction's tasks on an existing Dask cluster: the only module of sadkit importing dask.

``sadkit reproduce SPEC --cluster tcp://HOST:PORT`` connects a ``distributed.Client`` to a scheduler
started with ``dask scheduler`` and submits one Dask task per sadkit task (see :mod:`.tasks`); workers
started with ``dask worker tcp://HOST:PORT`` on any machine where sadkit and the data are installed
run them and log into the tracking store the command names, which must therefore be one they can all
reach: an MLflow server (``http://``) or a database (``postgresql://``), not a local file.

Faults: a worker lost mid-task (killed, its machine gone) makes the scheduler give the task to another
worker (up to ``distributed.scheduler.allowed-failures`` times, 3 by default, then the task fails with
``KilledWorker``); the retry ends KILLED the run its first attempt left RUNNING. A lost scheduler stops
the command with a message; rerunning it reads back every cell that finished. Ctrl-C cancels the tasks
that have not run (the scheduler cannot stop a task a worker is running: its cell finishes and is
recorded, and a rerun reads it back).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import SadkitError, SadkitWarning
from .executors import Executor, Outcome
from .spec import Cell
from .tasks import run_task

#: seconds to wait for the scheduler to answer
CONNECT_TIMEOUT = 10.0


def shared_store_uri(tracking_uri: str | None) -> str:
    """The tracking URI the workers of a cluster will log into, refused when it is a file of this machine.

    Raises:
        SadkitError: the URI is a local SQLite file (or a ``file:`` store).
    """
    from ..tracking import is_local_store, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if is_local_store(uri):
        raise SadkitError(
            f"the tracking store {uri} is a file on this machine, which Dask workers on other machines cannot"
            " write to (and SQLite must not be shared over a network file system). Use a store every worker"
            " can reach: an MLflow server (--tracking-uri http://HOST:5000, e.g. `mlflow server"
            " --backend-store-uri postgresql://USER@HOST/DB`) or the database itself (postgresql://USER@HOST/DB)"
        )
    return uri


def _sadkit_version() -> str:
    """The sadkit installed where this runs (sent by value to the workers: it must not need sadkit there)."""
    from importlib.metadata import version

    return version("sadkit")


_sadkit_version.__module__ = "__main__"  # cloudpickle sends it by value, so a worker without sadkit can run it


def check_workers(found: dict[str, Any], expected: str) -> None:
    """Refuse a cluster whose workers cannot import sadkit, or run another version of it.

    Args:
        found: worker address -> the sadkit version it reported, or the exception it raised.
        expected: the version installed here.

    Raises:
        SadkitError: naming the workers and what they lack.
    """
    missing = sorted(address for address, value in found.items() if isinstance(value, BaseException))
    other = sorted(
        f"{address} ({value})" for address, value in found.items() if isinstance(value, str) and value != expected
    )
    if missing:
        raise SadkitError(
            f"Dask worker(s) {', '.join(missing)} cannot import sadkit: install it there (with the same"
            f" constraints.txt, version {expected}) and restart the worker(s)"
        )
    if other:
        raise SadkitError(
            f"Dask worker(s) {', '.join(other)} run another version of sadkit than this machine ({expected}):"
            " install the same version everywhere, or the cells would not be the ones this spec describes"
        )


class DaskCluster(Executor):
    """The workers of an existing Dask scheduler at ``address`` (``tcp://HOST:PORT``).

    Raises:
        SadkitError: the scheduler does not answer within ``timeout`` seconds (default :data:`CONNECT_TIMEOUT`).
    """

    def __init__(self, address: str, timeout: float | None = None) -> None:
        from distributed import Client

        timeout = timeout or CONNECT_TIMEOUT
        self.address = address
        self.name = f"dask cluster at {address}"
        try:
            self.client = Client(address, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise SadkitError(
                f"cannot reach the Dask scheduler at {address}: {type(err).__name__}: {err}. Start one with"
                f" `dask scheduler` and its workers with `dask worker {address}`, or correct the address"
            ) from err
        check_workers(self.client.run(_sadkit_version, on_error="return"), _sadkit_version())
        if not self.client.scheduler_info().get("workers"):
            warnings.warn(
                f"the Dask scheduler at {address} has no workers yet: the cells wait until `dask worker"
                f" {address}` starts on some machine",
                SadkitWarning,
                stacklevel=2,
            )

    def slots(self) -> int:
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001 - only a display figure; the scheduler may be gone
            return 1

    def run(self, tasks: list[list[Cell]], parent_run_id: str | None) -> Iterator[Outcome]:
        from distributed import as_completed

        prefix = f"sadkit-cell-{(parent_run_id or 'none')[:8]}"
        futures: dict[Any, list[Cell]] = {
            self.client.submit(run_task, cells, parent_run_id, key=f"{prefix}-{cells[0].key[:16]}", pure=False): cells
            for cells in tasks
        }
        try:
            for future in as_completed(list(futures), loop=self.client.loop):
                cells = futures.pop(future)
                if future.status == "finished":
                    yield Outcome(cells, results=future.result())
                elif future.status == "error":
                    yield Outcome(cells, error=future.exception())
                else:  # cancelled by nobody but the client itself: the scheduler is gone
                    raise self._lost(future)
        finally:
            if futures:  # Ctrl-C, a lost scheduler, or the caller stopped early: cancel what is left
                try:
                    self.client.cancel(list(futures), force=True)
                except Exception:  # noqa: BLE001 - the scheduler may be gone; nothing left to cancel then
                    pass

    def _lost(self, future: Any) -> SadkitError:
        return SadkitError(
            f"lost the Dask scheduler at {self.address} (task {future.key} is {future.status}). The cells that"
            " finished are recorded in the tracking store: run the same command again, once the scheduler is"
            " back, to compute only the rest"
        )

    def close(self) -> None:
        try:
            self.client.close(timeout=5)
        except Exception:  # noqa: BLE001 - closing a client whose scheduler is gone
            pass
