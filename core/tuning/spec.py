"""The study spec: an experiment spec plus how to search, read from YAML and validated by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError
from ..experiment import ExperimentSpec
from ._parse import _at, _int, _number, parse_int_list
from .samplers import SAMPLERS, _pruner_options
from .space import _distribution

#: objectives a study may maximise (validation metrics only: model selection never sees the test set)
METRICS = ("val_auroc", "val_auprc")
#: keys a study spec adds to the experiment spec
STUDY_KEYS = (
    "n_trials",
    "timeout",
    "storage",
    "study_name",
    "sampler",
    "sampler_seed",
    "pruner",
    "n_jobs",
    "devices",
    "seeds",
    "metric",
    "space",
    "heartbeat",
    "stack",
)


@dataclass
class StudySpec:
    """A study: an experiment spec (what to run) plus how to search.

    The YAML form is an experiment spec (``projects/*.yaml``) with the study keys at the top level.

    Attributes:
        experiment: detector, dataset, fixed ``params``, ``data``, device, tracking store, threads.
        n_trials: finished (complete or pruned) trials the study should hold; an invocation runs the
            missing ones (failed trials count against the invocation, not the study).
        timeout: seconds after which an invocation starts no new trial.
        storage: Optuna storage URL (default ``sqlite:///optuna.db``).
        study_name: default ``<detector>-<dataset>[-<data name>]``.
        sampler: ``tpe``, ``random``, ``cmaes`` or ``grid``.
        sampler_seed: seeds the sampler (``--seed``); None draws one.
        pruner: ``median``, ``hyperband`` or ``none``; or ``{type: median, n_warmup_steps: 20, ...}``
            (options of the Optuna pruner); the Python API also takes an Optuna pruner.
        n_jobs: worker processes (default 1, or one per device with ``devices``).
        devices: CUDA device indices; worker ``i`` runs its trials on ``devices[i % len(devices)]``.
        seeds: experiment seeds; the objective is the mean of ``metric`` over them (default: the
            experiment's ``seed``).
        metric: ``val_auroc`` or ``val_auprc``.
        space: overrides of the detector's space: ``{name: {type: float|int, low, high, log?, step?}}``,
            ``{name: {type: categorical, choices: [...]}}``, or ``{name: null}`` to leave it out.
        heartbeat: seconds between a running trial's heartbeats; a trial silent for 3 heartbeats is
            stale (its worker died) and ends FAILED.
        stack: trials asked of Optuna at once and trained as one stacked network (``--stack K``; see
            :mod:`sadkit.tuning.batch`); 1 runs them one at a time.
    """

    experiment: ExperimentSpec
    n_trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    study_name: str | None = None
    sampler: str = "tpe"
    sampler_seed: int | None = 0
    pruner: Any = "median"
    n_jobs: int | None = None
    devices: list[int] | None = None
    seeds: list[int] | None = None
    metric: str = "val_auroc"
    space: dict[str, Any] = field(default_factory=dict)
    heartbeat: int = 10
    stack: int = 1

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "spec") -> StudySpec:
        """Build a study spec from the YAML keys, naming any unknown or bad key."""
        if not isinstance(raw, Mapping):
            raise SpecError(f"{_at(source)}expected a mapping of keys, got {type(raw).__name__}")
        experiment_keys = {f.name for f in dataclasses.fields(ExperimentSpec)}
        unknown = sorted(set(raw) - experiment_keys - set(STUDY_KEYS))
        if unknown:
            raise SpecError(
                f"{_at(source)}unknown key(s) {', '.join(unknown)};"
                f" experiment keys: {', '.join(sorted(experiment_keys))}; study keys: {', '.join(STUDY_KEYS)}"
            )
        study = {k: raw[k] for k in STUDY_KEYS if k in raw and raw[k] is not None}
        rest = {k: v for k, v in raw.items() if k in experiment_keys}
        if "seed" in raw and "seeds" in study:
            raise SpecError(f"{_at(source)}give 'seed' or 'seeds', not both")
        experiment = ExperimentSpec.from_dict(rest, source=source)
        if "log_model" not in raw:
            experiment.log_model = False  # a study trains many models; log them only when asked
        if "space" in study and not isinstance(study["space"], Mapping):
            raise SpecError(f"{_at(source)}'space' must be a mapping of parameter names, got {study['space']!r}")
        spec = cls(experiment=experiment, **study)
        spec.validate(source)
        return spec

    @classmethod
    def from_yaml(cls, path: str | Path) -> StudySpec:
        """Read a study spec from a YAML file (an experiment spec with the study keys at the top level)."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError as err:
            raise SpecError(f"spec file {path} does not exist") from err
        except yaml.YAMLError as err:
            raise SpecError(f"{path} is not valid YAML: {err}") from err
        return cls.from_dict(raw or {}, source=str(path))

    # ------------------------------------------------------------------ validation
    def validate(self, source: str = "") -> None:
        """Check every study setting (the space is checked against the detector in :func:`run_study`)."""
        if isinstance(self.sampler, str):
            self.sampler = self.sampler.lower()
        if self.sampler not in SAMPLERS:
            raise SpecError(f"{_at(source)}unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        _pruner_options(self.pruner, source)  # raises on a bad pruner
        if self.metric not in METRICS:
            raise SpecError(
                f"{_at(source)}unknown metric {self.metric!r};"
                f" a study maximises a validation metric: {', '.join(METRICS)}"
            )
        self.n_trials = _int(self.n_trials, "n_trials", source, minimum=1)
        if self.timeout is not None:
            self.timeout = _number(self.timeout, "timeout", source)
            if self.timeout <= 0:
                raise SpecError(f"{_at(source)}timeout must be > 0 seconds, got {self.timeout}")
        if self.n_jobs is not None:
            self.n_jobs = _int(self.n_jobs, "n_jobs", source, minimum=1)
        self.heartbeat = _int(self.heartbeat, "heartbeat", source, minimum=1)
        self.stack = _int(self.stack, "stack", source, minimum=1)
        if self.stack > 1 and len(self.resolved_seeds()) > 1:
            raise SpecError(
                f"{_at(source)}stack stacks single-seed trials; with several seeds, each trial's seeds already"
                " train stacked: leave stack at 1"
            )
        if self.sampler_seed is not None:
            self.sampler_seed = _int(self.sampler_seed, "sampler_seed", source, minimum=0)
        if self.devices is not None:
            self.devices = parse_int_list(self.devices, "devices", source)
            if not self.devices:
                raise SpecError(f"{_at(source)}devices is empty; give CUDA device indices such as 0,1")
        if self.seeds is not None:
            self.seeds = parse_int_list(self.seeds, "seeds", source)
            if not self.seeds:
                raise SpecError(f"{_at(source)}seeds is empty")
        for seed in self.resolved_seeds():
            if seed is None or seed < 0:
                raise SpecError(
                    f"{_at(source)}a study compares its trials on the same data, so it needs fixed seeds >= 0"
                    f" (got {seed}); set seed or seeds"
                )
        if self.study_name is not None and not str(self.study_name).strip():
            raise SpecError(f"{_at(source)}study_name is empty")
        for name, raw in (self.space or {}).items():
            _distribution(str(name), raw)  # raises SpecError naming space.<name>

    def resolved_seeds(self) -> list[int]:
        """The experiment seeds a trial runs: ``seeds``, or the experiment's ``seed``."""
        return list(self.seeds) if self.seeds else [self.experiment.seed]

    def resolved_name(self) -> str:
        """The study name: ``study_name``, or ``<detector>-<dataset>[-<data name>]``."""
        if self.study_name:
            return str(self.study_name)
        parts = [self.experiment.detector, self.experiment.dataset, self.experiment.data.get("name")]
        return "-".join(str(p) for p in parts if p)
