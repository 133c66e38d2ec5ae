"""The MLflow tracking store: which URI, whether it answers, ending runs and reading them back by id.

The default store is a SQLite file in the working directory (``sqlite:///mlflow.db``);
``MLFLOW_TRACKING_URI`` or an explicit URI overrides it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

from mlflow.tracking import MlflowClient

from ..errors import SadkitError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "sadkit"
PARENT_TAG = "mlflow.parentRunId"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """An explicit URI, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast on a store that does not answer (MLflow itself retries for minutes).

    Raises:
        SadkitError: the tracking server or database at ``uri`` does not answer within ``timeout``.
    """
    scheme = uri.split(":", 1)[0].lower()
    try:
        if scheme in ("http", "https"):
            import urllib.request

            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
                pass
        elif scheme.split("+")[0] in ("postgresql", "mysql", "mssql"):
            import sqlalchemy

            connect_args = {"connect_timeout": int(timeout)} if scheme.startswith(("postgresql", "mysql")) else {}
            engine = sqlalchemy.create_engine(uri, connect_args=connect_args)
            try:
                with engine.connect():
                    pass
            finally:
                engine.dispose()
    except Exception as err:  # noqa: BLE001 - whatever the driver raises, the message says it
        raise SadkitError(f"cannot use the MLflow tracking store {uri}: {type(err).__name__}: {err}") from err


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


def terminate(client: MlflowClient, run_id: str, status: str) -> None:
    """End a run. MLflow prints a link to the run on stdout when the store is a tracking server; it goes
    to stderr here, so that stdout stays the command's own (one JSON object with ``--json``)."""
    with redirect_stdout(sys.stderr):
        client.set_terminated(run_id, status=status)


def get_run(run_id: str, tracking_uri: str | None = None) -> Any:
    """The MLflow run ``run_id`` (status, params, metrics, tags)."""
    return MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri)).get_run(run_id)
