"""One trial and its callbacks: the objective, pruning, and the MLflow tags of trial and parent runs."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from ..callbacks import Callback
from ..errors import SadkitError
from ..experiment import run_experiments
from ..serialize import to_json
from ..tracking import Tracker
from ._common import _ATTR, _STATE_NAMES, TRIAL_STATE_TAG
from .batch import TrialBatch
from .results import _best, _counts, _trial_info
from .space import SearchSpace

if TYPE_CHECKING:
    from .workers import _Plan


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


class _Objective:
    """One trial: suggest parameters, run the experiment for every seed, return the mean metric."""

    def __init__(self, plan: _Plan, tracker: Tracker, space: SearchSpace) -> None:
        self.plan = plan
        self.tracker = tracker
        self.space = space
        #: with ``--stack``, the round of trials this one trains with (see :mod:`.batch`)
        self.batch: TrialBatch | None = None

    def new_batch(self, size: int) -> TrialBatch:
        """The next round of ``size`` stacked trials."""
        stop_on = {optuna.TrialPruned: {TRIAL_STATE_TAG: "PRUNED"}}
        self.batch = TrialBatch(size, self.tracker, parent_run_id=self.plan.parent_run_id, stop_on=stop_on)
        return self.batch

    def __call__(self, trial: Any) -> float:
        batch = self.batch
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr(_ATTR + "error", f"{type(err).__name__}: {err}"[:1000])
            raise
        finally:
            if batch is not None and not batch.has_joined(trial.number):
                batch.abandon()  # it failed before joining its round: the others run without it

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

        def record(run_id: str) -> None:
            trial.set_user_attr(_ATTR + "run_id", run_id)

        if self.batch is not None:  # --stack: this trial's model trains stacked with the batch's others
            results = [
                self.batch.run(
                    trial.number, dataclasses.replace(base, seed=seeds[0], run_name=name), [pruning], tags, record
                )
            ]
        elif len(seeds) == 1:
            results = run_experiments(
                [dataclasses.replace(base, seed=seeds[0], run_name=name)],
                [[pruning]],
                tracker=self.tracker,
                parent_run_id=plan.parent_run_id,
                tags=[tags],
                stop_on=stop_on,
                on_open=[record],
            )
        else:  # one trial run, with a nested run per seed (trained stacked); pruning watches the first seed
            with self.tracker.start_run(
                run_name=name, tags=tags, parent_run_id=plan.parent_run_id, stop_on=stop_on
            ) as run:
                record(run.run_id)
                run.log_params({"detector": base.detector, "dataset": base.dataset, "seeds": seeds, **params})
                run.log_params({f"data.{k}": v for k, v in base.data.items()})
                results = run_experiments(
                    [dataclasses.replace(base, seed=seed, run_name=f"{name}-seed{seed}") for seed in seeds],
                    [[pruning]] + [[] for _ in seeds[1:]],
                    tracker=self.tracker,
                    parent_run_id=run.run_id,
                    tags=[{**tags, "sadkit.seed_run": "true"} for _ in seeds],
                    stop_on=stop_on,
                )
                for i, result in enumerate(results):
                    run.log_metrics({f"{spec.metric}_by_seed": getattr(result, spec.metric)}, step=i)
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
