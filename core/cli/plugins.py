"""``sadkit plugins``: what is installed (and whether it imports), and whether a plugin passes the checks."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import registry
from .common import err_console, handle_errors, state

plugins_app = typer.Typer(help="List installed plugins and check them.", no_args_is_help=True)


@plugins_app.command("list")
def list_command(
    group: str | None = typer.Option(None, "--group", help="detectors, networks or datasets \\[default: all]."),
    check: bool = typer.Option(
        False, "--check", help="Import every plugin and show the ones that fail, with their error (slower)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print a JSON list of {group, name, distribution, error?, conflict?}."
    ),
) -> None:
    """List every registered plugin with its distribution (from package metadata: nothing is imported).

    A name that two distributions claim (or a built-in name that another distribution claims) is a
    conflict on each of its rows. With --check every plugin is imported too: a broken one shows its
    error and the file and line where it failed (the full traceback with `sadkit --debug`). The command
    exits 1 when any row has a conflict or an error.

    Examples: sadkit plugins list --group networks; sadkit --debug plugins list --check
    """
    with handle_errors(json_errors=as_json):
        infos = registry.list_plugins(group, check=check)
    if as_json:
        rows = [{k: v for k, v in info.as_dict(debug=state.debug).items() if k != "value"} for info in infos]
        typer.echo(json.dumps(rows))
    else:
        table = Table()
        with_status = check or any(info.conflict for info in infos)
        for column in ("group", "name", "distribution", *(["status"] if with_status else [])):
            table.add_column(column)
        for info in infos:
            status = [_status(info, check)] if with_status else []
            table.add_row(info.group.split(".")[-1], info.name, info.distribution, *status)
        Console().print(table)
        if state.debug:
            for info in infos:
                if info.traceback:
                    err_console.print(f"[red]{info.group} {info.name} ({info.distribution}):[/]", highlight=False)
                    err_console.print(escape(info.traceback), highlight=False, soft_wrap=True)
    if any(info.error or info.conflict for info in infos):
        raise typer.Exit(1)


def _status(info: registry.PluginInfo, checked: bool) -> str:
    parts = []
    if info.conflict:
        parts.append(f"[red]conflict: {escape(info.conflict)}[/]")
    if info.error:
        parts.append(f"[red]failed: {escape(info.error)}[/]")
    return "; ".join(parts) or ("ok" if checked else "")


@plugins_app.command("check")
def check_command(
    name: str = typer.Argument(..., help="A registered detector, network or dataset name."),
    group: str | None = typer.Option(
        None, "--group", help="detectors, networks or datasets \\[default: the group that has NAME]."
    ),
    param: list[str] = typer.Option(None, "--param", "-p", help="Plugin parameter key=value (repeatable)."),
    input_shape: str | None = typer.Option(
        None,
        "--input-shape",
        help="Sample shape for a detector or network, e.g. 1,28,28 \\[default: 5, or the network's].",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {check, passed, message}."),
) -> None:
    """Run the conformance checks of sadkit.testing on a detector, network or dataset; exit 1 if any fails.

    Parameters are the detector's (-p n_neighbors=10), the network factory's (-p rep_dim=16) or the
    dataset's (-p path=rows.csv). A plugin that cannot be loaded is an error (JSON with --json).

    Examples: sadkit plugins check knn; sadkit plugins check mlp -p rep_dim=4; sadkit plugins check odds -p name=cardio
    """
    from ..testing import check_plugin
    from .common import parse_pairs

    with handle_errors(json_errors=as_json):
        shape = _shape(input_shape)
        group, results = check_plugin(name, group, parse_pairs(param, "--param"), input_shape=shape)
    if as_json:
        typer.echo(json.dumps([{"check": r.name, "passed": r.passed, "message": r.message} for r in results]))
    else:
        console = Console()
        console.print(f"{group.rstrip('s')} {name!r}", highlight=False)
        for r in results:
            mark = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
            console.print(f"{mark} {r.name}" + (f": {escape(r.message)}" if r.message else ""), highlight=False)
        failed = sum(not r.passed for r in results)
        console.print(f"{len(results) - failed} passed, {failed} failed", highlight=False)
    if any(not r.passed for r in results):
        raise typer.Exit(1)


def _shape(text: str | None) -> tuple[int, ...] | None:
    from ..errors import InvalidInputError

    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise InvalidInputError(f"--input-shape expects positive sizes such as 21 or 1,28,28, got {text!r}")
    return shape
