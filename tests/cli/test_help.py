"""Every command's --help reads well (no option text lost to Rich markup: `[default: ...]` used to vanish
and leave "MLflow tracking URI ."), and `sadkit --install-completion` exists."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from sadkit.cli import app


def _commands(command, path: tuple[str, ...] = ()):
    yield path, command
    if hasattr(command, "commands"):  # a group (Typer ships its own click)
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "sadkit" for p, _ in COMMANDS])
def test_help_texts_keep_their_words(path, command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert not re.search(r"\s\.(\s|│|$)", out, flags=re.M), out  # a stray " ." where markup ate a [default]
    for param in command.params:
        help_text = getattr(param, "help", None) or ""
        if "[default" in help_text.replace("\\[", "["):
            assert "[default" in out, f"{' '.join(path)} {param.name}: its [default: ...] is not shown"


def test_install_completion_exists():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "250"})
    assert "--install-completion" in result.output and "--show-completion" in result.output
