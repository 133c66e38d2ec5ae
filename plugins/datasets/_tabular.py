"""What the binary tabular datasets (ODDS, synthetic) share: checks, the split and the scaling.

The protocol is the one of Deep SAD's ODDS experiments, with the reference code's overlap fixed:

1. one stratified 60/40 train/test split of all samples (by class), so train and test are disjoint;
2. the semi-supervised sampling of :meth:`sadkit.data.Dataset.semi_supervised_splits` on the 60%
   pool (which also carves the validation split out of the sampled training set);
3. a ``StandardScaler`` and then a ``MinMaxScaler`` fitted on the sampled training split only and
   applied to train, validation and test; the fitted pair is the dataset's ``preprocessor``, so the
   model takes raw rows.

The test split is the whole 40% (normals and anomalies), unlabeled.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from sadkit.data import Dataset, Split, resolve_known_outlier_classes
from sadkit.errors import InvalidInputError
from sadkit.preprocessing import MinMax, Preprocessor, Standardize

#: class labels of a binary tabular dataset
NORMAL = 0
ANOMALY = 1

#: fraction of all samples that goes to the test split
TEST_SIZE = 0.4


@dataclass(frozen=True)
class TabularSplits:
    """The three splits and, for each, the positions of its rows in the original table."""

    train: Split
    val: Split
    test: Split
    train_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    preprocessor: Preprocessor


def check_binary_params(dataset: Dataset, what: str) -> None:
    """Raise unless the class parameters fit a 0 = normal / 1 = anomaly dataset and the seed is >= 0.

    ``known_outlier_class=None`` is accepted: with ``n_known_outlier_classes=1`` it resolves to class 1.
    """
    if dataset.normal_class != NORMAL:
        raise InvalidInputError(
            f"{what} has two classes, {NORMAL} = normal and {ANOMALY} = anomaly, so normal_class must"
            f" be {NORMAL}; got {dataset.normal_class}"
        )
    if dataset.n_known_outlier_classes not in (0, 1):
        raise InvalidInputError(
            f"{what} has one anomaly class, so n_known_outlier_classes must be 0 or 1;"
            f" got {dataset.n_known_outlier_classes}"
        )
    if dataset.known_outlier_class not in (None, ANOMALY):
        raise InvalidInputError(
            f"{what} has one anomaly class, {ANOMALY}, so known_outlier_class must be {ANOMALY}"
            f" or None; got {dataset.known_outlier_class} (use n_known_outlier_classes=0 for no labeled"
            " anomalies)"
        )
    if dataset.seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {dataset.seed}")


def check_table(X: object, y: object, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X float64 (n, d), y int64 (n,))`` or raise :class:`InvalidInputError`.

    Rejects non-numeric or non-2-D features, NaN or infinite features (naming ``source`` and the
    number of bad rows), labels other than 0/1, length mismatches, and fewer than two samples of
    either class (the stratified split puts at least one of each in train and in test).
    """
    try:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{source}: X and y must be numeric arrays ({err})") from err
    if X.ndim != 2:
        raise InvalidInputError(f"{source}: X must be a 2-D table (samples x features), got shape {X.shape}")
    if len(y) != len(X):
        raise InvalidInputError(f"{source}: X has {len(X)} rows but y has {len(y)} labels")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise InvalidInputError(
            f"{source}: {int(bad.sum())} of {len(X)} rows hold NaN or infinite feature values;"
            " impute or drop them first"
        )
    if not np.isin(y, (NORMAL, ANOMALY)).all():
        found = np.unique(y[~np.isin(y, (NORMAL, ANOMALY))])[:5]
        raise InvalidInputError(
            f"{source}: y must hold {NORMAL} (normal) and {ANOMALY} (anomaly) only; found {found.tolist()}"
        )
    y = y.astype(np.int64)
    for cls, kind in ((NORMAL, "normal"), (ANOMALY, "anomalous")):
        count = int((y == cls).sum())
        if count < 2:
            raise InvalidInputError(
                f"{source}: {count} {kind} sample(s); at least 2 are needed (one for train, one for test)"
            )
    return X, y


def split_random_state(seed: int) -> int:
    """The ``random_state`` of the train/test split: an int drawn from its own stream of ``seed``.

    It is independent of the generator ``np.random.default_rng(seed)`` that drives the sampler.
    """
    return int(np.random.SeedSequence(seed, spawn_key=(1,)).generate_state(1)[0])


def protocol_splits(
    dataset: Dataset, X: np.ndarray, y: np.ndarray, sample_shape: tuple[int, ...] | None = None
) -> TabularSplits:
    """Apply the split, the semi-supervised sampling and the scaling to a checked table.

    Args:
        dataset: supplies the ratios, ``val_fraction``, the known class parameters and ``seed``.
        X: features, ``(n, d)`` float64, all finite (see :func:`check_table`).
        y: class labels, 0 normal and 1 anomaly.
        sample_shape: the shape a detector sees one scaled sample in (e.g. ``(1, 28, 28)``); default ``(d,)``.
    """
    n = len(X)
    positions = np.arange(n)
    pool, test_index = train_test_split(
        positions, test_size=TEST_SIZE, stratify=y, random_state=split_random_state(dataset.seed)
    )
    rng = np.random.default_rng(dataset.seed)
    known = resolve_known_outlier_classes(
        [ANOMALY],
        dataset.known_outlier_class,
        dataset.n_known_outlier_classes,
        rng,
    )
    # The sampler picks rows of its X; handing it the pool's positions gives back positions into
    # the original table, so the splits can be traced (and tested for overlap) and X indexed once.
    (train_index, y_train, labels_train), (val_index, y_val, labels_val) = dataset.semi_supervised_splits(
        pool,
        y[pool],
        normal_classes=[NORMAL],
        outlier_classes=[ANOMALY],
        known_outlier_classes=known,
        rng=rng,
    )
    X_train = X[train_index]
    standard = Standardize.fit(X_train)
    minmax = MinMax.fit(standard.transform(X_train))
    preprocessor = Preprocessor(
        [standard, minmax],
        input_shape=(X.shape[1],),
        output_shape=sample_shape,
        feature_names=[f"x{i}" for i in range(X.shape[1])],
        examples=X_train[:5],
    )

    def scale(A: np.ndarray) -> np.ndarray:
        if len(A) == 0:
            return np.empty((0, *preprocessor.output_shape), dtype=np.float32)
        return preprocessor.transform(A)

    def as_int(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=np.int64)

    train = Split(scale(X_train), as_int(y_train), labels=as_int(labels_train), ids=as_int(train_index))
    val = Split(scale(X[val_index]), as_int(y_val), labels=as_int(labels_val), ids=as_int(val_index))
    test = Split(scale(X[test_index]), as_int(y[test_index]), ids=as_int(test_index))
    return TabularSplits(
        train=train,
        val=val,
        test=test,
        train_index=as_int(train_index),
        val_index=as_int(val_index),
        test_index=as_int(test_index),
        preprocessor=preprocessor,
    )


class TabularDataset(Dataset):
    """A binary tabular dataset (0 normal, 1 anomaly) split and scaled by :func:`protocol_splits`.

    Subclasses implement :meth:`_read`. After :meth:`load`, ``_train_index``, ``_val_index`` and
    ``_test_index`` hold the positions of each split's rows in the table :meth:`_read` returned.
    """

    #: the shape of one sample as detectors see it (None: the table's rows, ``(d,)``)
    sample_shape: tuple[int, ...] | None = None

    @abstractmethod
    def _read(self) -> tuple[np.ndarray, np.ndarray, str]:
        """Return ``(X, y, source)``: the whole table, its labels and a name for error messages."""

    def load(self) -> tuple[Split, Split, Split]:
        """Return ``(train, val, test)``; X float32 in [0, 1] on train, y and semi_y int64."""
        X, y, source = self._read()
        X, y = check_table(X, y, source)
        splits = protocol_splits(self, X, y, self.sample_shape)
        self._train_index = splits.train_index
        self._val_index = splits.val_index
        self._test_index = splits.test_index
        self._preprocessor = splits.preprocessor
        return splits.train, splits.val, splits.test
