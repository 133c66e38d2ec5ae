"""What the modules of the package share: Optuna kept quiet, sadkit's names on trials, an import probe."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.trial import TrialState

#: the MLflow tag holding a trial run's Optuna state (COMPLETE, PRUNED, FAILED)
TRIAL_STATE_TAG = "sadkit.trial_state"
#: the prefix of sadkit's user attributes on studies and trials
_ATTR = "sadkit."
_STATE_NAMES = {TrialState.COMPLETE: "COMPLETE", TrialState.PRUNED: "PRUNED", TrialState.FAIL: "FAILED"}

optuna.logging.set_verbosity(optuna.logging.ERROR)


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Hide Optuna's notes that a feature (heartbeat, constant liar) is experimental."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None
