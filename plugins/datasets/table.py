"""``table``: your own file as a dataset, with your own labels, used as they are.

    sadkit run deepsad table --data path=mydata.csv --data label_column=label

The file is any format :mod:`sadkit.tables` reads (CSV, TSV, Parquet, ``.npy``/``.npz``, ``.mat``). Each
row is a sample; the label column says what is known about it: ``1`` anomaly, ``0`` normal, ``-1`` or
blank unlabeled (or your own values: ``anomaly_values=[fraud]``, ``normal_values=[ok]``). Nothing is
re-labeled or re-sampled: labeled rows stay labeled and unlabeled rows stay unlabeled.

* Validation: ``val_fraction`` of the labeled rows, stratified by label, held out of training (for
  thresholds and studies).
* Test: only when asked for, either a second file (``test_path``, the same columns and a label for every
  row) or ``test_fraction`` of the labeled rows (stratified, held out before validation).
* Features: every column but the label, the id and ``drop_columns`` (or exactly ``feature_columns``).
  Numeric columns are used as they are; columns named in ``categorical_columns`` are one-hot encoded; any
  other non-numeric column is an error. Missing feature values are an error naming the columns, unless
  ``impute`` says how to fill them (statistics of the training rows).
* Scaling, fitted on the training rows: ``standard+minmax`` (the ODDS protocol of the paper; default),
  ``standard``, ``minmax`` or ``none``.

The fitted encoders and scalers are the dataset's :attr:`preprocessor`: they become part of the model, so
the saved and served model takes raw rows of the file's columns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sadkit.data import ANOMALY, NORMAL, UNLABELED, Dataset, Split, check_ratio
from sadkit.defaults import step_budget_defaults
from sadkit.errors import InvalidInputError
from sadkit.preprocessing import MinMax, Preprocessor, Standardize, TableEncoder
from sadkit.tables import read_table

SCALINGS = ("standard+minmax", "standard", "minmax", "none")
IMPUTE = ("mean", "median", "most_frequent")


def _names(value: Any, what: str) -> list[str]:
    """A list of column names from a list, a tuple, one name, or a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise InvalidInputError(f"{what} must be a list of column names, got {value!r}")


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple, set)) else [value]
    return [_label_key(v) for v in items]


def _label_key(value: Any) -> str:
    """One spelling per label value: 1, 1.0 and "1" are the same label; blank/NaN is ""."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


class Table(Dataset):
    """A user's own table (see the module docstring).

    Args:
        path: the file.
        label_column: the column holding the labels; None when the file has no labels (all unlabeled).
        id_column: a column identifying rows (kept out of the features; used by ``sadkit active``'s CSV
            oracle and ``sadkit score``'s output). Default: the row number in the file.
        feature_columns: exactly these feature columns (default: all but label, id and ``drop_columns``).
        drop_columns: columns to leave out of the features.
        categorical_columns: columns to one-hot encode (categories seen in training; unseen ones at
            scoring time become all zeros and are counted).
        anomaly_values, normal_values, unlabeled_values: the label values meaning anomaly, normal and
            unlabeled. Defaults ``[1]``, ``[0]`` and ``[-1]``; a blank cell is always unlabeled. A value
            outside these is an error.
        impute: fill missing feature values with the training rows' ``mean``, ``median`` or
            ``most_frequent`` value (categorical columns always with the most frequent); None refuses them.
        scaling: ``standard+minmax``, ``standard``, ``minmax`` or ``none`` (fitted on the training rows).
        val_fraction: share of the labeled rows held out for validation (stratified).
        test_path: a file of labeled rows to test on (same columns).
        test_fraction: share of the labeled rows held out for testing (stratified); 0 = no test split
            unless ``test_path`` is given.
        seed: drives the validation and test draws.
        root: the folder a relative ``path`` is read from (default: the working directory).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        label_column: str | None = "label",
        id_column: str | None = None,
        feature_columns: Sequence[str] | str | None = None,
        drop_columns: Sequence[str] | str | None = None,
        categorical_columns: Sequence[str] | str | None = None,
        anomaly_values: Sequence[Any] | Any = None,
        normal_values: Sequence[Any] | Any = None,
        unlabeled_values: Sequence[Any] | Any = None,
        impute: str | None = None,
        scaling: str = "standard+minmax",
        val_fraction: float = 0.2,
        test_path: str | os.PathLike | None = None,
        test_fraction: float = 0.0,
        seed: int = 0,
        root: str | os.PathLike | None = None,
    ) -> None:
        self.path = path
        self.label_column = label_column
        self.id_column = id_column
        self.feature_columns = feature_columns
        self.drop_columns = drop_columns
        self.categorical_columns = categorical_columns
        self.anomaly_values = anomaly_values
        self.normal_values = normal_values
        self.unlabeled_values = unlabeled_values
        self.impute = impute
        self.scaling = scaling
        self.val_fraction = check_ratio("val_fraction", val_fraction, upper_open=True)
        self.test_path = test_path
        self.test_fraction = check_ratio("test_fraction", test_fraction, upper_open=True)
        self.seed = int(seed)
        self.root = root
        if scaling not in SCALINGS:
            raise InvalidInputError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
        if impute is not None and impute not in IMPUTE:
            raise InvalidInputError(f"impute must be one of {', '.join(IMPUTE)} (or unset), got {impute!r}")
        if test_path is not None and self.test_fraction > 0:
            raise InvalidInputError("give test_path or test_fraction, not both")
        if self.seed < 0:
            raise InvalidInputError(f"seed must be a non-negative integer, got {seed}")
        if feature_columns is not None and drop_columns is not None:
            raise InvalidInputError("give feature_columns or drop_columns, not both")
        mapping = self._mapping()
        shared = {v for kind, values in mapping.items() for v in values if sum(v in m for m in mapping.values()) > 1}
        if shared:
            raise InvalidInputError(f"label value(s) {sorted(shared)} are given for more than one meaning")

    # ------------------------------------------------------------------------------------------ reading
    def _resolve(self, path: str | os.PathLike) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() or self.root is None else Path(self.root).expanduser() / path

    @property
    def name(self) -> str:
        """The file's name without its ending (names the run)."""
        return Path(self.path).stem

    @property
    def source(self) -> str:
        return str(self._resolve(self.path))

    def _mapping(self) -> dict[int, set[str]]:
        return {
            ANOMALY: set(_values(self.anomaly_values) or ["1"]),
            NORMAL: set(_values(self.normal_values) or ["0"]),
            UNLABELED: set(_values(self.unlabeled_values) or ["-1"]) | {""},
        }

    def _labels(self, frame: Any, source: str, *, every_row: bool = False) -> np.ndarray:
        """The label column as 1 / 0 / -1, or an error naming the values outside the mapping."""
        if self.label_column is None:
            return np.full(len(frame), UNLABELED, dtype=np.int64)
        if self.label_column not in frame:
            raise InvalidInputError(
                f"{source} has no label column {self.label_column!r}; its columns are: {', '.join(map(str, frame))}."
                " Name yours with label_column=NAME (or label_column=null for a file without labels)"
            )
        raw = [_label_key(v) for v in frame[self.label_column].tolist()]
        labels = np.full(len(raw), -2, dtype=np.int64)
        for code, values in self._mapping().items():
            labels[np.isin(raw, list(values))] = code
        bad = sorted({v for v, code in zip(raw, labels, strict=True) if code == -2})
        if bad:
            mapping = ", ".join(
                f"{k}={sorted(v - {''})}"
                for k, v in (
                    ("anomaly_values", self._mapping()[ANOMALY]),
                    ("normal_values", self._mapping()[NORMAL]),
                    ("unlabeled_values", self._mapping()[UNLABELED]),
                )
            )
            raise InvalidInputError(
                f"{source}: the label column {self.label_column!r} holds value(s) {bad[:10]} outside the label"
                f" mapping ({mapping}; blank = unlabeled); map them with anomaly_values=[...],"
                " normal_values=[...] or unlabeled_values=[...]"
            )
        if every_row and (labels == UNLABELED).any():
            raise InvalidInputError(
                f"{source}: {int((labels == UNLABELED).sum())} row(s) have no label; a test file needs a label on"
                " every row"
            )
        return labels

    def _feature_names(self, frame: Any, source: str) -> tuple[list[str], list[str]]:
        """(numeric, categorical) feature columns, or an error naming what is wrong."""
        reserved = {c for c in (self.label_column, self.id_column) if c is not None}
        for what, column in (("id_column", self.id_column),):
            if column is not None and column not in frame:
                raise InvalidInputError(
                    f"{source} has no {what} {column!r}; its columns are: {', '.join(map(str, frame))}"
                )
        wanted = _names(self.feature_columns, "feature_columns")
        dropped = _names(self.drop_columns, "drop_columns")
        categorical = _names(self.categorical_columns, "categorical_columns")
        named = [*wanted, *dropped, *categorical]
        missing = [c for c in named if c not in frame]
        if missing:
            raise InvalidInputError(
                f"{source} has no column(s) {', '.join(missing)}; its columns are: {', '.join(map(str, frame))}"
            )
        columns = wanted or [str(c) for c in frame.columns if c not in reserved and c not in dropped]
        columns = [c for c in columns if c not in reserved]
        if not columns:
            raise InvalidInputError(f"{source}: no feature column is left (label, id and dropped columns excluded)")
        not_used = [c for c in categorical if c not in columns]
        if not_used:
            raise InvalidInputError(f"categorical_columns {not_used} are not feature columns")
        import pandas as pd

        text = [c for c in columns if c not in categorical and not pd.api.types.is_numeric_dtype(frame[c])]
        if text:
            sample = {c: frame[c].dropna().astype(str).iloc[:3].tolist() for c in text[:3]}
            raise InvalidInputError(
                f"{source}: feature column(s) {', '.join(text)} are not numeric (e.g. {sample}); declare them"
                " categorical_columns=[...] to one-hot encode them, or leave them out with drop_columns=[...]"
            )
        return [c for c in columns if c not in categorical], [c for c in columns if c in categorical]

    def _check_missing(self, frame: Any, columns: list[str], source: str) -> None:
        if self.impute is not None:
            return
        counts = frame[columns].isna().sum()
        counts = counts[counts > 0]
        if len(counts):
            rows = int(frame[columns].isna().any(axis=1).sum())
            where = ", ".join(f"{c} ({n})" for c, n in counts.items())
            raise InvalidInputError(
                f"{source}: {rows} row(s) have missing feature values, in column(s) {where}; fill or drop them,"
                " or ask for impute=mean|median|most_frequent"
            )

    def _fill_values(self, frame: Any, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
        fill: dict[str, Any] = {}
        if self.impute is None:
            return fill
        for c in numeric:
            values = frame[c].dropna()
            if self.impute == "mean":
                fill[c] = float(values.mean()) if len(values) else 0.0
            elif self.impute == "median":
                fill[c] = float(values.median()) if len(values) else 0.0
            else:
                fill[c] = float(values.mode().iloc[0]) if len(values) else 0.0
        for c in categorical:
            values = frame[c].dropna().astype(str)
            fill[c] = str(values.mode().iloc[0]) if len(values) else "missing"
        return fill

    def detector_defaults(self, n_train: int) -> dict[str, Any]:
        """Nobody tuned for your table: a budget of optimiser steps (:mod:`sadkit.defaults`)."""
        return step_budget_defaults(n_train)

    # ------------------------------------------------------------------------------------------ splitting
    def _holdout(
        self, labels: np.ndarray, candidates: np.ndarray, fraction: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``fraction`` of the ``candidates`` positions, stratified by label (at least one of a class with 2+)."""
        held: list[np.ndarray] = []
        for value in (NORMAL, ANOMALY):
            members = rng.permutation(candidates[labels[candidates] == value])
            k = int(np.floor(fraction * len(members) + 0.5))
            if fraction > 0 and k == 0 and len(members) >= 2:
                k = 1
            held.append(members[:k])
        return np.sort(np.concatenate(held)).astype(np.int64)

    def load(self) -> tuple[Split, Split, Split]:
        """Return ``(train, val, test)``: X float32 after the fitted preprocessing; ``labels`` as given."""
        source = self.source
        frame = read_table(source)
        if len(frame) == 0:
            raise InvalidInputError(f"{source} holds no rows")
        frame.columns = [str(c) for c in frame.columns]
        labels = self._labels(frame, source)
        numeric, categorical = self._feature_names(frame, source)
        self._check_missing(frame, [*numeric, *categorical], source)
        ids = frame[self.id_column].to_numpy() if self.id_column is not None else np.arange(len(frame))

        rng = np.random.default_rng(self.seed)
        labeled = np.flatnonzero(labels != UNLABELED)
        test_index = (
            self._holdout(labels, labeled, self.test_fraction, rng) if self.test_fraction else np.empty(0, np.int64)
        )
        remaining = np.setdiff1d(labeled, test_index)
        val_index = self._holdout(labels, remaining, self.val_fraction, rng)
        train_index = np.setdiff1d(np.arange(len(frame)), np.concatenate([test_index, val_index]))
        if len(train_index) < 2:
            raise InvalidInputError(f"{source}: {len(train_index)} row(s) are left for training; at least 2 are needed")

        columns = [*numeric, *categorical]
        train_frame = frame.iloc[train_index]
        encoder = TableEncoder.fit(
            train_frame, numeric, categorical, self._fill_values(train_frame, numeric, categorical)
        )
        encoded = encoder.transform(train_frame[columns])
        steps: list[Any] = [encoder]
        if self.scaling in ("standard+minmax", "standard"):
            steps.append(Standardize.fit(encoded))
            encoded = steps[-1].transform(encoded)
        if self.scaling in ("standard+minmax", "minmax"):
            steps.append(MinMax.fit(encoded))
        self._preprocessor = Preprocessor(
            steps,
            input_shape=(len(columns),),
            output_shape=(len(encoder.feature_names_out),),
            feature_names=columns,
            examples=train_frame[columns],
            id_column=self.id_column,
        )

        def split(part: Any, part_labels: np.ndarray, part_ids: np.ndarray, truth: bool) -> Split:
            X = self._preprocessor.transform(part[columns])
            y = part_labels if truth else np.where(part_labels == UNLABELED, -1, part_labels)
            return Split(X, y.astype(np.int64), labels=part_labels.astype(np.int64), ids=part_ids)

        train = split(train_frame, labels[train_index], ids[train_index], truth=False)
        val = split(frame.iloc[val_index], labels[val_index], ids[val_index], truth=True)
        if self.test_path is not None:
            test_source = str(self._resolve(self.test_path))
            test_frame = read_table(test_source)
            test_frame.columns = [str(c) for c in test_frame.columns]
            test_labels = self._labels(test_frame, test_source, every_row=True)
            self._check_missing(test_frame, [c for c in columns if c in test_frame], test_source)
            test_ids = (
                test_frame[self.id_column].to_numpy()
                if self.id_column in test_frame
                else len(frame) + np.arange(len(test_frame))  # numbered after the training file's rows
            )
            test = Split(
                self._preprocessor.transform(test_frame),
                test_labels,
                labels=np.full(len(test_frame), UNLABELED, dtype=np.int64),
                ids=test_ids,
            )
        else:
            test_part = frame.iloc[test_index]
            test = Split(
                self._preprocessor.transform(test_part[columns])
                if len(test_index)
                else np.empty((0, encoded.shape[1]), np.float32),
                labels[test_index],
                labels=np.full(len(test_index), UNLABELED, dtype=np.int64),
                ids=ids[test_index],
            )
        return train, val, test

