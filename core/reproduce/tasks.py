"""What runs on a worker: a task, i.e. a list of cells, each one tracked experiment.

A task is the unit an executor hands out (a local process, a Dask worker). Today each task holds one
cell; a list lets several seeds of one cell group train together as one task later (stacked training).
This module is imported by the workers, so it stays light: the experiment machinery is imported inside.
"""

from __future__ import annotations

import os
import socket
import time

from .report import CellResult
from .spec import KEY_TAG, Cell

#: the tag saying which process ran a cell (``HOST:PID``)
HOST_TAG = "sadkit.reproduce.host"
#: why a retried cell's earlier run ended KILLED (kept in its ``sadkit.swept`` tag)
RETRIED = "the worker running this attempt of the cell was lost (killed?); the cell was retried on another worker"


def run_cell(cell: Cell, parent_run_id: str | None) -> CellResult:
    """Run one cell as a tracked experiment nested under ``parent_run_id``, tagged with the cell's key."""
    from ..experiment import run_experiment

    started = time.perf_counter()
    result = run_experiment(
        cell.experiment_spec(),
        parent_run_id=parent_run_id,
        tags={KEY_TAG: cell.key, "sadkit.reproduce.method": cell.method.label, HOST_TAG: _host()},
    )
    return CellResult.of(
        cell,
        test_auroc=result.test_auroc,
        val_auroc=result.val_auroc,
        run_id=result.run_id,
        reused=False,
        wall_seconds=time.perf_counter() - started,
    )


def _host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def end_earlier_attempts(cells: list[Cell], parent_run_id: str | None) -> int:
    """End KILLED the runs that an earlier attempt of these cells left RUNNING under the same parent run.

    Within one invocation each cell is handed out once, so a RUNNING run with its key under this parent
    when the task starts belongs to an attempt whose worker died (a Dask worker killed mid-cell, its task
    given to another worker). Returns how many runs it ended.
    """
    if not cells or parent_run_id is None:
        return 0
    from ..tracking import PARENT_TAG, shared_tracker

    spec = cells[0].spec
    tracker = shared_tracker(spec.tracking_uri, spec.experiment or spec.name)
    return sum(len(tracker.end_orphans({KEY_TAG: cell.key, PARENT_TAG: parent_run_id}, RETRIED)) for cell in cells)


def run_task(cells: list[Cell], parent_run_id: str | None) -> list[CellResult]:
    """Run a task's cells one after the other, after ending what an earlier attempt left RUNNING.

    Args:
        cells: the cells of the task (one today; several seeds of one cell group with stacked training).
        parent_run_id: the reproduction's parent run.

    Returns:
        One result per cell, in order.
    """
    end_earlier_attempts(cells, parent_run_id)
    return [run_cell(cell, parent_run_id) for cell in cells]
