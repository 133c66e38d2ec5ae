"""The Detector contract: scikit-learn's estimators, PyOD's vocabulary.

``__init__`` only stores its keyword arguments; learned state ends in ``_``; ``fit(X, y=None)`` returns
``self``. Labels follow the users' convention: 1 anomaly, 0 normal, -1 (or NaN) unlabeled; the paper's
+1/-1/0 codes only as ``semi_y=``. ``decision_function(X)`` gives one float per sample, higher = more
anomalous; ``score_samples(X)`` its negative (scikit-learn's "lower is more abnormal"); ``predict(X)``
0/1 labels with ``threshold_`` (see :mod:`sadkit.thresholds`); ``predict_proba(X)``; ``score(X, y)`` the
AUROC, so ``cross_val_score`` and ``GridSearchCV`` work. ``get_params``/``set_params`` and
:func:`sklearn.base.clone` work. Saving and loading: :mod:`sadkit.persistence` (JSON and tensors; no
object is pickled and no code is run from the files).
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import ClassifierTags

from . import persistence, thresholds
from .callbacks import Callback
from .data import ANOMALY, NORMAL, check_features, check_labels, read_labels
from .errors import InvalidInputError, InvalidTypeError, NotFittedError, SadkitError, SignalNotAvailableError

if TYPE_CHECKING:
    from .preprocessing import Preprocessor

class Detector(OutlierMixin, BaseEstimator, ABC):
    """Base class of every anomaly detector.

    Subclasses implement ``_fit``, ``_score``, ``_get_state`` and ``_set_state``, and may check their
    parameters in ``_validate_params`` (called by :meth:`fit` before ``_fit``); the base class validates
    the input, reads the labels, times the fit, chooses the threshold and handles saving and loading.
    A detector may declare the constructor parameters ``contamination`` (default 0.1) and ``threshold``
    (default None); the base class reads them (see :mod:`sadkit.thresholds`).

    Attributes:
        n_features_in_: number of features seen in ``fit`` (of raw rows, once a preprocessor is attached).
        feature_names_in_: column names of a data frame seen in ``fit`` (or of the preprocessor's raw rows).
        input_shape_: the shape of one training sample as the detector sees it.
        threshold_: samples scoring above it are predicted anomalies (``predict`` gives 1).
        decision_scores_: the training samples' scores (after ``fit``; not kept by ``save``).
        labels_: ``decision_scores_ > threshold_`` as 0/1 (after ``fit``; not kept by ``save``).
        timings_: seconds per phase of the last fit, e.g. ``{"pretrain": 1.2, "train": 8.5}``. A detector
            that times its own phases sets it in ``_fit`` (and keeps it in its state); for one that does
            not, :meth:`fit` sets ``{"train": <seconds of _fit>}`` (a loaded detector that did not save
            it has ``{}``).
        preprocessor_: the fitted preprocessing that maps raw rows to what the detector was trained on
            (None: inputs are used as they are); see :meth:`set_preprocessor`.
    """

    #: parameters that make ``fit`` quick on small data (used by the conformance checks and demos)
    fast_params: ClassVar[dict[str, Any]] = {}
    #: whether the detector learns from labels (they are ignored otherwise)
    uses_labels: ClassVar[bool] = True
    #: whether ``fit`` needs labeled samples; without them it raises :class:`InvalidInputError` saying why
    requires_labels: ClassVar[bool] = False
    #: the fraction of training samples flagged when a detector declares no ``contamination`` parameter
    DEFAULT_CONTAMINATION: ClassVar[float] = 0.1

    preprocessor_: Preprocessor | None = None

    def __sklearn_tags__(self):  # noqa: ANN204 - scikit-learn's Tags
        tags = super().__sklearn_tags__()
        tags.estimator_type = "outlier_detector"
        tags.target_tags.required = False
        # y holds two classes (1 anomaly, 0 normal; -1 unlabeled), never more: scikit-learn's common checks
        # then draw binary labels instead of the multi-class ones they give other estimators
        tags.classifier_tags = ClassifierTags(multi_class=False)
        tags.input_tags.three_d_array = True
        return tags

    # ----------------------------------------------------------------------------- fitting
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        semi_y: Any = None,
        eval_set: tuple[Any, Any] | None = None,
        callbacks: Iterable[Callback] = (),
    ) -> Detector:
        """Fit on ``X`` with labels ``y``: 1 anomaly, 0 normal, -1 or NaN unlabeled; None = all unlabeled.

        This is PyOD's and scikit-learn's convention: ``fit(X, y)`` with ``y = 1`` for anomalies uses them
        as labeled anomalies. Code ported from the Deep SAD reference passes its +1 (normal) / -1
        (anomaly) / 0 (unlabeled) labels by name instead, as ``semi_y``.

        Args:
            eval_set: optional ``(X_val, y_val)`` with ground truth (1 anomaly, 0 normal); deep detectors
                report its AUROC per epoch as ``val_auroc`` to the callbacks, and ``threshold="fpr:A"``
                uses its normals.
            callbacks: receive per-epoch progress.
        """
        X, labels, eval_set, rule = self._begin_fit(X, y, semi_y, eval_set)
        started = time.perf_counter()
        self._fit(X, labels, eval_set=eval_set, callbacks=list(callbacks))
        vars(self).setdefault("timings_", {"train": time.perf_counter() - started})
        self._end_fit(X, eval_set, rule)
        return self

    def _begin_fit(
        self, X: Any, y: Any, semi_y: Any, eval_set: tuple[Any, Any] | None
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None, thresholds.ThresholdRule]:
        """What :meth:`fit` does before ``_fit``: the inputs validated, the labels read, the parameters checked."""
        X = self._validate_input(X, reset=True, min_samples=2)
        labels = read_labels(y, semi_y, len(X))
        if eval_set is not None:
            X_val, y_val = eval_set
            X_val = self._check_shape(check_features(X_val, name="X_val"), X.shape[1:])
            eval_set = (X_val, np.asarray(y_val))
        rule = self.check_params()
        vars(self).pop("timings_", None)  # a detector that times its phases sets it again in _fit
        self.preprocessor_ = None
        return X, labels, eval_set, rule

    def _end_fit(self, X: np.ndarray, eval_set: tuple[np.ndarray, np.ndarray] | None, rule: Any) -> None:
        """What :meth:`fit` does after ``_fit``: the training scores, the threshold and the decisions."""
        self.input_shape_ = tuple(int(d) for d in X.shape[1:])
        self.decision_scores_ = self._scores_of(X)
        val_normals = None
        if eval_set is not None and len(eval_set[0]):
            normal = eval_set[1] == NORMAL
            val_normals = self._scores_of(eval_set[0][normal]) if normal.any() else None
        self.threshold_ = thresholds.choose_threshold(rule, self.decision_scores_, val_normals)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        self._train_range = (float(self.decision_scores_.min()), float(self.decision_scores_.max()))
        self._quantiles = thresholds.score_quantiles(self.decision_scores_)

    #: whether the detector can train several copies of itself as one grouped network (see :mod:`sadkit.stacking`)
    can_stack = False

    def _stack_key(self, X: np.ndarray) -> Any:
        """Detectors with equal keys (not None) and training sets of one size train stacked; None: alone."""

    @classmethod
    def _fit_stack(cls, detectors: list[Detector], Xs: list, labels: list, eval_sets: list, callbacks: list) -> list:
        """``_fit`` of every detector at once (one :meth:`_stack_key`); per detector, what stopped it or None."""
        raise NotImplementedError(f"{cls.__name__} does not train stacked")

    def check_params(self) -> thresholds.ThresholdRule:
        """Check every parameter before any work: its annotated type, the threshold rule, and the
        detector's own ``_validate_params``. Returns the threshold rule.

        Raises:
            InvalidInputError: a one-line message naming the bad parameter (``fit`` calls this first; the
                experiment calls it before a run opens, so a typo leaves no run behind).
        """
        from .params import check_annotated_types

        check_annotated_types(self)
        rule = thresholds.parse_threshold(self._param("threshold", None), self._param("contamination"))
        try:
            self._validate_params()
        except (TypeError, ValueError) as err:
            if isinstance(err, SadkitError):
                raise
            raise InvalidInputError(f"{type(self).__name__}: invalid parameters ({err})") from err
        return rule

    def ignored_params(self) -> list[str]:
        """Parameters that have no effect with the others as they are (e.g. ``device`` of a detector on raw
        features); the experiment says so when the user set one. The default: none."""
        return []

    def _param(self, name: str, default: Any = DEFAULT_CONTAMINATION) -> Any:
        """A base-class parameter the detector may declare (``contamination``, ``threshold``)."""
        return self.get_params(deep=False).get(name, default)

    # ----------------------------------------------------------------------------- scores and decisions
    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores, one float per sample; higher means more anomalous (PyOD's convention)."""
        self._check_fitted()
        return self._scores_of(self._model_input(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """The negative of :meth:`decision_function`: lower means more abnormal (scikit-learn's convention)."""
        return -self.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """1 for samples scoring above ``threshold_`` (anomalies), 0 otherwise (PyOD's labels)."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[P(normal), P(anomaly)]`` per sample: the score scaled by the training scores' range (PyOD's
        ``method="linear"``), clipped to [0, 1]."""
        return thresholds.linear_proba(self.decision_function(X), *self._train_range)

    def score(self, X: Any, y: Any) -> float:
        """AUROC of the scores against ground truth ``y`` (1 anomaly, 0 normal; -1 rows are left out).

        One number, so ``cross_val_score`` and ``GridSearchCV`` use it as their default score.
        """
        from .metrics import auroc

        scores = self.decision_function(X)
        truth = check_labels(y, len(scores))
        known = truth != -1
        return auroc(truth[known] == ANOMALY, scores[known])

    def set_preprocessor(self, preprocessor: Preprocessor | None) -> Detector:
        """Attach fitted preprocessing: from now on the detector takes raw rows, as its dataset read them.

        The experiment attaches the dataset's preprocessor (the ODDS scalers, a table's encoders) after the
        fit, so the saved and served model is complete: ``decision_function`` on raw rows gives the scores
        the run reported.
        """
        self._check_fitted()
        self.preprocessor_ = preprocessor
        if preprocessor is not None:
            self.n_features_in_ = preprocessor.n_features_in_
            if preprocessor.feature_names_in_ is not None:
                self.feature_names_in_ = np.asarray(preprocessor.feature_names_in_, dtype=object)
            else:
                vars(self).pop("feature_names_in_", None)
        return self

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
        learned representation ``embed(X)`` offers that by default.

        Raises:
            SignalNotAvailableError: the detector has neither (see :meth:`has_signal`).
        """
        if not type(self).has_signal():
            raise SignalNotAvailableError(
                f"detector {type(self).__name__} has no per-sample signal to stack a layer on: it implements"
                " neither _signal(X) nor embed(X); use a deep detector that does (e.g. esad, deepsad)"
            )
        self._check_fitted()
        X = self._model_input(X)
        features = np.asarray(self._signal(X), dtype=np.float64)
        features = features.reshape(len(X), -1)
        if not np.isfinite(features).all():
            raise SadkitError(f"{type(self).__name__}.signal returned NaN or infinite values")
        return features

    @classmethod
    def has_signal(cls) -> bool:
        """Whether :meth:`signal` is available (checked before anything is fitted)."""
        return cls._signal is not Detector._signal or callable(getattr(cls, "embed", None))

    def _signal(self, X: np.ndarray) -> np.ndarray:
        """Signal of validated ``X``; the default is ``embed(X)`` when the detector has one."""
        return self.embed(X)  # type: ignore[attr-defined]  # has_signal() checked it exists

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted detector to the folder ``path`` (see :mod:`sadkit.persistence`)."""
        self._check_fitted()
        return persistence.save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Detector:
        """Read a detector written by :meth:`save`; it must be a ``cls`` (no code is run from the files)."""
        return persistence.load(path, expected=cls)

    def _decision_state(self) -> dict[str, Any]:
        return {
            "threshold": float(self.threshold_),
            "train_range": list(self._train_range),
            "quantiles": np.asarray(self._quantiles).tolist(),
        }

    def _set_decision_state(self, state: Mapping[str, Any] | None, meta: Mapping[str, Any]) -> None:
        """Restore ``threshold_`` and the score quantiles (format 1 had none: contamination on nothing)."""
        self.n_features_in_ = int(meta.get("n_features_in") or int(np.prod(self.input_shape_)) or 1)
        names = meta.get("feature_names_in")
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        if state is None:  # format 1: no decision was saved
            self.threshold_, self._train_range, self._quantiles = float("inf"), (0.0, 0.0), np.zeros(1)
            return
        self.threshold_ = float(state["threshold"])
        self._train_range = tuple(float(v) for v in state["train_range"])
        self._quantiles = np.asarray(state["quantiles"], dtype=np.float64)

    def threshold_for(self, contamination: float) -> float:
        """The threshold that would flag ``contamination`` of the training samples (from the kept quantiles)."""
        self._check_fitted()
        rule = thresholds.parse_threshold(None, contamination)
        return thresholds.threshold_from_quantiles(self._quantiles, rule.amount)

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
    def _fit(self, X: np.ndarray, y: np.ndarray, *, eval_set, callbacks: list[Callback]) -> None:
        """Learn from validated float32 ``X`` and int64 labels ``y``: 1 anomaly, 0 normal, -1 unlabeled.

        (A detector written for the paper's codes converts them with ``sadkit.data.to_semi_y(y)``.)
        """

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

    def _validate_input(self, X: Any, *, reset: bool, min_samples: int = 1) -> np.ndarray:
        """float32 samples, with ``n_features_in_``/``feature_names_in_`` set (``reset``) or checked, as
        scikit-learn's ``validate_data`` does it (its messages are the ones its users and checks know)."""
        from sklearn.utils.validation import validate_data

        try:
            return validate_data(self, X, reset=reset, dtype=np.float32, allow_nd=True, ensure_min_samples=min_samples)
        except (TypeError, ValueError) as err:
            if isinstance(err, SadkitError):
                raise
            raise (InvalidTypeError if isinstance(err, TypeError) else InvalidInputError)(str(err)) from err

    def _model_input(self, X: Any) -> np.ndarray:
        """What the fitted model takes: raw rows through the preprocessor, or validated samples."""
        if self.preprocessor_ is not None:
            X = check_features(self.preprocessor_.transform(X))
        else:
            X = self._validate_input(X, reset=False)
        return self._check_shape(X, self.input_shape_)

    def _scores_of(self, X: np.ndarray) -> np.ndarray:
        """``_score`` of validated model input, as float64, checked for length."""
        scores = np.asarray(self._score(X), dtype=np.float64).reshape(-1)
        if scores.shape != (len(X),):
            raise SadkitError(f"{type(self).__name__}._score returned {scores.shape[0]} scores for {len(X)} samples")
        return scores

    @staticmethod
    def _check_shape(X: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
        if tuple(X.shape[1:]) != tuple(expected):
            raise InvalidInputError(
                f"X has samples of shape {tuple(X.shape[1:])} but the detector expects {tuple(expected)}"
            )
        return X


def load_detector(path: str | os.PathLike) -> Detector:
    """Load any registered detector saved with :meth:`Detector.save` (no code is run from the files)."""
    return persistence.load(path)
