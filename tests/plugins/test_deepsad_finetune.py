"""DeepSAD.fine_tune (and Deep SVDD's): the fitted network trained on with labels, its center kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sadkit import InvalidInputError, NotFittedError
from sadkit.plugins.deepsad.detector import DeepSAD, DeepSVDD

FAST = {"n_epochs": 3, "ae_n_epochs": 2, "lr_milestones": [2], "ae_lr_milestones": [1], "device": "cpu"}


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (200, 4)).astype(np.float32)
    y = np.full(200, -1)  # unlabeled
    X[:10] += 3.0  # anomalies; the first five labeled
    y[:5] = 1
    y[10:30] = 0  # labeled normals
    return X, y


@pytest.mark.parametrize("cls", [DeepSAD, DeepSVDD])
def test_fine_tuning_pushes_the_labeled_anomalies_away_and_keeps_the_center(cls):
    X, y = _data()
    detector = cls(**{**FAST, "lr": 1e-3, "lr_milestones": []}).fit(X)  # no labels at all; ends at lr 1e-3
    center = detector.c_.clone()
    before = detector.decision_function(X)
    detector.fine_tune(X, y, n_epochs=30)
    after = detector.decision_function(X)
    assert torch.equal(detector.c_, center)
    assert len(detector.fine_tune_losses_) == 30
    # the labeled anomalies' distance grows against the labeled normals'
    assert after[:5].mean() / after[10:30].mean() > before[:5].mean() / before[10:30].mean()
    assert np.array_equal(detector.decision_scores_, detector.decision_function(X))  # training scores redone


def test_fine_tuning_goes_on_at_the_learning_rate_the_schedule_ended_with():
    from sadkit.plugins.deepsad.finetune import final_lr

    assert final_lr(DeepSAD(lr=1e-4, n_epochs=150, lr_milestones=[50])) == pytest.approx(1e-5)
    assert final_lr(DeepSVDD(lr=1e-3, n_epochs=150, lr_milestones=[50, 100, 150])) == pytest.approx(1e-5)
    assert final_lr(DeepSAD(lr=1e-3, n_epochs=10, lr_milestones=[])) == pytest.approx(1e-3)


def test_semi_y_is_read_like_y_and_zero_epochs_change_nothing():
    X, y = _data(1)
    semi = np.where(y == 1, -1, np.where(y == 0, 1, 0))
    a = DeepSAD(**FAST).fit(X).fine_tune(X, y, n_epochs=4)
    b = DeepSAD(**FAST).fit(X).fine_tune(X, semi_y=semi, n_epochs=4)
    assert np.array_equal(a.decision_function(X), b.decision_function(X))  # and the same seed, the same result
    c = DeepSAD(**FAST).fit(X)
    scores = c.decision_function(X)
    assert np.array_equal(c.fine_tune(X, y, n_epochs=0).decision_function(X), scores)


def test_fine_tuning_errors_are_clear():
    X, y = _data()
    with pytest.raises(NotFittedError):
        DeepSAD(**FAST).fine_tune(X, y)
    fitted = DeepSAD(**FAST).fit(X)
    with pytest.raises(InvalidInputError, match="not both"):
        fitted.fine_tune(X, y, semi_y=np.zeros(len(X)))
    with pytest.raises(InvalidInputError, match="n_epochs"):
        fitted.fine_tune(X, y, n_epochs=-1)
    with pytest.raises(ValueError, match="features"):
        fitted.fine_tune(X[:, :3], y)


def test_an_fpr_threshold_is_made_again_from_the_eval_set_and_refused_without_one():
    X, y = _data(2)
    val = (X[:60], np.where(np.arange(60) < 10, 1, 0))
    detector = DeepSAD(**FAST, threshold="fpr:0.1").fit(X, eval_set=val)
    state = {k: v.clone() for k, v in detector.net_.state_dict().items()}
    with pytest.raises(InvalidInputError, match="eval_set"):
        detector.fine_tune(X, y, n_epochs=2)
    assert all(torch.equal(v, detector.net_.state_dict()[k]) for k, v in state.items())  # refused before training
    detector.fine_tune(X, y, n_epochs=2, eval_set=val)
    normals = detector.decision_function(val[0][val[1] == 0])
    assert detector.threshold_ == np.quantile(normals, 0.9, method="higher")
