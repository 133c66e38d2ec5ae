"""What an experiment is and what it gives: the spec (detector, dataset, parameters, seed) and the result."""

from __future__ import annotations

import dataclasses
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError

#: seed values that mean "draw one" (the reference code crashes on -1)
RANDOM_SEEDS = (None, -1)
#: the tag of a run whose model trained stacked with others: the stack's size
STACK_TAG = "sadkit.stack_size"


@dataclass
class ExperimentSpec:
    """What to run. The YAML form has the same keys (see ``projects/``).

    Attributes:
        detector: registered detector name (``deepsad``).
        dataset: registered dataset name (``odds``).
        params: detector parameters; ``seed``, ``device`` and (for deep detectors) ``net_name`` are
            filled in from the spec and the dataset unless given.
        data: dataset parameters (``name``, ``ratio_known_outlier``, ...).
        seed: one seed for the data sampling, the weights and the batch order; -1 or None draws one.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        experiment: MLflow experiment name.
        tracking_uri: MLflow tracking URI (default: ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``).
        threads: torch CPU threads (default: all cores available to the process).
        log_model: log the fitted detector as an MLflow model.
        run_name: MLflow run name (default ``<detector>-<dataset>-seed<N>``).
    """

    detector: str
    dataset: str
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    seed: int | None = 0
    device: str = "auto"
    experiment: str | None = None
    tracking_uri: str | None = None
    threads: int | None = None
    log_model: bool = True
    run_name: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "spec") -> ExperimentSpec:
        """Build a spec, naming any unknown or missing key."""
        if not isinstance(raw, Mapping):
            raise SpecError(f"{source}: expected a mapping of keys, got {type(raw).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SpecError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        missing = [k for k in ("detector", "dataset") if not raw.get(k)]
        if missing:
            raise SpecError(f"{source}: missing key(s) {', '.join(missing)}")
        for key in ("params", "data"):
            if raw.get(key) is not None and not isinstance(raw[key], Mapping):
                raise SpecError(f"{source}: '{key}' must be a mapping, got {raw[key]!r}")
        values = {k: v for k, v in raw.items() if v is not None or k == "seed"}
        values["params"] = dict(raw.get("params") or {})
        values["data"] = dict(raw.get("data") or {})
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentSpec:
        return cls.from_dict(read_spec_file(path), source=str(path))


def read_spec_file(path: str | Path) -> Any:
    """The YAML of a spec file, or a :class:`SpecError` saying why it cannot be read."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as err:
        raise SpecError(f"spec file {path} does not exist") from err
    except yaml.YAMLError as err:
        raise SpecError(f"{path} is not valid YAML: {err}") from err


@dataclass
class ExperimentResult:
    """What a run measured (also logged to MLflow as metrics and ``results.json``)."""

    run_id: str
    detector: str
    dataset: str
    seed: int
    val_auroc: float
    val_auprc: float
    test_auroc: float
    test_auprc: float
    train_seconds: float
    pretrain_seconds: float
    n_train: int
    n_val: int
    n_test: int
    model_uri: str | None
    params: dict[str, Any]
    data: dict[str, Any]
    #: hyperparameters the detector chose itself (e.g. on the validation split); see Detector.selected_params
    selected: dict[str, Any] = field(default_factory=dict)
    #: the fitted decision: samples scoring above ``threshold`` are flagged (``predict`` gives 1)
    threshold: float = math.nan
    #: precision and recall of those decisions on the test split (NaN without a test split)
    test_precision: float = math.nan
    test_recall: float = math.nan
    #: a leaky protocol the detector asked for (``paper_test_holdout``: test metrics on the other 90%), or None
    leakage: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_seed(seed: int | None) -> int:
    """The seed to use: the given one, or a fresh one for -1/None (logged, so the run is repeatable)."""
    if seed in RANDOM_SEEDS:
        return secrets.randbelow(2**31 - 1)
    seed = int(seed)
    if seed < 0:
        raise SpecError(f"seed must be >= 0, or -1 to draw one; got {seed}")
    return seed
