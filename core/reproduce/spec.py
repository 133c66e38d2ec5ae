"""What a reproduction runs: its spec (methods x data settings x seeds, the paper table) and its cells.

A reproduction spec (YAML, see ``projects/README.md``) names the methods, the dataset, the data
parameters to vary, the seeds and the paper table to compare with. Every cell (method, data setting,
seed) is one experiment, identified by a stable key (the tag :data:`KEY_TAG` of its run).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError
from ..experiment import ExperimentSpec, read_spec_file

KEY_TAG = "sadkit.reproduce.key"
SPEC_KEYS = {
    "kind",
    "name",
    "description",
    "dataset",
    "data",
    "grid",
    "rows",
    "seeds",
    "methods",
    "paper",
    "experiment",
    "tracking_uri",
    "device",
    "threads",
    "log_model",
}
METHOD_KEYS = {"label", "detector", "params"}


@dataclass
class Method:
    """One method of a reproduction: a label for the tables, a detector and its fixed parameters."""

    label: str
    detector: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReproductionSpec:
    """A grid of experiments and the paper table it reproduces."""

    name: str
    dataset: str
    methods: list[Method]
    data: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    rows: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    paper: dict[str, Any] = field(default_factory=dict)
    experiment: str | None = None
    tracking_uri: str | None = None
    device: str = "auto"
    threads: int | None = None
    log_model: bool = False
    description: str = ""
    source: Path | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ReproductionSpec:
        """Read and validate a spec file (see :meth:`from_dict`)."""
        return cls.from_dict(read_spec_file(path), source=Path(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: Path | None = None) -> ReproductionSpec:
        """Validate a spec's mapping: its keys, methods, grid, rows, plugins and paper table.

        Raises:
            SpecError: the spec is incomplete or wrong, naming what to fix.
        """
        where = str(source or "spec")
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where}: expected a mapping of keys")
        unknown = sorted(set(raw) - SPEC_KEYS)
        if unknown:
            raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SPEC_KEYS))}")
        if raw.get("kind", "reproduction") != "reproduction":
            raise SpecError(f"{where}: kind must be 'reproduction', got {raw.get('kind')!r}")
        for key in ("name", "dataset", "methods"):
            if not raw.get(key):
                raise SpecError(f"{where}: missing key '{key}'")
        methods = []
        for i, m in enumerate(raw["methods"]):
            if not isinstance(m, Mapping):
                raise SpecError(f"{where}: methods[{i}] must be a mapping with label, detector, params")
            bad = sorted(set(m) - METHOD_KEYS)
            if bad:
                raise SpecError(
                    f"{where}: methods[{i}] has unknown key(s) {', '.join(bad)}; allowed: label, detector, params"
                )
            if not m.get("detector"):
                raise SpecError(f"{where}: methods[{i}] needs a detector")
            methods.append(
                Method(
                    label=str(m.get("label") or m["detector"]),
                    detector=m["detector"],
                    params=dict(m.get("params") or {}),
                )
            )
        labels = [m.label for m in methods]
        if len(set(labels)) != len(labels):
            raise SpecError(f"{where}: method labels must be unique, got {labels}")
        grid = dict(raw.get("grid") or {})
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise SpecError(f"{where}: grid.{key} must be a non-empty list")
        rows = list(raw.get("rows") or grid)
        missing = [r for r in rows if r not in grid]
        if missing:
            raise SpecError(f"{where}: rows {missing} are not grid keys ({list(grid)})")
        seeds = raw.get("seeds", 10)
        seeds = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
        spec = cls(
            name=str(raw["name"]),
            dataset=raw["dataset"],
            methods=methods,
            data=dict(raw.get("data") or {}),
            grid=grid,
            rows=rows,
            seeds=seeds,
            paper=dict(raw.get("paper") or {}),
            experiment=raw.get("experiment"),
            tracking_uri=raw.get("tracking_uri"),
            device=raw.get("device", "auto"),
            threads=raw.get("threads"),
            log_model=bool(raw.get("log_model", False)),
            description=str(raw.get("description") or ""),
            source=source,
        )
        spec.validate_plugins()
        spec.paper_values()  # a missing numbers file or table fails now
        return spec

    def validate_plugins(self) -> None:
        """Unknown detectors, datasets or parameters fail now, not after hours of other cells."""
        from ..registry import get

        get("datasets", self.dataset)
        for method in self.methods:
            cls = get("detectors", method.detector)
            unknown = sorted(set(method.params) - set(cls._get_param_names()))
            if unknown:
                raise SpecError(
                    f"method {method.label!r}: detector {method.detector!r} has no parameter(s) {', '.join(unknown)}"
                )

    # ------------------------------------------------------------------ cells
    def settings(self) -> list[dict[str, Any]]:
        """Every combination of the grid values (data parameters)."""
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*self.grid.values())]

    def cells(self) -> list[Cell]:
        """Every (data setting, method, seed) of the grid, in that order."""
        return [
            Cell(method=m, setting=s, seed=seed, spec=self)
            for s in self.settings()
            for m in self.methods
            for seed in self.seeds
        ]

    def row_key(self, setting: Mapping[str, Any]) -> str:
        """The table row of a data setting: its values of ``rows``, joined by ``/`` (``all`` without rows)."""
        return "/".join(str(setting[r]) for r in self.rows) if self.rows else "all"

    def paper_values(self) -> tuple[dict[str, dict[str, list]], str]:
        """``{method label: {row key: [mean, std]}}`` and the source line, from the paper data file."""
        if not self.paper:
            return {}, ""
        file = self.paper.get("file", "paper_results.yaml")
        path = Path(file) if Path(file).is_absolute() else (self.source.parent if self.source else Path()) / file
        try:
            tables = yaml.safe_load(path.read_text())
        except FileNotFoundError as err:
            raise SpecError(f"the paper's numbers file {path} does not exist") from err
        table = self.paper.get("table")
        if table not in tables:
            raise SpecError(f"{path} has no table {table!r}; it has {', '.join(tables)}")
        return tables[table].get("values", {}), str(tables[table].get("source", ""))


@dataclass
class Cell:
    """One experiment of a reproduction: a method on one data setting with one seed."""

    method: Method
    setting: dict[str, Any]
    seed: int
    spec: ReproductionSpec

    @property
    def data(self) -> dict[str, Any]:
        """The cell's dataset parameters: the spec's, then its grid setting.

        The paper's scenario (iii) row k_l = 0 has no known anomaly class, so no labeled anomalies:
        such a cell runs with ``ratio_known_outlier = 0`` (the dataset refuses labeled anomalies
        without a known class, rightly, when a user asks for both).
        """
        data = {**self.spec.data, **self.setting}
        if data.get("n_known_outlier_classes") == 0:
            data["ratio_known_outlier"] = 0.0
        return data

    @property
    def setting_label(self) -> str:
        """The cell's grid values, e.g. ``normal_class=3, ratio_known_outlier=0.05`` (rows may hold fewer)."""
        return ", ".join(f"{k}={v}" for k, v in self.setting.items()) or "-"

    @property
    def key(self) -> str:
        """A stable identity: the same cell in a later invocation has the same key."""
        ident = {
            "name": self.spec.name,
            "dataset": self.spec.dataset,
            "detector": self.method.detector,
            "params": self.method.params,
            "data": self.data,
            "seed": self.seed,
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def experiment_spec(self) -> ExperimentSpec:
        """The cell as an experiment spec (its run is named after the method, setting and seed)."""
        return ExperimentSpec(
            detector=self.method.detector,
            dataset=self.spec.dataset,
            params=dict(self.method.params),
            data=self.data,
            seed=self.seed,
            device=self.spec.device,
            experiment=self.spec.experiment or self.spec.name,
            tracking_uri=self.spec.tracking_uri,
            threads=self.spec.threads,
            log_model=self.spec.log_model,
            run_name=f"{self.method.label} {self.setting_label} seed{self.seed}",
        )
