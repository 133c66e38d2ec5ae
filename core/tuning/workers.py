"""The worker loop: run trials until the study holds enough, in this process or in spawned workers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from ..errors import SadkitError
from ..tracking import Tracker
from ._common import _quiet_optuna
from .objective import _Objective, _StaleRuns, _TrackTrial
from .results import TrialInfo, _counts, _trial_info
from .samplers import _worker_seed, make_pruner, make_sampler
from .space import SearchSpace
from .spec import StudySpec
from .storage import fail_stale_trials, open_storage


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
    #: trials RUNNING when this invocation opened the study: live workers elsewhere, or dead ones that
    #: the heartbeat will fail (those are replaced, see :func:`_optimize`)
    running_at_start: tuple[int, ...] = ()
    #: when this invocation opened the study (time.time())
    started: float = 0.0


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
        finished = counts["COMPLETE"] + counts["PRUNED"]
        if finished >= plan.n_target:
            break
        attempts_left = plan.budget + _replaced(plan, trials) - (len(trials) - plan.start_count)
        room = plan.n_target - finished - counts["RUNNING"] - counts["WAITING"]
        if attempts_left <= 0 or room <= 0:
            if not _suspects(plan, trials):
                break  # the budget is spent, or the rest is running in live workers
            time.sleep(min(1.0, spec.heartbeat))  # a dead worker's trial is failed by its heartbeat, then replaced
            continue
        if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study):
            break
        size = max(1, min(spec.stack, attempts_left, room))
        if spec.stack > 1:  # a round of `size` trials, Optuna's threads, trained as one stack
            objective.new_batch(size)
        with _quiet_optuna():
            study.optimize(
                objective, n_trials=size, n_jobs=size, catch=(Exception,), callbacks=callbacks, gc_after_trial=False
            )
        n_run += size
    return n_run


def _replaced(plan: _Plan, trials: list[Any]) -> int:
    """Trials that were RUNNING when the invocation started and have FAILED since (their worker died):
    the budget counted them as running, so each gets a replacement."""
    return sum(1 for t in trials if t.number in plan.running_at_start and t.state == optuna.trial.TrialState.FAIL)


def _suspects(plan: _Plan, trials: list[Any]) -> bool:
    """Whether a trial that was RUNNING when the invocation started still is, and may yet turn out dead:
    its last heartbeat came before the start, so past 3 heartbeats (Optuna's grace period, see
    ``open_storage``) and a margin it is either failed or alive."""
    if time.time() > plan.started + 4 * plan.spec.heartbeat + 5:
        return False
    return any(t.number in plan.running_at_start and t.state == optuna.trial.TrialState.RUNNING for t in trials)


def _interrupt_once(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one interruption: the cleanup must not be cut short
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def _worker_main(plan: _Plan) -> None:
    """Entry point of a spawned worker process."""
    # Ctrl-C and a hang-up go to the parent too, which stops the workers with SIGTERM
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
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
