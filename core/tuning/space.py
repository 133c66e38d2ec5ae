"""The search space: a detector's own space, less the fixed parameters, with a spec's overrides."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ..errors import SadkitError, SpecError
from ..registry import get
from ._common import _quiet_optuna
from ._parse import _number

_TYPES = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


def _choice(value: Any) -> Any:
    """A categorical choice; numbers written as YAML strings (``1e-4``) become numbers."""
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    return value


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
