"""Reproductions: a grid of experiments (methods x data settings x seeds) -> a table beside the paper.

A reproduction spec (YAML, see ``projects/README.md``) names the methods, the dataset, the data
parameters to vary, the seeds and the paper table to compare with. Every cell (method, data setting,
seed) is one tracked experiment, tagged with a stable key, nested under one parent run per
invocation. Cells whose run already FINISHED in the tracking store are read back, not run again, so
an interrupted reproduction resumes where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import math
import multiprocessing
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import SadkitError, SpecError
from .experiment import ExperimentSpec, read_spec_file

KEY_TAG = "sadkit.reproduce.key"
SPEC_KEYS = {
    "kind",
    "name",
    "description",
    "dataset",
    "data",
    "grid",
    "rows",
    "seeds",
    "methods",
    "paper",
    "experiment",
    "tracking_uri",
    "device",
    "threads",
    "log_model",
}
METHOD_KEYS = {"label", "detector", "params"}


@dataclass
class Method:
    label: str
    detector: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReproductionSpec:
    """A grid of experiments and the paper table it reproduces."""

    name: str
    dataset: str
    methods: list[Method]
    data: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    rows: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    paper: dict[str, Any] = field(default_factory=dict)
    experiment: str | None = None
    tracking_uri: str | None = None
    device: str = "auto"
    threads: int | None = None
    log_model: bool = False
    description: str = ""
    source: Path | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ReproductionSpec:
        return cls.from_dict(read_spec_file(path), source=Path(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: Path | None = None) -> ReproductionSpec:
        where = str(source or "spec")
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where}: expected a mapping of keys")
        unknown = sorted(set(raw) - SPEC_KEYS)
        if unknown:
            raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SPEC_KEYS))}")
        if raw.get("kind", "reproduction") != "reproduction":
            raise SpecError(f"{where}: kind must be 'reproduction', got {raw.get('kind')!r}")
        for key in ("name", "dataset", "methods"):
            if not raw.get(key):
                raise SpecError(f"{where}: missing key '{key}'")
        methods = []
        for i, m in enumerate(raw["methods"]):
            if not isinstance(m, Mapping):
                raise SpecError(f"{where}: methods[{i}] must be a mapping with label, detector, params")
            bad = sorted(set(m) - METHOD_KEYS)
            if bad:
                raise SpecError(
                    f"{where}: methods[{i}] has unknown key(s) {', '.join(bad)}; allowed: label, detector, params"
                )
            if not m.get("detector"):
                raise SpecError(f"{where}: methods[{i}] needs a detector")
            methods.append(
                Method(
                    label=str(m.get("label") or m["detector"]),
                    detector=m["detector"],
                    params=dict(m.get("params") or {}),
                )
            )
        labels = [m.label for m in methods]
        if len(set(labels)) != len(labels):
            raise SpecError(f"{where}: method labels must be unique, got {labels}")
        grid = dict(raw.get("grid") or {})
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise SpecError(f"{where}: grid.{key} must be a non-empty list")
        rows = list(raw.get("rows") or grid)
        missing = [r for r in rows if r not in grid]
        if missing:
            raise SpecError(f"{where}: rows {missing} are not grid keys ({list(grid)})")
        seeds = raw.get("seeds", 10)
        seeds = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
        spec = cls(
            name=str(raw["name"]),
            dataset=raw["dataset"],
            methods=methods,
            data=dict(raw.get("data") or {}),
            grid=grid,
            rows=rows,
            seeds=seeds,
            paper=dict(raw.get("paper") or {}),
            experiment=raw.get("experiment"),
            tracking_uri=raw.get("tracking_uri"),
            device=raw.get("device", "auto"),
            threads=raw.get("threads"),
            log_model=bool(raw.get("log_model", False)),
            description=str(raw.get("description") or ""),
            source=source,
        )
        spec.validate_plugins()
        spec.paper_values()  # a missing numbers file or table fails now
        return spec

    def validate_plugins(self) -> None:
        """Unknown detectors, datasets or parameters fail now, not after hours of other cells."""
        from .registry import get

        get("datasets", self.dataset)
        for method in self.methods:
            cls = get("detectors", method.detector)
            unknown = sorted(set(method.params) - set(cls._get_param_names()))
            if unknown:
                raise SpecError(
                    f"method {method.label!r}: detector {method.detector!r} has no parameter(s) {', '.join(unknown)}"
                )

    # ------------------------------------------------------------------ cells
    def settings(self) -> list[dict[str, Any]]:
        """Every combination of the grid values (data parameters)."""
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*self.grid.values())]

    def cells(self) -> list[Cell]:
        return [
            Cell(method=m, setting=s, seed=seed, spec=self)
            for s in self.settings()
            for m in self.methods
            for seed in self.seeds
        ]

    def row_key(self, setting: Mapping[str, Any]) -> str:
        return "/".join(str(setting[r]) for r in self.rows) if self.rows else "all"

    def paper_values(self) -> tuple[dict[str, dict[str, list]], str]:
        """``{method label: {row key: [mean, std]}}`` and the source line, from the paper data file."""
        if not self.paper:
            return {}, ""
        file = self.paper.get("file", "paper_results.yaml")
        path = Path(file) if Path(file).is_absolute() else (self.source.parent if self.source else Path()) / file
        try:
            tables = yaml.safe_load(path.read_text())
        except FileNotFoundError as err:
            raise SpecError(f"the paper's numbers file {path} does not exist") from err
        table = self.paper.get("table")
        if table not in tables:
            raise SpecError(f"{path} has no table {table!r}; it has {', '.join(tables)}")
        return tables[table].get("values", {}), str(tables[table].get("source", ""))


@dataclass
class Cell:
    method: Method
    setting: dict[str, Any]
    seed: int
    spec: ReproductionSpec

    @property
    def data(self) -> dict[str, Any]:
        """The cell's dataset parameters: the spec's, then its grid setting.

        The paper's scenario (iii) row k_l = 0 has no known anomaly class, so no labeled anomalies:
        such a cell runs with ``ratio_known_outlier = 0`` (the dataset refuses labeled anomalies
        without a known class, rightly, when a user asks for both).
        """
        data = {**self.spec.data, **self.setting}
        if data.get("n_known_outlier_classes") == 0:
            data["ratio_known_outlier"] = 0.0
        return data

    @property
    def setting_label(self) -> str:
        """The cell's grid values, e.g. ``normal_class=3, ratio_known_outlier=0.05`` (rows may hold fewer)."""
        return ", ".join(f"{k}={v}" for k, v in self.setting.items()) or "-"

    @property
    def key(self) -> str:
        """A stable identity: the same cell in a later invocation has the same key."""
        ident = {
            "name": self.spec.name,
            "dataset": self.spec.dataset,
            "detector": self.method.detector,
            "params": self.method.params,
            "data": self.data,
            "seed": self.seed,
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def experiment_spec(self) -> ExperimentSpec:
        return ExperimentSpec(
            detector=self.method.detector,
            dataset=self.spec.dataset,
            params=dict(self.method.params),
            data=self.data,
            seed=self.seed,
            device=self.spec.device,
            experiment=self.spec.experiment or self.spec.name,
            tracking_uri=self.spec.tracking_uri,
            threads=self.spec.threads,
            log_model=self.spec.log_model,
            run_name=f"{self.method.label} {self.setting_label} seed{self.seed}",
        )


@dataclass
class CellResult:
    label: str
    row: str
    setting: str  # every grid value of the cell (Cell.setting_label)
    seed: int
    test_auroc: float
    val_auroc: float
    run_id: str
    reused: bool
    wall_seconds: float = math.nan  # of the cell's run (read back: its MLflow start and end times)


def _run_cell(cell: Cell, parent_run_id: str | None) -> CellResult:
    from .experiment import run_experiment

    started = time.perf_counter()
    result = run_experiment(
        cell.experiment_spec(),
        parent_run_id=parent_run_id,
        tags={KEY_TAG: cell.key, "sadkit.reproduce.method": cell.method.label},
    )
    return CellResult(
        label=cell.method.label,
        row=cell.spec.row_key(cell.setting),
        setting=cell.setting_label,
        seed=cell.seed,
        test_auroc=result.test_auroc,
        val_auroc=result.val_auroc,
        run_id=result.run_id,
        reused=False,
        wall_seconds=time.perf_counter() - started,
    )


def _run_cell_in_worker(args: tuple[Cell, str | None]) -> CellResult:
    return _run_cell(*args)


def preflight(spec: ReproductionSpec) -> None:
    """Load every data setting once, so a missing dataset fails before any cell runs."""
    from .registry import create_dataset

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
) -> dict[str, Any]:
    """Run (or read back) every cell, aggregate, and write table.md, cells.csv, runs.csv, plot.png.

    With ``report_only`` nothing is computed: the outputs hold the cells that already finished (a table
    entry from fewer seeds than the spec's says ``n=``), e.g. to look at a long reproduction half-way.
    """
    from .tracking import Tracker

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paper, source = spec.paper_values()
    preflight(spec)
    tracker = Tracker(spec.tracking_uri, spec.experiment or spec.name)
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
                CellResult(
                    label=cell.method.label,
                    row=spec.row_key(cell.setting),
                    setting=cell.setting_label,
                    seed=cell.seed,
                    test_auroc=metrics.get("test_auroc", math.nan),
                    val_auroc=metrics.get("val_auroc", math.nan),
                    run_id=run.info.run_id,
                    reused=True,
                    wall_seconds=_run_seconds(run),
                )
            )
    with tracker.start_run(run_name=f"reproduce {spec.name}", tags={"sadkit.reproduce": spec.name}) as parent:
        parent.log_params(
            {"reproduction": spec.name, "n_cells": len(cells), "n_reused": len(results), "workers": workers}
        )
        done = len(results)
        missing = len(todo) if report_only else 0
        if report_only:
            todo = []
        if workers <= 1:
            for cell in todo:
                result = _run_cell(cell, parent.run_id)
                results.append(result)
                done += 1
                if on_cell:
                    on_cell(result, done, len(cells))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                for result in pool.map(_run_cell_in_worker, [(c, parent.run_id) for c in todo]):
                    results.append(result)
                    done += 1
                    if on_cell:
                        on_cell(result, done, len(cells))
        summary = _aggregate(spec, results, paper)
        _write_outputs(spec, out, results, summary, source)
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
    start, end = run.info.start_time, run.info.end_time
    return (end - start) / 1000.0 if start and end else math.nan


def _aggregate(spec: ReproductionSpec, results: list[CellResult], paper: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    row_keys = list(dict.fromkeys(spec.row_key(s) for s in spec.settings()))
    for row in row_keys:
        for method in spec.methods:
            mine = [r for r in results if r.label == method.label and r.row == row]
            values = [100 * r.test_auroc for r in mine if not math.isnan(r.test_auroc)]
            seconds = [r.wall_seconds for r in mine if not math.isnan(r.wall_seconds)]
            ours_mean = float(np.mean(values)) if values else math.nan
            ours_std = float(np.std(values)) if values else math.nan
            p = (paper.get(method.label) or {}).get(row)
            p_mean = float(p[0]) if p and p[0] is not None else math.nan
            p_std = float(p[1]) if p and p[1] is not None else math.nan
            rows.append(
                {
                    "row": row,
                    "method": method.label,
                    "n": len(values),
                    "mean": ours_mean,
                    "std": ours_std,
                    "paper_mean": p_mean,
                    "paper_std": p_std,
                    "diff": ours_mean - p_mean,
                    "median_wall_seconds": float(np.median(seconds)) if seconds else math.nan,
                }
            )
    return rows


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def _ours(cell: Mapping[str, Any], n_seeds: int) -> str:
    """Our mean ± std of a summary cell, saying ``n=`` when fewer seeds than the spec's finished."""
    partial = f" (n={cell['n']})" if 0 < cell["n"] < n_seeds else ""
    return _fmt(cell["mean"], cell["std"]) + partial


def _write_outputs(
    spec: ReproductionSpec, out: Path, results: list[CellResult], summary: list[dict], source: str
) -> None:
    with (out / "runs.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[f.name for f in dataclasses.fields(CellResult)])
        writer.writeheader()
        for r in sorted(results, key=lambda r: (r.row, r.label, r.setting, r.seed)):
            writer.writerow(dataclasses.asdict(r))
    with (out / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]) if summary else ["row"])
        writer.writeheader()
        writer.writerows(summary)
    header = " / ".join(spec.rows) or "setting"
    lines = [f"# {spec.name}", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += [
        f"Test AUROC (%), mean ± std over seeds {spec.seeds[0]}–{spec.seeds[-1]} ({len(spec.seeds)} seeds);"
        f" paper: {source.rstrip('.') or 'none given'}. Δ = ours − paper.",
        "",
    ]
    cols = " | ".join(f"{m.label} | paper | Δ" for m in spec.methods)
    lines.append(f"| {header} | {cols} |")
    lines.append("|---" * (1 + 3 * len(spec.methods)) + "|")
    for row in dict.fromkeys(s["row"] for s in summary):
        cells = [row]
        for m in spec.methods:
            s = next(x for x in summary if x["row"] == row and x["method"] == m.label)
            cells += [
                _ours(s, len(spec.seeds)),
                _fmt(s["paper_mean"], s["paper_std"]),
                "" if math.isnan(s["diff"]) else f"{s['diff']:+.1f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    rows = list(dict.fromkeys(s["row"] for s in summary))
    by_cell = {(s["row"], s["method"]): s for s in summary}
    lines += [
        "",
        "The same, one line per method: ours (paper, Δ).",
        "",
        f"| method | {' | '.join(rows)} |",
        "|---" * (1 + len(rows)) + "|",
    ]
    for m in spec.methods:
        entries = []
        for row in rows:
            s = by_cell[(row, m.label)]
            entry = _ours(s, len(spec.seeds))
            if not math.isnan(s["paper_mean"]):
                diff = "" if math.isnan(s["diff"]) else f", {s['diff']:+.1f}"
                entry += f" ({s['paper_mean']:.1f}{diff})"
            entries.append(entry)
        lines.append(f"| {m.label} | " + " | ".join(entries) + " |")
    lines += [
        "",
        "Median wall time of one cell's run in seconds (fit, selection, evaluation and tracking),"
        f" {spec.threads or 'all'} thread(s) per run:",
        "",
        f"| method | {' | '.join(rows)} |",
        "|---" * (1 + len(rows)) + "|",
    ]
    for m in spec.methods:
        seconds = [by_cell[(row, m.label)]["median_wall_seconds"] for row in rows]
        lines.append(f"| {m.label} | " + " | ".join("—" if math.isnan(x) else f"{x:.1f}" for x in seconds) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    _plot(spec, summary, out / "plot.png")


def _plot(spec: ReproductionSpec, summary: list[dict], path: Path) -> None:
    """AUROC against the (first numeric) varied data parameter per method, as in the paper's figures;
    grouped bars when nothing numeric varies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7 + 0.25 * len(spec.methods), 4.5))
    # one distinct colour per method (the default cycle repeats after ten)
    palette = plt.get_cmap("tab10" if len(spec.methods) <= 10 else "tab20").colors
    ax.set_prop_cycle(color=palette[: max(len(spec.methods), 1)])
    numeric = [k for k in spec.rows if all(isinstance(v, (int, float)) for v in spec.grid[k])]
    if len(spec.rows) == 1 and numeric:
        key = numeric[0]
        for m in spec.methods:
            pts = [(float(s["row"]), s["mean"], s["std"]) for s in summary if s["method"] == m.label]
            x, y, e = zip(*sorted(pts), strict=True)
            line = ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=m.label)
            paper = sorted((float(s["row"]), s["paper_mean"]) for s in summary if s["method"] == m.label)
            if any(not math.isnan(p) for _, p in paper):
                px, py = zip(*paper, strict=True)
                ax.plot(px, py, "--", marker="x", color=line[0].get_color(), label=f"{m.label} (paper)")
        ax.set_xlabel(key)
    else:
        rows = list(dict.fromkeys(s["row"] for s in summary))
        width = 0.8 / max(len(spec.methods), 1)
        for i, m in enumerate(spec.methods):
            vals = [next(s for s in summary if s["row"] == r and s["method"] == m.label) for r in rows]
            paper = [v["paper_mean"] for v in vals]
            ax.scatter(
                np.arange(len(rows)) + i * width,
                paper,
                marker="x",
                color="black",
                zorder=3,
                label="paper" if i == 0 and any(not math.isnan(p) for p in paper) else None,
            )
            ax.bar(
                np.arange(len(rows)) + i * width,
                [v["mean"] for v in vals],
                width,
                yerr=[0 if math.isnan(v["std"]) else v["std"] for v in vals],
                capsize=2,
                label=m.label,
            )
        ax.set_xticks(np.arange(len(rows)) + width * (len(spec.methods) - 1) / 2, rows, rotation=20)
    ax.set_ylabel("test AUROC (%)")
    ax.set_title(spec.name)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over the bars
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
