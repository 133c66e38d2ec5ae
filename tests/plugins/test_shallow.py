"""OC-SVM, Isolation Forest and KDE: scores as scikit-learn's, selection on validation only, real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SkIsolationForest
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM

from sadkit import InvalidInputError, auroc, create_dataset, create_detector, load_detector
from sadkit.plugins.shallow.iforest import IsolationForest
from sadkit.plugins.shallow.kde import BANDWIDTH_GRID, KDE
from sadkit.plugins.shallow.ocsvm import GAMMA_GRID, NU_GRID, OCSVM


def _blobs(n: int = 300, d: int = 5, seed: int = 0, n_anomalies: int = 15):
    """Normals in a tight blob, anomalies spread out; y = 1 for anomalies."""
    rng = np.random.default_rng(seed)
    X = np.clip(rng.normal(0.5, 0.08, size=(n, d)), 0, 1)
    X[:n_anomalies] = rng.uniform(0, 1, size=(n_anomalies, d))
    y = np.zeros(n, dtype=np.int64)
    y[:n_anomalies] = 1
    perm = rng.permutation(n)
    return X[perm].astype(np.float32), y[perm]


@pytest.fixture(scope="module")
def data():
    X, _ = _blobs(300, seed=0, n_anomalies=0)
    X_val, y_val = _blobs(120, seed=1)
    X_test, y_test = _blobs(200, seed=2)
    return X, (X_val, y_val), (X_test, y_test)


# ------------------------------------------------------------------------------------------ OC-SVM
def test_ocsvm_scores_are_minus_sklearns_decision_function(data):
    X, _, (X_test, _) = data
    ours = OCSVM(nu=0.2, gamma=0.5).fit(X).decision_function(X_test)
    reference = OneClassSVM(nu=0.2, gamma=0.5).fit(X.astype(np.float64)).decision_function(X_test)
    assert np.allclose(ours, -reference, atol=1e-9)


def test_ocsvm_grid_is_the_papers_and_chooses_on_validation(data):
    X, eval_set, _ = data
    assert NU_GRID == (0.01, 0.05, 0.1, 0.2, 0.5)
    assert GAMMA_GRID == tuple(2.0**k for k in range(-7, 3))
    detector = OCSVM().fit(X, eval_set=eval_set)
    chosen = detector.selected_params()
    assert chosen["selection"] == "validation" and chosen["nu"] in NU_GRID and chosen["gamma"] in GAMMA_GRID
    assert len(detector.selection_) == 50
    best = max(detector.selection_, key=lambda row: (row["val_auroc"], row["val_auprc"]))
    assert best["val_auroc"] == auroc(eval_set[1], detector.decision_function(eval_set[0]))


def test_ocsvm_selection_follows_the_validation_split(data):
    X, (X_val, y_val), _ = data
    first = OCSVM().fit(X, eval_set=(X_val, y_val)).selected_params()
    assert OCSVM().fit(X, eval_set=(X_val, y_val)).selected_params() == first  # deterministic
    # an adversarial validation split (labels flipped) must move the choice: it is what selects
    flipped = OCSVM().fit(X, eval_set=(X_val, 1 - y_val)).selected_params()
    assert (flipped["nu"], flipped["gamma"]) != (first["nu"], first["gamma"])


def test_ocsvm_values_given_by_the_user_leave_the_grid(data):
    X, eval_set, _ = data
    detector = OCSVM(nu=0.05).fit(X, eval_set=eval_set)
    assert detector.selected_params()["nu"] == 0.05
    assert {row["nu"] for row in detector.selection_} == {0.05} and len(detector.selection_) == 10
    fixed = OCSVM(nu=0.05, gamma=0.25).fit(X, eval_set=eval_set).selected_params()
    assert fixed == {"nu": 0.05, "gamma": 0.25, "selection": "given", "n_fit": len(X)}


def test_ocsvm_without_a_usable_validation_split_uses_defaults(data):
    X, (X_val, y_val), _ = data
    no_val = OCSVM().fit(X).selected_params()
    normals_only = OCSVM().fit(X, eval_set=(X_val[y_val == 0], y_val[y_val == 0])).selected_params()
    scale = 1.0 / (X.shape[1] * X.astype(np.float64).var())
    for chosen in (no_val, normals_only):
        assert chosen["selection"] == "default" and chosen["nu"] == 0.1
        assert chosen["gamma"] == pytest.approx(scale)


def test_ocsvm_max_samples_subsamples_with_the_seed(data):
    X, _, (X_test, _) = data
    a = OCSVM(nu=0.1, gamma=1.0, max_samples=100, seed=3).fit(X)
    b = OCSVM(nu=0.1, gamma=1.0, max_samples=100, seed=3).fit(X)
    assert a.selected_params()["n_fit"] == 100
    assert np.array_equal(a.decision_function(X_test), b.decision_function(X_test))
    with pytest.raises(InvalidInputError, match="max_samples"):
        OCSVM(max_samples=1).fit(X)
    with pytest.raises(InvalidInputError, match="nu"):
        OCSVM(nu=1.5).fit(X)


# -------------------------------------------------------------------------------- Isolation Forest
@pytest.mark.parametrize("max_features", [1.0, 0.6])
def test_isolation_forest_matches_sklearn(data, max_features):
    X, _, (X_test, _) = data
    ours = IsolationForest(max_features=max_features, seed=7).fit(X)
    reference = SkIsolationForest(n_estimators=100, max_samples=256, max_features=max_features, random_state=7)
    reference.fit(X)
    expected = -reference.score_samples(X_test)
    assert np.max(np.abs(ours.decision_function(X_test) - expected)) <= 1e-10


def test_isolation_forest_uses_the_papers_settings(data):
    X, _, _ = data
    detector = create_detector("iforest")
    assert (detector.n_estimators, detector.max_samples) == (100, 256)
    fitted = detector.fit(X)
    assert len(fitted.forest_["roots"]) == 100 and fitted.forest_["max_samples"] == 256
    assert IsolationForest().fit(X[:50]).forest_["max_samples"] == 50  # all samples when fewer


# -------------------------------------------------------------------------------------------- KDE
def test_kde_scores_are_minus_log_density(data):
    X, _, (X_test, _) = data
    ours = KDE(bandwidth=0.3).fit(X).decision_function(X_test)
    reference = KernelDensity(bandwidth=0.3).fit(X.astype(np.float64)).score_samples(X_test.astype(np.float64))
    assert np.allclose(ours, -reference, rtol=1e-9, atol=1e-9)


def test_kde_far_points_under_a_tiny_bandwidth_keep_a_finite_density(data):
    """Points far from every training sample: each kernel term underflows, the log density must not."""
    X, _, _ = data
    far = X[:5].astype(np.float64) + 3.0
    ours = KDE(bandwidth=2.0**-7).fit(X).decision_function(far)
    reference = KernelDensity(bandwidth=2.0**-7).fit(X.astype(np.float64)).score_samples(far)
    assert np.all(np.isfinite(ours)) and ours.min() > 1e4
    assert np.allclose(ours, -reference, rtol=1e-7)  # squared distances by the expansion: rounding


def test_kde_bandwidth_is_cross_validated_on_training_data_as_gridsearchcv(data):
    X, _, _ = data
    detector = KDE(seed=5).fit(X)
    search = GridSearchCV(
        KernelDensity(), {"bandwidth": list(BANDWIDTH_GRID)}, cv=KFold(5, shuffle=True, random_state=5)
    ).fit(X.astype(np.float64))
    assert detector.bandwidth_ == pytest.approx(search.best_params_["bandwidth"])
    assert detector.selected_params()["selection"] == "cross-validation"
    assert 2.0**0.5 in BANDWIDTH_GRID and 2.0**5 in BANDWIDTH_GRID  # the reference's grid is inside
    assert detector.selected_params()["at_grid_edge"] is False


def test_kde_says_when_cross_validation_stops_at_the_end_of_the_grid():
    """Samples on a lattice 2^-9 apart: the likelihood wants a bandwidth below the grid's smallest."""
    X = (np.random.default_rng(0).integers(0, 8, size=(200, 2)) / 2.0**9).astype(np.float32)
    detector = KDE(seed=0).fit(X)
    assert detector.bandwidth_ == min(BANDWIDTH_GRID)
    assert detector.selected_params()["at_grid_edge"] is True


# ------------------------------------------------------------------------------------- real data
def test_on_real_odds_data(odds_root):
    train, val, test = create_dataset("odds", name="thyroid", root=odds_root, ratio_known_outlier=0.01).load()
    for name in ("ocsvm", "iforest", "kde"):
        detector = create_detector(name).fit(train.X, semi_y=train.semi_y, eval_set=(val.X, val.y))
        assert auroc(test.y, detector.decision_function(test.X)) > 0.85, name


@pytest.mark.parametrize(
    ("old", "cls"),
    [
        ("sadkit.plugins.shallow:OCSVM", OCSVM),
        ("sadkit.plugins.shallow:IsolationForest", IsolationForest),
        ("sadkit.plugins.shallow:KDE", KDE),
    ],
)
def test_a_detector_saved_under_its_old_module_path_still_loads(data, tmp_path, old, cls):
    """Format-1 files written before the one-module-per-detector split name ``sadkit.plugins.shallow:<Class>``."""
    X, _, (X_test, _) = data
    detector = cls(**cls.fast_params).fit(X)
    folder = detector.save(tmp_path / "detector")
    meta = json.loads((folder / "detector.json").read_text())
    meta["class"] = old
    (folder / "detector.json").write_text(json.dumps(meta))
    loaded = load_detector(folder)
    assert type(loaded) is cls
    assert np.array_equal(loaded.decision_function(X_test), detector.decision_function(X_test))
