"""Fitted feature transforms, kept as plain numbers and strings: the part of a model that turns raw rows
into what its detector was trained on.

A dataset fits its preprocessing on its training split (the ODDS scalers, the image scaling, a table's
encoders) and hands it out as a :class:`Preprocessor`; the experiment attaches it to the fitted detector
(:meth:`sadkit.Detector.set_preprocessor`), so the saved model, the MLflow model and ``sadkit score``
all take raw rows. Every transform is fitted with scikit-learn where scikit-learn has it and applied
with the same arithmetic in the same order, so a split transformed here is bit for bit the split the
detector saw. Nothing is pickled: :meth:`Preprocessor.to_dict` is JSON.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import InvalidInputError, SadkitError
from .serialize import to_json

#: the file a saved model keeps its preprocessing in
PREPROCESSING_FILE = "preprocessing.json"


class Transform(ABC):
    """One fitted step. Subclasses are dataclasses of JSON-able fields and register a ``kind``."""

    kind: ClassVar[str]
    _kinds: ClassVar[dict[str, type[Transform]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Transform._kinds[cls.kind] = cls

    @abstractmethod
    def transform(self, X: Any) -> np.ndarray:
        """Apply the step to a batch (rows first)."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **to_json(vars(self))}

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Transform:
        raw = dict(raw)
        kind = raw.pop("kind", None)
        if kind not in Transform._kinds:
            raise SadkitError(f"unknown preprocessing step {kind!r}; known: {', '.join(sorted(Transform._kinds))}")
        return Transform._kinds[kind](**raw)


@dataclass
class Standardize(Transform):
    """``(X - mean) / scale`` in float64, as scikit-learn's ``StandardScaler`` (zero variance -> scale 1)."""

    mean: list[float]
    scale: list[float]
    kind: ClassVar[str] = "standardize"

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardize:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X)
        return cls(mean=scaler.mean_.tolist(), scale=scaler.scale_.tolist())

    def transform(self, X: Any) -> np.ndarray:
        X = np.array(X, dtype=np.float64)  # a copy: scikit-learn's order of operations, in place
        X -= np.asarray(self.mean)
        X /= np.asarray(self.scale)
        return X


@dataclass
class MinMax(Transform):
    """``X * scale + offset`` in float64, as scikit-learn's ``MinMaxScaler`` to [0, 1] on the fitted data."""

    scale: list[float]
    offset: list[float]
    kind: ClassVar[str] = "minmax"

    @classmethod
    def fit(cls, X: np.ndarray) -> MinMax:
        from sklearn.preprocessing import MinMaxScaler

        scaler = MinMaxScaler().fit(X)
        return cls(scale=scaler.scale_.tolist(), offset=scaler.min_.tolist())

    def transform(self, X: Any) -> np.ndarray:
        X = np.array(X, dtype=np.float64)
        X *= np.asarray(self.scale)
        X += np.asarray(self.offset)
        return X


@dataclass
class PixelScale(Transform):
    """Pixels ``0..255`` -> float32 ``[0, 1]``, bit for bit as torchvision's ``ToTensor`` (x / 255 in float32)."""

    divisor: float = 255.0
    kind: ClassVar[str] = "pixel_scale"

    def transform(self, X: Any) -> np.ndarray:
        return np.divide(np.asarray(X), np.float32(self.divisor), dtype=np.float32)


def global_contrast_normalization(X: np.ndarray) -> np.ndarray:
    """Per sample: subtract its mean and divide by its mean absolute deviation (GCN, L1; Deep SVDD).

    ``X`` is ``(n, ...)`` float32; a constant sample (deviation 0) becomes all zeros instead of NaN.
    """
    flat = X.reshape(len(X), int(np.prod(X.shape[1:])))
    flat = flat - flat.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    scale = np.abs(flat).mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    np.divide(flat, scale, out=flat, where=scale > 0)
    return flat.reshape(X.shape)


@dataclass
class ContrastNormalize(Transform):
    """Global contrast normalisation (L1) per sample, then ``(x - low) / (high - low)`` with fitted bounds."""

    low: float = 0.0
    high: float = 1.0
    kind: ClassVar[str] = "contrast_normalize"

    def transform(self, X: Any) -> np.ndarray:
        X = global_contrast_normalization(np.asarray(X, dtype=np.float32))
        span = np.float32(self.high - self.low) if self.high > self.low else np.float32(1.0)
        np.subtract(X, np.float32(self.low), out=X)
        np.divide(X, span, out=X)
        return X


@dataclass
class TableEncoder(Transform):
    """A data frame's feature columns -> numbers: numeric columns as they are, categorical ones one-hot.

    Fitted by :meth:`fit` with scikit-learn's ``OneHotEncoder`` (the categories of each column, in its
    order); a category unseen at fit time becomes all zeros in its column's block (scikit-learn's
    ``handle_unknown="ignore"``) and is counted in :attr:`unknown_counts` of the last call. Missing
    values are replaced by ``fill`` when the dataset was asked to impute (else they are refused before).
    """

    numeric: list[str]
    categorical: dict[str, list[Any]] = field(default_factory=dict)
    fill: dict[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "table_encoder"

    def __post_init__(self) -> None:
        self.unknown_counts: dict[str, int] = {}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **to_json({k: getattr(self, k) for k in ("numeric", "categorical", "fill")})}

    @property
    def columns(self) -> list[str]:
        """The input columns, in the order the output blocks follow."""
        return [*self.numeric, *self.categorical]

    @property
    def feature_names_out(self) -> list[str]:
        return [*self.numeric, *(f"{c}={v}" for c, values in self.categorical.items() for v in values)]

    @classmethod
    def fit(
        cls, frame: Any, numeric: Sequence[str], categorical: Sequence[str], fill: Mapping[str, Any]
    ) -> TableEncoder:
        from sklearn.preprocessing import OneHotEncoder

        categories: dict[str, list[Any]] = {}
        if categorical:
            encoder = OneHotEncoder(handle_unknown="ignore").fit(frame[list(categorical)].astype(str))
            categories = {c: [str(v) for v in cats] for c, cats in zip(categorical, encoder.categories_, strict=True)}
        return cls(numeric=list(numeric), categorical=categories, fill=dict(fill))

    def transform(self, X: Any) -> np.ndarray:
        import pandas as pd

        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=self.columns)
        if self.fill:
            frame = frame.fillna({c: v for c, v in self.fill.items() if c in frame})
        blocks = []
        if self.numeric:
            try:
                blocks.append(frame[self.numeric].to_numpy(dtype=np.float64))
            except (TypeError, ValueError) as err:
                raise InvalidInputError(f"the numeric feature columns hold values that are not numbers: {err}") from err
        self.unknown_counts = {}
        for column, values in self.categorical.items():
            observed = frame[column].astype(str).to_numpy()
            lookup = {v: i for i, v in enumerate(values)}
            index = np.array([lookup.get(v, -1) for v in observed], dtype=np.int64)
            block = np.zeros((len(frame), len(values)), dtype=np.float64)
            known = index >= 0
            block[np.flatnonzero(known), index[known]] = 1.0
            if (~known).any():
                self.unknown_counts[column] = int((~known).sum())
            blocks.append(block)
        return np.concatenate(blocks, axis=1) if blocks else np.empty((len(frame), 0))


def _example_rows(rows: Any, n: int = 5) -> list[list[Any]] | None:
    """Up to ``n`` raw rows as JSON lists (flattened samples; a data frame's rows in its column order)."""
    if rows is None:
        return None
    values = rows.to_numpy() if hasattr(rows, "to_numpy") else np.asarray(rows)
    values = values[:n]
    rows = to_json(values.reshape(len(values), -1).tolist())
    plain = (str, int, float, bool, type(None))
    return [[v if isinstance(v, plain) else str(v) for v in row] for row in rows]


class Preprocessor:
    """A chain of fitted transforms from raw rows to a detector's input.

    Args:
        steps: applied in order.
        input_shape: the shape of one raw sample (e.g. ``(21,)`` or ``(1, 28, 28)``); flat rows of its
            size are reshaped to it.
        feature_names: the raw columns, when the data came as a table: a data frame is matched by these
            names (reordered columns work; a missing one is an error naming it; extra ones are ignored
            and listed by :meth:`extra_columns`).
        output_shape: the shape of one transformed sample (what the detector expects).
        examples: a few raw rows (a data frame or an array), kept as the model's input example.
        id_column: the column that identified rows in the training file (``sadkit score`` writes it out).

    Attributes:
        n_features_in_: number of raw input features (columns, or values of one flattened sample).
        feature_names_in_: the raw column names, or None.
    """

    def __init__(
        self,
        steps: Sequence[Transform],
        *,
        input_shape: Sequence[int],
        output_shape: Sequence[int] | None = None,
        feature_names: Sequence[str] | None = None,
        examples: Any = None,
        id_column: str | None = None,
    ) -> None:
        self.steps = list(steps)
        self.id_column = id_column
        self.examples = _example_rows(examples)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_shape = tuple(int(d) for d in (output_shape if output_shape is not None else input_shape))
        self.feature_names_in_ = None if feature_names is None else [str(c) for c in feature_names]
        self.n_features_in_ = int(np.prod(self.input_shape)) if self.input_shape else 0

    @property
    def is_table(self) -> bool:
        return self.feature_names_in_ is not None

    def example_rows(self) -> Any:
        """The kept raw rows as the model takes them (a data frame for tables, else an array), or None."""
        if self.examples is None:
            return None
        if self.feature_names_in_ is not None:
            import pandas as pd

            return pd.DataFrame(self.examples, columns=self.feature_names_in_)
        return np.asarray(self.examples, dtype=np.float64).reshape(len(self.examples), *self.input_shape)

    def extra_columns(self, X: Any) -> list[str]:
        """Columns of data frame ``X`` the model does not use (empty for arrays)."""
        names = getattr(X, "columns", None)
        if names is None or self.feature_names_in_ is None:
            return []
        used = set(self.feature_names_in_)
        return [str(c) for c in names if str(c) not in used]

    def _raw(self, X: Any) -> Any:
        """Rows in the order and shape the first step expects: a data frame by name, an array by size."""
        columns = getattr(X, "columns", None)
        if columns is not None and self.feature_names_in_ is not None:
            present = {str(c) for c in columns}
            missing = [c for c in self.feature_names_in_ if c not in present]
            if missing:
                raise InvalidInputError(
                    f"the data lack the column(s) {', '.join(missing)} that the model was trained on;"
                    f" it needs: {', '.join(self.feature_names_in_)}"
                )
            frame = X.rename(columns=str)[self.feature_names_in_]
            return frame if any(isinstance(s, TableEncoder) for s in self.steps) else frame.to_numpy()
        if columns is not None:
            X = X.to_numpy()
        X = np.asarray(X)
        if X.ndim < 1 or len(X) == 0:
            return X.reshape(0, *self.input_shape)
        size = int(np.prod(X.shape[1:])) if X.ndim > 1 else 1
        if size != self.n_features_in_:
            raise InvalidInputError(
                f"X has {size} values per row but the model takes {self.n_features_in_}"
                f" (raw samples of shape {self.input_shape})"
            )
        return X.reshape(len(X), *self.input_shape)

    def transform(self, X: Any) -> np.ndarray:
        """Raw rows -> the detector's float32 input ``(n, *output_shape)``."""
        out = self._raw(X)
        for step in self.steps:
            out = step.transform(out)
        out = np.asarray(out, dtype=np.float32)
        return out.reshape(len(out), *self.output_shape)

    def unknown_categories(self) -> dict[str, int]:
        """Per categorical column, how many rows of the last :meth:`transform` held an unseen category."""
        found: dict[str, int] = {}
        for step in self.steps:
            found.update(getattr(step, "unknown_counts", {}) if isinstance(step, TableEncoder) else {})
        return found

    # ------------------------------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.to_dict() for s in self.steps],
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "feature_names": self.feature_names_in_,
            "examples": self.examples,
            "id_column": self.id_column,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Preprocessor:
        try:
            return cls(
                [Transform.from_dict(s) for s in raw["steps"]],
                input_shape=raw["input_shape"],
                output_shape=raw.get("output_shape"),
                feature_names=raw.get("feature_names"),
                examples=raw.get("examples"),
                id_column=raw.get("id_column"),
            )
        except (KeyError, TypeError) as err:
            raise SadkitError(f"a malformed preprocessing description ({type(err).__name__}: {err})") from err

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / PREPROCESSING_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Preprocessor | None:
        """The preprocessing saved in ``folder``, or None when the model has none."""
        path = Path(folder) / PREPROCESSING_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise SadkitError(f"{path} is not a readable preprocessing file ({type(err).__name__}: {err})") from err
        if not isinstance(raw, Mapping):
            raise SadkitError(f"{path} is not a preprocessing file (expected a JSON object)")
        try:
            return cls.from_dict(raw)
        except SadkitError as err:
            raise SadkitError(f"{path}: {err}") from err

    def __repr__(self) -> str:
        kinds = " -> ".join(s.kind for s in self.steps) or "identity"
        return f"Preprocessor({kinds}; {self.input_shape} -> {self.output_shape})"
