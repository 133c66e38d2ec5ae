"""SS-DGM: learns from labeled anomalies, works without labels, M2 and M1+M2, layer sizes, scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from sadkit import InvalidInputError, auroc, create_dataset
from sadkit.plugins.semidgm.detector import SemiDGM
from sadkit.testing import assert_detector_conforms

FAST = {"n_epochs": 30, "vae_n_epochs": 10, "device": "cpu", "hidden": [16, 8], "z_dim": 4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n: int = 400, d: int = 6, seed: int = 0, n_labeled: int = 12):
    """Normals near 0.3, anomalies near 0.7 (10%); a few anomalies labeled."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(np.int64)
    X = np.clip(rng.normal(np.where(y[:, None] == 1, 0.7, 0.3), 0.1, size=(n, d)), 0, 1).astype(np.float32)
    semi_y = np.zeros(n, dtype=np.int64)
    semi_y[np.flatnonzero(y == 1)[:n_labeled]] = -1
    return X, y, semi_y


def test_learns_anomalies_from_a_few_labels():
    X, _, semi_y = _data()
    X_test, y_test, _ = _data(seed=1)
    detector = SemiDGM(**FAST).fit(X, semi_y=semi_y)
    assert auroc(y_test, detector.decision_function(X_test)) > 0.95
    # the default alpha is the reference's 0.1 * n_unlabeled / n_labeled
    assert detector.alpha_ == pytest.approx(0.1 * (len(X) - 12) / 12)


def test_works_without_any_label():
    """The reference divides by zero here; the labeled terms are simply absent."""
    X, _, _ = _data()
    with pytest.warns(UserWarning, match="without labeled samples"):
        detector = SemiDGM(**{**FAST, "n_epochs": 3}).fit(X)
    scores = detector.decision_function(X)
    assert np.isfinite(scores).all() and np.isfinite(detector.train_losses_).all()
    assert detector.alpha_ == 0.0


def test_score_ranks_like_the_probability_of_the_anomaly_class():
    X, _, semi_y = _data()
    detector = SemiDGM(**{**FAST, "n_epochs": 5}).fit(X, semi_y=semi_y)
    proba = detector.predict_proba(X)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert spearmanr(detector.decision_function(X), proba[:, 1]).statistic > 0.999
    log_odds = np.log(proba[:, 1]) - np.log(proba[:, 0])
    assert np.allclose(detector.decision_function(X), log_odds, atol=1e-4)


def test_m1m2_runs_m2_on_a_frozen_pretrained_vae():
    X, _, semi_y = _data()
    detector = SemiDGM(**{**FAST, "model": "m1m2", "n_epochs": 3, "vae_n_epochs": 4}).fit(X, semi_y=semi_y)
    assert len(detector.pretrain_losses_) == 4 and len(detector.train_losses_) == 3
    features = detector.model_.features
    assert features is not None and not any(p.requires_grad for p in features.parameters())
    # M2 reads z1 (the VAE's latent) and classifies its mean
    assert detector.model_.classifier[0].in_features == 4
    assert np.isfinite(detector.decision_function(X)).all()
    assert_detector_conforms("semidgm", {"model": "m1m2"}, sklearn=False)


def test_layer_sizes_follow_the_datasets_network():
    X = np.random.default_rng(0).random((50, 21), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        detector = SemiDGM(net_name="cardio_mlp", n_epochs=1, device="cpu").fit(X)
    assert detector.dims_ == {"x_dim": 21, "hidden": [32, 16], "z_dim": 8}  # the reference's cardio_DGM_M2
    assert detector.model_.encoder.hidden[0].in_features == 21 + 2


def test_bad_parameters_are_clear_errors():
    X, _, semi_y = _data(50)
    with pytest.raises(InvalidInputError, match="model must be 'm2' or 'm1m2'"):
        SemiDGM(model="m3").fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="both hidden and z_dim"):
        SemiDGM(hidden=[8]).fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="cardio_mlp"):
        SemiDGM(net_name="cardio_mlp").fit(X, semi_y=semi_y)  # 6 features, not 21
    with pytest.raises(InvalidInputError, match="lr=0"):
        SemiDGM(lr=0).fit(X, semi_y=semi_y)


def test_on_real_odds_data(odds_root):
    train, _, test = create_dataset("odds", name="satimage-2", root=odds_root, ratio_known_outlier=0.01).load()
    detector = SemiDGM(net_name="satimage-2_mlp", n_epochs=10, device="cpu").fit(train.X, semi_y=train.semi_y)
    assert auroc(test.y, detector.decision_function(test.X)) > 0.9
