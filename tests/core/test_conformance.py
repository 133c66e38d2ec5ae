"""Every registered detector passes the conformance checks that plugin authors use too."""

from __future__ import annotations

import numpy as np
import pytest

from sadkit import Detector, registry
from sadkit.testing import assert_detector_conforms, check_detector


@pytest.mark.parametrize("name", registry.names("detectors"))
def test_registered_detector_conforms(name):
    assert_detector_conforms(name, sklearn=False)  # scikit-learn's checks: tests/core/test_sklearn_contract.py


class _Sloppy(Detector):
    """Breaks the contract on purpose: mutates a parameter, ignores NaN, random scores."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha * 2

    def _fit(self, X, y, *, eval_set, callbacks):
        self.mean_ = X.mean(0)

    def _score(self, X):
        return np.random.default_rng().normal(size=len(X))

    def _get_state(self):
        return {"mean": self.mean_}

    def _set_state(self, state):
        self.mean_ = state["mean"].numpy()


def test_the_checks_can_fail_and_name_what_failed():
    results = {r.name: r for r in check_detector(_Sloppy, {"alpha": 1.0})}
    assert not results["init_stores_params"].passed and "alpha" in results["init_stores_params"].message
    assert not results["same_seed_same_scores"].passed
    assert not results["save_load_identical"].passed
    with pytest.raises(AssertionError, match="init_stores_params"):
        assert_detector_conforms(_Sloppy)


class _MeanDistance(Detector):
    """A correct detector without a search space; the subclasses below add spaces, good and bad."""

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def _fit(self, X, y, *, eval_set, callbacks):
        if not self.scale > 0:
            raise ValueError("scale must be positive")  # not a sadkit error: the check reports the crash
        self.mean_ = X.reshape(len(X), -1).mean(0)

    def _score(self, X):
        return self.scale * ((X.reshape(len(X), -1) - self.mean_) ** 2).sum(1)

    def _get_state(self):
        return {"mean": self.mean_}

    def _set_state(self, state):
        self.mean_ = np.asarray(state["mean"])


class _GoodSpace(_MeanDistance):
    @classmethod
    def search_space(cls, trial):
        return {"scale": trial.suggest_float("scale", 0.1, 10.0, log=True)}


class _UnknownParameterSpace(_MeanDistance):
    @classmethod
    def search_space(cls, trial):
        return {"shift": trial.suggest_float("shift", 0.0, 1.0)}


class _RenamedSpace(_MeanDistance):
    @classmethod
    def search_space(cls, trial):
        return {"scale": trial.suggest_float("log_scale", 0.1, 1.0)}


class _UnfittableSpace(_MeanDistance):
    @classmethod
    def search_space(cls, trial):
        return {"scale": trial.suggest_float("scale", -1.0, -0.5)}


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (_MeanDistance, None),  # no space: nothing to check
        (_GoodSpace, None),
        (_UnknownParameterSpace, "not parameters of"),
        (_RenamedSpace, "without suggesting them"),
        (_UnfittableSpace, "ValueError: scale must be positive"),
    ],
)
def test_the_search_space_check(cls, expected):
    results = {r.name: r for r in check_detector(cls)}
    others = [r for name, r in results.items() if name != "search_space" and not r.passed]
    assert not others, others  # the detector itself is correct
    if expected is None:
        assert results["search_space"].passed, results["search_space"].message
    else:
        assert not results["search_space"].passed and expected in results["search_space"].message
