"""A fitted detector as an MLflow model: logged as a LoggedModel from code, found again by URI.

The logged model (MLflow 3's LoggedModel, listed on the run's "Logged models") is a pyfunc model *from
code* (:mod:`sadkit.tracking.model_code`): no pickled Python object. Its one artifact, ``detector``, is the
folder :meth:`sadkit.Detector.save` wrote, preprocessing included, so the model scores raw rows and its
``predict`` returns a score and a 0/1 label per row (:class:`~sadkit.tracking.pyfunc.DetectorModel`).

Trust: loading an MLflow pyfunc model runs the code file inside it (this is how MLflow loads every
pyfunc model); load models only from stores you trust. sadkit's own readers (:func:`resolve_model`,
``sadkit score``, :func:`sadkit.load_detector`) read the ``detector`` folder only, JSON and tensors, and
never run code from it.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..detector import Detector
from ..errors import SadkitError
from .pyfunc import DETECTOR_ARTIFACT, DetectorModel
from .store import quiet, resolve_tracking_uri

MODEL_ARTIFACT = "model"
_MODEL_CODE = Path(__file__).with_name("model_code.py")


def pip_requirements() -> list[str]:
    """The pinned requirements of a logged model: sadkit and what it needs to score, as installed."""
    reqs = []
    for package in ("sadkit", "torch", "numpy", "scikit-learn", "pandas", "mlflow"):
        try:
            reqs.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            reqs.append(package)
    return reqs


def input_example(detector: Detector, rows: Any) -> Any:
    """Up to five raw rows for the model's input example: a data frame with the training columns when
    the model has them, else a float array of flattened samples; None when the dataset's preprocessor kept
    no rows (a plugin's ``Preprocessor`` built without ``examples``)."""
    import pandas as pd

    if rows is None:
        return None
    rows = rows[:5]
    names = getattr(detector, "feature_names_in_", None)
    if names is not None and not isinstance(rows, pd.DataFrame):
        return pd.DataFrame(np.asarray(rows).reshape(len(rows), -1), columns=list(names))
    if isinstance(rows, pd.DataFrame):
        return rows
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


def log_model(client: MlflowClient, run_id: str, detector: Detector, example_rows: Any) -> str:
    """Log ``detector`` as the run's LoggedModel ``model``; return its ``models:/<model_id>`` URI.

    The model takes raw rows; ``example_rows`` (raw rows the dataset read) become its input example. It
    carries no input signature on purpose: the model matches a data frame's columns by name itself
    (reordered and extra columns work, any numeric dtype works) and takes bare float arrays too, which
    MLflow's schema enforcement would refuse (``int64`` to ``double``, arrays against named columns).
    Only the client API is used (no global tracking URI, no active run).
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    run = client.get_run(run_id)
    logged = client.create_logged_model(
        experiment_id=run.info.experiment_id, name=MODEL_ARTIFACT, source_run_id=run_id, model_type="anomaly-detector"
    )
    with tempfile.TemporaryDirectory() as tmp, quiet("mlflow"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hints about the signature it infers, which is dropped below
        saved = detector.save(Path(tmp) / DETECTOR_ARTIFACT)
        model_dir = Path(tmp) / MODEL_ARTIFACT
        mlflow.pyfunc.save_model(
            path=str(model_dir),
            python_model=str(_MODEL_CODE),
            artifacts={DETECTOR_ARTIFACT: str(saved)},
            input_example=input_example(detector, example_rows),
            pip_requirements=pip_requirements(),
        )
        meta = Model.load(str(model_dir))
        meta.signature = None  # inferred from the example by MLflow; see the docstring for why it goes
        meta.run_id, meta.model_id = run_id, logged.model_id
        meta.save(str(model_dir / "MLmodel"))
        client.log_model_artifacts(logged.model_id, str(model_dir))
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return f"models:/{logged.model_id}"


def load_model(model_uri: str, tracking_uri: str | None = None) -> Any:
    """Load a logged detector model (``runs:/``, ``models:/`` or a folder) as an MLflow pyfunc model.

    This runs the model's code file, as MLflow does for every pyfunc model: see the trust note above.
    """
    if "://" in model_uri or model_uri.startswith(("runs:/", "models:/")):
        client = MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
        model_uri = _logged_model_location(client, model_uri)
    return mlflow.pyfunc.load_model(model_uri)


def _logged_model_location(client: MlflowClient, model_uri: str) -> str:
    """The artifact location of the LoggedModel a ``runs:/`` or ``models:/`` URI names."""
    if model_uri.startswith("runs:/"):
        run_id, _, name = model_uri.removeprefix("runs:/").partition("/")
        name = name.strip("/") or MODEL_ARTIFACT
        try:
            run = client.get_run(run_id)
        except MlflowException as err:
            raise SadkitError(f"no MLflow run {run_id!r} in the tracking store {client.tracking_uri}") from err
        for output in run.outputs.model_outputs if run.outputs else []:
            model = client.get_logged_model(output.model_id)
            if model.name == name:
                return model.artifact_location
        legacy = f"{run.info.artifact_uri}/{name}"  # a model logged by an older sadkit, under the run
        return legacy
    if model_uri.startswith("models:/"):
        ref = model_uri.removeprefix("models:/").strip("/")
        try:
            if ref.startswith("m-"):
                return client.get_logged_model(ref).artifact_location
            name, _, which = ref.partition("/")
            version = (
                client.get_model_version_by_alias(name, which.lstrip("@"))
                if which.startswith("@")
                else (client.get_model_version(name, which))
            )
            return version.source
        except MlflowException as err:
            raise SadkitError(
                f"no model {model_uri} in the tracking store {client.tracking_uri}: {err.message}"
            ) from err
    raise SadkitError(f"{model_uri} is not a model URI; use runs:/RUN_ID/model, models:/MODEL_ID or a folder")


def download_model_detector(model_uri: str, dst: str | os.PathLike, tracking_uri: str | None = None) -> Path:
    """Download the ``detector`` folder of a logged model into ``dst``; return its path (read it with
    :func:`sadkit.load_detector`: JSON and tensors only)."""
    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    location = _logged_model_location(client, model_uri)
    try:
        with quiet("mlflow"):
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{location.rstrip('/')}/artifacts/{DETECTOR_ARTIFACT}", dst_path=str(dst)
            )
    except (MlflowException, OSError) as err:
        raise SadkitError(f"{model_uri} in {uri} holds no sadkit detector ({type(err).__name__}: {err})") from err
    if not (Path(path) / "detector.json").is_file():
        raise SadkitError(f"{model_uri} in {uri} holds no saved detector")
    return Path(path)


def download_detector(run_id: str, dst: str | os.PathLike, tracking_uri: str | None = None) -> Path:
    """Download the detector that run ``run_id`` logged (its model) into ``dst``; return its folder.

    Raises:
        SadkitError: the run does not exist in the store, or logged no detector model.
    """
    try:
        return download_model_detector(f"runs:/{run_id}/{MODEL_ARTIFACT}", dst, tracking_uri)
    except SadkitError as err:
        if "no MLflow run" in str(err):
            raise
        raise SadkitError(
            f"MLflow run {run_id} in {resolve_tracking_uri(tracking_uri)} logged no detector model; rerun it with"
            " the model logged (log_model: true, i.e. without --no-model)"
        ) from err


__all__ = [
    "MODEL_ARTIFACT",
    "DetectorModel",
    "download_detector",
    "download_model_detector",
    "input_example",
    "load_model",
    "log_model",
    "pip_requirements",
]
