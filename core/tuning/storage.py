"""Optuna storages: SQLite, any RDB URL or a journal file, opened with heartbeats for stale trials."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import SadkitError
from ._common import _importable, _quiet_optuna

DEFAULT_STORAGE = "sqlite:///optuna.db"
_HEARTBEAT_ATTR = "sadkit:heartbeat"


def storage_url(url: str | None) -> tuple[str, str]:
    """``(kind, target)``: ``("rdb", sqlalchemy_url)`` or ``("journal", path)``.

    Accepted: ``sqlite:///FILE.db`` (relative) / ``sqlite:////abs/FILE.db``, ``postgresql://...``,
    ``mysql+pymysql://...`` (any SQLAlchemy URL), ``journal:///FILE.log`` (relative) /
    ``journal:////abs/FILE.log``, or a bare path ending in ``.db``/``.sqlite`` (SQLite) or
    ``.log``/``.jsonl`` (journal file).
    """
    url = (url or DEFAULT_STORAGE).strip()
    if url.startswith("journal:"):
        path = url[len("journal:") :]
        if path.startswith("///"):
            path = path[3:]
        elif path.startswith("//"):
            raise SadkitError(
                f"bad journal storage URL {url!r}: use journal:///relative/file.log or journal:////absolute/file.log"
            )
        if not path:
            raise SadkitError(f"bad journal storage URL {url!r}: it names no file")
        return "journal", path
    if "://" not in url:
        suffix = Path(url).suffix.lower()
        if suffix in (".db", ".sqlite", ".sqlite3"):
            return "rdb", f"sqlite:///{url}"
        if suffix in (".log", ".jsonl", ".journal"):
            return "journal", url
        raise SadkitError(
            f"{url!r} is not a storage URL; use sqlite:///FILE.db, journal:///FILE.log, "
            "postgresql://USER@HOST/DB or another SQLAlchemy URL"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres") and not _importable("psycopg2") and _importable("psycopg"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # the psycopg 3 driver sadkit's tests use
    return "rdb", url


def describe_storage(url: str | None) -> str:
    """The storage URL without its password (for logs and messages)."""
    kind, target = storage_url(url)
    if kind == "journal":
        return f"journal:///{target}"
    try:
        from sqlalchemy.engine import make_url

        return make_url(target).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return target


StaleCallback = Callable[[Any, FrozenTrial], None]


def open_storage(
    url: str | None = None,
    *,
    heartbeat: int | None = None,
    on_stale: StaleCallback | None = None,
    must_exist: bool = False,
) -> Any:
    """An Optuna storage for ``url``, or a :class:`SadkitError` that says why it cannot be used.

    With ``heartbeat`` (seconds), running trials record heartbeats and a trial silent for three of
    them is failed by the next worker that starts a trial (``on_stale`` is then called with it).
    ``must_exist``: a SQLite or journal file that does not exist is an error (rather than created).
    """
    kind, target = storage_url(url)
    shown = describe_storage(url)
    if must_exist:
        path = target if kind == "journal" else target.split(":///", 1)[1] if target.startswith("sqlite:///") else None
        if path and path != ":memory:" and not Path(path).expanduser().is_file():
            raise SadkitError(f"no Optuna storage at {shown}: {path} does not exist; give --storage URL")
    grace = 3 * heartbeat if heartbeat else None
    try:
        with _quiet_optuna():
            if kind == "journal":
                path = Path(target).expanduser()
                if not path.parent.is_dir():
                    raise SadkitError(
                        f"cannot open the journal storage {shown}: the folder {path.parent} does not exist"
                    )
                from optuna.storages.journal import JournalFileBackend

                backend = JournalFileBackend(str(path))
                if heartbeat and _HeartbeatJournalStorage is not None:
                    return _HeartbeatJournalStorage(backend, heartbeat, grace, on_stale)
                return optuna.storages.JournalStorage(backend)
            scheme = target.split("://", 1)[0].lower()
            engine_kwargs: dict[str, Any] = {}
            if scheme.startswith("sqlite"):
                path = target.split(":///", 1)[1] if ":///" in target else ""
                if path and path != ":memory:" and not Path(path).expanduser().parent.is_dir():
                    raise SadkitError(
                        f"cannot open the SQLite storage {shown}: the folder {Path(path).parent} does not exist"
                    )
                engine_kwargs = {"connect_args": {"timeout": 60}}
            elif scheme.startswith(("postgresql", "mysql")):
                engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
            return optuna.storages.RDBStorage(
                target,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=grace,
                heartbeat_stale_trial_callback=on_stale if heartbeat else None,
            )
    except SadkitError:
        raise
    except Exception as err:  # noqa: BLE001 - a refused connection, a missing driver, a bad URL
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SadkitError(
            f"cannot open the Optuna storage {shown}: {type(err).__name__}: {message} (is the URL right and the"
            " database server running and reachable? e.g. sqlite:///optuna.db, journal:///optuna.log,"
            " postgresql://USER@HOST:5432/DB)"
        ) from err


# Heartbeats for journal files keep one import from a private Optuna module, as there is no public way.
# Optuna 5.0 gives heartbeats to RDBStorage only (heartbeat_interval, grace_period and
# heartbeat_stale_trial_callback, used above through the public API); JournalStorage takes no such option.
# Study.optimize starts its heartbeat thread, and the public optuna.storages.fail_stale_trials fails stale
# trials, only for a storage that is an instance of optuna.storages._heartbeat.BaseHeartbeat, which Optuna
# does not export; the public RetryHeartbeatStaleTrialCallback is only a callback for such a storage. Should a
# later Optuna move or drop that class, the import fails and journal files run without heartbeats (RDB
# storages keep theirs).
try:
    from optuna.storages._heartbeat import BaseHeartbeat

    class _HeartbeatJournalStorage(optuna.storages.JournalStorage, BaseHeartbeat):
        """A journal storage whose running trials record heartbeats (as trial system attributes)."""

        def __init__(self, backend: Any, interval: int, grace: int | None, on_stale: StaleCallback | None) -> None:
            super().__init__(backend)
            self._interval = int(interval)
            self._grace = int(grace or 2 * interval)
            self._on_stale = on_stale

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, _HEARTBEAT_ATTR, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            stale = []
            for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                beat = trial.system_attrs.get(_HEARTBEAT_ATTR)
                if beat is not None and now - float(beat) > self._grace:
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self._interval

        def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
            return self._on_stale

        def get_failed_trial_callback(self) -> StaleCallback | None:  # older Optuna versions ask this
            return self._on_stale

except ImportError:  # pragma: no cover - a future Optuna without the private base class
    _HeartbeatJournalStorage = None  # type: ignore[assignment,misc]


def fail_stale_trials(study: Any) -> None:
    """Mark the trials of dead workers (no heartbeat for the grace period) FAILED."""
    with _quiet_optuna():
        optuna.storages.fail_stale_trials(study)
