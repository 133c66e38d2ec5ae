"""Readers of the image benchmarks' official file formats: IDX files (MNIST, Fashion-MNIST) and CIFAR-10's
Python pickles (read with an unpickler that can build nothing but numpy arrays and plain containers), and
the cache that parses unchanged files once per process."""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sadkit.errors import DataError

#: IDX type codes -> numpy dtypes (big-endian where it matters)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}



def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed, e.g. ``train-images-idx3-ubyte.gz``).

    Raises:
        DataError: the file is not a complete IDX file (bad magic number, truncated data, broken gzip).
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path}: {err}; delete it to download it again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its header is incomplete")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path} is truncated or padded: its header announces shape {shape} ({expected} bytes of"
            f" data) but it holds {len(raw) - header}; delete it to download it again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _numpy_reconstructors() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR-10 batch may name: numpy's array and dtype reconstruction."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    import codecs

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # how pickle protocol 2 writes Python 3 bytes (a text-to-bytes conversion, nothing else)
        ("_codecs", "encode"): codecs.encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _reconstruct
        allowed[(module, "scalar")] = scalar
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain Python containers and nothing else.

    A pickle can name any importable callable (``os.system`` ...); this one refuses every global but
    numpy's array reconstruction, so reading a tampered batch file fails instead of running code.
    """

    _allowed = _numpy_reconstructors()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only numpy arrays, lists and strings"
            ) from None


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: ``(images uint8 (n, 3, 32, 32), labels int64 (n,))``.

    The batches are Python 2 pickles of ``{"data": uint8 (n, 3072), "labels": [...], ...}``; rows
    hold the red, green and blue planes one after the other, so they reshape to channels-first
    directly. Keys may be ``str`` or ``bytes`` (how Python 2 strings come back).

    Raises:
        DataError: the file is not a readable batch, holds anything but arrays and plain data, or
            has the wrong shapes.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # latin1 maps Python 2 byte strings 1:1, which numpy needs to rebuild its arrays
            entry = _ArrayUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"cannot read {path} as a CIFAR-10 batch: {err}") from err
    if not isinstance(entry, Mapping):
        raise DataError(f"{path} is not a CIFAR-10 batch: it holds a {type(entry).__name__}, not a dict")
    entry = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}
    if "data" not in entry or not ("labels" in entry or "fine_labels" in entry):
        raise DataError(f"{path} is not a CIFAR-10 batch: it lacks 'data' or 'labels' (keys: {sorted(entry)})")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(
            f"{path} is not a CIFAR-10 batch: data {data.dtype} {data.shape} with {len(labels)} labels"
            " (expected uint8 (n, 3072) and n labels)"
        )
    return data.reshape(-1, 3, 32, 32), labels


#: the arrays of the files read last, keyed by their paths, sizes and modification times
_READ_CACHE: dict[tuple, tuple[np.ndarray, ...]] = {}
_READ_CACHE_SIZE = 2


def cached_read(paths: dict[str, Path], parse) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``parse(paths)``, reusing the arrays of the last reads of the same unchanged files.

    A reproduction runs many cells on one dataset in one process; decompressing and parsing the files
    once is enough. The arrays are read-only (every split is a copy).
    """
    key = tuple(sorted((name, str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for name, p in paths.items()))
    if key not in _READ_CACHE:
        arrays = tuple(parse(paths))
        for a in arrays:
            a.flags.writeable = False
        while len(_READ_CACHE) >= _READ_CACHE_SIZE:
            _READ_CACHE.pop(next(iter(_READ_CACHE)))
        _READ_CACHE[key] = arrays
    return _READ_CACHE[key]  # type: ignore[return-value]
