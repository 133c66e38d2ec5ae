"""Running a reproduction: every cell that has not finished yet, in this process or a local process pool.

Every cell is one tracked experiment, tagged with its stable key, nested under one parent run per
invocation. Cells whose run already FINISHED in the tracking store are read back, not run again, so
an interrupted reproduction resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import SadkitError
from .report import CellResult, aggregate, write_outputs
from .spec import KEY_TAG, Cell, ReproductionSpec

#: the most models one task trains stacked
MAX_STACK = 100


def _run_cells(cells: list[Cell], parent_run_id: str | None, stack: bool = True) -> list[CellResult]:
    """Run the cells of one task, each in its own run; their models train stacked where they can."""
    from ..experiment import run_experiments

    started = time.perf_counter()
    results = run_experiments(
        [cell.experiment_spec() for cell in cells],
        parent_run_id=parent_run_id,
        tags=[{KEY_TAG: cell.key, "sadkit.reproduce.method": cell.method.label} for cell in cells],
        stack=stack,
    )
    wall = (time.perf_counter() - started) / len(cells)  # each cell's share of the task
    return [
        CellResult.of(
            cell, test_auroc=r.test_auroc, val_auroc=r.val_auroc, run_id=r.run_id, reused=False, wall_seconds=wall
        )
        for cell, r in zip(cells, results, strict=True)
    ]


def _run_task_in_worker(args: tuple[list[Cell], str | None, bool]) -> list[CellResult]:
    return _run_cells(*args)


def tasks(cells: list[Cell], stack: bool = True, max_stack: int = MAX_STACK) -> list[list[Cell]]:
    """The cells grouped into tasks: one cell each with ``stack`` False; else every cell of one data setting
    (for images, of one normal class), methods and seeds, at most ``max_stack`` per task.

    Within a task, :func:`sadkit.stacked_fit.fit_together` stacks the models that can train together (the
    seeds of a method, Deep SAD with Deep SVDD, the known anomaly classes of a normal class) and fits the
    others one by one.
    """
    if not stack:
        return [[cell] for cell in cells]
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        setting = cell.data
        shared = {"normal_class": setting["normal_class"]} if "normal_class" in setting else setting
        groups.setdefault(json.dumps(shared, sort_keys=True, default=str), []).append(cell)
    cell_order = {m.label: i for i, m in enumerate(cells[0].spec.methods)} if cells else {}
    chunks = []
    for group in groups.values():
        group.sort(key=lambda c: cell_order[c.method.label])
        chunks += [group[i : i + max_stack] for i in range(0, len(group), max_stack)]
    return chunks


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
    stack: bool = True,
) -> dict[str, Any]:
    """Run (or read back) every cell, aggregate, and write table.md, cells.csv, runs.csv, plot.png.

    With ``stack`` (the default) the seeds of a cell (for images, the cells of one normal class) train as
    one stacked network (:mod:`sadkit.stacking`), each still in its own run; False runs them one by one.
    With ``report_only`` nothing is computed: the outputs hold the cells that already finished (a table
    entry from fewer seeds than the spec's says ``n=``), e.g. to look at a long reproduction half-way.
    """
    from ..tracking import shared_tracker

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paper, source = spec.paper_values()
    preflight(spec)
    tracker = shared_tracker(spec.tracking_uri, spec.experiment or spec.name)  # the cells run here share it
    cells = spec.cells()
    finished = tracker.finished_runs_by_tag(KEY_TAG)
    results: list[CellResult] = []
    todo: list[Cell] = []
    for cell in cells:
        run = finished.get(cell.key)
        if run is None:
            todo.append(cell)
        else:
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
    with tracker.start_run(run_name=f"reproduce {spec.name}", tags={"sadkit.reproduce": spec.name}) as parent:
        parent.log_params(
            {
                "reproduction": spec.name,
                "n_cells": len(cells),
                "n_reused": len(results),
                "workers": workers,
                "stack": stack,
            }
        )
        done = len(results)
        missing = len(todo) if report_only else 0
        if report_only:
            todo = []
        work = tasks(todo, stack)
        if workers <= 1:
            finished_tasks = (_run_cells(task, parent.run_id, stack) for task in work)
            for task_results in finished_tasks:
                for result in task_results:
                    results.append(result)
                    done += 1
                    if on_cell:
                        on_cell(result, done, len(cells))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                for task_results in pool.map(_run_task_in_worker, [(t, parent.run_id, stack) for t in work]):
                    for result in task_results:
                        results.append(result)
                        done += 1
                        if on_cell:
                            on_cell(result, done, len(cells))
        summary = aggregate(spec, results, paper)
        write_outputs(spec, out, results, summary, source)
        for name in ("table.md", "cells.csv", "runs.csv", "plot.png"):
            parent.log_artifact(out / name)
        parent.log_metrics({"n_computed": len(todo), "n_reused": len(results) - len(todo), "n_missing": missing})
        run_id = parent.run_id
    return {
        "parent_run_id": run_id,
        "n_cells": len(cells),
        "n_computed": len(todo),
        "n_reused": len(results) - len(todo),
        "n_missing": missing,
        "out": str(out),
        "cells": summary,
    }


def _run_seconds(run: Any) -> float:
    """The run's duration; for a stacked model its share (the stack's runs are open together)."""
    from ..experiment import STACK_TAG

    start, end = run.info.start_time, run.info.end_time
    share = int(run.data.tags.get(STACK_TAG, 1))
    return (end - start) / 1000.0 / share if start and end else math.nan
