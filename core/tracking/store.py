"""The MLflow tracking store: which URI, whether it can work, opening it, ending runs and reading them back.

The default store is a SQLite file in the working directory (``sqlite:///mlflow.db``);
``MLFLOW_TRACKING_URI`` or an explicit URI overrides it. A store that cannot work (no URI, an unknown
scheme, an unwritable SQLite file, a server that does not answer) fails in a second or two with one line
naming it; a new SQLite store is created under a file lock (``FILE.db.lock``), so several processes may
open it at once.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..errors import SadkitError
from .template import create_from_template

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "sadkit"
PARENT_TAG = "mlflow.parentRunId"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """An explicit URI, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


#: URI schemes MLflow itself knows (MLflow plugins add theirs through the ``mlflow.tracking_store`` entry points)
KNOWN_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks", "databricks-uc", "uc")
#: seconds a store has to answer before sadkit gives up on it (MLflow itself retries for minutes)
STORE_TIMEOUT = 2.0
#: seconds to wait for another process that creates or migrates the same SQLite store
LOCK_TIMEOUT = 300.0


def _fail(uri: str, why: str) -> SadkitError:
    return SadkitError(f"cannot use the MLflow tracking store {uri}: {' '.join(why.split())}")


def _scheme(uri: str) -> str:
    """The URI's scheme without its driver (``postgresql+psycopg`` -> ``postgresql``), or a sadkit error."""
    scheme, sep, _ = uri.partition(":")
    if uri in ("databricks", "databricks-uc", "uc"):
        return uri
    if not sep or not scheme or not scheme.replace("+", "").replace("-", "").isalnum() or len(scheme) == 1:
        raise _fail(
            uri,
            "it is not a URI; give sqlite:///FILE.db (a local file), http://HOST:PORT (an MLflow server) or"
            " postgresql://USER@HOST/DB",
        )
    base = scheme.lower().split("+")[0]
    if base not in KNOWN_SCHEMES:
        from importlib.metadata import entry_points

        plugins = {ep.name for ep in entry_points(group="mlflow.tracking_store")}
        if scheme.lower() not in plugins:
            known = ", ".join([*KNOWN_SCHEMES, *sorted(plugins)])
            raise _fail(uri, f"unknown scheme {scheme!r}; MLflow knows {known}")
    return base


def is_local_store(uri: str) -> bool:
    """Whether the store at ``uri`` lives in files of this machine (``sqlite:``, ``file:`` or a plain path),
    so that processes on other machines cannot write to it."""
    scheme, sep, _ = uri.partition(":")
    return not sep or len(scheme) == 1 or scheme.lower().split("+")[0] in ("sqlite", "file")


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for an in-memory database or another scheme)."""
    if not uri.lower().startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _check_sqlite(uri: str, path: Path) -> None:
    """The file can be created or opened for writing, and is a SQLite database (or empty)."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)  # as MLflow does
        with tempfile.TemporaryFile(dir=folder):  # SQLite writes its journal beside the file
            pass
    except OSError as err:
        raise _fail(
            uri, f"cannot create files in its folder {folder} ({type(err).__name__}: {err.strerror or err})"
        ) from err
    if path.exists():
        if not path.is_file():
            raise _fail(uri, f"{path} is not a file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise _fail(uri, f"{path} is not readable and writable")
        with path.open("rb") as f:
            header = f.read(16)
        if header and header != b"SQLite format 3\x00":
            raise _fail(uri, f"{path} is not a SQLite database")


def check_store(uri: str, timeout: float = STORE_TIMEOUT) -> None:
    """Fail fast, with one line naming the store, on a URI that cannot work: no scheme or an unknown one,
    a SQLite file that cannot be written, a server or database that does not answer within ``timeout``
    seconds (MLflow itself retries for minutes).

    Raises:
        SadkitError: the store at ``uri`` cannot be used.
    """
    scheme = _scheme(uri)
    path = sqlite_path(uri)
    if path is not None:
        _check_sqlite(uri, path)
        return
    try:
        if scheme in ("http", "https"):
            import urllib.request

            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
                pass
        elif scheme in ("postgresql", "mysql", "mssql"):
            import sqlalchemy

            connect_args: dict[str, Any] = {}
            if scheme in ("postgresql", "mysql"):
                connect_args = {"connect_timeout": max(1, round(timeout))}
            engine = sqlalchemy.create_engine(uri, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
            try:
                with engine.connect():
                    pass
            finally:
                engine.dispose()
    except Exception as err:  # noqa: BLE001 - whatever the driver raises, the message says it
        message = getattr(err, "orig", None) or getattr(err, "reason", None) or err
        first = next((line for line in str(message).splitlines() if line.strip()), "")
        raise _fail(uri, f"{type(err).__name__}: {first}") from err


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold a file lock beside a SQLite store (``FILE.db.lock``) while MLflow creates or migrates its schema,
    so that several processes opening a new store at once do not race (other stores: no lock)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    from filelock import FileLock, Timeout

    lock = FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT)
    try:
        with lock:
            yield
    except Timeout as err:
        raise _fail(uri, f"another process has held {lock.lock_file} for {LOCK_TIMEOUT:.0f} s") from err


def open_client(uri: str | None = None) -> MlflowClient:
    """A client of the store at ``uri`` (default :func:`resolve_tracking_uri`), checked first with
    :func:`check_store`; a new SQLite store is created under :func:`store_lock`.

    Raises:
        SadkitError: the store cannot be used.
    """
    uri = resolve_tracking_uri(uri)
    check_store(uri)
    try:
        with store_lock(uri), quiet("mlflow.store.db.utils", logging.WARNING), quiet("alembic", logging.WARNING):
            create_from_template(uri)  # a new SQLite store: a copy of an empty one, not 100 migrations
            return MlflowClient(tracking_uri=uri)
    except MlflowException as err:
        raise _fail(uri, err.message) from err
    except SadkitError:
        raise
    except Exception as err:  # noqa: BLE001 - a missing driver, a refused connection, a bad URI
        raise _fail(uri, f"{type(err).__name__}: {err}") from err


@contextmanager
def quiet(logger_name: str, level: int = logging.ERROR) -> Iterator[None]:
    """Silence a chatty logger for a moment (MLflow's notes on cloudpickle and input examples)."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def terminate(client: MlflowClient, run_id: str, status: str, end_time: int | None = None) -> None:
    """End a run (at ``end_time``, ms since the epoch, default now). MLflow prints a link to the run on
    stdout when the store is a tracking server; it goes to stderr here, so that stdout stays the command's
    own (one JSON object with ``--json``)."""
    with redirect_stdout(sys.stderr):
        client.set_terminated(run_id, status=status, end_time=end_time)


def get_run(run_id: str, tracking_uri: str | None = None) -> Any:
    """The MLflow run ``run_id`` (status, params, metrics, tags)."""
    return open_client(tracking_uri).get_run(run_id)
