"""Heartbeats of sadkit runs, and the sweep that ends runs whose process vanished.

While a run that sadkit opened is RUNNING, a background thread sets its tag ``sadkit.heartbeat`` (UTC,
ISO 8601) every ``$SADKIT_HEARTBEAT_SECONDS`` (default 10) seconds, and ``sadkit.heartbeat_interval``
once. A run whose process was killed (SIGKILL, power loss) stops beating; the sweep ends it KILLED, with
its end time at its last heartbeat and the tag ``sadkit.swept`` saying why.

The rule: the sweep only ends RUNNING runs that carry a ``sadkit.heartbeat`` tag, when the last one is
older than ``stale_after`` seconds (by default :data:`STALE_BEATS` of the run's own intervals, 5 minutes
at the default). Runs without the tag (opened by other tools, or the run ``mlflow run`` created, which
that process ends itself) are never ended by it. It runs whenever sadkit opens a store (one search of
the RUNNING runs) and by hand as ``sadkit runs sweep``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from mlflow.entities import RunStatus, ViewType
from mlflow.tracking import MlflowClient

from ..errors import SadkitError
from .store import terminate

HEARTBEAT_TAG = "sadkit.heartbeat"
INTERVAL_TAG = "sadkit.heartbeat_interval"
SWEPT_TAG = "sadkit.swept"
#: seconds between heartbeats, unless ``$SADKIT_HEARTBEAT_SECONDS`` says otherwise
DEFAULT_INTERVAL = 10.0
#: a run silent for this many of its own heartbeat intervals is stale (the automatic sweep's rule)
STALE_BEATS = 30

_log = logging.getLogger("sadkit.tracking")


def heartbeat_interval() -> float:
    """Seconds between heartbeats: ``$SADKIT_HEARTBEAT_SECONDS`` or :data:`DEFAULT_INTERVAL`."""
    raw = os.environ.get("SADKIT_HEARTBEAT_SECONDS")
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise SadkitError(f"SADKIT_HEARTBEAT_SECONDS must be a positive number of seconds, got {raw!r}")
    return value


def _now_iso(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, timezone.utc).isoformat(timespec="milliseconds")


class Heartbeat:
    """Beats for one run from a daemon thread (a tag write every ``interval`` seconds), until :meth:`stop`.

    A failed write is retried at the next beat: a store that blips must not end a training run.
    """

    def __init__(self, client: MlflowClient, interval: float | None = None) -> None:
        self.client = client
        self.run_id = ""
        self.interval = interval or heartbeat_interval()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def first_beat(self) -> dict[str, str]:
        """The tags of the first beat, to create the run with: a process killed right after it created the
        run leaves a run the sweep can end (a separate first write would leave a window without one)."""
        return {INTERVAL_TAG: f"{self.interval:g}", HEARTBEAT_TAG: _now_iso()}

    def start(self, run_id: str) -> Heartbeat:
        """Beat for ``run_id``, created with :meth:`first_beat`'s tags."""
        self.run_id = run_id
        self._thread = threading.Thread(target=self._run, name=f"sadkit-heartbeat-{run_id[:8]}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        failed = False
        while not self._stop.wait(self.interval):
            try:
                self.client.set_tag(self.run_id, HEARTBEAT_TAG, _now_iso())
                failed = False
            except Exception as err:  # noqa: BLE001 - retried at the next beat
                if not failed:  # said once per spell of failures
                    _log.warning("the heartbeat of MLflow run %s failed (retrying): %s", self.run_id, err)
                failed = True

    def stop(self) -> None:
        """Stop beating (before the run ends); waits for a beat in flight."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10.0)


@dataclass
class SweptRun:
    """A run the sweep ended."""

    run_id: str
    run_name: str
    experiment_id: str
    last_heartbeat: str
    silent_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp()
    except (TypeError, ValueError):
        return None


def _experiment_ids(client: MlflowClient) -> list[str]:
    ids: list[str] = []
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids


def sweep_stale_runs(
    client: MlflowClient, stale_after: float | None = None, experiment_ids: list[str] | None = None
) -> list[SweptRun]:
    """End the RUNNING runs whose heartbeat is older than ``stale_after`` seconds (default: each run's
    own interval times :data:`STALE_BEATS`); runs without a heartbeat tag are left alone.

    Args:
        client: the store's client.
        stale_after: seconds of silence after which a run is ended.
        experiment_ids: where to look (default: every active experiment of the store).

    Returns:
        The runs it ended (status KILLED, tag ``sadkit.swept``, end time = last heartbeat).
    """
    ids = experiment_ids if experiment_ids is not None else _experiment_ids(client)
    swept: list[SweptRun] = []
    token = None
    while ids:
        page = client.search_runs(
            ids,
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HEARTBEAT_TAG}` LIKE '%'",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            ended = _sweep_one(client, run, stale_after)
            if ended is not None:
                swept.append(ended)
        token = page.token
        if not token:
            break
    return swept


def _sweep_one(client: MlflowClient, run: Any, stale_after: float | None) -> SweptRun | None:
    tags = run.data.tags
    beat = _parse(tags.get(HEARTBEAT_TAG, ""))
    if beat is None:
        return None
    if stale_after is None:
        try:
            interval = float(tags.get(INTERVAL_TAG, DEFAULT_INTERVAL))
        except ValueError:
            interval = DEFAULT_INTERVAL
        stale_after = STALE_BEATS * interval
    now = time.time()
    silent = now - beat
    if silent <= stale_after:
        return None
    current = client.get_run(run.info.run_id)  # it may have ended or beaten since the search
    if current.info.status != "RUNNING" or current.data.tags.get(HEARTBEAT_TAG) != tags[HEARTBEAT_TAG]:
        return None
    last = tags[HEARTBEAT_TAG]
    why = (
        f"no heartbeat since {last} ({silent:.0f} s before this sweep at {_now_iso(now)}); its process"
        " stopped without ending the run (killed?)"
    )
    client.set_tag(run.info.run_id, SWEPT_TAG, why)
    terminate(client, run.info.run_id, RunStatus.to_string(RunStatus.KILLED), end_time=int(beat * 1000))
    _log.warning("ended MLflow run %s (%s) KILLED: %s", run.info.run_id, run.info.run_name, why)
    return SweptRun(run.info.run_id, run.info.run_name or "", run.info.experiment_id, last, round(silent, 1))


def sweep_store(tracking_uri: str | None = None, stale_after: float | None = None) -> list[SweptRun]:
    """Open the store at ``tracking_uri`` (default :func:`~sadkit.tracking.resolve_tracking_uri`) and end
    its runs whose heartbeat is stale (see :func:`sweep_stale_runs`)."""
    from .store import open_client

    if stale_after is not None and not stale_after >= 0:
        raise SadkitError(f"stale_after must be >= 0 seconds, got {stale_after}")
    return sweep_stale_runs(open_client(tracking_uri), stale_after)


def end_orphaned_runs(client: MlflowClient, experiment_id: str, tags: dict[str, str], why: str) -> list[SweptRun]:
    """End KILLED, now, the RUNNING runs of an experiment that carry all of ``tags`` and a heartbeat,
    whatever the age of their last beat: the caller knows that their process is gone.

    A reproduction calls this when the attempt that opened a run cannot still be running: when a Dask
    worker retries a cell whose first worker was lost (the runs tagged with that cell's key under this
    invocation's parent run), and after every task has returned (every RUNNING child of the parent run).

    Args:
        client: the store's client.
        experiment_id: the experiment to search.
        tags: tag -> value, all of which a run must carry.
        why: the reason, kept in the tag ``sadkit.swept``.

    Returns:
        The runs it ended (status KILLED, end time = last heartbeat).
    """
    conditions = ["attributes.status = 'RUNNING'", f"tags.`{HEARTBEAT_TAG}` LIKE '%'"]
    conditions += [f"tags.`{key}` = '{value}'" for key, value in tags.items()]
    ended: list[SweptRun] = []
    for run in client.search_runs([experiment_id], filter_string=" and ".join(conditions), max_results=1000):
        last = run.data.tags[HEARTBEAT_TAG]
        beat = _parse(last) or time.time()
        client.set_tag(run.info.run_id, SWEPT_TAG, why)
        terminate(client, run.info.run_id, RunStatus.to_string(RunStatus.KILLED), end_time=int(beat * 1000))
        _log.warning("ended MLflow run %s (%s) KILLED: %s", run.info.run_id, run.info.run_name, why)
        silent = round(time.time() - beat, 1)
        ended.append(SweptRun(run.info.run_id, run.info.run_name or "", run.info.experiment_id, last, silent))
    return ended
