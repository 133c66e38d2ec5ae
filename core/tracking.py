"""Everything MLflow: the only module of sadkit that imports mlflow.

One run per experiment (nested runs for study trials). A run logs its parameters (flattened),
per-epoch losses (``pretrain_loss``, ``train_loss``; step = epoch), validation and test metrics,
learned arrays such as the hypersphere center ``c`` (artifact + ``c_norm`` metric), the fitted detector
as an MLflow pyfunc model whose ``predict`` returns anomaly scores, a ROC curve and a score histogram
(and, for image data, grids of the 32 most and 32 least anomalous test images).
A run that raises ends FAILED (KILLED on Ctrl-C) and keeps what it logged.

The default tracking store is a SQLite file in the working directory (``sqlite:///mlflow.db``);
``MLFLOW_TRACKING_URI`` or an explicit URI overrides it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunStatus, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from .callbacks import Callback  # noqa: E402
from .detector import Detector, load_detector  # noqa: E402
from .errors import SadkitError  # noqa: E402


def terminate(client: MlflowClient, run_id: str, status: str) -> None:
    """End a run. MLflow prints a link to the run on stdout when the store is a tracking server; it goes
    to stderr here, so that stdout stays the command's own (one JSON object with ``--json``)."""
    with redirect_stdout(sys.stderr):
        client.set_terminated(run_id, status=status)


DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "sadkit"
MODEL_ARTIFACT = "model"
PARENT_TAG = "mlflow.parentRunId"
_BATCH = 500  # MLflow accepts at most 1000 metrics / 100 params per batch


def resolve_tracking_uri(uri: str | None = None) -> str:
    """An explicit URI, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists and tuples as JSON."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(list(value))
        else:
            flat[name] = str(value)
    return flat


def _check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast on a store that does not answer (MLflow itself retries for minutes)."""
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
def _quiet(logger_name: str, level: int = logging.ERROR) -> Iterator[None]:
    """Silence a chatty logger for a moment (MLflow's notes on cloudpickle and input examples)."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


class Tracker:
    """A tracking store and experiment; opens runs."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment or DEFAULT_EXPERIMENT
        self.last_run_id: str | None = None
        _check_reachable(self.tracking_uri)
        try:
            with _quiet("mlflow.store.db.utils", logging.WARNING), _quiet("alembic", logging.WARNING):
                self.client = MlflowClient(tracking_uri=self.tracking_uri)
                self.experiment_id = self._experiment_id()
        except MlflowException as err:
            raise SadkitError(f"cannot use the MLflow tracking store {self.tracking_uri}: {err.message}") from err
        except Exception as err:  # noqa: BLE001 - a missing driver, a refused connection, a bad URI
            raise SadkitError(
                f"cannot use the MLflow tracking store {self.tracking_uri}: {type(err).__name__}: {err}"
            ) from err

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

    @contextmanager
    def start_run(
        self,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        stop_on: Mapping[type[BaseException], Mapping[str, str]] | None = None,
    ) -> Iterator[RunLogger]:
        """Open a run; it ends FINISHED, FAILED when the block raises, KILLED on Ctrl-C.

        ``stop_on`` maps exception types that stop a run on purpose (a pruned study trial) to tags:
        such a run ends KILLED with those tags instead of FAILED with an ``error`` tag.
        ``last_run_id`` holds the id of the run opened last (also while it is open).
        """
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        adopted = None if parent_run_id else os.environ.pop("MLFLOW_RUN_ID", None)
        if adopted:  # launched by `mlflow run`: log into the run it created (once; nested runs are new)
            run = self.client.get_run(adopted)
            if run_name:
                all_tags["mlflow.runName"] = run_name
        else:
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        logger = RunLogger(self.client, run.info.run_id)
        self.last_run_id = run.info.run_id
        if adopted:
            logger.set_tags(all_tags)
        status = RunStatus.to_string(RunStatus.FAILED)
        try:
            yield logger
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
            logger.flush()
            terminate(self.client, run.info.run_id, status)

    def get_run(self, run_id: str) -> Any:
        return self.client.get_run(run_id)

    def run_status(self, run_id: str) -> str:
        """The status of a run: RUNNING, FINISHED, FAILED, KILLED or SCHEDULED."""
        return run_status(self, run_id)

    def set_run_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags on any run of the tracker's store (open or ended)."""
        set_run_tags(self, run_id, tags)

    def end_run(self, run_id: str, status: str = "FAILED", tags: Mapping[str, Any] | None = None) -> None:
        """End a run that its own process can no longer end (e.g. one whose worker was killed)."""
        end_run(self, run_id, status, tags)

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


class RunLogger:
    """Logs into one run. Metrics from callbacks are buffered and sent in batches."""

    def __init__(self, client: MlflowClient, run_id: str, flush_seconds: float = 5.0) -> None:
        self.client = client
        self.run_id = run_id
        self._pending: list[Metric] = []
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()

    # ------------------------------------------------------------------ basics
    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, v[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        if items:
            self.client.log_batch(self.run_id, tags=items)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, buffered: bool = False) -> None:
        now = int(time.time() * 1000)
        for key, value in metrics.items():
            if value is None:
                continue
            self._pending.append(Metric(key, float(value), now, int(step)))
        if not buffered or time.monotonic() - self._last_flush > self._flush_seconds:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), _BATCH):
            self.client.log_batch(self.run_id, metrics=pending[i : i + _BATCH])
        self._last_flush = time.monotonic()

    def epoch_callback(self) -> Callback:
        """A callback logging ``<phase>_loss``, ``<phase>_lr`` and ``<phase>_val_auroc`` per epoch."""
        return _EpochLogger(self)

    # ------------------------------------------------------------------ artifacts
    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Each array as ``arrays/<name>.npy`` and ``.json``, and its norm as ``<name>_norm``."""
        with tempfile.TemporaryDirectory() as tmp:
            for name, array in arrays.items():
                array = np.asarray(array)
                np.save(Path(tmp) / f"{name}.npy", array)
                (Path(tmp) / f"{name}.json").write_text(json.dumps(array.tolist()))
                self.log_metrics({f"{name}_norm": float(np.linalg.norm(array))})
            if arrays:
                self.client.log_artifacts(self.run_id, tmp, "arrays")

    def log_detector(self, detector: Detector, input_example: np.ndarray) -> str:
        """Log the fitted detector as a pyfunc model; return its ``runs:/`` URI."""
        from mlflow.models import infer_signature

        example = np.asarray(input_example, dtype=np.float32)[:5].reshape(min(5, len(input_example)), -1)
        with tempfile.TemporaryDirectory() as tmp, _quiet("mlflow"):
            saved = detector.save(Path(tmp) / "detector")
            model_dir = Path(tmp) / MODEL_ARTIFACT
            mlflow.pyfunc.save_model(
                path=str(model_dir),
                python_model=DetectorModel(),
                artifacts={"detector": str(saved)},
                signature=infer_signature(example, detector.score(example)),
                input_example=example,
                pip_requirements=_pip_requirements(),
            )
            self.client.log_artifacts(self.run_id, str(model_dir), MODEL_ARTIFACT)
        return f"runs:/{self.run_id}/{MODEL_ARTIFACT}"

    def log_evaluation_plots(self, y_true: np.ndarray, scores: np.ndarray, split: str = "test") -> None:
        """A ROC curve and a histogram of the scores of normals and anomalies."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .metrics import auroc, roc

        y_true = np.asarray(y_true).astype(int)
        fpr, tpr = roc(y_true, scores)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        if len(fpr):
            ax.plot(fpr, tpr, label=f"AUROC {auroc(y_true, scores):.3f}")
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({split})")
        ax.legend(loc="lower right")
        self.client.log_figure(self.run_id, fig, f"plots/roc_{split}.png")
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(6, 4))
        scores = np.asarray(scores, dtype=np.float64)
        finite = scores[np.isfinite(scores)]
        # distances are heavy-tailed: log-spaced bins when the scores are positive and spread out
        log_x = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 100
        if log_x:
            bins = np.geomspace(finite.min(), finite.max(), 50)
            ax.set_xscale("log")
        else:
            bins = np.histogram_bin_edges(finite, bins=50) if finite.size else 10
        for label, name in ((0, "normal"), (1, "anomaly")):
            part = scores[(y_true == label) & np.isfinite(scores)]
            if part.size:
                weights = np.full(part.size, 1.0 / part.size)  # each class sums to 1, whatever its size
                ax.hist(part, bins=bins, weights=weights, alpha=0.6, label=f"{name} ({part.size})")
        ax.set(xlabel="anomaly score", ylabel="fraction of the class", title=f"scores ({split})")
        ax.legend()
        self.client.log_figure(self.run_id, fig, f"plots/scores_{split}.png")
        plt.close(fig)

    def log_image_grids(
        self, X: np.ndarray, scores: np.ndarray, y_true: np.ndarray | None = None, k: int = 32, split: str = "test"
    ) -> None:
        """Grids of the ``k`` most and ``k`` least anomalous images of ``X`` (``(n, C, H, W)``, C = 1 or 3).

        Logged as ``plots/most_anomalous_<split>.png`` and ``plots/least_anomalous_<split>.png``; each
        tile shows its score, and ground-truth anomalies (``y_true == 1``) get a red frame.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        X = np.asarray(X)
        scores = np.asarray(scores, dtype=np.float64)
        if X.ndim != 4 or X.shape[1] not in (1, 3) or len(X) != len(scores):
            return
        finite = np.flatnonzero(np.isfinite(scores))
        if finite.size == 0:
            return
        order = finite[np.argsort(scores[finite], kind="stable")]
        k = int(min(k, len(order)))
        for name, picked, title in (
            ("most", order[::-1][:k], f"{k} most anomalous {split} samples (highest scores first)"),
            ("least", order[:k], f"{k} least anomalous {split} samples (lowest scores first)"),
        ):
            labels = None if y_true is None else np.asarray(y_true)[picked]
            fig = _image_grid_figure(X[picked], scores[picked], labels, title, plt)
            self.client.log_figure(self.run_id, fig, f"plots/{name}_anomalous_{split}.png")
            plt.close(fig)


def _image_grid_figure(images: np.ndarray, scores: np.ndarray, labels: np.ndarray | None, title: str, plt: Any) -> Any:
    """One figure: the images in rows of 8 (each min-max scaled for display), scores below, anomalies framed."""
    n, c, h, w = images.shape
    cols = min(8, n)
    rows = -(-n // cols)
    pad, caption = 2, max(8, h // 3)
    cell_h, cell_w = h + 2 * pad + caption, w + 2 * pad
    canvas = np.ones((rows * cell_h, cols * cell_w, 3), dtype=np.float32)
    for i, img in enumerate(images.astype(np.float32)):
        low, high = float(img.min()), float(img.max())
        img = (img - low) / (high - low) if high > low else np.zeros_like(img)
        tile = np.repeat(img, 3, axis=0) if c == 1 else img
        r, q = divmod(i, cols)
        top, left = r * cell_h, q * cell_w
        if labels is not None and labels[i] == 1:
            canvas[top : top + h + 2 * pad, left : left + cell_w] = (0.85, 0.1, 0.1)
        canvas[top + pad : top + pad + h, left + pad : left + pad + w] = tile.transpose(1, 2, 0)
    fig, ax = plt.subplots(figsize=(1.1 * cols, 1.35 * rows + 0.4))
    ax.imshow(canvas, interpolation="nearest")
    for i, score in enumerate(scores):
        r, q = divmod(i, cols)
        x, y = q * cell_w + cell_w / 2, r * cell_h + h + 2 * pad + caption / 2
        ax.text(x, y, f"{score:.3g}", ha="center", va="center", fontsize=6)
    ax.set_axis_off()
    subtitle = "; red frame = true anomaly" if labels is not None else ""
    ax.set_title(title + subtitle, fontsize=8)
    fig.tight_layout()
    return fig


class _EpochLogger(Callback):
    def __init__(self, logger: RunLogger) -> None:
        self.logger = logger

    def on_epoch_end(self, phase: str, epoch: int, logs: Mapping[str, float]) -> None:
        metrics = {}
        for key, value in logs.items():
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                metrics[f"{phase}_{key}"] = value
        self.logger.log_metrics(metrics, step=epoch, buffered=True)

    def on_phase_end(self, phase: str) -> None:
        self.logger.flush()


@contextmanager
def _no_warning_display() -> Iterator[None]:
    """Hide warnings shown inside the block (MLflow resets warning filters, so filters cannot)."""
    shown = warnings.showwarning
    warnings.showwarning = lambda *args, **kwargs: None
    try:
        yield
    finally:
        warnings.showwarning = shown


# ``predict`` takes arrays or data frames of any width; MLflow's note that it has no type hints
# (for MLflow's own input validation) does not apply.
with _no_warning_display():

    class DetectorModel(mlflow.pyfunc.PythonModel):
        """The pyfunc flavour of a sadkit detector: ``predict`` returns one anomaly score per row.

        Rows are flattened samples; they are reshaped to the detector's input shape.
        """

        def load_context(self, context: Any) -> None:
            self.detector = load_detector(context.artifacts["detector"])

        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 (MLflow reads type hints)
            X = np.asarray(model_input, dtype=np.float32)
            X = X.reshape(len(X), *self.detector.input_shape_)
            return self.detector.score(X)


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for package in ("sadkit", "torch", "numpy", "scikit-learn", "mlflow"):
        try:
            reqs.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            reqs.append(package)
    return reqs


def load_model(model_uri: str) -> Any:
    """Load a logged detector model as an MLflow pyfunc model (``predict`` returns scores)."""
    return mlflow.pyfunc.load_model(model_uri)


def get_run(run_id: str, tracking_uri: str | None = None) -> Any:
    """The MLflow run ``run_id`` (status, params, metrics, tags)."""
    return MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri)).get_run(run_id)


# ------------------------------------------------------------------ helpers for studies (core/tuning.py)


def run_status(tracker: Tracker, run_id: str) -> str:
    """The status of a run: RUNNING, FINISHED, FAILED, KILLED or SCHEDULED."""
    return tracker.client.get_run(run_id).info.status


def set_run_tags(tracker: Tracker, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags on any run of the tracker's store (open or ended)."""
    RunLogger(tracker.client, run_id).set_tags(tags)


def end_run(tracker: Tracker, run_id: str, status: str = "FAILED", tags: Mapping[str, Any] | None = None) -> None:
    """End a run that its own process can no longer end (e.g. one whose worker was killed)."""
    if tags:
        set_run_tags(tracker, run_id, tags)
    terminate(tracker.client, run_id, RunStatus.to_string(RunStatus.from_string(status)))


# ------------------------------------------------------------------ a logged detector, back from a run


def download_detector(run_id: str, dst: str | os.PathLike, tracking_uri: str | None = None) -> Path:
    """Download the detector that run ``run_id`` logged (its MLflow model) into ``dst``; return its folder.

    The folder is what :meth:`sadkit.Detector.save` wrote, so :func:`sadkit.load_detector` reads it.

    Raises:
        SadkitError: the run does not exist in the store, or logged no detector model.
    """
    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        client.get_run(run_id)
    except MlflowException as err:
        raise SadkitError(f"no MLflow run {run_id!r} in the tracking store {uri}: {err.message}") from err
    folder = f"{MODEL_ARTIFACT}/artifacts/detector"
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=folder, tracking_uri=uri, dst_path=str(dst)
        )
    except (MlflowException, OSError) as err:
        raise SadkitError(
            f"MLflow run {run_id} in {uri} logged no detector model ({folder} is missing); rerun it with the"
            " model logged (log_model: true, i.e. without --no-model)"
        ) from err
    if not (Path(path) / "detector.json").is_file():
        raise SadkitError(f"MLflow run {run_id} in {uri} has no saved detector under {folder}")
    return Path(path)


# ------------------------------------------------------------------ active learning (core/active.py)


def log_active_curve(run: RunLogger, rounds: list[Mapping[str, Any]], title: str = "active learning") -> None:
    """Plot test AUROC and anomalies found against the number of queries (``plots/active_curve.png``)
    and log the rounds as ``active_rounds.json``. The per-round metrics (step = queries) are logged by
    the loop itself as they come."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    queried = [int(r["queried"]) for r in rounds]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(queried, [r["test_auroc"] for r in rounds], marker="o", color="tab:blue", label="test AUROC")
    ax.set(xlabel="queries", ylabel="test AUROC", title=title)
    twin = ax.twinx()
    twin.plot(queried, [r["anomalies_found"] for r in rounds], marker="s", color="tab:red", label="anomalies found")
    twin.set_ylabel("anomalies found (cumulative)")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="lower right")
    fig.tight_layout()
    run.client.log_figure(run.run_id, fig, "plots/active_curve.png")
    plt.close(fig)
    run.log_dict([dict(r) for r in rounds], "active_rounds.json")
