"""The synthetic tabular dataset: shapes, determinism, anomalies and labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sadkit.data import LABELED_ANOMALY, sample_counts
from sadkit.errors import InvalidInputError
from sadkit.plugins.datasets.synthetic import Synthetic


@pytest.fixture(scope="module")
def default():
    ds = Synthetic()
    return ds, ds.load()


def test_shapes_and_types(default) -> None:
    ds, (train, val, test) = default
    assert len(test) == 800 and (test.y == 1).sum() == 80  # 40% of 2000, 40% of 200 anomalies
    for split in (train, val, test):
        assert split.X.dtype == np.float32 and split.X.shape[1] == 8
        assert split.y.dtype == np.int64 and split.semi_y.dtype == np.int64
    assert (test.semi_y == 0).all()
    # the pool holds 1080 normals; 5% of the training set is labeled anomalies, no pollution
    kn, un, ua, ka = sample_counts(1080, 0.0, 0.05, 0.0)
    assert len(train) + len(val) == kn + un + ua + ka
    assert (train.semi_y == LABELED_ANOMALY).sum() + (val.semi_y == LABELED_ANOMALY).sum() == ka
    np.testing.assert_allclose(train.X.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(train.X.max(axis=0), 1.0, atol=1e-6)


def test_splits_are_disjoint(default) -> None:
    ds, _ = default
    every = np.concatenate([ds._train_index, ds._val_index, ds._test_index])
    assert len(np.unique(every)) == len(every) and every.max() < 2000


def test_anomalies_and_labels_present(default) -> None:
    _, (train, val, test) = default
    assert (train.semi_y == LABELED_ANOMALY).sum() > 10
    assert (val.semi_y == LABELED_ANOMALY).sum() > 0  # so validation AUROC is defined
    assert (val.y == 0).sum() > 0
    assert np.array_equal(train.semi_y == LABELED_ANOMALY, train.y == 1)


def test_a_simple_detector_finds_the_anomalies(default) -> None:
    _, (train, _, test) = default
    center = train.X[train.y == 0].mean(axis=0)
    scores = ((test.X - center) ** 2).sum(axis=1)
    assert roc_auc_score(test.y, scores) > 0.8


def test_deterministic() -> None:
    a = Synthetic(n_samples=300, seed=3).load()
    b = Synthetic(n_samples=300, seed=3).load()
    c = Synthetic(n_samples=300, seed=4).load()
    for sa, sb in zip(a, b, strict=True):
        assert np.array_equal(sa.X, sb.X) and np.array_equal(sa.y, sb.y)
        assert np.array_equal(sa.semi_y, sb.semi_y)
    assert not np.array_equal(a[2].X, c[2].X)


def test_parameters() -> None:
    train, val, test = Synthetic(
        n_samples=500, n_features=3, anomaly_fraction=0.2, ratio_pollution=0.1, ratio_known_normal=0.1, val_fraction=0.0
    ).load()
    assert len(val) == 0 and train.X.shape[1] == 3 and len(test) == 200 and (test.y == 1).sum() == 40
    unlabeled = train.semi_y == 0
    assert (train.y[unlabeled] == 1).any() and (train.semi_y == 1).any()
    params = Synthetic(n_samples=500, seed=2).get_params()
    assert params["n_samples"] == 500 and params["seed"] == 2 and params["ratio_known_outlier"] == 0.05
    assert Synthetic().network == "mlp"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_features": 0}, "n_features"),
        ({"anomaly_fraction": 0.0}, "anomaly_fraction"),
        ({"anomaly_fraction": 1.0}, "anomaly_fraction"),
        ({"n_samples": 10}, "raise n_samples"),
        ({"normal_class": 1}, "normal_class must be 0"),
        ({"known_outlier_class": 3}, "known_outlier_class must be 1"),
    ],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Synthetic(**kwargs)


def test_too_many_labeled_anomalies() -> None:
    with pytest.raises(InvalidInputError, match="lower ratio_known_outlier"):
        Synthetic(anomaly_fraction=0.02, ratio_known_outlier=0.2).load()


def test_registered_as_a_plugin() -> None:
    from sadkit.registry import create_dataset

    ds = create_dataset("synthetic", n_samples=100)
    assert isinstance(ds, Synthetic) and len(ds.load()[2]) == 40
