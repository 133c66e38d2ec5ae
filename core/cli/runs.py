"""``sadkit runs``: housekeeping of the MLflow runs of a store (``sweep``: end runs whose process vanished)."""

from __future__ import annotations

import json

import typer

from .common import err_console, handle_errors, json_safe

runs_app = typer.Typer(help="Housekeeping of the MLflow runs of a tracking store.", no_args_is_help=True)


@runs_app.command("sweep")
def sweep_command(
    stale_after: float | None = typer.Option(
        None,
        "--stale-after",
        min=0,
        help="End RUNNING runs silent for this many seconds \\[default: 30 heartbeat intervals, 5 minutes].",
    ),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI \\[default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of the runs it ended on stdout."),
) -> None:
    """End runs whose process vanished (killed, power loss): RUNNING runs whose heartbeat is stale end
    KILLED, with the tag sadkit.swept saying why. Runs without a heartbeat (opened by other tools) are
    left alone. sadkit also sweeps whenever it opens a store.

    Example:

      sadkit runs sweep --stale-after 60
    """
    with handle_errors():
        from ..tracking import resolve_tracking_uri, sweep_store
        from ..tracking.store import quiet

        uri = resolve_tracking_uri(tracking_uri)
        with quiet("sadkit.tracking"):  # the lines below say it
            swept = sweep_store(uri, stale_after)
        if as_json:
            typer.echo(json.dumps(json_safe([s.as_dict() for s in swept])))
            return
        if not swept:
            err_console.print(f"no stale run in {uri}", highlight=False)
            return
        for s in swept:
            typer.echo(
                f"ended KILLED: run {s.run_id} ({s.run_name}, experiment {s.experiment_id}), no heartbeat since"
                f" {s.last_heartbeat} ({s.silent_seconds:.0f} s)"
            )
        err_console.print(f"{len(swept)} run(s) ended in {uri}", highlight=False)
