"""Every registered detector passes the conformance checks that plugin authors use too."""

from __future__ import annotations

import numpy as np
import pytest

from sadkit import Detector, registry
from sadkit.testing import assert_detector_conforms, check_detector, make_data
from sadkit.testing._runner import run_checks


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


# ---------------------------------------------------------------------------------------- __init__ and set_params
class _EagerKNN(_MeanDistance):
    """Builds its "model" in __init__ (PyOD's habit): set_params(n_neighbors=...) never reaches fit."""

    def __init__(self, n_neighbors: int = 5):
        self.n_neighbors = n_neighbors
        self._k = n_neighbors

    def _fit(self, X, y, *, eval_set, callbacks):
        self.reference_ = X.reshape(len(X), -1)

    def _score(self, X):
        d = np.sqrt(((X.reshape(len(X), 1, -1) - self.reference_[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, : self._k].mean(1)

    def _get_state(self):
        return {"reference": self.reference_, "k": self._k}

    def _set_state(self, state):
        self.reference_, self._k = np.asarray(state["reference"]), int(state["k"])


class _EagerKNNWithSpace(_EagerKNN):
    fast_params = {"n_neighbors": 3}

    @classmethod
    def search_space(cls, trial):
        return {"n_neighbors": trial.suggest_int("n_neighbors", 1, 20)}


class _SlowInit(_MeanDistance):
    def __init__(self, scale: float = 1.0):
        import time

        time.sleep(0.1)
        self.scale = scale


class _IgnoresSeed(_MeanDistance):
    """Declares a seed and draws from an unseeded generator anyway."""

    def __init__(self, scale: float = 1.0, seed: int | None = 0):
        self.scale = scale
        self.seed = seed

    def _fit(self, X, y, *, eval_set, callbacks):
        rows = np.random.default_rng().choice(len(X), size=len(X) // 2, replace=False)
        self.mean_ = X[rows].reshape(len(rows), -1).mean(0)


def _results(cls, names, **kwargs):
    from sadkit.testing import detector_params, detectors

    checks = [c for c in detectors.CHECKS if c.__name__.removeprefix("check_") in names]
    X, y, X_test = make_data()
    ctx = detectors.DetectorContext(cls=cls, params={**cls.fast_params, **kwargs}, X=X, y=y, X_test=X_test)
    assert detector_params.INIT_SECONDS < 0.1
    return {r.name: r for r in run_checks(checks, ctx)}


def test_a_detector_that_builds_its_model_in_init_fails_twice():
    results = _results(_EagerKNN, {"init_does_no_work", "set_params_reaches_fit"})
    assert not results["init_does_no_work"].passed
    assert results["init_does_no_work"].message.startswith(
        "__init__ set _k, which is not a parameter: build it in _fit from the parameters (set_params cannot reach"
    )
    assert not results["set_params_reaches_fit"].passed  # no space, no fast_params: n_neighbors nudged to 6
    assert results["set_params_reaches_fit"].message.startswith(
        "set_params(n_neighbors=6) on a detector built with the checks' parameters, then fit, gives other scores than"
        " _EagerKNN(n_neighbors=6)"
    )
    # with fast_params and a search space, both routes find it too
    results = _results(_EagerKNNWithSpace, {"set_params_reaches_fit"})
    assert (
        "set_params(n_neighbors=3) on a detector built with its defaults" in results["set_params_reaches_fit"].message
    )


def test_a_slow_init_fails():
    result = _results(_SlowInit, {"init_does_no_work"})["init_does_no_work"]
    assert not result.passed and result.message.startswith("__init__ took 0.1")
    assert "it must only store its arguments" in result.message


def test_a_detector_that_ignores_its_seed_is_told_so():
    result = _results(_IgnoresSeed, {"same_seed_same_scores"})["same_seed_same_scores"]
    assert not result.passed
    assert "the detector does not honour its seed (seed=0): draw every random number in _fit from it" in result.message


def test_correct_detectors_pass_the_new_checks():
    results = _results(_GoodSpace, {"init_does_no_work", "set_params_reaches_fit", "same_seed_same_scores"})
    assert all(r.passed for r in results.values()), results
