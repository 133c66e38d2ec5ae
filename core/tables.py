"""A user's table from a file, as a pandas data frame: CSV, TSV, Parquet, NumPy and MATLAB, whole or in
chunks of rows (bounded memory).

Arrays get column names: a 2-D ``.npy`` array's columns are ``x0, x1, ...``; a ``.npz`` or ``.mat`` file's
2-D array ``X`` gives ``x0, x1, ...`` and each 1-D array of the same length (``y``, ``ids``, ...) one
column under its own name, so ``label_column=y`` reads an ODDS file. The ``table`` dataset and
``sadkit score`` read files through here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, InvalidInputError

#: file ending -> format
FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npy": "npy",
    ".npz": "npz",
    ".mat": "mat",
}
#: formats read in chunks of rows; the others are read whole (their readers have no row ranges)
CHUNKED = ("csv", "tsv", "parquet", "npy")
#: rows per chunk when a file is read in chunks
DEFAULT_CHUNK_ROWS = 100_000


def table_format(path: str | os.PathLike) -> str:
    """The format of ``path`` by its ending, or an :class:`InvalidInputError` listing the known ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(
            f"{path}: unknown table format {suffix or '(no ending)'!r}; sadkit reads {', '.join(sorted(FORMATS))}"
        )
    return FORMATS[suffix]


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path} does not exist (or is not a file)")
    if path.stat().st_size == 0:
        raise InvalidInputError(f"{path} is empty: it holds no rows")
    return path


def _array_frame(arrays: dict[str, Any], path: Path) -> Any:
    """``X`` as ``x0, x1, ...`` plus every 1-D array of the same length as a column of its own name."""
    import pandas as pd

    if "X" not in arrays:
        raise DataError(f"{path} holds no array named X (it holds {', '.join(sorted(arrays)) or 'nothing'})")
    X = np.asarray(arrays["X"])
    if X.ndim != 2:
        raise InvalidInputError(f"{path}: X must be 2-D (rows x features), got shape {X.shape}")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    for key, value in arrays.items():
        if key == "X" or key.startswith("__"):
            continue
        value = np.asarray(value)
        if value.ndim == 2 and 1 in value.shape:
            value = value.reshape(-1)
        if value.ndim == 1 and len(value) == len(frame):
            frame[key] = value
    return frame


def _read_mat(path: Path) -> dict[str, Any]:
    import h5py
    import scipy.io
    import scipy.sparse

    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                data = {k: np.array(f[k]).T for k in f if isinstance(f[k], h5py.Dataset)}
        else:
            data = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError) as err:
        raise DataError(f"cannot read {path} as a MATLAB file ({type(err).__name__}: {err})") from err
    return {k: (v.toarray() if scipy.sparse.issparse(v) else v) for k, v in data.items()}


def read_table(path: str | os.PathLike) -> Any:
    """The whole file as a data frame.

    Raises:
        DataError: the file is missing or unreadable.
        InvalidInputError: an unknown ending, or an empty file.
    """
    chunks = list(iter_table(path, chunk_rows=None))
    import pandas as pd

    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def iter_table(path: str | os.PathLike, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> Iterator[Any]:
    """The file as data frames of at most ``chunk_rows`` rows (one frame when None, or for formats not in
    :data:`CHUNKED`). Only one chunk is held in memory at a time for CSV, TSV, Parquet and ``.npy``.
    """
    import pandas as pd

    fmt = table_format(path)
    path = _existing(path)
    if chunk_rows is not None and chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
    try:
        if fmt in ("csv", "tsv"):
            sep = "," if fmt == "csv" else "\t"
            if chunk_rows is None:
                yield pd.read_csv(path, sep=sep)
            else:
                with pd.read_csv(path, sep=sep, chunksize=chunk_rows) as reader:
                    yield from reader
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            if chunk_rows is None:
                yield pq.read_table(path).to_pandas()
            else:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                    yield batch.to_pandas()
        elif fmt == "npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            if array.ndim != 2:
                raise InvalidInputError(f"{path}: a .npy table must be 2-D (rows x columns), got shape {array.shape}")
            step = len(array) if chunk_rows is None else chunk_rows
            columns = [f"x{i}" for i in range(array.shape[1])]
            for start in range(0, max(len(array), 1), max(step, 1)):  # 0 rows: one empty frame
                yield pd.DataFrame(np.asarray(array[start : start + step]), columns=columns)
        elif fmt == "npz":
            with np.load(path, allow_pickle=False) as npz:
                yield _array_frame({k: npz[k] for k in npz.files}, path)
        else:
            yield _array_frame(_read_mat(path), path)
    except pd.errors.EmptyDataError as err:
        raise InvalidInputError(f"{path} is empty: it holds no rows") from err
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        if isinstance(err, InvalidInputError):
            raise
        raise DataError(f"cannot read {path} as {fmt.upper()} ({type(err).__name__}: {err})") from err
