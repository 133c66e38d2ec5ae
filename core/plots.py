"""Figures of sadkit's results: each function draws one kind of plot and returns it as a matplotlib Figure.

The figures are built with matplotlib's object API (``Figure`` and ``Figure.subplots``), which needs
neither pyplot nor a GUI backend; the caller saves them (``fig.savefig``) or logs them to a run
(:meth:`sadkit.tracking.RunLogger.log_figure`). Nothing here imports mlflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from .metrics import auroc, roc


def roc_figure(y_true: np.ndarray, scores: np.ndarray, split: str = "test") -> Figure:
    """The ROC curve of ``scores`` against ``y_true`` (1 = anomaly), with its AUROC in the legend."""
    y_true = np.asarray(y_true).astype(int)
    fpr, tpr = roc(y_true, scores)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    if len(fpr):
        ax.plot(fpr, tpr, label=f"AUROC {auroc(y_true, scores):.3f}")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({split})")
    ax.legend(loc="lower right")
    return fig


def score_histogram(y_true: np.ndarray, scores: np.ndarray, split: str = "test") -> Figure:
    """Histograms of the scores of normals and of anomalies, each class summing to 1.

    Distances are heavy-tailed: the bins are log-spaced when the scores are positive and spread over
    more than two orders of magnitude. Non-finite scores are left out.
    """
    y_true = np.asarray(y_true).astype(int)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    scores = np.asarray(scores, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    log_x = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 100
    if log_x:
        bins = np.geomspace(finite.min(), finite.max(), 50)
        ax.set_xscale("log")
        # decades labelled as plain numbers, no minor ticks: the default's mathtext labels and eight minor
        # ticks per decade were half the drawing time of a figure logged with every run
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    else:
        bins = np.histogram_bin_edges(finite, bins=50) if finite.size else 10
    for label, name in ((0, "normal"), (1, "anomaly")):
        part = scores[(y_true == label) & np.isfinite(scores)]
        if part.size:
            weights = np.full(part.size, 1.0 / part.size)  # each class sums to 1, whatever its size
            # one filled outline per class: it looks like 50 edge-less bars and draws in a fraction of the time
            ax.hist(part, bins=bins, weights=weights, alpha=0.6, label=f"{name} ({part.size})", histtype="stepfilled")
    ax.set(xlabel="anomaly score", ylabel="fraction of the class", title=f"scores ({split})")
    ax.legend()
    return fig


def anomaly_grids(
    X: np.ndarray, scores: np.ndarray, y_true: np.ndarray | None = None, k: int = 32, split: str = "test"
) -> dict[str, Figure]:
    """Grids of the ``k`` most and the ``k`` least anomalous images of ``X`` (``(n, C, H, W)``, C = 1 or 3).

    Returns:
        ``{"most": figure, "least": figure}`` (highest, respectively lowest, finite scores first);
        empty when ``X`` is not a batch of images matching ``scores`` or no score is finite.
    """
    X = np.asarray(X)
    scores = np.asarray(scores, dtype=np.float64)
    if X.ndim != 4 or X.shape[1] not in (1, 3) or len(X) != len(scores):
        return {}
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size == 0:
        return {}
    order = finite[np.argsort(scores[finite], kind="stable")]
    k = int(min(k, len(order)))
    figures = {}
    for name, picked, title in (
        ("most", order[::-1][:k], f"{k} most anomalous {split} samples (highest scores first)"),
        ("least", order[:k], f"{k} least anomalous {split} samples (lowest scores first)"),
    ):
        labels = None if y_true is None else np.asarray(y_true)[picked]
        figures[name] = image_grid_figure(X[picked], scores[picked], labels, title)
    return figures


def image_grid_figure(images: np.ndarray, scores: np.ndarray, labels: np.ndarray | None, title: str) -> Figure:
    """The images in rows of 8 (each min-max scaled for display), their scores below, anomalies framed in red.

    Args:
        images: ``(n, C, H, W)`` with C = 1 or 3.
        scores: one score per image, written under it.
        labels: ground truth (1 = anomaly gets a red frame), or None.
        title: the figure's title.
    """
    n, c, h, w = images.shape
    cols = min(8, n)
    rows = -(-n // cols)
    pad, caption = 2, max(8, h // 3)
    cell_h, cell_w = h + 2 * pad + caption, w + 2 * pad
    canvas = np.ones((rows * cell_h, cols * cell_w, 3), dtype=np.float32)
    for i, img in enumerate(images.astype(np.float32)):
        low, high = float(img.min()), float(img.max())
        img = (img - low) / (high - low) if high > low else np.zeros_like(img)
        tile = np.repeat(img, 3, axis=0) if c == 1 else img
        r, q = divmod(i, cols)
        top, left = r * cell_h, q * cell_w
        if labels is not None and labels[i] == 1:
            canvas[top : top + h + 2 * pad, left : left + cell_w] = (0.85, 0.1, 0.1)
        canvas[top + pad : top + pad + h, left + pad : left + pad + w] = tile.transpose(1, 2, 0)
    fig = Figure(figsize=(1.1 * cols, 1.35 * rows + 0.4))
    ax = fig.subplots()
    ax.imshow(canvas, interpolation="nearest")
    for i, score in enumerate(scores):
        r, q = divmod(i, cols)
        x, y = q * cell_w + cell_w / 2, r * cell_h + h + 2 * pad + caption / 2
        ax.text(x, y, f"{score:.3g}", ha="center", va="center", fontsize=6)
    ax.set_axis_off()
    subtitle = "; red frame = true anomaly" if labels is not None else ""
    ax.set_title(title + subtitle, fontsize=8)
    fig.tight_layout()
    return fig


def active_curve(rounds: Sequence[Mapping[str, Any]], title: str = "active learning") -> Figure:
    """Test AUROC (left axis) and anomalies found (right axis) against the number of queries.

    Args:
        rounds: the active loop's records, each with ``queried``, ``test_auroc`` and ``anomalies_found``.
        title: the figure's title.
    """
    queried = [int(r["queried"]) for r in rounds]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(queried, [r["test_auroc"] for r in rounds], marker="o", color="tab:blue", label="test AUROC")
    ax.set(xlabel="queries", ylabel="test AUROC", title=title)
    twin = ax.twinx()
    twin.plot(queried, [r["anomalies_found"] for r in rounds], marker="s", color="tab:red", label="anomalies found")
    twin.set_ylabel("anomalies found (cumulative)")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="lower right")
    fig.tight_layout()
    return fig


def reproduction_figure(
    summary: Sequence[Mapping[str, Any]], methods: Sequence[str], x_key: str | None, title: str
) -> Figure:
    """Our test AUROC beside the paper's, per method, as in the paper's figures.

    Args:
        summary: one entry per (row, method) with ``row``, ``method``, ``mean``, ``std`` and
            ``paper_mean`` (AUROC in %; NaN where unknown).
        methods: the method labels, in the order of the legend.
        x_key: the numeric data parameter the rows vary, drawn as lines against it; None draws grouped
            bars, one group per row.
        title: the figure's title.
    """
    fig = Figure(figsize=(7 + 0.25 * len(methods), 4.5))
    ax = fig.subplots()
    # one distinct colour per method (the default cycle repeats after ten)
    palette = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"].colors
    ax.set_prop_cycle(color=palette[: max(len(methods), 1)])
    if x_key is not None:
        for label in methods:
            pts = [(float(s["row"]), s["mean"], s["std"]) for s in summary if s["method"] == label]
            x, y, e = zip(*sorted(pts), strict=True)
            line = ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=label)
            paper = sorted((float(s["row"]), s["paper_mean"]) for s in summary if s["method"] == label)
            if any(not math.isnan(p) for _, p in paper):
                px, py = zip(*paper, strict=True)
                ax.plot(px, py, "--", marker="x", color=line[0].get_color(), label=f"{label} (paper)")
        ax.set_xlabel(x_key)
    else:
        rows = list(dict.fromkeys(s["row"] for s in summary))
        width = 0.8 / max(len(methods), 1)
        for i, label in enumerate(methods):
            vals = [next(s for s in summary if s["row"] == r and s["method"] == label) for r in rows]
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
                label=label,
            )
        ax.set_xticks(np.arange(len(rows)) + width * (len(methods) - 1) / 2, rows, rotation=20)
    ax.set_ylabel("test AUROC (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over the bars
    fig.tight_layout()
    return fig
