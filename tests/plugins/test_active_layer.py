"""The active layer: starts as its base detector, learns from both classes, moves only its bias on one."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from sadkit import InvalidInputError, auroc
from sadkit.errors import SignalNotAvailableError
from sadkit.plugins.active.detector import ActiveDetector

ESAD_FAST = {"n_epochs": 2, "lr_milestones": [1], "device": "cpu"}

# A real detector plugin, installed through an entry point, whose score ignores the feature that
# separates the anomalies (column 1) but whose signal carries it: the layer has something to learn.
TOY = textwrap.dedent(
    '''
    import numpy as np
    from sadkit import Detector

    class FirstColumn(Detector):
        """Scores by the first feature; its signal is every feature."""

        def __init__(self, seed=0):
            self.seed = seed

        def _fit(self, X, y, *, eval_set, callbacks):
            self.fitted_at_ = float(X.sum())

        def _score(self, X):
            return X[:, 0].astype(np.float64)

        def _signal(self, X):
            return X

        def _get_state(self):
            return {"fitted_at": self.fitted_at_}

        def _set_state(self, state):
            self.fitted_at_ = state["fitted_at"]
    '''
)


@pytest.fixture
def toy(fake_distribution, tmp_path):
    (tmp_path / "site" / "toy_active_base.py").write_text(TOY)
    fake_distribution("toy-active-base", {"sadkit.detectors": {"firstcolumn": "toy_active_base:FirstColumn"}})
    rng = np.random.default_rng(0)
    n, n_anom = 400, 40
    X = rng.uniform(0, 1, size=(n, 3)).astype(np.float32)
    y = np.zeros(n, dtype=np.int64)
    y[:n_anom] = 1
    X[:n_anom, 1] = rng.uniform(0.8, 1.0, size=n_anom)  # anomalies: high column 1
    X[n_anom:, 1] = rng.uniform(0.0, 0.7, size=n - n_anom)
    return X, y


def test_without_labels_the_layer_ranks_exactly_like_its_base(toy):
    X, y = toy
    layer = ActiveDetector(base="firstcolumn").fit(X)
    base_scores = layer.base_.decision_function(X)
    assert np.array_equal(np.argsort(layer.decision_function(X), kind="stable"), np.argsort(base_scores, kind="stable"))
    assert auroc(y, layer.decision_function(X)) == pytest.approx(auroc(y, base_scores))
    # the decision boundary (p = 0.5) sits at the 1 - prior quantile of the training scores
    assert (layer.predict_proba(X)[:, 1] > 0.5).mean() == pytest.approx(0.05, abs=0.01)


def test_labels_of_both_classes_teach_the_layer_what_its_base_misses(toy):
    X, y = toy
    semi = np.zeros(len(X), dtype=np.int64)
    semi[:8] = -1  # 8 labeled anomalies
    semi[100:140] = 1  # 40 labeled normals
    before = auroc(y, ActiveDetector(base="firstcolumn").fit(X).decision_function(X))
    after = auroc(y, ActiveDetector(base="firstcolumn", l2=1.0).fit(X, semi_y=semi).decision_function(X))
    assert before < 0.7 and after > 0.95


def test_labels_of_one_class_only_move_the_boundary_not_the_ranking(toy):
    X, _ = toy
    semi = np.zeros(len(X), dtype=np.int64)
    semi[100:140] = 1  # normals only
    unlabeled = ActiveDetector(base="firstcolumn").fit(X)
    normals = ActiveDetector(base="firstcolumn").fit(X, semi_y=semi)
    assert np.array_equal(np.argsort(unlabeled.decision_function(X)), np.argsort(normals.decision_function(X)))
    assert normals.bias_ < unlabeled.bias_  # labeled normals lower every p(anomaly)


def test_warm_start_keeps_the_fitted_base_and_refit_base_does_not():
    from sadkit.data import to_semi_y
    from sadkit.testing import make_data

    X, y, _ = make_data((5,))
    semi = to_semi_y(y)
    warm = ActiveDetector(base_params=ESAD_FAST, warm_start=True, refit_base=False).fit(X, semi_y=np.zeros_like(semi))
    base = warm.base_
    warm.fit(X, semi_y=semi)
    assert warm.base_ is base and warm.n_labeled_ == int((semi != 0).sum())
    refit = ActiveDetector(base_params=ESAD_FAST, warm_start=True, refit_base=True).fit(X, semi_y=np.zeros_like(semi))
    first = refit.base_
    refit.fit(X, semi_y=semi)
    assert refit.base_ is not first


def test_refit_auto_refits_a_base_that_learns_from_labels_and_fine_tunes_one_that_ignores_them():
    assert ActiveDetector(base="deepsad")._update() == ActiveDetector(base="esad")._update() == "refit"
    assert ActiveDetector(base="deepsvdd")._update() == "fine_tune"  # its fit ignores labels
    assert ActiveDetector(base="deepsad", refit_base="fine_tune")._update() == "fine_tune"
    assert ActiveDetector(base="esad", refit_base=False)._update() == "keep"


DEEP_FAST = {"n_epochs": 3, "ae_n_epochs": 2, "lr_milestones": [2], "ae_lr_milestones": [1], "device": "cpu"}


def test_fine_tuning_starts_each_update_from_the_base_fitted_first():
    """Deep SVDD ignores labels in its fit; under the layer its network learns them by fine-tuning, from the
    same start on every update, so the same labels give the same layer whatever came before."""
    from sadkit.data import to_semi_y
    from sadkit.testing import make_data

    X, y, _ = make_data((6,), seed=3)
    semi = to_semi_y(y)
    layer = ActiveDetector(base="deepsvdd", base_params=DEEP_FAST, warm_start=True, fine_tune_epochs=3)
    layer.fit(X, semi_y=np.zeros_like(semi))
    fitted = layer.fitted_base_
    assert layer.base_ is fitted  # no labels, nothing to fine-tune
    untouched = fitted.decision_function(X)
    layer.fit(X, semi_y=semi)
    assert layer.fitted_base_ is fitted and layer.base_ is not fitted
    assert np.array_equal(fitted.decision_function(X), untouched)  # the start is kept as fitted
    moved = layer.base_.decision_function(X)
    assert not np.allclose(moved, untouched)  # the labels reached the network
    assert len(layer.base_.fine_tune_losses_) == 3
    half = semi.copy()
    half[: len(half) // 2] = 0
    layer.fit(X, semi_y=half)  # labeled normals only: nothing Deep SAD's objective does not have already
    assert (half != -1).all() and layer.base_ is fitted
    layer.fit(X, semi_y=semi)  # after other labels, the same labels again: the same network, the same layer
    assert np.array_equal(layer.base_.decision_function(X), moved)
    again = ActiveDetector(base="deepsvdd", base_params=DEEP_FAST, warm_start=True, fine_tune_epochs=3)
    again.fit(X, semi_y=np.zeros_like(semi))
    again.fit(X, semi_y=semi)
    assert np.array_equal(again.decision_function(X), layer.decision_function(X))


def test_fine_tuning_needs_a_base_that_offers_it():
    with pytest.raises(InvalidInputError, match="cannot be fine-tuned"):
        ActiveDetector(base="esad", refit_base="fine_tune").fit(np.zeros((4, 2), dtype=np.float32))


def _tail_labels(n: int = 3000, seed: int = 0):
    """The base scores column 0 (AUROC ~0.92) and the `top` strategy queries its 40 highest. Among them
    the anomalies have a low column 1 and the normals a high one; below the tail it is the other way
    round: a contrast learnt from the queried tail that ranks the rest of the data worse."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.05).astype(np.int64)
    X = np.column_stack([rng.normal(0, 1, n) + 2.0 * y, rng.uniform(0, 1, n), rng.uniform(0, 1, n)])
    X[:, 0] -= X[:, 0].min()  # scores >= 0, like distances
    top = np.argsort(-X[:, 0])[:40]  # what the `top` strategy queries
    tail = np.zeros(n, dtype=bool)
    tail[top] = True
    high, low = rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.4, n)
    X[:, 1] = np.where(tail, np.where(y == 1, low, high), np.where(y == 1, high, low))
    semi = np.zeros(n, dtype=np.int64)
    semi[top] = np.where(y[top] == 1, -1, 1)
    return X.astype(np.float32), y, semi


def test_labels_queried_by_the_score_do_not_make_the_layer_rank_worse(toy):
    X, y, semi = _tail_labels()
    before = auroc(y, ActiveDetector(base="firstcolumn").fit(X).decision_function(X))
    after = ActiveDetector(base="firstcolumn").fit(X, semi_y=semi)
    assert auroc(y, after.decision_function(X)) >= before - 0.002
    assert after.coef_[0] == 1.0 and (after.coef_[1:] >= 0).all()
    # the earlier layer (free weights) learns the tail's contrast (column 1 counts against) and ranks worse
    free = ActiveDetector(base="firstcolumn", score_weight="free", signal_weights="free").fit(X, semi_y=semi)
    assert free.coef_[2] < 0 and auroc(y, free.decision_function(X)) < before - 0.01


def test_a_base_without_signal_is_refused_before_fitting():
    from sadkit.data import to_semi_y
    from sadkit.testing import make_data

    X, y, _ = make_data((5,))
    semi = to_semi_y(y)
    with pytest.raises(SignalNotAvailableError, match="'supervised' has no per-sample signal"):
        ActiveDetector(base="supervised").fit(X, semi_y=semi)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"l2": 0.0}, "l2"),
        ({"prior": 1.5}, "prior"),
        ({"base": "active"}, "itself"),
        ({"score_weight": "loose"}, "score_weight"),
        ({"signal_weights": "any"}, "signal_weights"),
        ({"refit_base": "sometimes"}, "refit_base"),
        ({"fine_tune_epochs": -1}, "fine_tune_epochs"),
    ],
)
def test_bad_layer_parameters_are_clear_errors(params, match):
    from sadkit.data import to_semi_y
    from sadkit.testing import make_data

    X, y, _ = make_data((5,))
    semi = to_semi_y(y)
    with pytest.raises(InvalidInputError, match=match):
        ActiveDetector(**params).fit(X, semi_y=semi)
