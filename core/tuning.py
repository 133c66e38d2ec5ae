"""Optuna studies: the only module of sadkit that imports optuna.

A study searches a detector's parameters for the best *validation* metric (``val_auroc`` by default,
optionally the mean over several seeds); the test metrics of every trial are logged to MLflow for
information only. The space is the detector's own :meth:`~sadkit.Detector.search_space`, less the
parameters a spec fixes (``params`` / ``--param``), with the spec's ``space`` overrides.

Every trial is a normal sadkit experiment (:func:`sadkit.experiment.run_experiment`): one MLflow run
nested under one parent run per study invocation. Deep detectors report ``val_auroc`` per training
epoch; a pruner can stop a trial, which then ends PRUNED in Optuna and KILLED with the tag
``sadkit.trial_state=PRUNED`` in MLflow. A trial that raises ends FAILED in both and the study goes on.

Storage: a SQLite file by default (``sqlite:///optuna.db``), a journal file (``journal:///FILE.log``)
or any RDB URL (PostgreSQL, MySQL). The same study name resumes: ``n_trials`` is the number of finished
(complete or pruned) trials the study should hold, so the same command run again after Ctrl-C or a
crash runs only what is missing. A worker that dies mid-trial stops sending heartbeats; its trial is
marked FAILED (in Optuna and MLflow) once the grace period has passed. ``n_jobs`` worker processes
share one study; the same command on several machines against one RDB URL shares it too.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import multiprocessing
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from .callbacks import Callback
from .errors import SadkitError, SpecError
from .experiment import ExperimentSpec, build, run_experiment
from .registry import get
from .serialize import to_json
from .tracking import Tracker, resolve_tracking_uri

#: objectives a study may maximise (validation metrics only: model selection never sees the test set)
METRICS = ("val_auroc", "val_auprc")
SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_STORAGE = "sqlite:///optuna.db"
DEFAULT_PRUNER_OPTIONS: dict[str, dict[str, Any]] = {
    "median": {"n_startup_trials": 5, "n_warmup_steps": 10},
    "hyperband": {"min_resource": 5, "reduction_factor": 3},
    "none": {},
}
#: the MLflow tag holding a trial run's Optuna state (COMPLETE, PRUNED, FAILED)
TRIAL_STATE_TAG = "sadkit.trial_state"
_ATTR = "sadkit."
_HEARTBEAT_ATTR = "sadkit:heartbeat"
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
)
_STATE_NAMES = {TrialState.COMPLETE: "COMPLETE", TrialState.PRUNED: "PRUNED", TrialState.FAIL: "FAILED"}

optuna.logging.set_verbosity(optuna.logging.ERROR)


# ================================================================================== the spec


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
        return list(self.seeds) if self.seeds else [self.experiment.seed]

    def resolved_name(self) -> str:
        if self.study_name:
            return str(self.study_name)
        parts = [self.experiment.detector, self.experiment.dataset, self.experiment.data.get("name")]
        return "-".join(str(p) for p in parts if p)


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


def _choice(value: Any) -> Any:
    """A categorical choice; numbers written as YAML strings (``1e-4``) become numbers."""
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    return value


# ================================================================================== the search space

_TYPES = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


def _distribution(name: str, raw: Any) -> BaseDistribution | None:
    """One ``space`` entry as an Optuna distribution (None: leave the parameter out of the search)."""
    where = f"space.{name}"
    if raw is None or raw is False:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError(
            f"{where}: expected a mapping such as {{type: float, low: 1.0e-5, high: 1.0e-2, log: true}},"
            f" {{type: categorical, choices: [64, 128]}}, or null to leave it out of the search; got {raw!r}"
        )
    kind = raw.get("type")
    if kind not in _TYPES:
        raise SpecError(f"{where}.type must be float, int or categorical, got {kind!r}")
    unknown = sorted(set(raw) - _TYPES[kind])
    if unknown:
        raise SpecError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a {kind} takes {', '.join(sorted(_TYPES[kind]))}"
        )
    try:
        if kind == "categorical":
            choices = raw.get("choices")
            if not isinstance(choices, (list, tuple)) or not choices:
                raise SpecError(f"{where}.choices must be a non-empty list, got {choices!r}")
            choices = [_choice(c) for c in choices]
            bad = [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]
            if bad:
                raise SpecError(f"{where}.choices may hold numbers, strings, booleans and null only, got {bad[0]!r}")
            return CategoricalDistribution(choices)
        for key in ("low", "high"):
            if key not in raw:
                raise SpecError(f"{where}: missing key {key!r} (a {kind} needs low and high)")
        low, high = _number(raw["low"], f"{where}.low"), _number(raw["high"], f"{where}.high")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise SpecError(f"{where}.log must be true or false, got {log!r}")
        step = raw.get("step")
        if step is not None:
            step = _number(step, f"{where}.step")
        if kind == "int":
            for key, value in (("low", low), ("high", high), ("step", step)):
                if value is not None and value != int(value):
                    raise SpecError(f"{where}.{key} must be an integer for type int, got {value}")
            return IntDistribution(int(low), int(high), log=log, step=int(step) if step is not None else 1)
        return FloatDistribution(low, high, log=log, step=step)
    except ValueError as err:  # Optuna's own checks: low > high, log with low <= 0, log with step
        raise SpecError(f"{where}: {err}") from None


def _suggest(trial: Any, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    raise SadkitError(f"unsupported distribution for {name}: {dist!r}")


class _SpaceTrial:
    """What a detector's ``search_space`` sees: the Optuna trial, with fixed parameters and overrides."""

    def __init__(self, trial: Any, fixed: Mapping[str, Any], overrides: Mapping[str, BaseDistribution]) -> None:
        self._trial = trial
        self._fixed = fixed
        self._overrides = overrides
        self.asked: set[str] = set()

    def _ask(self, name: str, ask: Callable[[], Any]) -> Any:
        self.asked.add(name)
        if name in self._fixed:
            return self._fixed[name]
        if name in self._overrides:
            return _suggest(self._trial, name, self._overrides[name])
        return ask()

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False):
        return self._ask(name, lambda: self._trial.suggest_float(name, low, high, step=step, log=log))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False):
        return self._ask(name, lambda: self._trial.suggest_int(name, low, high, step=step, log=log))

    def suggest_categorical(self, name: str, choices: Sequence[Any]):
        return self._ask(name, lambda: self._trial.suggest_categorical(name, choices))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


class _Recorder:
    """A stand-in trial that records the distributions a space asks for (to validate and to grid)."""

    number = 0

    def __init__(self) -> None:
        self.distributions: dict[str, BaseDistribution] = {}

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False):
        self.distributions[name] = FloatDistribution(low, high, step=step, log=log)
        return low

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False):
        self.distributions[name] = IntDistribution(low, high, step=step, log=log)
        return low

    def suggest_categorical(self, name: str, choices: Sequence[Any]):
        self.distributions[name] = CategoricalDistribution(list(choices))
        return list(choices)[0]

    def report(self, value: float, step: int) -> None:
        pass

    def should_prune(self) -> bool:
        return False

    def set_user_attr(self, key: str, value: Any) -> None:
        pass


class SearchSpace:
    """A detector's own space, less its fixed parameters, with a spec's overrides."""

    def __init__(self, detector: str, fixed: Mapping[str, Any], space: Mapping[str, Any], where: str = "study") -> None:
        self.detector = detector
        self.cls = get("detectors", detector)
        names = list(self.cls._get_param_names())
        unknown = sorted(set(fixed) - set(names))
        if unknown:
            raise SpecError(
                f"--param/params: detector {detector!r} has no parameter {', '.join(map(repr, unknown))};"
                f" its parameters are: {', '.join(names)}"
            )
        self.fixed = dict(fixed)
        self.overrides: dict[str, BaseDistribution] = {}
        removed: dict[str, Any] = {}
        defaults = {k: p.default for k, p in inspect.signature(self.cls.__init__).parameters.items() if k in names}
        for name, raw in (space or {}).items():
            name = str(name)
            if name not in names:
                raise SpecError(
                    f"space.{name}: detector {detector!r} has no parameter {name!r};"
                    f" its parameters are: {', '.join(names)}"
                )
            dist = _distribution(name, raw)
            if name in self.fixed:
                continue  # a fixed value wins over the space
            if dist is None:
                removed[name] = defaults.get(name)
            else:
                self.overrides[name] = dist
        self.removed = removed
        recorder = _Recorder()
        self.suggest(recorder)
        self.distributions = recorder.distributions

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask ``trial`` for the searched parameters; return them (fixed ones are not included)."""
        proxy = _SpaceTrial(trial, {**self.removed, **self.fixed}, self.overrides)
        values = dict(self.cls.search_space(proxy) or {})
        for name, dist in self.overrides.items():
            if name not in proxy.asked:
                values[name] = _suggest(trial, name, dist)
        return {k: v for k, v in values.items() if k not in self.fixed and k not in self.removed}

    def grid(self) -> dict[str, list[Any]]:
        """The grid of the ``grid`` sampler: every parameter needs finitely many values."""
        grid: dict[str, list[Any]] = {}
        infinite = []
        for name, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                grid[name] = list(dist.choices)
            elif isinstance(dist, IntDistribution):
                values = list(range(dist.low, dist.high + 1, dist.step))
                if len(values) > 1000:
                    infinite.append(name)
                grid[name] = values
            elif isinstance(dist, FloatDistribution) and dist.step is not None:
                n = int(round((dist.high - dist.low) / dist.step))
                grid[name] = [float(dist.low + i * dist.step) for i in range(n + 1)]
            else:
                infinite.append(name)
        if infinite:
            first = infinite[0]
            raise SpecError(
                f"the grid sampler needs finitely many values for every searched parameter; {', '.join(infinite)}"
                f" {'is' if len(infinite) == 1 else 'are'} continuous: give e.g. space: {{{first}: {{type: categorical,"
                f" choices: [...]}}}} or a step, fix {'it' if len(infinite) == 1 else 'them'} with --param, or use"
                " another sampler"
            )
        if not grid:
            raise SpecError("the grid sampler has nothing to search: every parameter is fixed")
        return grid


def sample_search_space(cls: type, n: int, seed: int = 0) -> list[tuple[dict[str, Any], set[str]]]:
    """``n`` points of a detector class's own space, drawn by Optuna's random sampler (in memory).

    Each point is what ``cls.search_space`` returned and the names it suggested on the trial; the
    conformance checks (:mod:`sadkit.testing`) build and fit a detector from each.
    """
    points = []
    with _quiet_optuna():
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
        for _ in range(n):
            trial = study.ask()
            values = dict(cls.search_space(trial) or {})
            points.append((values, set(trial.params)))
            study.tell(trial, 0.0)
    return points


# ================================================================================== storages


def storage_url(url: str | None) -> tuple[str, str]:
    """``(kind, target)``: ``("rdb", sqlalchemy_url)`` or ``("journal", path)``.

    Accepted: ``sqlite:///FILE.db`` (relative) / ``sqlite:////abs/FILE.db``, ``postgresql://...``,
    ``mysql+pymysql://...`` (any SQLAlchemy URL), ``journal:///FILE.log`` (relative) /
    ``journal:////abs/FILE.log``, or a bare path ending in ``.db``/``.sqlite`` (SQLite) or
    ``.log``/``.jsonl`` (journal file).
    """
    url = (url or DEFAULT_STORAGE).strip()
    if url.startswith("journal:"):
        path = url[len("journal:") :]
        if path.startswith("///"):
            path = path[3:]
        elif path.startswith("//"):
            raise SadkitError(
                f"bad journal storage URL {url!r}: use journal:///relative/file.log or journal:////absolute/file.log"
            )
        if not path:
            raise SadkitError(f"bad journal storage URL {url!r}: it names no file")
        return "journal", path
    if "://" not in url:
        suffix = Path(url).suffix.lower()
        if suffix in (".db", ".sqlite", ".sqlite3"):
            return "rdb", f"sqlite:///{url}"
        if suffix in (".log", ".jsonl", ".journal"):
            return "journal", url
        raise SadkitError(
            f"{url!r} is not a storage URL; use sqlite:///FILE.db, journal:///FILE.log, "
            "postgresql://USER@HOST/DB or another SQLAlchemy URL"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres") and not _importable("psycopg2") and _importable("psycopg"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # the psycopg 3 driver sadkit's tests use
    return "rdb", url


def describe_storage(url: str | None) -> str:
    """The storage URL without its password (for logs and messages)."""
    kind, target = storage_url(url)
    if kind == "journal":
        return f"journal:///{target}"
    try:
        from sqlalchemy.engine import make_url

        return make_url(target).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return target


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


StaleCallback = Callable[[Any, FrozenTrial], None]


def open_storage(
    url: str | None = None,
    *,
    heartbeat: int | None = None,
    on_stale: StaleCallback | None = None,
    must_exist: bool = False,
) -> Any:
    """An Optuna storage for ``url``, or a :class:`SadkitError` that says why it cannot be used.

    With ``heartbeat`` (seconds), running trials record heartbeats and a trial silent for three of
    them is failed by the next worker that starts a trial (``on_stale`` is then called with it).
    ``must_exist``: a SQLite or journal file that does not exist is an error (rather than created).
    """
    kind, target = storage_url(url)
    shown = describe_storage(url)
    if must_exist:
        path = target if kind == "journal" else target.split(":///", 1)[1] if target.startswith("sqlite:///") else None
        if path and path != ":memory:" and not Path(path).expanduser().is_file():
            raise SadkitError(f"no Optuna storage at {shown}: {path} does not exist; give --storage URL")
    grace = 3 * heartbeat if heartbeat else None
    try:
        with _quiet_optuna():
            if kind == "journal":
                path = Path(target).expanduser()
                if not path.parent.is_dir():
                    raise SadkitError(
                        f"cannot open the journal storage {shown}: the folder {path.parent} does not exist"
                    )
                from optuna.storages.journal import JournalFileBackend

                backend = JournalFileBackend(str(path))
                if heartbeat and _HeartbeatJournalStorage is not None:
                    return _HeartbeatJournalStorage(backend, heartbeat, grace, on_stale)
                return optuna.storages.JournalStorage(backend)
            scheme = target.split("://", 1)[0].lower()
            engine_kwargs: dict[str, Any] = {}
            if scheme.startswith("sqlite"):
                path = target.split(":///", 1)[1] if ":///" in target else ""
                if path and path != ":memory:" and not Path(path).expanduser().parent.is_dir():
                    raise SadkitError(
                        f"cannot open the SQLite storage {shown}: the folder {Path(path).parent} does not exist"
                    )
                engine_kwargs = {"connect_args": {"timeout": 60}}
            elif scheme.startswith(("postgresql", "mysql")):
                engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
            return optuna.storages.RDBStorage(
                target,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=grace,
                heartbeat_stale_trial_callback=on_stale if heartbeat else None,
            )
    except SadkitError:
        raise
    except Exception as err:  # noqa: BLE001 - a refused connection, a missing driver, a bad URL
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SadkitError(
            f"cannot open the Optuna storage {shown}: {type(err).__name__}: {message} (is the URL right and the"
            " database server running and reachable? e.g. sqlite:///optuna.db, journal:///optuna.log,"
            " postgresql://USER@HOST:5432/DB)"
        ) from err


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Hide Optuna's notes that a feature (heartbeat, constant liar) is experimental."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


try:  # heartbeats for journal files: Optuna implements them for RDB storages only
    from optuna.storages._heartbeat import BaseHeartbeat

    class _HeartbeatJournalStorage(optuna.storages.JournalStorage, BaseHeartbeat):
        """A journal storage whose running trials record heartbeats (as trial system attributes)."""

        def __init__(self, backend: Any, interval: int, grace: int | None, on_stale: StaleCallback | None) -> None:
            super().__init__(backend)
            self._interval = int(interval)
            self._grace = int(grace or 2 * interval)
            self._on_stale = on_stale

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, _HEARTBEAT_ATTR, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            stale = []
            for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                beat = trial.system_attrs.get(_HEARTBEAT_ATTR)
                if beat is not None and now - float(beat) > self._grace:
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self._interval

        def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
            return self._on_stale

        def get_failed_trial_callback(self) -> StaleCallback | None:  # older Optuna versions ask this
            return self._on_stale

except ImportError:  # pragma: no cover - a future Optuna without the private base class
    _HeartbeatJournalStorage = None  # type: ignore[assignment,misc]


def fail_stale_trials(study: Any) -> None:
    """Mark the trials of dead workers (no heartbeat for the grace period) FAILED."""
    with _quiet_optuna():
        optuna.storages.fail_stale_trials(study)


# ================================================================================== samplers, pruners


def _pruner_options(pruner: Any, source: str = "") -> tuple[str, dict[str, Any]] | None:
    """``(name, options)`` of a pruner given by name or mapping; None for an Optuna pruner object."""
    if isinstance(pruner, optuna.pruners.BasePruner):
        return None
    if isinstance(pruner, str):
        name, options = pruner.lower(), {}
    elif isinstance(pruner, Mapping):
        options = dict(pruner)
        name = str(options.pop("type", "")).lower()
    else:
        raise SpecError(
            f"{_at(source)}pruner must be a name ({', '.join(PRUNERS)}) or {{type: NAME, ...}}, got {pruner!r}"
        )
    if name not in PRUNERS:
        raise SpecError(f"{_at(source)}unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")
    return name, options


def make_pruner(pruner: Any) -> Any:
    """An Optuna pruner from a name (``median``, ``hyperband``, ``none``), a mapping or a pruner."""
    parsed = _pruner_options(pruner)
    if parsed is None:
        return pruner
    name, options = parsed
    cls = {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }[name]
    try:
        return cls(**{**DEFAULT_PRUNER_OPTIONS[name], **options})
    except (TypeError, ValueError) as err:
        raise SpecError(f"pruner {name}: {err}") from None


def make_sampler(name: str, seed: int | None, space: SearchSpace | None = None) -> Any:
    """An Optuna sampler by name (``tpe``, ``random``, ``cmaes``, ``grid``), seeded."""
    with _quiet_optuna():
        if name == "tpe":
            # constant_liar: parallel workers do not all sample next to the same running trial
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "cmaes":
            if not _importable("cmaes"):
                raise SadkitError(
                    "the cmaes sampler needs the cmaes package, which is not installed: pip install cmaes"
                    " (or use --sampler tpe)"
                )
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "grid":
            if space is None:
                raise SadkitError("the grid sampler needs the search space")
            return optuna.samplers.GridSampler(space.grid(), seed=seed)
    raise SpecError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def _worker_seed(seed: int | None, start_count: int, worker: int) -> int | None:
    """A distinct sampler seed per worker and per invocation (so resumed or parallel samplers differ)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed), int(start_count), int(worker)]).generate_state(1)[0] % (2**31 - 1))


# ================================================================================== results


@dataclass
class TrialInfo:
    """One finished trial, as sadkit reports it."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    seconds: float | None
    run_id: str | None
    message: str | None = None
    n_finished: int = 0
    n_target: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class StudyResult:
    """What a study invocation did, and the study's best trial so far."""

    study_name: str
    storage: str
    metric: str
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    n_run: int
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    best_run_id: str | None
    parent_run_id: str
    experiment: str
    tracking_uri: str
    seconds: float
    trials_per_hour: float | None
    n_jobs: int
    worker_exit_codes: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _trial_info(trial: FrozenTrial, n_finished: int = 0, n_target: int = 0) -> TrialInfo:
    seconds = None
    if trial.datetime_start and trial.datetime_complete:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    message = trial.user_attrs.get(_ATTR + "error")
    if trial.state == TrialState.PRUNED and trial.last_step is not None:
        message = f"pruned after epoch {trial.last_step}"
    elif trial.state == TrialState.FAIL and message is None:
        message = "no error from the objective: its worker was stopped or killed"
    return TrialInfo(
        number=trial.number,
        state=_STATE_NAMES.get(trial.state, trial.state.name),
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        params=dict(trial.user_attrs.get(_ATTR + "params") or trial.params),
        seconds=seconds,
        run_id=trial.user_attrs.get(_ATTR + "run_id"),
        message=message,
        n_finished=n_finished,
        n_target=n_target,
    )


def _counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAILED": 0, "RUNNING": 0, "WAITING": 0}
    for t in trials:
        key = _STATE_NAMES.get(t.state, t.state.name)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _best(study: Any) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


# ================================================================================== trials


class PruningCallback(Callback):
    """Reports the per-epoch validation metric of the ``train`` phase to the trial; prunes when told."""

    def __init__(self, trial: Any, key: str = "val_auroc", phase: str = "train") -> None:
        self.trial = trial
        self.key = key
        self.phase = phase

    def on_epoch_end(self, phase: str, epoch: int, logs: Mapping[str, float]) -> None:
        if phase != self.phase:
            return
        value = logs.get(self.key)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), int(epoch))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.key} {float(value):.4f})")


class _RecordRun(Callback):
    """Stores the MLflow run id on the trial as soon as training starts (so a killed trial keeps it)."""

    def __init__(self, trial: Any, tracker: Tracker) -> None:
        self.trial = trial
        self.tracker = tracker
        self.done = False

    def on_phase_start(self, phase: str, n_epochs: int) -> None:
        if not self.done and self.tracker.last_run_id:
            self.trial.set_user_attr(_ATTR + "run_id", self.tracker.last_run_id)
            self.done = True


@dataclass
class _Plan:
    """What one worker does (picklable: it crosses to spawned worker processes)."""

    spec: StudySpec
    study_name: str
    storage: str | None
    tracking_uri: str
    experiment_name: str
    experiment_id: str
    parent_run_id: str
    n_target: int
    start_count: int
    budget: int
    deadline: float | None
    worker: int = 0
    device: str | None = None
    threads: int | None = None
    in_parent: bool = True


class _Objective:
    """One trial: suggest parameters, run the experiment for every seed, return the mean metric."""

    def __init__(self, plan: _Plan, tracker: Tracker, space: SearchSpace) -> None:
        self.plan = plan
        self.tracker = tracker
        self.space = space

    def __call__(self, trial: Any) -> float:
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr(_ATTR + "error", f"{type(err).__name__}: {err}"[:1000])
            raise

    def _run(self, trial: Any) -> float:
        plan, spec = self.plan, self.plan.spec
        searched = self.space.suggest(trial)
        trial.set_user_attr(_ATTR + "params", to_json(searched))
        trial.set_user_attr(_ATTR + "parent_run_id", plan.parent_run_id)
        trial.set_user_attr(_ATTR + "in_parent", plan.in_parent)
        params = {**spec.experiment.params, **searched}
        seeds = spec.resolved_seeds()
        name = f"{plan.study_name}-trial{trial.number}"
        tags = {
            "sadkit.study": plan.study_name,
            "sadkit.trial": str(trial.number),
            TRIAL_STATE_TAG: "RUNNING",
            "sadkit.worker": str(plan.worker),
            "sadkit.threads": str(plan.threads or "all"),
        }
        trial.set_user_attr(_ATTR + "worker", plan.worker)
        stop_on = {optuna.TrialPruned: {TRIAL_STATE_TAG: "PRUNED"}}
        base = dataclasses.replace(
            spec.experiment,
            params=params,
            device=plan.device or spec.experiment.device,
            threads=plan.threads,
            tracking_uri=plan.tracking_uri,
            experiment=plan.experiment_name,
        )
        pruning = PruningCallback(trial, spec.metric)
        if len(seeds) == 1:
            before = self.tracker.last_run_id
            try:
                result = run_experiment(
                    dataclasses.replace(base, seed=seeds[0], run_name=name),
                    callbacks=[_RecordRun(trial, self.tracker), pruning],
                    tracker=self.tracker,
                    parent_run_id=plan.parent_run_id,
                    tags=tags,
                    stop_on=stop_on,
                )
            finally:
                if self.tracker.last_run_id != before:
                    trial.set_user_attr(_ATTR + "run_id", self.tracker.last_run_id)
            results = [result]
        else:  # one trial run, with a nested run per seed; pruning watches the first seed
            with self.tracker.start_run(
                run_name=name, tags=tags, parent_run_id=plan.parent_run_id, stop_on=stop_on
            ) as run:
                trial.set_user_attr(_ATTR + "run_id", run.run_id)
                run.log_params({"detector": base.detector, "dataset": base.dataset, "seeds": seeds, **params})
                run.log_params({f"data.{k}": v for k, v in base.data.items()})
                results = []
                for i, seed in enumerate(seeds):
                    results.append(
                        run_experiment(
                            dataclasses.replace(base, seed=seed, run_name=f"{name}-seed{seed}"),
                            callbacks=[pruning] if i == 0 else [],
                            tracker=self.tracker,
                            parent_run_id=run.run_id,
                            tags={**tags, "sadkit.seed_run": "true"},
                            stop_on=stop_on,
                        )
                    )
                    run.log_metrics({f"{spec.metric}_by_seed": getattr(results[-1], spec.metric)}, step=i)
                metrics = {}
                for key in ("val_auroc", "val_auprc", "test_auroc", "test_auprc"):
                    values = np.array([getattr(r, key) for r in results], dtype=float)
                    metrics[key] = float(np.mean(values))
                    metrics[f"{key}_std"] = float(np.std(values))
                run.log_metrics(metrics)
        value = float(np.mean([getattr(r, spec.metric) for r in results]))
        if not math.isfinite(value):
            raise SadkitError(
                f"{spec.metric} is not a number: the validation split holds no anomaly or no normal sample;"
                " raise val_fraction or ratio_known_outlier"
            )
        return value


class _TrackTrial:
    """Optuna callback: after each trial, tag its MLflow run with the trial's state and keep the
    parent run's ``sadkit.best_*`` tags up to date (optuna-integration's MLflowCallback, our way)."""

    def __init__(self, tracker: Tracker, parent_run_id: str, n_target: int, on_trial: Callable | None = None) -> None:
        self.tracker = tracker
        self.parent_run_id = parent_run_id
        self.n_target = n_target
        self.on_trial = on_trial

    def __call__(self, study: Any, trial: FrozenTrial) -> None:
        _tag_trial_run(self.tracker, trial)
        if trial.state == TrialState.COMPLETE:
            best = _best(study)
            if best is not None and best.number == trial.number:
                _tag_best(self.tracker, self.parent_run_id, best)
        if self.on_trial is not None:
            counts = _counts(study.get_trials(deepcopy=False))
            self.on_trial(_trial_info(trial, counts["COMPLETE"] + counts["PRUNED"], self.n_target))


def _tag_trial_run(tracker: Tracker, trial: FrozenTrial) -> None:
    run_id = trial.user_attrs.get(_ATTR + "run_id")
    if not run_id:
        return
    state = _STATE_NAMES.get(trial.state, trial.state.name)
    tags: dict[str, Any] = {TRIAL_STATE_TAG: state, "sadkit.trial": trial.number}
    if trial.state == TrialState.COMPLETE:
        tags["sadkit.objective"] = trial.value
    try:
        if trial.state == TrialState.FAIL and tracker.run_status(run_id) not in ("FAILED", "KILLED"):
            # the run itself finished, but the trial failed after it (e.g. a NaN objective)
            error = trial.user_attrs.get(_ATTR + "error", "the trial failed")
            tracker.end_run(run_id, "FAILED", {**tags, "error": error})
        else:
            tracker.set_run_tags(run_id, tags)
    except Exception as err:  # noqa: BLE001 - the store may be another one; never break the study for a tag
        warnings.warn(f"could not tag the MLflow run {run_id} of trial {trial.number}: {err}", stacklevel=2)


def _tag_best(tracker: Tracker, parent_run_id: str, best: FrozenTrial) -> None:
    params = best.user_attrs.get(_ATTR + "params") or best.params
    tags = {
        "sadkit.best_trial": best.number,
        "sadkit.best_value": best.value,
        "sadkit.best_run_id": best.user_attrs.get(_ATTR + "run_id", ""),
        "sadkit.best_params": json.dumps(to_json(params), sort_keys=True),
        **{f"best.{k}": json.dumps(to_json(v)) if isinstance(v, (list, dict)) else v for k, v in params.items()},
    }
    tracker.set_run_tags(parent_run_id, tags)


class _StaleRuns:
    """Called for a trial whose worker died: end its MLflow runs FAILED (and the invocation's parent run
    when that worker was the study process itself)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def __call__(self, study: Any, trial: FrozenTrial) -> None:
        tags = {
            TRIAL_STATE_TAG: "FAILED",
            "error": "its worker stopped sending heartbeats (killed?); the trial was marked FAILED",
        }
        run_id = trial.user_attrs.get(_ATTR + "run_id")
        try:
            if run_id:
                for child in _running_children(self.tracker, run_id):
                    self.tracker.end_run(child, "FAILED", tags)
                if self.tracker.run_status(run_id) == "RUNNING":
                    self.tracker.end_run(run_id, "FAILED", tags)
            parent = trial.user_attrs.get(_ATTR + "parent_run_id")
            if parent and trial.user_attrs.get(_ATTR + "in_parent") and self.tracker.run_status(parent) == "RUNNING":
                self.tracker.end_run(parent, "FAILED", {"error": "the study process stopped (killed?)"})
        except Exception as err:  # noqa: BLE001 - the runs may live in another tracking store
            warnings.warn(f"could not end the MLflow runs of stale trial {trial.number}: {err}", stacklevel=2)


def _running_children(tracker: Tracker, run_id: str) -> list[str]:
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and attributes.status = 'RUNNING'",
    )
    return [r.info.run_id for r in runs]


# ================================================================================== the worker loop


def _optimize(plan: _Plan, on_trial: Callable[[TrialInfo], None] | None = None, tracker: Tracker | None = None) -> int:
    """Run trials of the study until it holds ``n_target`` finished ones, the invocation's budget of
    attempts is spent, the deadline passes or the grid is exhausted. Returns the trials it ran."""
    spec = plan.spec
    if tracker is None:
        tracker = Tracker(plan.tracking_uri, plan.experiment_name)
        tracker.experiment_id = plan.experiment_id  # the parent's (`mlflow run` may have chosen it)
    space = SearchSpace(spec.experiment.detector, spec.experiment.params, spec.space)
    storage = open_storage(spec.storage, heartbeat=spec.heartbeat, on_stale=_StaleRuns(tracker))
    sampler = make_sampler(spec.sampler, _worker_seed(spec.sampler_seed, plan.start_count, plan.worker), space)
    with _quiet_optuna():
        study = optuna.load_study(
            study_name=plan.study_name, storage=storage, sampler=sampler, pruner=make_pruner(spec.pruner)
        )
    objective = _Objective(plan, tracker, space)
    callbacks = [_TrackTrial(tracker, plan.parent_run_id, plan.n_target, on_trial)]
    n_run = 0
    while plan.deadline is None or time.time() < plan.deadline:
        fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        counts = _counts(trials)
        if counts["COMPLETE"] + counts["PRUNED"] + counts["RUNNING"] + counts["WAITING"] >= plan.n_target:
            break
        if len(trials) - plan.start_count >= plan.budget:
            break
        if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study):
            break
        with _quiet_optuna():
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks, gc_after_trial=False)
        n_run += 1
    return n_run


def _interrupt_once(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one interruption: the cleanup must not be cut short
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def _worker_main(plan: _Plan) -> None:
    """Entry point of a spawned worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops workers with SIGTERM
    signal.signal(signal.SIGTERM, _interrupt_once)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        if plan.device and plan.device.startswith("cuda"):
            import torch

            torch.cuda.set_device(torch.device(plan.device))
        _optimize(plan)
    except KeyboardInterrupt:
        sys.exit(130)
    except SadkitError as err:
        print(f"error: study worker {plan.worker}: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


def _run_workers(plans: list[_Plan], study: Any, on_trial: Callable[[TrialInfo], None] | None) -> list[int]:
    """Start one spawned process per plan; report finished trials while they run; return exit codes."""
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_worker_main, args=(p,), name=f"sadkit-study-{p.worker}") for p in plans]
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    n_target = plans[0].n_target

    def report() -> None:
        trials = study.get_trials(deepcopy=False)
        counts = _counts(trials)
        for t in trials:
            if t.state.is_finished() and t.number not in seen:
                seen.add(t.number)
                if on_trial is not None:
                    on_trial(_trial_info(t, counts["COMPLETE"] + counts["PRUNED"], n_target))

    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            procs[0].join(timeout=1.0)
            report()
        report()
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker's trial ends (FAILED in Optuna, KILLED in MLflow)
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
                p.join()
        raise
    return [int(p.exitcode) if p.exitcode is not None else -1 for p in procs]


# ================================================================================== the study


def _signature(spec: StudySpec) -> dict[str, Any]:
    """What must not change when a study resumes: the objective and the data it is measured on."""
    data = {k: v for k, v in spec.experiment.data.items() if k != "root"}
    return to_json(
        {
            "metric": spec.metric,
            "direction": "maximize",
            "detector": spec.experiment.detector,
            "dataset": spec.experiment.dataset,
            "data": data,
            "params": spec.experiment.params,
            "seeds": spec.resolved_seeds(),
        }
    )


def _open_study(spec: StudySpec, storage: Any, name: str) -> Any:
    """Create the study, or load it and check it measures the same thing."""
    shown = describe_storage(spec.storage)
    try:
        with _quiet_optuna():
            study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    except Exception as err:  # noqa: BLE001
        raise SadkitError(f"cannot create or load study {name!r} in {shown}: {type(err).__name__}: {err}") from err
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
        directions = ", ".join(d.name.lower() for d in study.directions)
        raise SadkitError(
            f"study {name!r} in {shown} exists and its direction is {directions}, but a sadkit study maximizes"
            f" {spec.metric}; choose another --study-name (or delete it: optuna delete-study --study-name {name}"
            f" --storage URL)"
        )
    attrs = study.user_attrs
    wanted = _signature(spec)
    stored = attrs.get(_ATTR + "signature")
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise SadkitError(
                f"study {name!r} in {shown} exists and holds trials that sadkit did not run (no"
                f" {_ATTR}signature attribute); choose another --study-name"
            )
        study.set_user_attr(_ATTR + "signature", wanted)
        study.set_user_attr(_ATTR + "metric", spec.metric)
        study.set_user_attr(
            _ATTR + "spec",
            to_json(
                {
                    "detector": spec.experiment.detector,
                    "dataset": spec.experiment.dataset,
                    "data": spec.experiment.data,
                    "params": spec.experiment.params,
                    "seeds": spec.resolved_seeds(),
                    "experiment": spec.experiment.experiment,
                }
            ),
        )
        return study
    differ = [k for k in wanted if stored.get(k) != wanted[k]]
    if differ:
        what = "; ".join(f"{k}: study has {stored.get(k)!r}, asked for {wanted[k]!r}" for k in differ)
        raise SadkitError(
            f"study {name!r} in {shown} exists with another objective or setting ({what}); resume it with the"
            " same settings or choose another --study-name"
        )
    return study


def _check_validation(spec: StudySpec) -> None:
    """Build each seed's experiment once: bad parameters and a validation split without both classes
    fail here, before any study or run exists."""
    for seed in spec.resolved_seeds():
        dataset, _ = build(spec.experiment, seed)
        _, val, _ = dataset.load()
        y = np.asarray(val.y)
        if len(y) == 0 or y.min() == y.max():
            what = "is empty" if len(y) == 0 else f"holds {len(y)} samples, all {'anomalies' if y.min() else 'normal'}"
            raise SadkitError(
                f"the validation split of {spec.experiment.dataset} {spec.experiment.data.get('name', '')} (seed"
                f" {seed}) {what}, so {spec.metric}, the objective of the study, is undefined; raise val_fraction"
                " (e.g. --data val_fraction=0.25) or ratio_known_outlier"
            )


def _devices(spec: StudySpec) -> list[str | None]:
    if not spec.devices:
        return [None]
    from .training import resolve_device

    return [str(resolve_device(f"cuda:{d}")) for d in spec.devices]  # DeviceError when absent


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_study(
    spec: StudySpec,
    *,
    on_trial: Callable[[TrialInfo], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> StudyResult:
    """Create or resume the study of ``spec``, run its missing trials, and return where it stands.

    The study, the MLflow experiment and the parent run exist before any worker starts. With
    ``n_jobs`` > 1, trials run in spawned worker processes (one CUDA device each with ``devices``;
    CPU workers split the cores). ``on_start(n_finished, n_trials)`` is called once the study is open,
    ``on_trial`` in this process for every trial that ends.
    """
    spec.validate()
    name = spec.resolved_name()
    space = SearchSpace(spec.experiment.detector, spec.experiment.params, spec.space)
    if spec.sampler == "grid":
        space.grid()  # a clear error now rather than in every worker
    make_sampler(spec.sampler, 0, space)  # e.g. cmaes without its package
    make_pruner(spec.pruner)
    devices = _devices(spec)
    n_jobs = spec.n_jobs or (len(devices) if spec.devices else 1)
    _check_validation(spec)

    tracking_uri = resolve_tracking_uri(spec.experiment.tracking_uri)
    experiment_name = spec.experiment.experiment or name
    tracker = Tracker(tracking_uri, experiment_name)
    storage = open_storage(spec.storage, heartbeat=spec.heartbeat, on_stale=_StaleRuns(tracker))
    study = _open_study(spec, storage, name)
    fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    counts = _counts(trials)
    budget = max(0, spec.n_trials - counts["COMPLETE"] - counts["PRUNED"] - counts["RUNNING"] - counts["WAITING"])
    if spec.experiment.threads:
        threads: int | None = spec.experiment.threads
    else:
        threads = None if n_jobs == 1 else max(1, _cores() // n_jobs)
    started = time.time()
    deadline = started + spec.timeout if spec.timeout else None
    exit_codes: list[int] = []
    shown = describe_storage(spec.storage)

    with tracker.start_run(run_name=f"{name}-study", tags={"sadkit.study": name, "sadkit.role": "study"}) as parent:
        parent.log_params(
            {
                "study_name": name,
                "storage": shown,
                "metric": spec.metric,
                "direction": "maximize",
                "sampler": spec.sampler,
                "sampler_seed": spec.sampler_seed,
                "pruner": spec.pruner
                if not isinstance(spec.pruner, optuna.pruners.BasePruner)
                else type(spec.pruner).__name__,
                "n_trials": spec.n_trials,
                "n_jobs": n_jobs,
                "devices": spec.devices or [],
                "timeout": spec.timeout,
                "detector": spec.experiment.detector,
                "dataset": spec.experiment.dataset,
                "seeds": spec.resolved_seeds(),
                "space": json.dumps({k: repr(v) for k, v in space.distributions.items()}),
            }
        )
        parent.log_params({f"data.{k}": v for k, v in spec.experiment.data.items()})
        parent.log_params({f"fixed.{k}": v for k, v in spec.experiment.params.items()})
        plans = [
            _Plan(
                spec=spec,
                study_name=name,
                storage=spec.storage,
                tracking_uri=tracking_uri,
                experiment_name=experiment_name,
                experiment_id=tracker.experiment_id,
                parent_run_id=parent.run_id,
                n_target=spec.n_trials,
                start_count=len(trials),
                budget=budget,
                deadline=deadline,
                worker=i,
                device=devices[i % len(devices)],
                threads=threads,
                in_parent=n_jobs == 1,
            )
            for i in range(n_jobs)
        ]
        if on_start is not None:
            on_start(counts["COMPLETE"] + counts["PRUNED"], spec.n_trials)
        try:
            if budget > 0:
                if n_jobs == 1:
                    _optimize(plans[0], on_trial, tracker)
                else:
                    exit_codes = _run_workers(plans, study, on_trial)
        finally:
            trials = study.get_trials(deepcopy=False)
            counts = _counts(trials)
            best = _best(study)
            if best is not None:
                _tag_best(tracker, parent.run_id, best)
            seconds = time.time() - started
            n_run = len(trials) - plans[0].start_count
            parent.log_metrics(
                {
                    "n_complete": counts["COMPLETE"],
                    "n_pruned": counts["PRUNED"],
                    "n_failed": counts["FAILED"],
                    "n_run": n_run,
                    "seconds": seconds,
                    **({"best_value": best.value} if best is not None else {}),
                }
            )
        failed_workers = [c for c in exit_codes if c not in (0,)]
        if exit_codes and len(failed_workers) == len(exit_codes) and n_run == 0:
            raise SadkitError(f"every study worker failed (exit codes {exit_codes}); see the errors above")

    return StudyResult(
        study_name=name,
        storage=shown,
        metric=spec.metric,
        n_trials=counts["COMPLETE"] + counts["PRUNED"],
        n_complete=counts["COMPLETE"],
        n_pruned=counts["PRUNED"],
        n_failed=counts["FAILED"],
        n_run=n_run,
        best_value=best.value if best is not None else None,
        best_params=to_json(best.user_attrs.get(_ATTR + "params") or best.params) if best is not None else {},
        best_trial=best.number if best is not None else None,
        best_run_id=best.user_attrs.get(_ATTR + "run_id") if best is not None else None,
        parent_run_id=parent.run_id,
        experiment=experiment_name,
        tracking_uri=tracking_uri,
        seconds=seconds,
        trials_per_hour=3600.0 * n_run / seconds if n_run and seconds > 0 else None,
        n_jobs=n_jobs,
        worker_exit_codes=exit_codes,
    )


# ================================================================================== after a study


@dataclass
class StudyReport:
    """A study's standing: counts, best trial, the top trials and the parameter importances."""

    study_name: str
    storage: str
    metric: str | None
    detector: str | None
    dataset: str | None
    counts: dict[str, int]
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    best_run_id: str | None
    top: list[TrialInfo]
    importances: dict[str, float] | None
    importance_note: str | None

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["n_trials"] = self.counts.get("COMPLETE", 0) + self.counts.get("PRUNED", 0)
        return out


def list_studies(storage: str | None = None) -> list[str]:
    """The names of the studies in ``storage``."""
    return sorted(optuna.study.get_all_study_names(open_storage(storage, must_exist=True)))


def load_study(name: str, storage: str | None = None) -> Any:
    """An existing study, or a :class:`SadkitError` listing the studies the storage holds."""
    backend = open_storage(storage, must_exist=True)
    try:
        with _quiet_optuna():
            return optuna.load_study(study_name=name, storage=backend)
    except KeyError:
        names = sorted(optuna.study.get_all_study_names(backend))
        raise SadkitError(
            f"no study named {name!r} in {describe_storage(storage)}; it holds: {', '.join(names) or 'no study'}"
        ) from None


def study_report(name: str, storage: str | None = None, top: int = 10) -> StudyReport:
    """The top ``top`` complete trials and the parameter importances (fANOVA) of a study."""
    study = load_study(name, storage)
    trials = study.get_trials(deepcopy=False)
    counts = _counts(trials)
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -float(t.value))
    best = _best(study)
    importances, note = None, None
    if counts["COMPLETE"] < 2:
        note = f"parameter importances need at least 2 complete trials (the study has {counts['COMPLETE']})"
    elif len({float(t.value) for t in complete}) == 1:
        note = (
            f"parameter importances need trials that differ: all {len(complete)} complete trials have"
            f" {study.user_attrs.get(_ATTR + 'metric', 'value')} {float(complete[0].value):.4f}"
        )
    else:
        try:
            with _quiet_optuna():
                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
                importances = {
                    k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()
                }
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            note = f"no parameter importances: {err}"
    spec = study.user_attrs.get(_ATTR + "spec") or {}
    return StudyReport(
        study_name=name,
        storage=describe_storage(storage),
        metric=study.user_attrs.get(_ATTR + "metric"),
        detector=spec.get("detector"),
        dataset=spec.get("dataset"),
        counts=counts,
        best_value=best.value if best else None,
        best_params=to_json(best.user_attrs.get(_ATTR + "params") or best.params) if best else {},
        best_trial=best.number if best else None,
        best_run_id=best.user_attrs.get(_ATTR + "run_id") if best else None,
        top=[_trial_info(t) for t in complete[: max(0, int(top))]],
        importances=importances,
        importance_note=note,
    )


def best_spec(name: str, storage: str | None = None) -> dict[str, Any]:
    """The best trial of a study as an experiment spec (the keys ``sadkit run SPEC.yaml`` reads)."""
    study = load_study(name, storage)
    best = _best(study)
    if best is None:
        raise SadkitError(f"study {name!r} has no complete trial yet, so no best parameters to export")
    spec = study.user_attrs.get(_ATTR + "spec")
    if not spec:
        raise SadkitError(f"study {name!r} was not created by sadkit: it does not say which detector and data it tuned")
    params = {**(spec.get("params") or {}), **(best.user_attrs.get(_ATTR + "params") or best.params)}
    out: dict[str, Any] = {
        "detector": spec["detector"],
        "dataset": spec["dataset"],
        "seed": (spec.get("seeds") or [0])[0],
        "data": spec.get("data") or {},
        "params": params,
    }
    if spec.get("experiment"):
        out["experiment"] = spec["experiment"]
    return to_json(out)


def export_best(name: str, path: str | Path, storage: str | None = None) -> Path:
    """Write the best parameters of a study as a spec that ``sadkit run PATH`` accepts."""
    spec = best_spec(name, storage)
    study = load_study(name, storage)
    best = _best(study)
    metric = study.user_attrs.get(_ATTR + "metric", "val_auroc")
    path = Path(path)
    if not path.parent.is_dir():
        raise SadkitError(f"cannot write {path}: the folder {path.parent} does not exist")
    header = (
        f"# The best parameters of study {name!r} ({describe_storage(storage)}): trial {best.number},"
        f" {metric} {best.value:.4f}.\n# Run them with: sadkit run {path}\n"
    )
    path.write_text(header + yaml.safe_dump(spec, sort_keys=False))
    ExperimentSpec.from_yaml(path)  # what we write, `sadkit run` reads
    return path
