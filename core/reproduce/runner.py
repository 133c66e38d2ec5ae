"""Running a reproduction: every cell that has not finished yet, in this process, a local process pool or
on a Dask cluster (see :mod:`.executors`).

Every cell is one tracked experiment, tagged with its stable key, nested under one parent run per
invocation. Cells whose run already FINISHED in the tracking store are read back, not run again, so
an interrupted reproduction resumes where it stopped. A cell that fails does not stop the others: the
outputs are written from the cells that finished, then the command fails naming the failed ones.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SadkitError, SadkitWarning
from .executors import Executor, make_executor
from .report import CellResult, aggregate, write_outputs
from .spec import KEY_TAG, Cell, ReproductionSpec
from .tasks import group_cells

#: why a cell's run still RUNNING after every task returned ended KILLED (its worker was lost)
ORPHANED = "every task of the reproduction had returned and this run was still RUNNING: its worker was lost"


@dataclass
class Progress:
    """Where a reproduction stands, in cells: finished (or read back), running now, failed, of the total."""

    done: int
    running: int
    failed: int
    total: int


def preflight(spec: ReproductionSpec) -> None:
    """Load every data setting once, so a missing dataset fails before any cell runs."""
    from ..registry import create_dataset

    for setting in spec.settings():
        params = {**spec.data, **setting}
        try:
            create_dataset(spec.dataset, seed=spec.seeds[0] if spec.seeds else 0, **params).load()
        except SadkitError as err:
            raise SadkitError(f"data setting {params} of {spec.dataset!r} cannot be loaded: {err}") from err


def reproduce(
    spec: ReproductionSpec,
    out: str | Path,
    workers: int = 1,
    on_cell: Callable[[CellResult, int, int], None] | None = None,
    report_only: bool = False,
    cluster: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    stack: bool = True,
) -> dict[str, Any]:
    """Run (or read back) every cell, aggregate, and write table.md, cells.csv, runs.csv, plot.png.

    Args:
        spec: the reproduction.
        out: the output folder.
        workers: cells run in this many local processes (without ``cluster``).
        on_cell: called with each cell's result as it finishes, the cells done and their total.
        report_only: compute nothing: the outputs hold the cells that already finished (a table entry from
            fewer seeds than the spec's says ``n=``), e.g. to look at a long reproduction half-way.
        cluster: the address of a Dask scheduler (``tcp://HOST:PORT``) whose workers run the cells; the
            tracking store must then be one they can reach (an MLflow server or a database).
        on_progress: called with a :class:`Progress` whenever the cells done, running or failed change.
        stack: hand out the cells of one data setting (for images, of one normal class) as one task, whose
            models train as one stacked network where they can (:mod:`sadkit.stacking`), each still in its
            own run; False hands out one cell per task, trained one by one.

    Raises:
        SadkitError: a local store with ``cluster``, an unreachable scheduler or a lost one, data that
            cannot be loaded, or cells that failed (after the outputs are written from the others).
    """
    from ..tracking import shared_tracker

    if cluster and not report_only:
        from .cluster import shared_store_uri

        spec.tracking_uri = shared_store_uri(spec.tracking_uri)  # the workers log there, not to their default
    out = Path(out)
    paper, source = spec.paper_values()
    # a scheduler that does not answer fails before the data are loaded
    with make_executor(1 if report_only else workers, None if report_only else cluster) as executor:
        preflight(spec)
        tracker = shared_tracker(spec.tracking_uri, spec.experiment or spec.name)  # the cells run here share it
        cells = spec.cells()
        results, todo = _read_back(cells, tracker.finished_runs_by_tag(KEY_TAG))
        missing = len(todo) if report_only else 0
        if report_only:
            todo = []
        reused = len(results)
        with tracker.start_run(run_name=f"reproduce {spec.name}", tags={"sadkit.reproduce": spec.name}) as parent:
            parent.log_params(
                {
                    "reproduction": spec.name,
                    "n_cells": len(cells),
                    "n_reused": reused,
                    "workers": workers,
                    "executor": executor.name,
                    "stack": stack,
                }
            )
            tasks = group_cells(todo, stack)
            failed = _run_tasks(executor, tasks, parent.run_id, results, len(cells), on_cell, on_progress)
            if todo:  # every task returned (or failed for good): a child still RUNNING lost its worker
                _end_orphans(tracker, parent.run_id)
            summary = aggregate(spec, results, paper)
            out.mkdir(parents=True, exist_ok=True)
            write_outputs(spec, out, results, summary, source)
            for name in ("table.md", "cells.csv", "runs.csv", "plot.png"):
                parent.log_artifact(out / name)
            computed = len(results) - reused
            parent.log_metrics(
                {"n_computed": computed, "n_reused": reused, "n_missing": missing, "n_failed": len(failed)}
            )
            if failed:
                raise SadkitError(_failures(failed, out))
            run_id = parent.run_id
    return {
        "parent_run_id": run_id,
        "n_cells": len(cells),
        "n_computed": computed,
        "n_reused": reused,
        "n_missing": missing,
        "out": str(out),
        "cells": summary,
    }


def _end_orphans(tracker: Any, parent_run_id: str) -> None:
    """End KILLED the runs of this invocation still RUNNING; a store that fails here only warns (the heartbeat
    sweep ends them later): every cell is computed by now."""
    from ..tracking import PARENT_TAG

    try:
        tracker.end_orphans({PARENT_TAG: parent_run_id}, ORPHANED)
    except Exception as err:  # noqa: BLE001 - whatever the store raised, the cells are done
        warnings.warn(
            f"could not end the runs left RUNNING under run {parent_run_id} ({type(err).__name__}: {err});"
            " `sadkit runs sweep` ends them once their heartbeat is stale",
            SadkitWarning,
            stacklevel=2,
        )


def _read_back(cells: list[Cell], finished: dict[str, Any]) -> tuple[list[CellResult], list[Cell]]:
    """The results of the cells whose run already FINISHED, and the cells still to run."""
    results: list[CellResult] = []
    todo: list[Cell] = []
    for cell in cells:
        run = finished.get(cell.key)
        if run is None:
            todo.append(cell)
            continue
        metrics = run.data.metrics
        results.append(
            CellResult.of(
                cell,
                test_auroc=metrics.get("test_auroc", math.nan),
                val_auroc=metrics.get("val_auroc", math.nan),
                run_id=run.info.run_id,
                reused=True,
                wall_seconds=_run_seconds(run),
            )
        )
    return results, todo


def _run_tasks(
    executor: Executor,
    tasks: list[list[Cell]],
    parent_run_id: str,
    results: list[CellResult],
    total: int,
    on_cell: Callable[[CellResult, int, int], None] | None,
    on_progress: Callable[[Progress], None] | None,
) -> list[tuple[Cell, BaseException]]:
    """Hand the tasks to the executor; append each result as it completes; return the failed cells."""
    failed: list[tuple[Cell, BaseException]] = []
    outstanding = sum(len(t) for t in tasks)  # cells
    tasks_left = len(tasks)
    slots = executor.slots() if tasks else 1

    def progress() -> None:
        if on_progress:  # the cells of the tasks in flight (tasks of several cells: their mean size)
            running = outstanding * min(tasks_left, slots) // tasks_left if tasks_left else 0
            on_progress(Progress(len(results), running, len(failed), total))

    progress()
    for outcome in executor.run(tasks, parent_run_id) if tasks else ():
        outstanding -= len(outcome.cells)
        tasks_left -= 1
        if outcome.error is not None:
            failed += [(cell, outcome.error) for cell in outcome.cells]
        for cell, result in zip(outcome.cells, outcome.results or [], strict=False):
            if isinstance(result, BaseException):  # this cell failed; the others of its task finished
                failed.append((cell, result))
                continue
            results.append(result)
            if on_cell:
                on_cell(result, len(results), total)
        slots = executor.slots()
        progress()
    return failed


def _failures(failed: list[tuple[Cell, BaseException]], out: Path) -> str:
    shown = "; ".join(
        f"{cell.method.label} {cell.setting_label} seed {cell.seed}: {type(err).__name__}: {err}"
        for cell, err in failed[:5]
    )
    more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
    return (
        f"{len(failed)} cell(s) failed: {shown}{more}. The outputs in {out} hold the other cells; their runs"
        " are in the tracking store. Rerunning the command computes only the cells not yet finished"
    )


def _run_seconds(run: Any) -> float:
    """The run's duration; for a stacked model its share (the stack's runs are open together)."""
    from ..experiment import STACK_TAG

    start, end = run.info.start_time, run.info.end_time
    share = int(run.data.tags.get(STACK_TAG, 1))
    return (end - start) / 1000.0 / share if start and end else math.nan
