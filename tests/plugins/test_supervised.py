"""The supervised baseline: what it learns from, class weights, and why it cannot work without labels."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from sadkit import InvalidInputError, auroc, create_dataset
from sadkit.cli import app
from sadkit.plugins.networks.mlp import MLP
from sadkit.plugins.shallow.supervised import Supervised

FAST = {"n_epochs": 20, "lr": 1e-3, "lr_milestones": [15], "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n: int = 400, d: int = 6, seed: int = 0, n_anomalies: int = 10, n_normals: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(np.int64)
    X = np.clip(rng.normal(np.where(y[:, None] == 1, 0.7, 0.3), 0.1, size=(n, d)), 0, 1).astype(np.float32)
    semi_y = np.zeros(n, dtype=np.int64)
    semi_y[np.flatnonzero(y == 1)[:n_anomalies]] = -1
    semi_y[np.flatnonzero(y == 0)[:n_normals]] = 1
    return X, y, semi_y


def test_learns_known_anomalies_with_unlabeled_as_normal():
    X, _, semi_y = _data()
    X_test, y_test, _ = _data(seed=1)
    detector = Supervised(**FAST).fit(X, semi_y=semi_y)
    assert detector.n_train_ == len(X)  # the paper's setting: every sample, unlabeled ones as normal
    assert detector.pos_weight_ == pytest.approx((len(X) - 10) / 10)  # balanced classes
    assert auroc(y_test, detector.decision_function(X_test)) > 0.95
    assert isinstance(detector.net_.network, MLP)


def test_ignore_unlabeled_learns_from_labeled_samples_only():
    X, _, semi_y = _data(n_normals=20)
    detector = Supervised(unlabeled="ignore", class_weight=None, **FAST).fit(X, semi_y=semi_y)
    assert detector.n_train_ == 30 and detector.pos_weight_ == 1.0


def test_without_labeled_anomalies_it_says_why_it_cannot_learn():
    X, _, semi_y = _data(n_anomalies=0, n_normals=20)
    with pytest.raises(InvalidInputError, match=r"needs labeled anomalies \(semi_y = -1\).*ratio_known_outlier"):
        Supervised(**FAST).fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="needs labeled anomalies"):
        Supervised(**FAST).fit(X)
    X, _, semi_y = _data(n_anomalies=5, n_normals=0)
    with pytest.raises(InvalidInputError, match=r"no labeled normal.*unlabeled='normal'"):
        Supervised(unlabeled="ignore", **FAST).fit(X, semi_y=semi_y)


def test_bad_parameters_are_clear_errors():
    X, _, semi_y = _data()
    with pytest.raises(InvalidInputError, match="unlabeled must be"):
        Supervised(unlabeled="drop").fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="class_weight"):
        Supervised(class_weight="auto").fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="network 'cardio_mlp' cannot be built"):
        Supervised(net_name="cardio_mlp").fit(X, semi_y=semi_y)


def test_cli_without_labeled_anomalies(tracking_uri):
    result = CliRunner().invoke(
        app, ["run", "supervised", "synthetic", "--data", "ratio_known_outlier=0", "-p", "n_epochs=1", "--no-model"]
    )
    assert result.exit_code != 0
    assert "needs labeled anomalies" in result.stderr and "Traceback" not in result.stderr


def test_on_real_odds_data(odds_root):
    train, _, test = create_dataset("odds", name="thyroid", root=odds_root, ratio_known_outlier=0.01).load()
    detector = Supervised(net_name="thyroid_mlp", n_epochs=4, lr=1e-3, lr_milestones=[], device="cpu")
    detector.fit(train.X, semi_y=train.semi_y)
    assert auroc(test.y, detector.decision_function(test.X)) > 0.8
