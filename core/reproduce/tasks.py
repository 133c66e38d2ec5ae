"""What runs on a worker: a task, i.e. a list of cells, each one tracked experiment.

A task is the unit an executor hands out (a local process, a Dask worker): the cells of one data setting
(:func:`group_cells`), whose models train stacked where they can, or one cell with ``--no-stack``.
This module is imported by the workers, so it stays light: the experiment machinery is imported inside.
"""

from __future__ import annotations

import json
import os
import socket
import time

from .report import CellResult
from .spec import KEY_TAG, Cell

#: the most cells one task holds (their models train stacked where they can)
MAX_STACK = 100
#: the tag saying which process ran a cell (``HOST:PID``)
HOST_TAG = "sadkit.reproduce.host"
#: why a retried cell's earlier run ended KILLED (kept in its ``sadkit.swept`` tag)
RETRIED = "the worker running this attempt of the cell was lost (killed?); the cell was retried on another worker"


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


def run_task(cells: list[Cell], parent_run_id: str | None) -> list[CellResult | Exception]:
    """Run a task's cells, after ending what an earlier attempt left RUNNING; their models train stacked
    where they can (:func:`sadkit.experiment.run_experiments`), each cell in its own run.

    Args:
        cells: the cells of the task (see :func:`group_cells`).
        parent_run_id: the reproduction's parent run.

    Returns:
        Per cell, in order, its result or the exception it failed with (the other cells still finish).
    """
    from ..experiment import run_experiments

    end_earlier_attempts(cells, parent_run_id)
    started = time.perf_counter()
    outcomes = run_experiments(
        [cell.experiment_spec() for cell in cells],
        parent_run_id=parent_run_id,
        tags=[{KEY_TAG: cell.key, "sadkit.reproduce.method": cell.method.label, HOST_TAG: _host()} for cell in cells],
        return_exceptions=True,
    )
    return [
        r
        if isinstance(r, BaseException)
        else CellResult.of(
            cell, test_auroc=r.test_auroc, val_auroc=r.val_auroc, run_id=r.run_id, reused=False, wall_seconds=wall
        )
        for cell, r, wall in zip(cells, outcomes, cell_seconds(outcomes, time.perf_counter() - started), strict=True)
    ]


def cell_seconds(outcomes: list, task_seconds: float) -> list[float]:
    """Each cell's wall time within its task: its own fit (``pretrain_seconds + train_seconds``; a stacked
    model's share of its stack) plus an equal share of the rest of the task (data, runs, evaluation,
    tracking). Models that cannot stack train one by one in one task; each then gets its own time, not
    the task's average."""
    own = [0.0 if isinstance(r, BaseException) else r.pretrain_seconds + r.train_seconds for r in outcomes]
    rest = max(0.0, task_seconds - sum(own)) / len(outcomes)
    return [seconds + rest for seconds in own]


def group_cells(cells: list[Cell], stack: bool = True, max_stack: int = MAX_STACK) -> list[list[Cell]]:
    """The cells grouped into tasks: one cell each with ``stack`` False; else every cell of one data setting
    (for images, of one normal class), methods and seeds, at most ``max_stack`` per task.

    Within a task, :func:`sadkit.stacked_fit.fit_together` stacks the models that can train together (the
    seeds of a method, Deep SAD with Deep SVDD, the known anomaly classes of a normal class) and fits the
    others one by one.
    """
    if not stack:
        return [[cell] for cell in cells]
    order = {m.label: i for i, m in enumerate(cells[0].spec.methods)} if cells else {}
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        setting = cell.data
        shared = {"normal_class": setting["normal_class"]} if "normal_class" in setting else setting
        groups.setdefault(json.dumps(shared, sort_keys=True, default=str), []).append(cell)
    chunks = []
    for group in groups.values():
        group.sort(key=lambda c: order[c.method.label])
        chunks += [group[i : i + max_stack] for i in range(0, len(group), max_stack)]
    return chunks
