"""Samplers and pruners by name, seeded per worker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from ..errors import SadkitError, SpecError
from ._common import _importable, _quiet_optuna
from ._parse import _at

if TYPE_CHECKING:
    from .space import SearchSpace

SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_PRUNER_OPTIONS: dict[str, dict[str, Any]] = {
    "median": {"n_startup_trials": 5, "n_warmup_steps": 10},
    "hyperband": {"min_resource": 5, "reduction_factor": 3},
    "none": {},
}


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
