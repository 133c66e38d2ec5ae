"""One place that turns sadkit's values into what JSON and ``torch.save(weights_only)`` accept.

Every writer uses it: saved detectors (``detector.json`` and the state tensors), experiment results,
study attributes and reports, the active loop's rounds and the CLI's ``--json`` output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np


def to_json(value: Any, *, strict: bool = False) -> Any:
    """A copy of ``value`` built from dicts, lists, strings, numbers, booleans and None.

    Mappings get string keys; tuples, lists and numpy arrays become lists; numpy scalars Python
    numbers; paths strings. With ``strict``, NaN and infinities become None, so the result is strict
    JSON (``json.dumps(..., allow_nan=False)`` accepts it); otherwise they are kept (Python's json
    writes them as ``NaN``/``Infinity``, which it also reads back).
    """
    if isinstance(value, Mapping):
        return {str(k): to_json(v, strict=strict) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, strict=strict) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist(), strict=strict)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, PurePath):
        return str(value)
    if strict and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_saveable(value: Any) -> Any:
    """A copy of ``value`` that ``torch.load(weights_only=True)`` reads back.

    Numpy arrays become CPU tensors, numpy scalars Python numbers, tensors are detached and moved to
    the CPU; mappings (string keys), lists and tuples (as lists) are converted recursively.
    """
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): to_saveable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_saveable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Path):
        return str(value)
    return value
