"""Reading the values of a study spec: integers, numbers and lists, or a SpecError naming the key."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError


def _at(source: str) -> str:
    """The prefix of a message about a spec: ``"projects/x.yaml: "``, or nothing for the command line."""
    return f"{source}: " if source else ""


def parse_int_list(value: Any, key: str, source: str = "") -> list[int]:
    """``"0,1"``, ``[0, 1]`` or ``0`` -> ``[0, 1]`` / ``[0]``, or a :class:`SpecError` naming ``key``."""
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    return [_int(v, key, source, minimum=0) for v in items]


def _int(value: Any, key: str, source: str, minimum: int | None = None) -> int:
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        out = int(float(value))
    except (TypeError, ValueError):
        raise SpecError(f"{_at(source)}{key} must be an integer, got {value!r}") from None
    if minimum is not None and out < minimum:
        raise SpecError(f"{_at(source)}{key} must be >= {minimum}, got {out}")
    return out


def _number(value: Any, key: str, source: str = "") -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)  # YAML reads 1e-5 (no dot) as a string
    except (TypeError, ValueError):
        raise SpecError(f"{_at(source)}{key} must be a number, got {value!r}") from None
