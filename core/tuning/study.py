"""Running a study: create or resume it, open the parent run, run the missing trials, sum up."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna

from ..errors import SadkitError
from ..experiment import build
from ..serialize import to_json
from ..tracking import Tracker, resolve_tracking_uri
from ._common import _ATTR, _quiet_optuna
from .objective import _StaleRuns, _tag_best
from .results import StudyResult, TrialInfo, _best, _counts
from .samplers import make_pruner, make_sampler
from .space import SearchSpace
from .spec import StudySpec
from .storage import describe_storage, fail_stale_trials, open_storage
from .workers import _optimize, _Plan, _run_workers


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
        train, val, _ = dataset.load()
        y = np.asarray(val.y)
        if len(y) and y.min() != y.max():
            continue
        what = "is empty" if len(y) == 0 else f"holds {len(y)} samples, all {'anomalies' if y.min() else 'normal'}"
        if len(y) and not y.min() and not np.asarray(train.y).any():
            params = dataset.get_params()
            todo = (
                f"the training pool holds no anomaly at all (ratio_known_outlier={params.get('ratio_known_outlier')},"
                f" ratio_pollution={params.get('ratio_pollution')}), so no validation split can have one: give"
                " labeled anomalies, e.g. --data ratio_known_outlier=0.01 (or polluting ones, --data"
                " ratio_pollution=0.01)"
            )
        else:
            todo = "raise val_fraction (e.g. --data val_fraction=0.25) or ratio_known_outlier"
        raise SadkitError(
            f"the validation split of {spec.experiment.dataset} {spec.experiment.data.get('name', '')} (seed"
            f" {seed}) {what}, so {spec.metric}, the objective of the study, is undefined; {todo}"
        )


def _devices(spec: StudySpec) -> list[str | None]:
    if not spec.devices:
        return [None]
    from ..training import resolve_device

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
    # trials still RUNNING count as running-and-will-finish here; those whose worker died are failed by
    # their heartbeat later and then replaced (see workers._optimize)
    budget = max(0, spec.n_trials - counts["COMPLETE"] - counts["PRUNED"] - counts["RUNNING"] - counts["WAITING"])
    running_at_start = tuple(t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING)
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
                running_at_start=running_at_start,
                started=started,
            )
            for i in range(n_jobs)
        ]
        if on_start is not None:
            on_start(counts["COMPLETE"] + counts["PRUNED"], spec.n_trials)
        try:
            if budget > 0 or running_at_start:
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
