"""Start-up: `sadkit --help`, a command's --help and `sadkit plugins list` import nothing heavy, nor any plugin;
`import sadkit` imports neither torch, scikit-learn, mlflow, optuna nor matplotlib. Each runs in a fresh
interpreter, which then reports its sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

#: what a --help or a listing must not import (each costs from 0.1 s to 2 s)
HEAVY = (
    "torch",
    "mlflow",
    "optuna",
    "sklearn",
    "matplotlib",
    "pandas",
    "scipy",
    "numpy",
    "sqlalchemy",
    "dask",
    "distributed",
)


def _modules_after(code: str) -> set[str]:
    """The top-level packages and sadkit modules in sys.modules after running ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json, sys
        sys.__stderr__.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("MODULES ")]
    assert lines, done.stderr
    line = lines[-1]
    return set(json.loads(line.removeprefix("MODULES ")))


def _cli(*args: str) -> str:
    return f"""
        import sys
        from sadkit.cli import main
        sys.argv = ["sadkit", *{list(args)!r}]
        try:
            main()
        except SystemExit as stop:
            assert not stop.code, stop.code
        """


def _heavy(modules: set[str], names=HEAVY) -> list[str]:
    return sorted(name for name in names if name in modules)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["study", "--help"],
        ["reproduce", "--help"],
        ["active", "--help"],
        ["plugins", "--help"],
    ],
)
def test_help_imports_nothing_heavy(args):
    modules = _modules_after(_cli(*args))
    assert _heavy(modules) == [] and "stevedore" not in modules
    assert not [m for m in modules if m.startswith("sadkit.plugins.")]


def test_plugins_list_reads_metadata_and_imports_no_plugin():
    modules = _modules_after(_cli("plugins", "list", "--json"))
    assert _heavy(modules) == []
    assert "stevedore" not in modules  # the loader is imported to load, never to list
    assert not [m for m in modules if m.startswith(("sadkit.plugins.", "sadkit_example_"))]


def test_a_run_imports_the_plugins_it_uses_through_stevedore():
    modules = _modules_after("from sadkit import registry\nregistry.get('datasets', 'synthetic')")
    assert "stevedore" in modules and "sadkit.plugins.datasets.synthetic" in modules
    assert not [m for m in modules if m.startswith(("sadkit.plugins.deepsad", "sadkit.plugins.networks"))]


def test_import_sadkit_is_light():
    modules = _modules_after("import sadkit\nsadkit.SadkitError, sadkit.__version__")
    assert _heavy(modules, ("torch", "sklearn", "mlflow", "optuna", "matplotlib")) == []


def test_public_names_load_on_first_use():
    modules = _modules_after("from sadkit import Split, auroc, create_detector")
    assert "numpy" in modules and _heavy(modules, ("torch", "mlflow", "optuna", "matplotlib")) == []


def test_the_strategy_help_names_every_strategy():
    # sadkit.cli.active writes the strategies out so that its --help does not import sadkit.active
    import inspect

    from sadkit.active import STRATEGIES
    from sadkit.cli.active import active_command

    help_text = inspect.signature(active_command).parameters["strategy"].default.help
    assert [s for s in STRATEGIES if s not in help_text] == []
