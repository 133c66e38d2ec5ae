"""Kernel SSAD: the dual's constraints, kappa acts, selection on validation, the memory guard."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.svm import OneClassSVM

from sadkit import InvalidInputError, auroc, create_dataset
from sadkit.plugins.shallow import ssad as ssad_module
from sadkit.plugins.shallow.features import squared_distances
from sadkit.plugins.shallow.ssad import GAMMA_GRID, SSAD, solve_dual


def _data(n: int = 200, d: int = 4, seed: int = 0):
    """Normals in a blob; a few labeled anomalies outside it and a few labeled normals."""
    rng = np.random.default_rng(seed)
    X = np.clip(rng.normal(0.5, 0.1, size=(n, d)), 0, 1)
    X[:8] = np.clip(rng.normal(0.85, 0.05, size=(8, d)), 0, 1)
    semi_y = np.zeros(n, dtype=np.int64)
    semi_y[:8] = -1
    semi_y[-10:] = 1
    return X.astype(np.float32), semi_y


def test_dual_solution_satisfies_the_constraints():
    X, semi_y = _data()
    K = np.exp(-1.0 * squared_distances(X, X))
    alpha, status = solve_dual(K, semi_y, kappa=1.5, eta_u=0.05, eta_l=0.5)
    assert status == "optimal"
    y = np.where(semi_y == -1, -1.0, 1.0)
    upper = np.where(semi_y == 0, 0.05, 0.5)
    assert np.all(alpha >= -1e-7) and np.all(alpha <= upper + 1e-7)
    assert np.sum(alpha * y) == pytest.approx(1.0, abs=1e-6)
    assert np.sum(alpha[semi_y != 0]) >= 1.5 - 1e-6


def test_kappa_has_an_effect():
    """The reference passes kappa nowhere; here it bounds the labeled samples' dual mass from below."""
    X, semi_y = _data()
    params = {"gamma": 1.0, "eta_u": 0.05, "eta_l": 1.0}
    loose = SSAD(kappa=0.0, **params).fit(X, semi_y=semi_y)
    assert loose.alpha_sum_labeled_ < 2.0  # the constraint below binds
    tight = SSAD(kappa=3.0, **params).fit(X, semi_y=semi_y)
    assert tight.alpha_sum_labeled_ >= 3.0 - 1e-6
    assert not np.allclose(loose.decision_function(X), tight.decision_function(X))


def test_eta_u_and_eta_l_have_an_effect():
    X, semi_y = _data()
    base = SSAD(gamma=1.0).fit(X, semi_y=semi_y).decision_function(X)
    assert not np.allclose(base, SSAD(gamma=1.0, eta_u=0.02).fit(X, semi_y=semi_y).decision_function(X))
    assert not np.allclose(base, SSAD(gamma=1.0, eta_l=0.3, kappa=0.5).fit(X, semi_y=semi_y).decision_function(X))


def test_labeled_anomalies_score_higher_than_without_them():
    X, semi_y = _data()
    with_labels = SSAD(gamma=2.0, eta_u=0.05).fit(X, semi_y=semi_y).decision_function(X[:8])
    unlabeled = SSAD(gamma=2.0, eta_u=0.05).fit(X, semi_y=np.zeros_like(semi_y))
    assert with_labels.mean() > 0  # outside the learned region
    assert np.mean(with_labels > np.median(unlabeled.decision_function(X))) == 1.0


def test_without_labels_ssad_is_the_one_class_svm():
    X, _ = _data()
    nu = 0.1
    ours = SSAD(gamma=1.0, eta_u=1.0 / (nu * len(X))).fit(X).decision_function(X)
    reference = -OneClassSVM(nu=nu, gamma=1.0, tol=1e-6).fit(X.astype(np.float64)).decision_function(X)
    assert spearmanr(ours, reference).statistic > 0.999


def test_gamma_is_chosen_on_validation_only():
    X, semi_y = _data()
    X_val, _ = _data(80, seed=1)
    X_val[:12] = np.random.default_rng(5).uniform(0.2, 0.8, size=(12, X.shape[1]))  # near misses
    y_val = (np.arange(80) < 12).astype(int)
    detector = SSAD().fit(X, semi_y=semi_y, eval_set=(X_val, y_val))
    assert detector.selected_params()["selection"] == "validation"
    assert detector.selected_params()["gamma"] in GAMMA_GRID and len(detector.selection_) == len(GAMMA_GRID)
    flipped = SSAD().fit(X, semi_y=semi_y, eval_set=(X_val, 1 - y_val)).selected_params()
    assert flipped["gamma"] != detector.selected_params()["gamma"]
    assert SSAD().fit(X, semi_y=semi_y).selected_params()["selection"] == "default"


def test_max_samples_keeps_every_labeled_sample():
    X, semi_y = _data(400)
    detector = SSAD(gamma=1.0, max_samples=60, seed=2).fit(X, semi_y=semi_y)
    assert detector.selected_params()["n_fit"] == 60
    kept = {row.tobytes() for row in detector.model_["support"].astype(np.float32)}
    labeled_anomalies = [row.tobytes() for row in X[semi_y == -1]]
    # with kappa = 1 some labeled anomaly carries dual mass, so it is a support vector of the subsample
    assert any(row in kept for row in labeled_anomalies)
    assert np.array_equal(
        detector.decision_function(X),
        SSAD(gamma=1.0, max_samples=60, seed=2).fit(X, semi_y=semi_y).decision_function(X),
    )


def test_more_samples_than_memory_holds_is_a_clear_error():
    """Real memory: a training set whose kernel matrix cannot fit is refused before any n^2 allocation."""
    n = int(np.sqrt(ssad_module.available_memory_bytes() / (ssad_module.QP_MATRICES * 8))) + 2000
    X = np.random.default_rng(0).random((n, 2), dtype=np.float32)
    with pytest.raises(InvalidInputError, match=r"max_samples=N \(N <= \d+ fits"):
        SSAD(gamma=1.0).fit(X)


def test_memory_guard_names_the_way_out(monkeypatch):
    monkeypatch.setattr(ssad_module, "available_memory_bytes", lambda: 4 * 1024**2)  # 4 MiB
    X, semi_y = _data(400)
    with pytest.raises(InvalidInputError, match=r"SSAD on 400 training samples needs .* max_samples=N \(N <= 323"):
        SSAD(gamma=1.0).fit(X, semi_y=semi_y)
    assert SSAD(gamma=1.0, max_samples=200).fit(X, semi_y=semi_y).selected_params()["n_fit"] == 200


def test_impossible_constraints_are_clear_errors():
    X, semi_y = _data()
    with pytest.raises(InvalidInputError, match="kappa=100.0 exceeds"):
        SSAD(gamma=1.0, kappa=100.0).fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="eta_u"):
        SSAD(eta_u=0).fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="max_samples"):
        SSAD(max_samples=1.5).fit(X, semi_y=semi_y)


def test_on_real_odds_data(odds_root):
    train, val, test = create_dataset("odds", name="cardio", root=odds_root, ratio_known_outlier=0.01).load()
    detector = SSAD(max_samples=500).fit(train.X, semi_y=train.semi_y, eval_set=(val.X, val.y))
    assert auroc(test.y, detector.decision_function(test.X)) > 0.85
