"""The resumable CSV log the issue-17 benchmarks share: read the rows written so far, append new ones."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def read_rows(path: Path) -> list[dict[str, str]]:
    """Every row of ``path`` (none when it does not exist yet)."""
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, rows: Iterable[Mapping[str, Any]], fields: list[str]) -> None:
    """Append ``rows`` (only ``fields``), writing the header first when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerows({k: row.get(k) for k in fields} for row in rows)
