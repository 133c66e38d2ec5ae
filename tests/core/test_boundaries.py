"""The import boundaries of DESIGN.md, read from the code itself.

ruff's banned-api rule (pyproject.toml and the ruff.toml of each room) enforces them in CI; this test reads
every import of core/ and plugins/ so that a per-file ignore or a room's ruff.toml cannot quietly widen a
boundary (mlflow into core/tuning/, say).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: library -> the only place (a folder or a file, relative to the repository) that may import it
ROOMS = {
    "mlflow": "core/tracking",
    "optuna": "core/tuning",
    "stevedore": "core/registry.py",
    "dask": "core/reproduce",
    "distributed": "core/reproduce",
}
#: modules over this many lines hold more than one job
MAX_LINES = 400


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (top-level and inside functions), absolute names for relative imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(_module_name(path).split(".")[:-1]) if path.name != "__init__.py" else _module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    parts[0] = {"core": "sadkit", "plugins": "sadkit.plugins"}[parts[0]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def sources() -> list[Path]:
    return sorted([*(REPO / "core").rglob("*.py"), *(REPO / "plugins").rglob("*.py")])


def test_imported_modules_reads_relative_and_nested_imports(tmp_path: Path) -> None:
    module = REPO / "core" / "tuning" / "study.py"
    found = imported_modules(module)
    assert "optuna" in found or any(m.startswith("optuna") for m in found)
    assert "sadkit.tracking" in found  # written `from ..tracking import Tracker`


@pytest.mark.parametrize("library", sorted(ROOMS))
def test_each_heavy_library_is_imported_in_its_room_only(library: str) -> None:
    room = ROOMS[library]
    offenders = []
    for path in sources():
        rel = path.relative_to(REPO).as_posix()
        inside = rel == room or rel.startswith(room + "/")
        if not inside and any(m == library or m.startswith(library + ".") for m in imported_modules(path)):
            offenders.append(rel)
    assert not offenders, f"{library} is imported outside {room}: {offenders}"


def test_the_core_never_imports_a_plugin() -> None:
    offenders = [
        path.relative_to(REPO).as_posix()
        for path in (REPO / "core").rglob("*.py")
        if any(m == "sadkit.plugins" or m.startswith("sadkit.plugins.") for m in imported_modules(path))
    ]
    assert not offenders, f"core modules import plugins: {offenders}"


def test_no_module_holds_more_than_one_job_by_size() -> None:
    large = {
        path.relative_to(REPO).as_posix(): n
        for path in sources()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not large, f"modules over {MAX_LINES} lines: {large}"
