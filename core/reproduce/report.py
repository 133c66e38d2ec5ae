"""A reproduction's report: the cells' results aggregated per method and row, beside the paper's.

Writes ``runs.csv`` (one line per cell), ``cells.csv`` (mean, std and the paper's numbers per method
and row), ``table.md`` (the tables) and ``plot.png`` (:func:`sadkit.plots.reproduction_figure`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .spec import Cell, ReproductionSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class CellResult:
    """The outcome of one cell: its test and validation AUROC and its run (``reused``: read back)."""

    label: str
    row: str
    setting: str  # every grid value of the cell (Cell.setting_label)
    seed: int
    test_auroc: float
    val_auroc: float
    run_id: str
    reused: bool
    wall_seconds: float = math.nan  # of the cell's run (read back: its MLflow start and end times)

    @classmethod
    def of(
        cls, cell: Cell, test_auroc: float, val_auroc: float, run_id: str, reused: bool, wall_seconds: float
    ) -> CellResult:
        """The result of ``cell``, named by its method, table row, grid values and seed."""
        return cls(
            label=cell.method.label,
            row=cell.spec.row_key(cell.setting),
            setting=cell.setting_label,
            seed=cell.seed,
            test_auroc=test_auroc,
            val_auroc=val_auroc,
            run_id=run_id,
            reused=reused,
            wall_seconds=wall_seconds,
        )


def paper_label(label: str) -> str:
    """The paper's method behind ``label``: a bracketed suffix names a protocol variant of it.

    ``"OC-SVM raw [paper_test_holdout]"`` is compared with the paper's ``"OC-SVM raw"``.
    """
    return label.split(" [", 1)[0]


def aggregate(spec: ReproductionSpec, results: list[CellResult], paper: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per (row, method): our mean and std test AUROC in %, the paper's, their difference, the
    number of seeds that finished and the median wall time of a cell's run."""
    rows = []
    row_keys = list(dict.fromkeys(spec.row_key(s) for s in spec.settings()))
    for row in row_keys:
        for method in spec.methods:
            mine = [r for r in results if r.label == method.label and r.row == row]
            values = [100 * r.test_auroc for r in mine if not math.isnan(r.test_auroc)]
            seconds = [r.wall_seconds for r in mine if not math.isnan(r.wall_seconds)]
            ours_mean = float(np.mean(values)) if values else math.nan
            ours_std = float(np.std(values)) if values else math.nan
            p = (paper.get(method.label) or paper.get(paper_label(method.label)) or {}).get(row)
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


def write_outputs(
    spec: ReproductionSpec, out: Path, results: list[CellResult], summary: list[dict], source: str
) -> None:
    """Write ``runs.csv``, ``cells.csv``, ``table.md`` and ``plot.png`` into ``out``.

    Args:
        spec: the reproduction.
        out: an existing folder.
        results: every cell's result.
        summary: what :func:`aggregate` made of them.
        source: the paper table's source line.
    """
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
    _plot(spec, summary).savefig(out / "plot.png", dpi=110)


def _plot(spec: ReproductionSpec, summary: list[dict]) -> Figure:
    """AUROC against the (first numeric) varied data parameter per method, as in the paper's figures;
    grouped bars when nothing numeric varies or several parameters make a row."""
    from ..plots import reproduction_figure

    numeric = [k for k in spec.rows if all(isinstance(v, (int, float)) for v in spec.grid[k])]
    x_key = numeric[0] if len(spec.rows) == 1 and numeric else None
    return reproduction_figure(summary, [m.label for m in spec.methods], x_key, spec.name)
