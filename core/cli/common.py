"""What every command shares: the --debug switch, error reporting, key=value parsing, progress."""

from __future__ import annotations

import signal
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..callbacks import Callback
from ..errors import SadkitError, SadkitWarning

err_console = Console(stderr=True)


@dataclass
class _State:
    debug: bool = False


state = _State()


#: signals that stop a command like Ctrl-C (its run ends KILLED); SIGHUP does not exist on Windows
STOP_SIGNALS = tuple(name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signum}")


@contextmanager
def handle_errors(*, json_errors: bool = False) -> Iterator[None]:
    """Print sadkit errors as one line on stderr and exit 1 (re-raise with --debug).

    Args:
        json_errors: the command was asked for ``--json``: an error is also printed on stdout as one JSON
            object ``{"error": message, "type": exception class}``, so what reads stdout always gets JSON.

    SIGTERM and SIGHUP (a closed terminal, a dropped SSH session) are handled like Ctrl-C, so an MLflow
    run stopped by ``kill`` or a hang-up ends KILLED, not RUNNING. (SIGKILL cannot be handled: such a
    run is ended by the heartbeat sweep, see :mod:`sadkit.tracking.heartbeat`.)
    """
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        for name in STOP_SIGNALS:
            previous_handlers[name] = signal.signal(getattr(signal, name), _terminate)
    with warnings.catch_warnings():
        warnings.simplefilter("always", SadkitWarning)
        previous = warnings.showwarning
        warnings.showwarning = _show_warning(previous)
        try:
            yield
        except SadkitError as err:
            if state.debug:
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            if json_errors:
                import json

                typer.echo(json.dumps({"error": str(err), "type": type(err).__name__}))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        finally:
            warnings.showwarning = previous
            for name, handler in previous_handlers.items():  # the caller's (a test runner's) handlers again
                signal.signal(getattr(signal, name), handler)


def _show_warning(previous):  # noqa: ANN001, ANN202
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        if issubclass(category, SadkitWarning):
            err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
        else:
            previous(message, category, filename, lineno, file, line)

    return show


class _ValueLoader(yaml.SafeLoader):
    """YAML's safe loader without timestamps: ``2021-01-01`` stays the text typed (and ``0000-00-00``
    cannot crash the date constructor)."""


_ValueLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_value(text: str) -> Any:
    """A command-line value: int, float (``1e-4`` too), or YAML (lists, dicts, booleans, null); the text
    itself when it is none of these."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    try:
        return yaml.load(text, Loader=_ValueLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, ValueError, RecursionError):
        return text


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SadkitError(f"{option} expects key=value, got {pair!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


class ProgressCallback(Callback):
    """A rich progress bar per training phase, on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=not enabled,
            transient=False,
        )
        self._task = None

    def __enter__(self) -> ProgressCallback:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_phase_start(self, phase: str, n_epochs: int) -> None:
        self._task = self.progress.add_task(f"{phase:>8}", total=n_epochs, info="")

    def on_epoch_end(self, phase: str, epoch: int, logs: Mapping[str, float]) -> None:
        info = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if k in ("loss", "val_auroc"))
        self.progress.update(self._task, completed=epoch + 1, info=info)


def json_safe(value: Any) -> Any:
    """Strict JSON for stdout: NaN and infinity become null (see :func:`sadkit.serialize.to_json`)."""
    from ..serialize import to_json

    return to_json(value, strict=True)
