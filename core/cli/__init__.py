"""The ``sadkit`` command line (Typer). One module per command group."""

from __future__ import annotations

import typer

from .active import active_command
from .common import state
from .plugins import plugins_app
from .reproduce import reproduce_command
from .run import run_command
from .runs import runs_app
from .score import score_command
from .study import study_command

app = typer.Typer(
    name="sadkit",
    help="Semi-supervised anomaly detection: run experiments, list plugins. Runs are tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


@app.callback()
def _global(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
) -> None:
    state.debug = debug


app.command("run", no_args_is_help=True)(run_command)
app.add_typer(plugins_app, name="plugins")
app.add_typer(runs_app, name="runs")
app.command("study", no_args_is_help=True)(study_command)
app.command("reproduce", no_args_is_help=True)(reproduce_command)
app.command("active", no_args_is_help=True)(active_command)
app.command("score", no_args_is_help=True)(score_command)


def main() -> None:
    """Console-script entry point."""
    app()
