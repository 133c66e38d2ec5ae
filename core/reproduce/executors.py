"""Where a reproduction's tasks run: in this process, in a local process pool, or on a Dask cluster.

An executor takes tasks (lists of cells, see :mod:`.tasks`) and yields an :class:`Outcome` for each as
it completes, in the order they complete, so the runner can report progress and a later invocation can
resume from every cell already FINISHED. Ctrl-C (KeyboardInterrupt) cancels what has not started and
is raised again. The Dask executor lives in :mod:`.cluster`, the only place that imports dask.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

from .report import CellResult
from .spec import Cell
from .tasks import run_task


@dataclass
class Outcome:
    """What one task came to: per cell its result or the exception it failed with, or the error the task raised."""

    cells: list[Cell]
    results: list[CellResult | Exception] | None = None
    error: BaseException | None = None


class Executor:
    """Runs tasks and yields their outcomes as they complete. A context manager: leaving it releases
    what it holds (processes, a scheduler connection)."""

    #: a word for the logs and the parent run's ``executor`` parameter
    name = "executor"

    def slots(self) -> int:
        """How many tasks run at once (for the progress display's "running")."""
        return 1

    def run(self, tasks: list[list[Cell]], parent_run_id: str | None) -> Iterator[Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor holds."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcess(Executor):
    """One task after the other, in this process (``--workers 1``)."""

    name = "in-process"

    def __init__(self) -> None:
        from ..tracking.figures import start_helper

        start_helper()  # the figure helper imports matplotlib while this process opens the store

    def run(self, tasks: list[list[Cell]], parent_run_id: str | None) -> Iterator[Outcome]:
        from ..tracking.figures import background_figures

        with background_figures():  # a task's figures are drawn while the next one trains
            for cells in tasks:
                try:
                    results = run_task(cells, parent_run_id)
                except Exception as err:  # noqa: BLE001 - the runner reports it with the cells; Ctrl-C passes
                    yield Outcome(cells, error=err)
                else:
                    yield Outcome(cells, results=results)


class LocalPool(Executor):
    """A pool of ``workers`` spawned processes on this machine (``--workers N``)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.name = f"local pool of {workers}"
        self._pool: ProcessPoolExecutor | None = None

    def slots(self) -> int:
        return self.workers

    def run(self, tasks: list[list[Cell]], parent_run_id: str | None) -> Iterator[Outcome]:
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        pending: dict[Future, list[Cell]] = {self._pool.submit(run_task, c, parent_run_id): c for c in tasks}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    cells = pending.pop(future)
                    error = future.exception()
                    yield Outcome(cells, error=error) if error else Outcome(cells, results=future.result())
        finally:
            # Ctrl-C or an early stop: what has not started is dropped; the cells that run finish (a Ctrl-C
            # in a terminal reaches the pool's processes too, whose runs then end KILLED)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_executor(workers: int = 1, cluster: str | None = None) -> Executor:
    """The executor of ``--workers`` and ``--cluster``: a Dask cluster when an address is given, else a
    local pool for several workers, else this process.

    Raises:
        SadkitError: the Dask scheduler cannot be reached.
    """
    if cluster:
        from .cluster import DaskCluster

        return DaskCluster(cluster)
    return LocalPool(workers) if workers > 1 else InProcess()
