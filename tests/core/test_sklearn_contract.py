"""Detectors speak scikit-learn's and PyOD's language: check_estimator, cross-validation, grid search,
pipelines, and PyOD's labels (1 = anomaly)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sadkit import NotFittedError, auroc, create_detector, registry
from sadkit.estimator_checks import ALWAYS, expected_failed_checks


def _fast(name: str):
    cls = registry.get("detectors", name)
    return cls(**cls.fast_params)


BUILT_IN = [n for n in registry.names("detectors") if registry.get("detectors", n).__module__.startswith("sadkit.")]


@parametrize_with_checks([_fast(n) for n in BUILT_IN], expected_failed_checks=expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_few_checks_are_declared_and_each_says_why():
    assert len(ALWAYS) <= 5
    for name in BUILT_IN:
        declared = expected_failed_checks(_fast(name))
        assert len(declared) <= 6 and all(len(reason) > 30 for reason in declared.values()), name


def _blobs(n: int = 300, seed: int = 0):
    """Normals around 0, 10% anomalies far out; y = 1 for the anomalies (PyOD's labels)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, size=(n, 4))
    y = np.zeros(n, dtype=int)
    y[: n // 10] = 1
    X[y == 1] += rng.choice([-4.0, 4.0], size=(n // 10, 4))
    order = rng.permutation(n)
    return X[order], y[order]


def test_cross_val_score_gives_one_auroc_per_fold():
    X, y = _blobs()
    scores = cross_val_score(create_detector("iforest", n_estimators=50, seed=0), X, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all() and (scores > 0.9).all()


def test_grid_search_with_roc_auc_picks_a_parameter():
    X, y = _blobs()
    search = GridSearchCV(create_detector("kde"), {"bandwidth": [0.1, 1.0]}, scoring="roc_auc", cv=3).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["bandwidth"] in (0.1, 1.0)


def test_a_pipeline_with_a_scaler_fits_scores_and_predicts():
    X, y = _blobs()
    pipe = make_pipeline(StandardScaler(), create_detector("ocsvm", nu=0.1, gamma=0.5)).fit(X)
    assert 0.9 < pipe.score(X, y) <= 1.0  # score(X, y) is the AUROC
    assert set(np.unique(pipe.predict(X))) == {0, 1}
    assert pipe.decision_function(X).shape == (len(X),)


def test_pyod_style_y_uses_the_anomalies_as_labeled_anomalies():
    """fit(X, y) with y = 1 for anomalies (PyOD's habit) must not read them as labeled normals."""
    X, y = _blobs(400, seed=1)
    partial = np.where(np.arange(len(y)) % 3 == 0, y, -1)  # a third of the rows labeled
    params = {"n_epochs": 20, "ae_n_epochs": 5, "lr": 1e-3, "device": "cpu", "seed": 0}
    as_anomalies = create_detector("deepsad", **params).fit(X, partial)
    as_paper_codes = create_detector("deepsad", **params).fit(
        X, semi_y=np.select([partial == 1, partial == 0], [-1, 1], 0)
    )
    np.testing.assert_allclose(as_anomalies.decision_function(X), as_paper_codes.decision_function(X), rtol=1e-5)
    swapped = create_detector("deepsad", **params).fit(X, np.where(partial == 1, 0, partial))  # anomalies as normals
    assert auroc(y, as_anomalies.decision_function(X)) > auroc(y, swapped.decision_function(X))


def test_decisions_follow_the_threshold_rules():
    X, y = _blobs()
    det = create_detector("iforest", n_estimators=50, seed=0, contamination=0.2).fit(X)
    assert det.labels_.mean() == pytest.approx(0.2, abs=0.01)
    assert det.threshold_for(0.05) > det.threshold_
    fpr = create_detector("iforest", n_estimators=50, seed=0, threshold="fpr:0.05")
    fpr.fit(X[:200], eval_set=(X[200:], y[200:]))
    normals = X[200:][y[200:] == 0]
    assert fpr.predict(normals).mean() <= 0.05 + 1e-9
    with pytest.raises(Exception, match="needs labeled normals"):
        create_detector("iforest", threshold="fpr:0.01").fit(X)
    with pytest.raises(Exception, match="threshold must be"):
        create_detector("iforest", threshold="top:3").fit(X)
    proba = det.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(1), 1)


def test_not_fitted_is_scikit_learns_not_fitted_error():
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    assert issubclass(NotFittedError, SklearnNotFittedError)
    with pytest.raises(SklearnNotFittedError):
        create_detector("iforest").decision_function(np.zeros((2, 2)))


def test_a_column_vector_y_is_flattened_as_scikit_learn_does():
    X, y = _blobs()
    with pytest.warns(Warning, match="column-vector"):
        det = create_detector("iforest", n_estimators=20, seed=0).fit(X, y.reshape(-1, 1))
    assert det.decision_function(X).shape == (len(X),)


def test_data_frames_keep_their_feature_names():
    import pandas as pd

    X, _ = _blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    det = create_detector("iforest", n_estimators=20, seed=0).fit(frame)
    assert list(det.feature_names_in_) == ["a", "b", "c", "d"] and det.n_features_in_ == 4
