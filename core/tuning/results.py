"""What sadkit reports of a study: a finished trial, an invocation's result, counts and the best trial."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from ._common import _ATTR, _STATE_NAMES


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
