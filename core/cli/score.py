"""``sadkit score``: score a file of new rows with a fitted model; write id, score and label per row."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .common import err_console, handle_errors, json_safe

#: rows shown on the terminal without --out
SHOWN = 20


def score_command(
    model: str = typer.Argument(
        ..., help="A saved detector folder, or a logged model: runs:/RUN_ID/model, models:/MODEL_ID, models:/NAME/1."
    ),
    data: Path = typer.Argument(..., help="Rows to score: CSV, TSV, Parquet, .npy, .npz or .mat (as table reads)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write id, score, label to FILE.csv or FILE.parquet."),
    threshold: str | None = typer.Option(
        None,
        "--threshold",
        help="A score above which a row is an anomaly, or contamination:F to flag the fraction F of the model's"
        " training rows \\[default: the model's threshold_].",
    ),
    id_column: str | None = typer.Option(
        None, "--id-column", help="Column identifying the rows \\[default: the model's id column, else row numbers]."
    ),
    by_position: bool = typer.Option(
        False, "--by-position", help="Take the columns in file order instead of by name (a model without names)."
    ),
    chunk_rows: int = typer.Option(
        100_000, "--chunk-rows", help="Rows read at a time from CSV, TSV, Parquet and .npy (bounded memory)."
    ),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI for runs:/ and models:/ \\[default: $MLFLOW_TRACKING_URI]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (with --out)."),
) -> None:
    """Score new rows: one anomaly score and a 0/1 label per row (1 = above the threshold).

    The model takes raw rows, as its dataset read them: its preprocessing (scalers, a table's encoders)
    is part of it. Columns are matched by name; a missing one is an error; extra ones are ignored.

    Examples:

      sadkit score runs:/RUN_ID/model new_rows.csv --out scores.csv

      sadkit score models:/m-0123abc new_rows.parquet --threshold contamination:0.02
    """
    from ..scoring import ScoreSummary, parse_threshold_option, resolve_model, score_chunks, write_scores

    with handle_errors(json_errors=as_json):
        detector = resolve_model(model, tracking_uri)
        cut = parse_threshold_option(threshold, detector)
        summary = ScoreSummary()
        frames = score_chunks(
            detector, data, threshold=cut, chunk_rows=chunk_rows, id_column=id_column, by_position=by_position,
            summary=summary,
        )  # fmt: skip
        if out is None:
            shown = _show(frames, summary)
        else:
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console,
                disable=as_json,
            ) as progress:  # fmt: skip
                task = progress.add_task("scored 0 rows", total=None)
                write_scores(
                    frames, out, lambda n: progress.update(task, description=f"scored {summary.n_rows:,} rows")
                )
            shown = None
        _report(summary, out, shown, as_json)


def _show(frames, summary) -> int:  # noqa: ANN001
    """Print the first rows as a table on the terminal; score the rest for the counts."""
    table = None
    shown = 0
    for frame in frames:
        if table is None:
            table = Table(title=f"scores (first {SHOWN} rows; --out FILE writes them all)")
            for column in frame.columns:
                table.add_column(str(column), justify="right")
        for row in frame.head(max(0, SHOWN - shown)).itertuples(index=False):
            table.add_row(str(row[0]), f"{row[1]:.6g}", str(row[2]))
            shown += 1
    if table is not None:
        Console().print(table)
    return shown


def _report(summary, out: Path | None, shown: int | None, as_json: bool) -> None:  # noqa: ANN001
    if summary.extra_columns:
        err_console.print(
            f"[yellow]note:[/] columns not used by the model were ignored: {escape(', '.join(summary.extra_columns))}",
            highlight=False,
        )
    for column, count in summary.unknown_categories.items():
        err_console.print(
            f"[yellow]note:[/] {count} row(s) hold a {escape(column)} category unseen in training (encoded as none)",
            highlight=False,
        )
    if as_json:
        typer.echo(json.dumps(json_safe({"out": str(out) if out else None, **vars(summary)})))
        return
    share = summary.n_flagged / summary.n_rows if summary.n_rows else 0.0
    err_console.print(
        f"{summary.n_rows:,} rows scored, {summary.n_flagged:,} flagged ({share:.1%}) at threshold"
        f" {summary.threshold:.6g}" + (f"; written to {out}" if out else ""),
        highlight=False,
    )
