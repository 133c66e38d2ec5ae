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
    try:
        app()
    except SystemExit as done:
        _leave_without_teardown(done.code)
        raise


#: packages whose thousands of modules make the interpreter's teardown slow (torch, scikit-learn and MLflow
#: together: 1.1 s on this machine, after the command's work is done)
_SLOW_TO_TEAR_DOWN = ("torch", "sklearn", "mlflow")


def _leave_without_teardown(code: object) -> None:
    """After a command that imported torch, scikit-learn or MLflow, end the process as a normal exit would but
    without tearing down every module (as mypy's ``hard_exit`` does): run the ``atexit`` handlers (they close
    the figure helper, flush logging, stop worker pools), flush the standard streams, ``os._exit``.

    Nothing changes when no such package was imported (``--help``), or while a non-daemon thread still runs
    (a normal exit waits for it).
    """
    import atexit
    import os
    import sys
    import threading

    if not any(name in sys.modules for name in _SLOW_TO_TEAR_DOWN):
        return
    if any(t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate()):
        return
    if code is None or isinstance(code, int):
        status = code or 0
    else:  # as the interpreter does with SystemExit("message")
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(status)
