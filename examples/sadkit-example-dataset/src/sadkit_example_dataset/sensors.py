"""Machine sensor readings with a fault column: a complete sadkit dataset plugin that reads its author's own file.

What a dataset plugin is (see ``sadkit.Dataset``): a class registered under ``sadkit.datasets`` whose
``__init__`` takes plain keyword parameters and whose ``load()`` returns ``(train, val, test)``, three
``sadkit.Split``. The conventions the checks hold it to (``sadkit plugins check sensors``):

* labels: ``Split(X, y, labels=..., ids=...)``: ground truth ``y`` is 1 for an anomaly, 0 for a normal
  sample (used only to evaluate); ``labels`` is what a detector may learn from: 1 labeled anomaly, 0 labeled
  normal, -1 unlabeled. The test split holds no label (``Split(X, y, ids=...)``).
* the paper's protocol: ``self.semi_supervised_splits(...)`` on the training pool draws the labeled and
  polluting samples from ``ratio_known_normal``, ``ratio_known_outlier`` and ``ratio_pollution`` and carves
  ``val_fraction`` out for validation, all from ``seed``; train, validation and test never share a sample.
* ids: one per sample, naming it across the splits (here the file's ``reading_id``; ``sadkit active`` asks an
  expert about samples by id, and a run logs the test scores with them).
* ``root``: the data folder, ``$SADKIT_DATA`` or the user's cache when not given (``Dataset.__init__``
  resolves it); a relative ``path`` is read from there.
* ``preprocessor``: the transform fitted on the training rows (set ``self._preprocessor`` in ``load``). It is
  attached to the fitted model, so a saved or served model takes raw rows.
* ``detector_defaults(n_train)``: training settings for this data where the user gives none (here a budget
  of optimiser steps, as for any table the paper did not tune for).
* errors are sadkit errors saying what to do: ``DataError`` for a file, ``InvalidInputError`` for a parameter.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sadkit import DataError, Dataset, InvalidInputError, Split
from sadkit.data import check_ratio, stratified_holdout
from sadkit.preprocessing import MinMax, Preprocessor, Standardize

#: the file's columns: an id, the features, the ground truth (1 = fault)
ID, FEATURES, LABEL = "reading_id", ("temperature", "vibration", "pressure", "current"), "fault"


class Sensors(Dataset):
    """Readings of four sensors, 1 = a machine fault (an anomaly).

    Args:
        path: a CSV file with the columns ``reading_id, temperature, vibration, pressure, current, fault``; a
            relative path is read from ``root``. Default: ``<root>/sensors/sensors.csv`` when it exists, else
            the sample file shipped with this package.
        test_fraction: the share of rows (of normals and faults alike) held out for testing.
        root, ratio_known_normal, ratio_known_outlier, ratio_pollution, val_fraction, seed: see ``sadkit.Dataset``.
    """

    default_network = "mlp"

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        test_fraction: float = 0.3,
        root: str | os.PathLike | None = None,
        ratio_known_normal: float = 0.0,
        ratio_known_outlier: float = 0.0,
        ratio_pollution: float = 0.0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(
            root=root,
            ratio_known_normal=ratio_known_normal,
            ratio_known_outlier=ratio_known_outlier,
            ratio_pollution=ratio_pollution,
            val_fraction=val_fraction,
            seed=seed,
        )
        self.path = None if path is None else str(path)
        self.test_fraction = check_ratio("test_fraction", test_fraction, upper_open=True)

    @property
    def source(self) -> str:
        return str(self._file())

    def _file(self) -> Path:
        if self.path is not None:
            path = Path(self.path).expanduser()
            return path if path.is_absolute() else self.root / path
        yours = self.root / "sensors" / "sensors.csv"
        return yours if yours.is_file() else Path(str(resources.files(__package__) / "data" / "sensors.csv"))

    def _read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        file = self._file()
        if not file.is_file():
            raise DataError(f"no sensor file at {file}; pass path=... or put it at {self.root / 'sensors'}")
        header = file.read_text().splitlines()[0].split(",")
        missing = [c for c in (ID, *FEATURES, LABEL) if c not in header]
        if missing:
            raise DataError(f"{file} lacks the column(s) {', '.join(missing)}; its header is {','.join(header)}")
        table = np.loadtxt(file, delimiter=",", skiprows=1, ndmin=2)
        column = {name: table[:, header.index(name)] for name in (ID, *FEATURES, LABEL)}
        y = column[LABEL].astype(np.int64)
        if not np.isin(y, (0, 1)).all():
            raise DataError(f"{file}: the {LABEL} column must hold 0 (normal) and 1 (fault)")
        return column[ID].astype(np.int64), np.column_stack([column[c] for c in FEATURES]), y

    def load(self) -> tuple[Split, Split, Split]:
        ids, X, y = self._read()
        rng = np.random.default_rng(self.seed)  # every random choice below comes from the seed
        pool, test = stratified_holdout(y, self.test_fraction, rng)
        # the protocol picks rows of its first argument: handing it the pool's row numbers gives row numbers back
        (train, y_train, labels_train), (val, y_val, labels_val) = self.semi_supervised_splits(
            pool, y[pool], normal_classes=[0], outlier_classes=[1], known_outlier_classes=[1], rng=rng
        )
        if len(train) < 2:
            raise InvalidInputError(f"{self.source}: {len(train)} training row(s) left; lower test_fraction")
        standard = Standardize.fit(X[train])
        steps = [standard, MinMax.fit(standard.transform(X[train]))]
        self._preprocessor = Preprocessor(  # the examples become the logged model's input example
            steps, input_shape=(len(FEATURES),), feature_names=list(FEATURES), examples=X[train][:5]
        )
        scale = self._preprocessor.transform
        return (
            Split(scale(X[train]), y_train, labels=labels_train, ids=ids[train]),
            Split(scale(X[val]), y_val, labels=labels_val, ids=ids[val]),
            Split(scale(X[test]), y[test], ids=ids[test]),  # no labels: a detector never learns from the test split
        )

    def detector_defaults(self, n_train: int) -> dict[str, Any]:
        from sadkit.defaults import step_budget_defaults

        return step_budget_defaults(n_train)
