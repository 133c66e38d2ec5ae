"""``sadkit reproduce``: run every cell of a reproduction spec and compare with the paper."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import err_console, handle_errors, json_safe


def reproduce_command(
    spec: Path = typer.Argument(..., help="A reproduction spec (projects/*.yaml with kind: reproduction)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder \\[default: results/<spec name>]."),
    workers: int = typer.Option(1, "--workers", min=1, help="Cells run in this many parallel local processes."),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="Run the cells on the workers of this Dask scheduler (tcp://HOST:PORT, started with `dask scheduler`)"
        " instead of local processes; needs a tracking store they can reach (http:// or postgresql://).",
    ),
    seeds: int | None = typer.Option(None, "--seeds", help="Use only the first N seeds of the spec."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI."),
    report_only: bool = typer.Option(
        False, "--report-only", help="Compute nothing: write the outputs from the cells already finished."
    ),
    stack: bool = typer.Option(
        True,
        "--stack/--no-stack",
        help="Train the seeds of a cell (for images, the cells of one normal class) as one stacked network,"
        " each model still in its own run; --no-stack trains them one by one.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Run every cell of SPEC (skipping cells already FINISHED in the MLflow store), then write a
    Markdown table, CSVs and a plot beside the paper's numbers, also logged to one parent run.

    Example, on a Dask cluster tracked by an MLflow server:
    sadkit reproduce projects/odds_table.yaml --cluster tcp://10.0.0.5:8786 --tracking-uri http://10.0.0.5:5000
    """
    if cluster and workers > 1:
        raise typer.BadParameter(
            "is for local processes; the cells of a --cluster run on its own workers", param_hint="--workers"
        )
    with handle_errors(json_errors=as_json):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from ..reproduce import ReproductionSpec, reproduce

        parsed = ReproductionSpec.from_yaml(spec)
        if seeds is not None:
            parsed.seeds = parsed.seeds[:seeds]
        if tracking_uri is not None:
            parsed.tracking_uri = tracking_uri
        target = out or Path("results") / parsed.name
        bar = Progress(
            TextColumn("cells"),
            BarColumn(),
            TextColumn("{task.fields[done]}/{task.total} done, {task.fields[running]} running,"),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=as_json,
            transient=True,
        )
        bar_task = bar.add_task("cells", total=None, done=0, running=0, failed=0)

        def report(result, done: int, total: int) -> None:  # noqa: ANN001
            if not as_json:
                bar.console.print(
                    f"[{done}/{total}] {result.label} {result.setting} seed {result.seed}: test AUROC"
                    f" {100 * result.test_auroc:.1f}",
                    highlight=False,
                )

        def progress(now) -> None:  # noqa: ANN001
            bar.update(
                bar_task,
                total=now.total,
                completed=now.done + now.failed,
                done=now.done,
                running=now.running,
                failed=now.failed,
            )

        with bar:
            summary = reproduce(
                parsed,
                target,
                workers=workers,
                on_cell=report,
                report_only=report_only,
                cluster=cluster,
                on_progress=progress,
                stack=stack,
            )
    if as_json:
        typer.echo(json.dumps(json_safe(summary)))
    else:
        typer.echo((target / "table.md").read_text())
        err_console.print(
            f"{summary['n_computed']} cell(s) computed, {summary['n_reused']} read back"
            + (f", {summary['n_missing']} not computed (--report-only)" if summary["n_missing"] else "")
            + f"; written to {target}",
            highlight=False,
        )
