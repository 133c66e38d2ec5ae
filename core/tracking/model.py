"""The MLflow model flavour of a sadkit detector: the pyfunc model, saving it, loading it, downloading it.

A logged model is a pyfunc model whose one artifact, ``detector``, is the folder that
:meth:`sadkit.Detector.save` wrote; ``predict`` returns one anomaly score per row.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..detector import Detector, load_detector
from ..errors import SadkitError
from .store import resolve_tracking_uri

MODEL_ARTIFACT = "model"


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


def pip_requirements() -> list[str]:
    """The pinned requirements of a logged model: sadkit, torch, numpy, scikit-learn and mlflow as installed."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for package in ("sadkit", "torch", "numpy", "scikit-learn", "mlflow"):
        try:
            reqs.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            reqs.append(package)
    return reqs


def save_model(detector: Detector, input_example: np.ndarray, folder: Path) -> Path:
    """Save a fitted detector as a pyfunc model under ``folder``; return the model's folder.

    ``folder/detector`` receives the detector's own save, ``folder/model`` the pyfunc model holding a
    copy of it, with a signature and an input example (up to five rows of ``input_example``).
    """
    from mlflow.models import infer_signature

    example = np.asarray(input_example, dtype=np.float32)[:5].reshape(min(5, len(input_example)), -1)
    saved = detector.save(folder / "detector")
    model_dir = folder / MODEL_ARTIFACT
    mlflow.pyfunc.save_model(
        path=str(model_dir),
        python_model=DetectorModel(),
        artifacts={"detector": str(saved)},
        signature=infer_signature(example, detector.score(example)),
        input_example=example,
        pip_requirements=pip_requirements(),
    )
    return model_dir


def load_model(model_uri: str) -> Any:
    """Load a logged detector model as an MLflow pyfunc model (``predict`` returns scores)."""
    return mlflow.pyfunc.load_model(model_uri)


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
