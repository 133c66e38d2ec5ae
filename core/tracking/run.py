"""``RunLogger``: what sadkit logs into one open MLflow run (params, tags, metrics, artifacts, figures).

Metrics from training callbacks are buffered and sent in batches; figures come from :mod:`sadkit.plots`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..callbacks import Callback
from ..detector import Detector
from ..serialize import to_json
from .model import log_model
from .store import quiet

_BATCH = 500  # MLflow accepts at most 1000 metrics / 100 params per batch


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists and tuples as JSON."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(to_json(list(value)))
        else:
            flat[name] = str(value)
    return flat


def array_norms(arrays: Mapping[str, Any]) -> dict[str, float]:
    """``<name>_norm``: the Euclidean norm of each array logged by :meth:`RunLogger.log_arrays`."""
    return {f"{name}_norm": float(np.linalg.norm(np.asarray(array))) for name, array in arrays.items()}


class RunLogger:
    """Logs into one run. Metrics from callbacks are buffered and sent in batches.

    Args:
        client: the store's client.
        run_id: the run to log into.
        flush_seconds: buffered metrics are sent at least this often.
    """

    def __init__(self, client: MlflowClient, run_id: str, flush_seconds: float = 5.0) -> None:
        self.client = client
        self.run_id = run_id
        self._pending: list[Metric] = []
        #: figures being drawn by the helper process: (future of the files, artifact folder, draw it here)
        self._figures: list[tuple[Any, str, Any]] = []
        #: when the run's own work ended, if it was kept open for its figures (ms since the epoch)
        self.work_ended_ms: int | None = None
        #: how long :meth:`log_pending_figures` waits for the helper process before drawing here
        self.figures_wait_seconds = 120.0
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()

    # ------------------------------------------------------------------ basics
    def _send(self, params: Sequence[Param] = (), metrics: Sequence[Metric] = (), tags: Sequence[RunTag] = ()) -> None:
        """One store call (one SQLite commit) per MLflow batch: at most 100 params, 100 tags, 1000 metrics."""
        while params or metrics or tags:
            self.client.log_batch(self.run_id, metrics=metrics[:_BATCH], params=params[:100], tags=tags[:100])
            params, metrics, tags = params[100:], metrics[_BATCH:], tags[100:]

    @staticmethod
    def _metrics(metrics: Mapping[str, float | None], step: int) -> list[Metric]:
        now = int(time.time() * 1000)
        return [Metric(k, float(v), now, int(step)) for k, v in metrics.items() if v is not None]

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters, nested mappings flattened to dotted names (see :func:`flatten`)."""
        self._send(params=[Param(k, v[:6000]) for k, v in flatten(params).items()])

    def log_batch(
        self,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        step: int = 0,
    ) -> None:
        """Parameters (flattened), metrics at ``step`` (None values skipped) and tags, with any buffered
        metrics, in one store transaction (MLflow's batch limits allowing): each call to the store is one
        SQLite commit, the largest share of a short run's logging."""
        values, self._pending = self._pending + self._metrics(metrics or {}, step), []
        self._send(
            [Param(k, v[:6000]) for k, v in flatten(params or {}).items()],
            values,
            [RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )
        self._last_flush = time.monotonic()

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values as strings)."""
        self._send(tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, buffered: bool = False) -> None:
        """Log metrics at ``step`` (None values are skipped); ``buffered`` ones are sent by :meth:`flush`."""
        self._pending += self._metrics(metrics, step)
        if not buffered or time.monotonic() - self._last_flush > self._flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Send the buffered metrics."""
        pending, self._pending = self._pending, []
        self._send(metrics=pending)
        self._last_flush = time.monotonic()

    def epoch_callback(self, flush_seconds: float | None = None) -> Callback:
        """A callback logging ``<phase>_loss``, ``<phase>_lr`` and ``<phase>_val_auroc`` per epoch, sent at
        least every ``flush_seconds`` (default: this logger's). Runs trained in one stack of S models pass
        ``S`` seconds: each flush is a store transaction (20 ms on SQLite), and 20 runs flushing every 5 s
        spent a sixth of a stacked satellite training in them; the store still hears about once a second."""
        if flush_seconds is not None:
            self._flush_seconds = float(flush_seconds)
        return _EpochLogger(self)

    # ------------------------------------------------------------------ artifacts
    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Upload a local file (into the folder ``artifact_path`` of the run's artifacts)."""
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        """Log ``data`` as a JSON (or YAML, by the file's extension) artifact."""
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Log a matplotlib figure as an image artifact (e.g. ``plots/roc_test.png``)."""
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Each array as ``arrays/<name>.npy`` and ``.json``; their norms (:func:`array_norms`, the metrics
        ``<name>_norm``) go with the caller's other metrics (:meth:`log_batch`)."""
        with tempfile.TemporaryDirectory() as tmp:
            for name, array in arrays.items():
                array = np.asarray(array)
                np.save(Path(tmp) / f"{name}.npy", array)
                (Path(tmp) / f"{name}.json").write_text(json.dumps(to_json(array)))
            if arrays:
                self.client.log_artifacts(self.run_id, tmp, "arrays")

    def log_detector(self, detector: Detector, example_rows: Any) -> str:
        """Log the fitted detector as the run's LoggedModel (see :mod:`sadkit.tracking.model`); return its
        ``models:/`` URI. ``example_rows``: raw rows for the model's input example."""
        return log_model(self.client, self.run_id, detector, example_rows)

    def log_scores(self, split: str, ids: Any, scores: np.ndarray, threshold: float, y: Any) -> None:
        """The split's scores as ``scores/<split>.csv`` (id, score, label at ``threshold``, ground truth y);
        scores are written with every digit, so they can be compared with the logged model's."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{split}.csv"
            with path.open("w") as f:
                f.write("id,score,label,y\n")
                for i, score, truth in zip(
                    np.asarray(ids).tolist(), scores.tolist(), np.asarray(y).tolist(), strict=True
                ):
                    f.write(f"{i},{score!r},{int(score > threshold)},{truth}\n")
            self.client.log_artifact(self.run_id, str(path), "scores")

    def log_dataset(self, name: str, source: str, X: Any, y: Any, context: str = "training") -> None:
        """The run's dataset as an MLflow dataset input (name, source, digest, schema), shown in the runs
        table's "Dataset" column."""
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag

        X = np.asarray(X)
        features = X.reshape(len(X), -1) if X.ndim > 2 else X
        with quiet("mlflow"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow's note that a local path can be read as several kinds of source
            dataset = mlflow.data.from_numpy(features, targets=np.asarray(y), source=source, name=name)
        tags = [InputTag(key="mlflow.data.context", value=context)]
        inputs = [DatasetInput(dataset._to_mlflow_entity(), tags=tags)]
        try:
            self.client.log_inputs(self.run_id, datasets=inputs)
        except MlflowException:  # another run of the experiment registered the same dataset at the same moment
            self.client.log_inputs(self.run_id, datasets=inputs)  # now it exists: this links the run to it

    # ------------------------------------------------------------------ figures
    def log_evaluation_plots(self, y_true: np.ndarray, scores: np.ndarray, split: str = "test") -> None:
        """A ROC curve and a histogram of the scores of normals and anomalies.

        Logged as ``plots/roc_<split>.png`` and ``plots/scores_<split>.png``.
        """
        from .figures import active_renderer

        y_true, scores = np.asarray(y_true), np.asarray(scores)
        figures = [("roc_figure", f"roc_{split}.png"), ("score_histogram", f"scores_{split}.png")]
        renderer = active_renderer()
        if renderer is not None:  # drawn by the helper process; logged by log_pending_figures
            future = renderer.submit([(plot, (y_true, scores, split), name) for plot, name in figures])
            self._figures.append((future, "plots", lambda: self._draw_here(figures, y_true, scores, split)))
            return
        self._draw_here(figures, y_true, scores, split)

    def _draw_here(self, figures: list[tuple[str, str]], y_true: np.ndarray, scores: np.ndarray, split: str) -> None:
        from .. import plots

        for plot, name in figures:
            self.log_figure(getattr(plots, plot)(y_true, scores, split), f"plots/{name}")

    def figures_ready(self) -> bool:
        """Whether every figure handed to the helper process is drawn (or failed: then it is drawn here)."""
        return all(future.done() for future, _, _ in self._figures)

    def log_pending_figures(self) -> None:
        """Wait for the figures the helper process draws and log them; one it failed, or has not drawn within
        ``figures_wait_seconds``, is drawn here."""
        pending, self._figures = self._figures, []
        for future, folder, draw_here in pending:
            try:
                paths = future.result(timeout=self.figures_wait_seconds)
            except Exception:  # noqa: BLE001 - the helper failed, ended or is too slow: draw it in this process
                draw_here()
                continue
            for path in paths:
                self.client.log_artifact(self.run_id, path, folder)
                Path(path).unlink(missing_ok=True)

    def log_image_grids(
        self, X: np.ndarray, scores: np.ndarray, y_true: np.ndarray | None = None, k: int = 32, split: str = "test"
    ) -> None:
        """Grids of the ``k`` most and ``k`` least anomalous images of ``X`` (``(n, C, H, W)``, C = 1 or 3).

        Logged as ``plots/most_anomalous_<split>.png`` and ``plots/least_anomalous_<split>.png``; each
        tile shows its score, and ground-truth anomalies (``y_true == 1``) get a red frame. Nothing is
        logged when ``X`` is not a batch of such images or no score is finite.
        """
        from ..plots import anomaly_grids

        for name, figure in anomaly_grids(X, scores, y_true, k=k, split=split).items():
            self.log_figure(figure, f"plots/{name}_anomalous_{split}.png")

    def log_active_curve(self, rounds: Sequence[Mapping[str, Any]], title: str = "active learning") -> None:
        """Plot test AUROC and anomalies found against the number of queries (``plots/active_curve.png``)
        and log the rounds as ``active_rounds.json``. The per-round metrics (step = queries) are logged by
        the loop itself as they come."""
        from ..plots import active_curve

        self.log_figure(active_curve(rounds, title), "plots/active_curve.png")
        self.log_dict(to_json(list(rounds)), "active_rounds.json")


class _EpochLogger(Callback):
    """Sends a fit's per-epoch logs to a run, buffered: they go out every ``flush_seconds`` during training
    and with the run's next unbuffered metrics (its test metrics) or its end, not at the end of each phase,
    which would put a store round trip inside the phase's timed epochs."""

    def __init__(self, logger: RunLogger) -> None:
        self.logger = logger

    def on_epoch_end(self, phase: str, epoch: int, logs: Mapping[str, float]) -> None:
        metrics = {}
        for key, value in logs.items():
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                metrics[f"{phase}_{key}"] = value
        self.logger.log_metrics(metrics, step=epoch, buffered=True)
