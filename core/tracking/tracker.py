"""``Tracker``: one tracking store and experiment; opens runs, queries them and ends them from outside."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from ..errors import SadkitError
from .heartbeat import Heartbeat, SweptRun, end_orphaned_runs, sweep_stale_runs
from .run import RunLogger
from .store import DEFAULT_EXPERIMENT, PARENT_TAG, open_client, resolve_tracking_uri, terminate


class Tracker:
    """A tracking store and experiment; opens runs.

    Args:
        tracking_uri: an MLflow tracking URI (default: :func:`resolve_tracking_uri`).
        experiment: the experiment's name, created when missing (default ``sadkit``). Under
            ``mlflow run``, the experiment it chose.

    Raises:
        SadkitError: the store does not answer or cannot be used.
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, sweep: bool = True) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment or DEFAULT_EXPERIMENT
        self.last_run_id: str | None = None
        self.client = open_client(self.tracking_uri)
        #: runs whose process vanished, ended by the sweep when this store was opened
        self.swept: list[SweptRun] = self._sweep() if sweep else []
        try:
            self.experiment_id = self._experiment_id()
        except MlflowException as err:
            raise SadkitError(f"cannot use the MLflow tracking store {self.tracking_uri}: {err.message}") from err
        except Exception as err:  # noqa: BLE001 - a missing driver, a refused connection, a bad URI
            raise SadkitError(
                f"cannot use the MLflow tracking store {self.tracking_uri}: {type(err).__name__}: {err}"
            ) from err

    def _sweep(self) -> list[SweptRun]:
        try:
            return sweep_stale_runs(self.client)
        except MlflowException as err:  # the sweep must not stop the work: the next one tries again
            logging.getLogger("sadkit.tracking").debug("sweep of %s failed: %s", self.tracking_uri, err)
            return []

    def sweep(self, stale_after: float | None = None) -> list[SweptRun]:
        """End the runs of this store whose process vanished (see :func:`sweep_stale_runs`)."""
        return sweep_stale_runs(self.client, stale_after)

    def end_orphans(self, tags: Mapping[str, str], why: str) -> list[SweptRun]:
        """End KILLED the RUNNING runs of this experiment that carry all of ``tags`` (a heartbeat too), whose
        process the caller knows is gone (see :func:`~sadkit.tracking.heartbeat.end_orphaned_runs`)."""
        return end_orphaned_runs(self.client, self.experiment_id, dict(tags), why)

    def _experiment_id(self) -> str:
        launched_in = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if launched_in and os.environ.get("MLFLOW_RUN_ID"):
            return launched_in  # launched by `mlflow run`, which chose the experiment and the run
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(self.experiment)
        except MlflowException:  # created by another process in the meantime
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    # ------------------------------------------------------------------ opening runs
    @contextmanager
    def start_run(
        self,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        stop_on: Mapping[type[BaseException], Mapping[str, str]] | None = None,
    ) -> Iterator[RunLogger]:
        """Open a run; it ends FINISHED, FAILED when the block raises, KILLED on Ctrl-C.

        While it is open, a :class:`Heartbeat` thread beats for it (not for the run ``mlflow run`` created
        and lends us: that process ends it itself), so a sweep can end it should this process vanish.

        ``stop_on`` maps exception types that stop a run on purpose (a pruned study trial) to tags:
        such a run ends KILLED with those tags instead of FAILED with an ``error`` tag.
        ``last_run_id`` holds the id of the run opened last (also while it is open).
        """
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        adopted = None if parent_run_id else os.environ.pop("MLFLOW_RUN_ID", None)
        heartbeat = None
        if adopted:  # launched by `mlflow run`: log into the run it created (once; nested runs are new)
            run = self.client.get_run(adopted)
            if run_name:
                all_tags["mlflow.runName"] = run_name
        else:  # created with its first heartbeat, so that no moment leaves a run the sweep cannot end
            heartbeat = Heartbeat(self.client)
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags | heartbeat.first_beat())
        logger = RunLogger(self.client, run.info.run_id)
        self.last_run_id = run.info.run_id
        if adopted:
            logger.set_tags(all_tags)
        if heartbeat is not None:
            heartbeat.start(run.info.run_id)
        status = RunStatus.to_string(RunStatus.FAILED)
        try:
            yield logger
            logger.log_pending_figures()
            status = RunStatus.to_string(RunStatus.FINISHED)
        except KeyboardInterrupt:
            status = RunStatus.to_string(RunStatus.KILLED)
            raise
        except tuple(stop_on or ()) as err:
            status = RunStatus.to_string(RunStatus.KILLED)
            stop_tags = next(t for kind, t in (stop_on or {}).items() if isinstance(err, kind))
            logger.set_tags({**stop_tags, "sadkit.stopped": f"{type(err).__name__}: {err}"[:5000]})
            raise
        except BaseException as err:
            logger.set_tags({"error": f"{type(err).__name__}: {err}"[:5000]})
            raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            logger.flush()
            # a run kept open for its figures (sadkit.tracking.figures) ends when its work ended
            ended = logger.work_ended_ms if status == RunStatus.to_string(RunStatus.FINISHED) else None
            terminate(self.client, run.info.run_id, status, end_time=ended)

    # ------------------------------------------------------------------ run queries
    def get_run(self, run_id: str) -> Any:
        """The MLflow run ``run_id`` of this store (info, params, metrics, tags)."""
        return self.client.get_run(run_id)

    def run_status(self, run_id: str) -> str:
        """The status of a run: RUNNING, FINISHED, FAILED, KILLED or SCHEDULED."""
        return self.client.get_run(run_id).info.status

    def finished_runs_by_tag(self, tag: str) -> dict[str, Any]:
        """FINISHED runs of this experiment that carry ``tag``, by the tag's value (newest wins)."""
        found: dict[str, Any] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string="attributes.status = 'FINISHED'",
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            for run in page:
                value = run.data.tags.get(tag)
                if value is not None:
                    found[value] = run
            token = page.token
            if not token:
                return found

    # ------------------------------------------------------------------ runs of other processes
    def set_run_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags on any run of this store (open or ended)."""
        RunLogger(self.client, run_id).set_tags(tags)

    def end_run(self, run_id: str, status: str = "FAILED", tags: Mapping[str, Any] | None = None) -> None:
        """End a run that its own process can no longer end (e.g. one whose worker was killed).

        Args:
            run_id: the run to end.
            status: its final status (FINISHED, FAILED or KILLED).
            tags: set on the run before it ends.
        """
        if tags:
            self.set_run_tags(run_id, tags)
        terminate(self.client, run_id, RunStatus.to_string(RunStatus.from_string(status)))


#: the Trackers of this process, by store and experiment (see :func:`shared_tracker`)
_shared: dict[tuple[str | None, ...], Tracker] = {}


def shared_tracker(tracking_uri: str | None = None, experiment: str | None = None) -> Tracker:
    """This process's :class:`Tracker` of a store and experiment, opened on first use.

    A process that runs many experiments (the cells of a reproduction, in the parent or in a pool's
    workers) opens its store and looks up its experiment once instead of once per run.
    """
    uri = resolve_tracking_uri(tracking_uri)
    name = experiment or DEFAULT_EXPERIMENT
    relative_to = os.getcwd() if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////") else ""
    # under `mlflow run` a Tracker takes the experiment of the run it adopts, and later ones the named one
    launched = (os.environ.get("MLFLOW_EXPERIMENT_ID"), os.environ.get("MLFLOW_RUN_ID"))
    key = (uri, name, relative_to, *launched)
    if key not in _shared:
        _shared[key] = Tracker(uri, name)
    return _shared[key]
