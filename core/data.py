"""Splits, labels and the Dataset contract.

Labels follow the users' convention (1 anomaly, 0 normal, -1 unlabeled); the paper's code convention
(+1 labeled normal, -1 labeled anomaly, 0 unlabeled) is accepted only where asked for by name (``semi_y``).
The paper's sampling protocol itself lives in :mod:`sadkit.sampling` and is applied by
:meth:`Dataset.semi_supervised_splits`.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .errors import InvalidInputError

if TYPE_CHECKING:
    from .preprocessing import Preprocessor

#: labels, the users' convention (scikit-learn's and PyOD's): 1 anomaly, 0 normal, and for the
#: semi-supervised labels -1 unlabeled (``sklearn.semi_supervised``'s marker; NaN is read as -1 too)
ANOMALY = 1
NORMAL = 0
UNLABELED = -1

# the paper's codes and protocol live in sampling.py; re-exported here, where datasets look for them
from .sampling import (  # noqa: E402
    LABELED_ANOMALY,
    LABELED_NORMAL,
    SEMI_UNLABELED,
    SemiSupervisedSample,
    check_ratio,
    resolve_known_outlier_classes,
    sample_counts,
    semi_supervised_sample,
    stratified_holdout,
)

__all__ = [
    "ANOMALY",
    "LABELED_ANOMALY",
    "LABELED_NORMAL",
    "NORMAL",
    "SEMI_UNLABELED",
    "UNLABELED",
    "Dataset",
    "SemiSupervisedSample",
    "Split",
    "check_features",
    "check_labels",
    "check_ratio",
    "check_semi_labels",
    "default_data_root",
    "from_semi_y",
    "resolve_known_outlier_classes",
    "sample_counts",
    "semi_supervised_sample",
    "stratified_holdout",
    "to_semi_y",
]


def to_semi_y(labels: Any) -> np.ndarray:
    """Labels (1 anomaly, 0 normal, -1 unlabeled) -> the paper's ``semi_y`` (+1 normal, -1 anomaly, 0)."""
    labels = np.asarray(labels)
    semi = np.zeros(labels.shape, dtype=np.int64)
    semi[labels == NORMAL] = LABELED_NORMAL
    semi[labels == ANOMALY] = LABELED_ANOMALY
    return semi


def from_semi_y(semi_y: Any) -> np.ndarray:
    """The paper's ``semi_y`` (+1 normal, -1 anomaly, 0 unlabeled) -> labels (1 anomaly, 0 normal, -1)."""
    semi_y = np.asarray(semi_y)
    labels = np.full(semi_y.shape, UNLABELED, dtype=np.int64)
    labels[semi_y == LABELED_NORMAL] = NORMAL
    labels[semi_y == LABELED_ANOMALY] = ANOMALY
    return labels


class Split:
    """One split of a dataset.

    Args:
        X: features, ``(n, ...)`` (after the dataset's preprocessing: what a detector is fitted on).
        y: ground truth, 1 anomaly and 0 normal (-1 where unknown, e.g. unlabeled rows of your own
            table); used only to evaluate.
        labels: what a detector may learn from: 1 labeled anomaly, 0 labeled normal, -1 unlabeled.
        semi_y: the same in the paper's code convention (+1 labeled normal, -1 labeled anomaly, 0
            unlabeled), for code ported from the reference; give ``labels`` or ``semi_y``, not both.
            Neither: every sample is unlabeled.
        ids: one id per sample (row ids of a table, positions in the source); default ``0..n-1``.

    ``labels``, ``semi_y`` and ``ids`` are keyword-only, so a positional third argument written for
    the paper's convention cannot be read as the users' convention by mistake.
    """

    __slots__ = ("X", "y", "labels", "ids")

    def __init__(self, X: Any, y: Any, *, labels: Any = None, semi_y: Any = None, ids: Any = None) -> None:
        n = len(X)
        if labels is not None and semi_y is not None:
            raise InvalidInputError("give a Split labels (1/0/-1) or semi_y (the paper's +1/-1/0), not both")
        if semi_y is not None:
            labels = from_semi_y(check_semi_labels(semi_y, len(semi_y)))
        elif labels is None:
            labels = np.full(n, UNLABELED, dtype=np.int64)
        if len(y) != n or len(labels) != n:
            raise InvalidInputError(f"Split arrays disagree in length: X {n}, y {len(y)}, labels {len(labels)}")
        ids = np.arange(n) if ids is None else np.asarray(ids)
        if len(ids) != n:
            raise InvalidInputError(f"Split arrays disagree in length: X {n}, ids {len(ids)}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "labels", check_labels(labels, n, name="labels"))
        object.__setattr__(self, "ids", ids)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Split is read-only; build a new one")

    @property
    def semi_y(self) -> np.ndarray:
        """The labels in the paper's convention (+1 labeled normal, -1 labeled anomaly, 0 unlabeled)."""
        return to_semi_y(self.labels)

    def __len__(self) -> int:
        return len(self.X)

    def __repr__(self) -> str:
        return f"Split(n={len(self)}, {self.summary()})"

    def summary(self) -> dict[str, int]:
        """Counts of the sample kinds (for logs and reports)."""
        y = np.asarray(self.y)
        return {
            "n": int(len(y)),
            "n_anomalies": int((y == ANOMALY).sum()),
            "n_labeled_normal": int((self.labels == NORMAL).sum()),
            "n_labeled_anomalies": int((self.labels == ANOMALY).sum()),
        }


def _real(values: Any, dtype: Any, name: str) -> np.ndarray:
    """``np.asarray(values, dtype)``, refusing complex values as scikit-learn does (numpy would drop the
    imaginary part with a warning)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            return np.asarray(values, dtype=dtype)
    except np.exceptions.ComplexWarning as err:
        raise InvalidInputError(f"{name} must hold real numbers, got complex values") from err


def check_features(X: Any, *, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """Return ``X`` as a float32 numpy array of at least 2 dimensions, or raise a clear error."""
    try:
        arr = _real(X, np.float32, name)
    except (TypeError, ValueError) as err:
        if isinstance(err, InvalidInputError):
            raise
        raise InvalidInputError(f"{name} must be numeric: {err}") from err
    if arr.ndim < 2:
        raise InvalidInputError(
            f"{name} must have shape (n_samples, n_features, ...), got shape {arr.shape};"
            " reshape a single feature with X.reshape(-1, 1) or a single sample with X.reshape(1, -1)"
        )
    if len(arr) < min_samples:
        raise InvalidInputError(f"{name} needs at least {min_samples} samples, got {len(arr)}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
        raise InvalidInputError(f"{name} contains NaN or infinite values in {bad} sample(s); impute or drop them first")
    return arr


def check_semi_labels(semi_y: Any, n: int) -> np.ndarray:
    """The paper's semi-supervised labels as int64 (+1 normal, -1 anomaly, 0 unlabeled; zeros when None)."""
    if semi_y is None:
        return np.zeros(n, dtype=np.int64)
    arr = np.asarray(semi_y)
    if arr.shape != (n,):
        raise InvalidInputError(f"semi_y must have shape ({n},), got {arr.shape}")
    if not np.isin(arr, (LABELED_NORMAL, SEMI_UNLABELED, LABELED_ANOMALY)).all():
        raise InvalidInputError(
            "semi_y (the paper's convention) may only hold +1 (labeled normal), 0 (unlabeled) and -1 (labeled"
            " anomaly); for 1 = anomaly, 0 = normal, -1 = unlabeled pass the labels as y"
        )
    return arr.astype(np.int64)


def check_labels(y: Any, n: int, *, name: str = "y") -> np.ndarray:
    """Labels in the users' convention as int64: 1 anomaly, 0 normal, -1 (or NaN, None) unlabeled.

    ``None`` means every sample is unlabeled. Booleans are read as anomaly = True. A column vector
    ``(n, 1)`` is flattened with scikit-learn's ``DataConversionWarning``, as scikit-learn does.

    Raises:
        InvalidInputError: a wrong length or shape, or a value other than 1, 0, -1 and NaN.
    """
    if y is None:
        return np.full(n, UNLABELED, dtype=np.int64)
    arr = np.asarray(getattr(y, "to_numpy", lambda: y)())
    if arr.ndim == 2 and arr.shape[1] == 1:
        from sklearn.exceptions import DataConversionWarning

        warnings.warn(
            f"a column-vector {name} was passed when a 1d array was expected; it is flattened",
            DataConversionWarning,
            stacklevel=3,
        )
        arr = arr.ravel()
    if arr.ndim != 1 or len(arr) != n:
        raise InvalidInputError(f"{name} must hold one label per sample, shape ({n},); got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    try:
        values = _real(arr, np.float64, name)
    except (TypeError, ValueError) as err:
        if isinstance(err, InvalidInputError):
            raise
        raise InvalidInputError(
            f"{name} must hold 1 (anomaly), 0 (normal) and -1 or NaN (unlabeled); got values such as"
            f" {np.unique(arr.astype(str))[:5].tolist()}"
        ) from err
    values = np.where(np.isnan(values), UNLABELED, values)
    bad = ~np.isin(values, (ANOMALY, NORMAL, UNLABELED))
    if bad.any():
        raise InvalidInputError(
            f"{name} must hold 1 (anomaly), 0 (normal) and -1 or NaN (unlabeled); found"
            f" {np.unique(values[bad])[:5].tolist()}"
        )
    return values.astype(np.int64)


def read_labels(y: Any, semi_y: Any, n: int) -> np.ndarray:
    """The labels ``fit(X, y, semi_y=...)`` was given, in the users' convention (1 anomaly, 0 normal, -1
    unlabeled): ``y`` as :func:`check_labels` reads it, or the paper's ``semi_y`` converted; not both."""
    if y is not None and semi_y is not None:
        raise InvalidInputError("give labels as y (1 anomaly, 0 normal, -1 unlabeled) or as semi_y, not both")
    return check_labels(y, n) if semi_y is None else from_semi_y(check_semi_labels(semi_y, n))


def default_data_root() -> Path:
    """``$SADKIT_DATA`` if set, else the user's cache folder for sadkit."""
    env = os.environ.get("SADKIT_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sadkit")) / "data"


class Dataset(ABC):
    """A benchmark dataset: plain keyword parameters in, ``(train, val, test)`` splits out.

    Subclasses call :meth:`semi_supervised_splits` with their training pool so that every dataset
    shares one sampling protocol.

    Args:
        root: data folder; default ``$SADKIT_DATA`` or the user cache.
        normal_class: the normal class (one-vs-rest datasets).
        known_outlier_class: the class labeled anomalies come from (when one is known).
        n_known_outlier_classes: how many anomaly classes are known (0 = none).
        ratio_known_normal: fraction of labeled normals in the training set.
        ratio_known_outlier: fraction of labeled anomalies in the training set (gamma_l).
        ratio_pollution: fraction of anomalies among the unlabeled training samples (gamma_p).
        val_fraction: part of the sampled training set (of every kind of sample) held out for
            validation; 0 disables validation.
        seed: drives every random choice.
    """

    #: the network a detector uses on this dataset unless told otherwise
    default_network: ClassVar[str] = "mlp"
    #: parameters that make loading quick on small data (used by the conformance checks, like a detector's)
    fast_params: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        normal_class: int = 0,
        known_outlier_class: int | None = 1,
        n_known_outlier_classes: int = 1,
        ratio_known_normal: float = 0.0,
        ratio_known_outlier: float = 0.0,
        ratio_pollution: float = 0.0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.root = Path(root).expanduser() if root is not None else default_data_root()
        self.normal_class = int(normal_class)
        self.known_outlier_class = None if known_outlier_class is None else int(known_outlier_class)
        self.n_known_outlier_classes = int(n_known_outlier_classes)
        self.ratio_known_normal = check_ratio("ratio_known_normal", ratio_known_normal)
        self.ratio_known_outlier = check_ratio("ratio_known_outlier", ratio_known_outlier, upper_open=True)
        self.ratio_pollution = check_ratio("ratio_pollution", ratio_pollution, upper_open=True)
        self.val_fraction = check_ratio("val_fraction", val_fraction, upper_open=True)
        self.seed = int(seed)

    #: set by :meth:`load` when the dataset transforms its raw rows (see :attr:`preprocessor`)
    _preprocessor: Preprocessor | None = None

    def get_params(self) -> dict[str, Any]:
        """The dataset's parameters (for logging): the arguments of its constructor, as stored."""
        import inspect

        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        values = {k: getattr(self, k) for k in names if hasattr(self, k)}
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}

    def detector_defaults(self, n_train: int) -> dict[str, Any]:
        """Training settings for detectors on this dataset, used where the user gives none.

        The default, ``{}``, keeps every detector's own defaults: the paper's settings. A dataset the
        paper did not tune for returns :func:`sadkit.defaults.step_budget_defaults` (a budget of optimiser
        steps, whatever its size); the key ``name`` tags the run.
        """
        return {}

    @property
    def source(self) -> str:
        """Where the data come from (a file, a folder, a URL), for the run's dataset input."""
        return f"{type(self).__name__} in {self.root}"

    @property
    def preprocessor(self) -> Preprocessor | None:
        """The preprocessing fitted by the last :meth:`load`: raw rows -> the splits' ``X``.

        It becomes part of the fitted model, so a saved or served model takes raw rows. None when the
        splits' ``X`` are the raw rows.
        """
        return self._preprocessor

    @property
    def network(self) -> str:
        """The network name a detector should use on this dataset."""
        return self.default_network

    @abstractmethod
    def load(self) -> tuple[Split, Split, Split]:
        """Return ``(train, val, test)``; ``val`` may be empty when ``val_fraction`` is 0."""

    def semi_supervised_splits(
        self,
        X: np.ndarray,
        labels: np.ndarray,
        normal_classes: Sequence[int],
        outlier_classes: Sequence[int],
        known_outlier_classes: Sequence[int],
        rng: np.random.Generator,
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Apply the protocol to a training pool and carve the validation split from the result.

        Returns ``(X, y, labels)`` for train and for validation: ``y`` the ground truth (1 anomaly,
        0 normal), ``labels`` what a detector may learn from (1 labeled anomaly, 0 labeled normal, -1
        unlabeled).
        """
        sample = semi_supervised_sample(
            labels,
            normal_classes,
            outlier_classes,
            known_outlier_classes,
            self.ratio_known_normal,
            self.ratio_known_outlier,
            self.ratio_pollution,
            rng,
        )
        idx, semi = sample.indices_and_semi_labels()
        y = np.isin(labels[idx], outlier_classes).astype(np.int64)
        strata = semi * 2 + y  # labeled/unlabeled x normal/anomaly (the paper's codes: same draws as before)
        kept, held = stratified_holdout(strata, self.val_fraction, rng)
        labels = from_semi_y(semi)
        train = (X[idx[kept]], y[kept], labels[kept])
        val = (X[idx[held]], y[held], labels[held])
        return train, val
