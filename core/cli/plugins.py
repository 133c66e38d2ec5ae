"""``sadkit plugins``: what is installed (and whether it imports), and whether a detector passes the checks."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import registry
from .common import handle_errors

plugins_app = typer.Typer(help="List installed plugins and check detectors.", no_args_is_help=True)


@plugins_app.command("list")
def list_command(
    group: str | None = typer.Option(None, "--group", help="detectors, networks or datasets \\[default: all]."),
    check: bool = typer.Option(
        False, "--check", help="Import every plugin and show the ones that fail, with their error (slower)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {group, name, distribution, error}."),
) -> None:
    """List every registered plugin with its distribution (from package metadata: nothing is imported).

    With --check every plugin is imported too: broken ones show their error and the command exits 1.
    """
    with handle_errors():
        infos = registry.list_plugins(group, check=check)
        if as_json:
            rows = [{k: v for k, v in info.as_dict().items() if k != "value"} for info in infos]
            typer.echo(json.dumps(rows))
        else:
            table = Table()
            for column in ("group", "name", "distribution", *(["status"] if check else [])):
                table.add_column(column)
            for info in infos:
                status = [f"[red]failed: {escape(info.error)}[/]" if info.error else "ok"] if check else []
                table.add_row(info.group.split(".")[-1], info.name, info.distribution, *status)
            Console().print(table)
    if any(info.error for info in infos):
        raise typer.Exit(1)


@plugins_app.command("check")
def check_command(
    name: str = typer.Argument(..., help="A registered detector name."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Detector parameter key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {check, passed, message}."),
) -> None:
    """Run the conformance checks of sadkit.testing on a detector; exit 1 if any fails."""
    from ..testing import check_detector
    from .common import parse_pairs

    with handle_errors():
        results = check_detector(name, parse_pairs(param, "--param"))
    if as_json:
        typer.echo(json.dumps([{"check": r.name, "passed": r.passed, "message": r.message} for r in results]))
    else:
        console = Console()
        for r in results:
            mark = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
            console.print(f"{mark} {r.name}" + (f": {escape(r.message)}" if r.message else ""), highlight=False)
        failed = sum(not r.passed for r in results)
        console.print(f"{len(results) - failed} passed, {failed} failed", highlight=False)
    if any(not r.passed for r in results):
        raise typer.Exit(1)
