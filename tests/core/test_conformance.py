"""Every registered detector passes the conformance checks that plugin authors use too."""

from __future__ import annotations

import numpy as np
import pytest

from sadkit import Detector, registry
from sadkit.testing import assert_detector_conforms, check_detector


@pytest.mark.parametrize("name", registry.names("detectors"))
def test_registered_detector_conforms(name):
    assert_detector_conforms(name)


class _Sloppy(Detector):
    """Breaks the contract on purpose: mutates a parameter, ignores NaN, random scores."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha * 2

    def _fit(self, X, semi_y, *, eval_set, callbacks):
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
