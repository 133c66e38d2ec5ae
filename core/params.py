"""Checking a detector's parameters against the types its ``__init__`` annotates.

``-p n_epochs=abc`` or ``-p n_epochs=2.5`` must be a one-line error naming the parameter, not a traceback
deep in the training loop or a silent truncation. Every detector already annotates its parameters (it
is a scikit-learn estimator with an explicit signature), so the types are read from there; parameters
without an annotation (or annotated ``Any``) are left to the detector's own ``_validate_params``.
"""

from __future__ import annotations

import inspect
import numbers
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidInputError


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the type ``hint`` (the subset of typing that detectors use)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool) or type(value).__name__ == "bool_"
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, typing.Sequence) or hint in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return not args or all(_matches(v, args[0]) for v in value)
    if origin in (dict, Mapping) or hint is dict:
        return isinstance(value, Mapping)
    if typing.get_origin(hint) is typing.Literal:
        return value in typing.get_args(hint)
    return True  # a type this checker does not know: the detector's own validation decides


def _describe(hint: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    if hint in names:
        return names[hint]
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union or type(hint).__name__ == "UnionType":
        return " or ".join(_describe(a) for a in args)
    if args and typing.get_origin(hint) in (list, tuple, Sequence, typing.Sequence):
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s"
    return getattr(hint, "__name__", str(hint))


def check_annotated_types(estimator: Any) -> None:
    """Raise :class:`InvalidInputError` for the first parameter whose value does not fit its annotation."""
    cls = type(estimator)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations (a third party's): nothing to check
        return
    for name in inspect.signature(cls.__init__).parameters:
        if name == "self" or name not in hints or not hasattr(estimator, name):
            continue
        value = getattr(estimator, name)
        if not _matches(value, hints[name]):
            raise InvalidInputError(
                f"{cls.__name__}: {name} must be {_describe(hints[name])}, got {value!r}"
            )
