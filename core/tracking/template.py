"""New SQLite tracking stores start as a copy of an empty one, made once per MLflow version.

MLflow builds a new SQLite store by running its whole history of schema migrations, one committed
transaction each: 1 to 5 s on a 2-core machine, paid by the first run in every new folder (and by every
reproduction or test with a fresh store). Here the migrations run once per MLflow version into a template
in the user's cache folder; a new store is a copy of it. The template holds the schema only: MLflow adds
its ``Default`` experiment (whose artifact location depends on the working folder) when it first opens
the copy, as it does for a store it built itself.

Anything unusual (not a plain ``sqlite:///FILE`` URI, an unwritable cache, a file system without hard
links) leaves the store to MLflow, exactly as before.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///FILE`` URI (relative to the working folder); None for others."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def template_folder() -> Path:
    """Where the templates live: ``<user cache>/sadkit/mlflow-stores`` (``$XDG_CACHE_HOME`` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sadkit")) / "mlflow-stores"


def create_from_template(uri: str) -> bool:
    """Create the SQLite store of ``uri`` as a copy of the template, if it does not exist yet.

    Returns whether it did; False leaves everything to MLflow (another process may have created the store
    in the meantime: the copy never replaces an existing file).
    """
    target = sqlite_file(uri)
    if target is None or target.exists() or not target.parent.is_dir():
        return False
    try:
        template = _template()
        tmp = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"  # the umask's permissions
        try:
            shutil.copyfile(template, tmp)
            os.link(tmp, target)  # atomic, and fails if the store appeared meanwhile
        finally:
            tmp.unlink(missing_ok=True)
    except Exception:  # noqa: BLE001 - whatever fails here, MLflow builds the store itself as before
        return False
    return True


def _template() -> Path:
    """The template of the installed MLflow, built on first use (by MLflow itself, in a temporary file)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    folder = template_folder()
    template = folder / f"mlflow-{mlflow.__version__}.db"
    if template.is_file():
        return template
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".building-", suffix=".db", dir=folder)
    os.close(fd)
    os.unlink(tmp)  # MLflow creates the file
    try:
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()  # runs every migration
        with sqlite3.connect(tmp) as db:  # the schema only: MLflow adds Default when it opens a copy
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")
        db.close()
        os.replace(tmp, template)  # several builders may race: each writes a complete template
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return template
