"""Scoring a file of new rows with a fitted model, in bounded memory.

``sadkit score MODEL DATA`` runs :func:`score_file`: the model is a saved detector folder, or a logged
model (``runs:/RUN_ID/model``, ``models:/MODEL_ID``, ``models:/NAME/VERSION``) whose detector folder is
downloaded and read as JSON and tensors (no code from the store runs). The file is any format
:mod:`sadkit.tables` reads, read :data:`~sadkit.tables.DEFAULT_CHUNK_ROWS` rows at a time for CSV, TSV,
Parquet and ``.npy`` (other formats whole). Columns are matched by name (any order); a missing column is
an error naming it; extra columns are ignored, and said once.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .tables import DEFAULT_CHUNK_ROWS, iter_table

#: output formats by the ending of ``--out``
OUTPUTS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def resolve_model(model: str, tracking_uri: str | None = None) -> Any:
    """The detector a folder or a logged-model URI names (a URI is downloaded to a temporary folder)."""
    from .detector import load_detector

    if model.startswith(("runs:/", "models:/")):
        from .tracking import download_model_detector

        with tempfile.TemporaryDirectory() as tmp:
            return load_detector(download_model_detector(model, tmp, tracking_uri))
    path = Path(model).expanduser()
    if not path.exists():
        raise InvalidInputError(
            f"model {model!r} is neither a folder nor a model URI (runs:/RUN_ID/model, models:/MODEL_ID)"
        )
    return load_detector(path)


def parse_threshold_option(value: str | None, detector: Any) -> float:
    """``--threshold``: None keeps the model's ``threshold_``; a number sets it; ``contamination:F`` flags
    the fraction F of the model's training samples (from the quantiles it keeps)."""
    if value is None:
        return float(detector.threshold_)
    kind, sep, amount = value.partition(":")
    if sep and kind == "contamination":
        return detector.threshold_for(float(amount) if _is_number(amount) else math.nan)
    if not sep and _is_number(kind):
        return float(kind)
    raise InvalidInputError(f"--threshold takes a number or contamination:F (e.g. contamination:0.05), got {value!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class ScoreSummary:
    """What a scoring pass saw."""

    n_rows: int = 0
    n_flagged: int = 0
    threshold: float = math.nan
    extra_columns: list[str] = field(default_factory=list)
    unknown_categories: dict[str, int] = field(default_factory=dict)
    id_column: str | None = None


def score_chunks(
    detector: Any,
    data: str | Path,
    *,
    threshold: float,
    chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
    id_column: str | None = None,
    by_position: bool = False,
    summary: ScoreSummary | None = None,
) -> Iterator[Any]:
    """Yield one data frame (id, score, label) per chunk of ``data``; ``summary`` collects the counts."""
    import pandas as pd

    summary = summary if summary is not None else ScoreSummary()
    summary.threshold = threshold
    preprocessor = detector.preprocessor_
    model_id_column = preprocessor.id_column if preprocessor is not None else None
    start = 0
    for chunk in iter_table(data, chunk_rows):
        if len(chunk) == 0:
            continue
        chunk.columns = [str(c) for c in chunk.columns]
        if id_column is not None and id_column not in chunk:
            raise InvalidInputError(
                f"{data} has no id column {id_column!r}; its columns are: {', '.join(chunk.columns)}"
            )
        use_id = id_column or (model_id_column if model_id_column in chunk else None)
        summary.id_column = use_id
        ids = chunk[use_id].to_numpy() if use_id else np.arange(start, start + len(chunk))
        rows = chunk.drop(columns=[use_id]) if use_id else chunk
        if by_position:
            rows = rows.to_numpy()
        elif start == 0 and preprocessor is not None:
            summary.extra_columns = preprocessor.extra_columns(rows)
        scores = detector.decision_function(rows)
        if preprocessor is not None:
            for column, count in preprocessor.unknown_categories().items():
                summary.unknown_categories[column] = summary.unknown_categories.get(column, 0) + count
        labels = (scores > threshold).astype(np.int64)
        summary.n_rows += len(scores)
        summary.n_flagged += int(labels.sum())
        start += len(chunk)
        yield pd.DataFrame({use_id or "row": ids, "score": scores, "label": labels})
    if start == 0:
        raise InvalidInputError(f"{data} holds no rows to score")


def write_scores(frames: Iterator[Any], out: str | Path, on_chunk: Callable[[int], None] | None = None) -> Path:
    """Write the chunks to ``out`` (CSV or Parquet by its ending), one chunk in memory at a time."""
    out = Path(out)
    kind = OUTPUTS.get(out.suffix.lower())
    if kind is None:
        raise InvalidInputError(f"--out must end in {', '.join(OUTPUTS)}, got {out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for i, frame in enumerate(frames):
            if kind == "csv":
                frame.to_csv(out, mode="w" if i == 0 else "a", header=i == 0, index=False, float_format="%.17g")
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = writer or pq.ParquetWriter(out, table.schema)
                writer.write_table(table)
            if on_chunk is not None:
                on_chunk(len(frame))
    finally:
        if writer is not None:
            writer.close()
    return out
