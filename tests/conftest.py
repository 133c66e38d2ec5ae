"""Shared pytest fixtures. One section per concern; keep each small."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------------
# Real data (../shared/data, see its SOURCES.md); tests that need it skip where it is absent.
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data root: ``$SADKIT_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("SADKIT_DATA")
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def odds_root(shared_data: Path) -> Path:
    """The data root holding ``odds/*.mat``; skips the test when the ODDS files are absent."""
    if not (shared_data / "odds" / "cardio.mat").is_file():
        pytest.skip(f"ODDS data not found at {shared_data / 'odds'}; set SADKIT_DATA")
    return shared_data


# --------------------------------------------------------------------------------------------------
# MLflow: a real SQLite tracking store per test. Creating the schema takes seconds, so one store is
# created per test session (and xdist worker) and copied for each test.
# --------------------------------------------------------------------------------------------------

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# --------------------------------------------------------------------------------------------------
# Threads: under pytest-xdist each worker is pinned to its own share of the cores, so torch (which sadkit sizes to
# the cores a process may use) runs one thread per worker instead of every worker using every core.
# --------------------------------------------------------------------------------------------------


def _pin_xdist_worker() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    n_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if n_workers <= 1 or n_workers > len(cores):
        return
    os.sched_setaffinity(0, set(cores[int(worker[2:]) :: n_workers]))


_pin_xdist_worker()


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sadkit.tracking import Tracker

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    Tracker(f"sqlite:///{path}", "template")
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, _mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow store for this test, also set as the working directory's default."""
    import shutil

    db = tmp_path / "mlflow.db"
    shutil.copy(_mlflow_template, db)
    uri = f"sqlite:///{db}"
    monkeypatch.chdir(tmp_path)  # artifacts of SQLite stores go next to the working directory
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


# --------------------------------------------------------------------------------------------------
# Plugins: fake installed distributions (a *.dist-info folder on sys.path), as a third party's
# package would look to importlib.metadata, so the registry meets real entry points.
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``fake_distribution(name, {group: {entry_name: "module:attr"}}, modules={"mod.py": source})`` installs
    entry points, and the modules they name, in a folder of this test only (removed from ``sys.path`` and
    ``sys.modules`` after it, so no other test sees them)."""
    import importlib
    import sys
    import textwrap

    from sadkit import registry

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    written: list[str] = []

    def install(name: str, groups: dict[str, dict[str, str]], modules: dict[str, str] | None = None) -> Path:
        for filename, source in (modules or {}).items():
            (site / filename).write_text(textwrap.dedent(source))
            written.append(filename.removesuffix(".py"))
        importlib.invalidate_caches()
        info = site / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        lines = []
        for group, entries in groups.items():
            lines.append(f"[{group}]")
            lines += [f"{entry} = {target}" for entry, target in entries.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        registry.refresh()
        return info

    yield install
    monkeypatch.undo()
    for module in written:
        sys.modules.pop(module, None)
    registry.refresh()


# --------------------------------------------------------------------------------------------------
# The command line, driven in process with Typer's own runner (Typer carries its own click).
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def cli():
    """``cli("run", "deepsad", ...)`` runs ``sadkit run deepsad ...`` in process and returns the result."""
    from typer.testing import CliRunner

    from sadkit.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))
