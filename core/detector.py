"""The Detector contract, after scikit-learn's estimators.

``__init__`` only stores its keyword arguments; learned state ends in ``_``; ``fit`` returns ``self``;
``score`` returns one float per sample, higher meaning more anomalous. ``get_params``/``set_params``
and :func:`sklearn.base.clone` work, so a study can rebuild any detector from a dict. ``save`` writes
the parameters as JSON and the learned state with ``torch.save`` (tensors, numbers, strings, lists
and dicts only), and ``load`` reads it back with ``weights_only=True``: no object is ever pickled.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .callbacks import Callback
from .data import check_features, check_semi_labels
from .errors import InvalidInputError, NotFittedError, SadkitError, SignalNotAvailableError
from .serialize import to_json, to_saveable

PARAMS_FILE = "detector.json"
STATE_FILE = "state.pt"
FORMAT_VERSION = 1


class Detector(BaseEstimator, ABC):
    """Base class of every anomaly detector.

    Subclasses implement ``_fit``, ``_score``, ``_get_state`` and ``_set_state``, and may check their
    parameters in ``_validate_params`` (called by :meth:`fit` before ``_fit``); the base class validates
    the input, keeps the input shape, times the fit and handles saving and loading.

    Attributes:
        input_shape_: the shape of one training sample (set by :meth:`fit`).
        timings_: seconds per phase of the last fit, e.g. ``{"pretrain": 1.2, "train": 8.5}``. A detector
            that times its own phases sets it in ``_fit`` (and keeps it in its state); for one that does
            not, :meth:`fit` sets ``{"train": <seconds of _fit>}`` (a loaded detector that did not save
            it has ``{}``).
    """

    #: parameters that make ``fit`` quick on small data (used by the conformance checks and demos)
    fast_params: ClassVar[dict[str, Any]] = {}
    #: whether the detector learns from ``semi_y`` (labels are ignored otherwise)
    uses_labels: ClassVar[bool] = True
    #: whether ``fit`` needs labeled samples; without them it raises :class:`InvalidInputError` saying why
    requires_labels: ClassVar[bool] = False

    # ----------------------------------------------------------------------------- public API
    def fit(
        self,
        X: Any,
        semi_y: Any = None,
        *,
        eval_set: tuple[Any, Any] | None = None,
        callbacks: Iterable[Callback] = (),
    ) -> Detector:
        """Fit on features ``X`` with semi-supervised labels ``semi_y`` (+1, 0, -1; None = unlabeled).

        Args:
            eval_set: optional ``(X_val, y_val)`` with ground-truth labels; deep detectors report
                its AUROC per epoch as ``val_auroc`` to the callbacks (for pruning and curves).
            callbacks: receive per-epoch progress.
        """
        X = check_features(X, min_samples=2)
        semi = check_semi_labels(semi_y, len(X))
        if eval_set is not None:
            X_val, y_val = eval_set
            eval_set = (self._check_shape(check_features(X_val, name="X_val"), X.shape[1:]), np.asarray(y_val))
        self._validate_params()
        vars(self).pop("timings_", None)  # a detector that times its phases sets it again in _fit
        started = time.perf_counter()
        self._fit(X, semi, eval_set=eval_set, callbacks=list(callbacks))
        vars(self).setdefault("timings_", {"train": time.perf_counter() - started})
        self.input_shape_ = tuple(int(d) for d in X.shape[1:])
        return self

    def score(self, X: Any) -> np.ndarray:
        """Anomaly scores, one float per sample of ``X``; higher means more anomalous."""
        self._check_fitted()
        X = self._check_shape(check_features(X), self.input_shape_)
        scores = np.asarray(self._score(X), dtype=np.float64).reshape(-1)
        if scores.shape != (len(X),):
            raise SadkitError(f"{type(self).__name__}._score returned {scores.shape[0]} scores for {len(X)} samples")
        return scores

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """The detector's own Optuna search space: suggest values on ``trial``, return them."""
        return {}

    def tracked_arrays(self) -> dict[str, np.ndarray]:
        """Learned arrays worth keeping with a run (e.g. the hypersphere center ``c``)."""
        return {}

    def selected_params(self) -> dict[str, Any]:
        """Hyperparameters the detector chose itself while fitting (e.g. on the validation split).

        An experiment logs them as ``selected.<name>`` parameters and returns them in its results.
        """
        return {}

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "input_shape_")

    # ----------------------------------------------------------------------------- per-sample signal
    def signal(self, X: Any) -> np.ndarray:
        """Per-sample signal vectors ``(n, d)`` behind the scores, for layers stacked on the detector.

        An active-learning layer (``sadkit active``) learns on these features and the score. A detector
        offers them by implementing ``_signal`` (e.g. per-feature reconstruction errors); one that has a
        scikit-learn style ``transform(X)`` (a learned representation) offers that by default.

        Raises:
            SignalNotAvailableError: the detector has neither (see :meth:`has_signal`).
        """
        if not type(self).has_signal():
            raise SignalNotAvailableError(
                f"detector {type(self).__name__} has no per-sample signal to stack a layer on: it implements"
                " neither _signal(X) nor transform(X); use a deep detector that does (e.g. esad, deepsad)"
            )
        self._check_fitted()
        X = self._check_shape(check_features(X), self.input_shape_)
        features = np.asarray(self._signal(X), dtype=np.float64)
        features = features.reshape(len(X), -1)
        if not np.isfinite(features).all():
            raise SadkitError(f"{type(self).__name__}.signal returned NaN or infinite values")
        return features

    @classmethod
    def has_signal(cls) -> bool:
        """Whether :meth:`signal` is available (checked before anything is fitted)."""
        return cls._signal is not Detector._signal or callable(getattr(cls, "transform", None))

    def _signal(self, X: np.ndarray) -> np.ndarray:
        """Signal of validated ``X``; the default is ``transform(X)`` when the detector has one."""
        return self.transform(X)  # type: ignore[attr-defined]  # has_signal() checked it exists

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the detector to the folder ``path``: parameters as JSON, state as tensors."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cls = type(self)
        meta = {
            "format": FORMAT_VERSION,
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "params": to_json(self.get_params(deep=False)),
            "input_shape": list(self.input_shape_),
        }
        (path / PARAMS_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        torch.save(to_saveable(self._get_state()), path / STATE_FILE)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Detector:
        """Read a detector written by :meth:`save` (``weights_only=True``: no code is unpickled)."""
        path = Path(path)
        try:
            meta = json.loads((path / PARAMS_FILE).read_text())
        except FileNotFoundError as err:
            raise SadkitError(f"{path} holds no saved detector ({PARAMS_FILE} is missing)") from err
        target = _resolve_class(meta["class"])
        if not issubclass(target, cls):
            raise SadkitError(f"{path} holds a {target.__name__}, not a {cls.__name__}")
        detector = target(**meta["params"])
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
        detector.input_shape_ = tuple(meta["input_shape"])
        detector._set_state(state)
        vars(detector).setdefault("timings_", {})
        return detector

    # ----------------------------------------------------------------------------- for subclasses
    def _validate_params(self) -> None:
        """Check the constructor parameters; raise :class:`InvalidInputError` naming a bad one.

        :meth:`fit` calls it after validating the input and before ``_fit``, so a bad value fails before
        any work is done. The default accepts everything; :meth:`_reject_invalid` words the error.
        """

    def _reject_invalid(self, checks: Mapping[str, bool], rule: str) -> None:
        """Raise ``InvalidInputError("<Class>: invalid name=value, ... (rule)")`` naming every failed check.

        Args:
            checks: parameter name -> whether its value is valid.
            rule: what valid values are, for the message (e.g. ``"lr > 0, epochs >= 0"``).
        """
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise InvalidInputError(f"{type(self).__name__}: invalid {values} ({rule})")

    @abstractmethod
    def _fit(self, X: np.ndarray, semi_y: np.ndarray, *, eval_set, callbacks: list[Callback]) -> None:
        """Learn from validated float32 ``X`` and int64 ``semi_y``."""

    @abstractmethod
    def _score(self, X: np.ndarray) -> np.ndarray:
        """Scores of validated float32 ``X``."""

    @abstractmethod
    def _get_state(self) -> dict[str, Any]:
        """The learned state: tensors, numpy arrays, numbers, strings, lists and dicts."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_get_state` returned (tensors arrive on the CPU; ``input_shape_`` is set)."""

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")

    @staticmethod
    def _check_shape(X: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
        if tuple(X.shape[1:]) != tuple(expected):
            raise InvalidInputError(
                f"X has samples of shape {tuple(X.shape[1:])} but the detector expects {tuple(expected)}"
            )
        return X


#: classes saved (format 1) under a module they have since left: old ``module:qualname`` -> new
_MOVED_CLASSES = {
    "sadkit.plugins.shallow:OCSVM": "sadkit.plugins.shallow.ocsvm:OCSVM",
    "sadkit.plugins.shallow:IsolationForest": "sadkit.plugins.shallow.iforest:IsolationForest",
    "sadkit.plugins.shallow:KDE": "sadkit.plugins.shallow.kde:KDE",
    "sadkit.plugins.ssad:SSAD": "sadkit.plugins.shallow.ssad:SSAD",
    "sadkit.plugins.supervised:Supervised": "sadkit.plugins.shallow.supervised:Supervised",
}


def _resolve_class(spec: str) -> type:
    spec = _MOVED_CLASSES.get(spec, spec)
    module_name, _, qualname = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise SadkitError(f"the saved detector needs {spec}, which cannot be imported: {err}") from err
    if not (isinstance(obj, type) and issubclass(obj, Detector)):
        raise SadkitError(f"{spec} is not a sadkit Detector")
    return obj


def load_detector(path: str | os.PathLike) -> Detector:
    """Load any detector saved with :meth:`Detector.save`."""
    return Detector.load(path)
