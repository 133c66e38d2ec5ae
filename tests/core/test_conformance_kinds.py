"""Every registered network and the built-in datasets pass the conformance checks that plugin authors use; networks
and datasets broken on purpose fail them with a message that names the rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from torch import nn

from sadkit import AutoEncoder, Dataset, InvalidInputError, Network, Split, registry
from sadkit.testing import (
    DATASET_CHECKS,
    NETWORK_CHECKS,
    assert_dataset_conforms,
    assert_network_conforms,
    check_dataset,
    check_network,
)


@pytest.mark.parametrize("name", registry.names("networks"))
def test_registered_network_conforms(name):
    assert_network_conforms(name)


def test_a_network_check_takes_parameters_and_a_shape():
    assert_network_conforms("mlp", {"hidden": [6], "rep_dim": 3}, input_shape=(2, 3))
    failed = {r.name: r.message for r in check_network("cardio_mlp", input_shape=(5,)) if not r.passed}
    assert "network 'cardio_mlp' is built for 21 features" in failed["builds"]


# ------------------------------------------------------------------------------------------------ broken networks
class _Linear(Network):
    def __init__(self, input_shape, rep_dim, bias=False, extra_dim=0):
        super().__init__(input_shape, rep_dim)
        self.layer = nn.Linear(int(np.prod(input_shape)), rep_dim + extra_dim, bias=bias)
        self.bn = nn.BatchNorm1d(rep_dim + extra_dim, affine=bias)

    def forward(self, x):
        return self.bn(self.layer(x.reshape(len(x), -1)))


def _decoder(input_shape, rep_dim):
    return nn.Sequential(nn.Linear(rep_dim, int(np.prod(input_shape)), bias=False), nn.Unflatten(1, input_shape))


def biased(input_shape, *, rep_dim=4, autoencoder=False):
    net = _Linear(input_shape, rep_dim, bias=True)
    return AutoEncoder(net, _decoder(input_shape, rep_dim)) if autoencoder else net


def wrong_rep_dim(input_shape, *, rep_dim=4, autoencoder=False):
    net = _Linear(input_shape, rep_dim, extra_dim=1)  # says rep_dim, returns rep_dim + 1
    return AutoEncoder(net, _decoder(input_shape, rep_dim + 1)) if autoencoder else net


def no_autoencoder(input_shape, *, autoencoder=False):
    return _Linear(input_shape, 4)  # autoencoder=True returns the network alone


def bad_decoder(input_shape, *, rep_dim=4, autoencoder=False):
    net = _Linear(input_shape, rep_dim)
    return AutoEncoder(net, nn.Linear(rep_dim, 3, bias=False)) if autoencoder else net


@pytest.mark.parametrize(
    ("factory", "check", "message"),
    [
        (biased, "bias_free", "Deep SAD's networks are bias-free: a bias (or a normalisation with affine parameters)"),
        (biased, "bias_free", "found layer.bias, bn.bias, bn (affine BatchNorm1d)"),
        (wrong_rep_dim, "forward_shapes", "returned shape (4, 5) in training mode, not (4, rep_dim=4)"),
        (
            no_autoencoder,
            "autoencoder_encoder_is_network",
            "autoencoder=True returned a _Linear, not a sadkit.AutoEncoder",
        ),
        (bad_decoder, "autoencoder_shapes", "the autoencoder reconstructs shape (4, 3) from (4, 5)"),
    ],
)
def test_a_broken_network_fails_the_check_that_names_its_rule(factory, check, message):
    results = {r.name: r for r in check_network(factory)}
    assert [r.name for r in results.values()] == [c.__name__.removeprefix("check_") for c in NETWORK_CHECKS]
    assert not results[check].passed and message in results[check].message, results[check].message


# ------------------------------------------------------------------------------------------------ datasets
def test_synthetic_conforms():
    assert_dataset_conforms("synthetic")
    assert_dataset_conforms("synthetic", {"image_shape": [1, 28, 28], "n_samples": 300})


def test_odds_conforms(odds_root):
    assert_dataset_conforms("odds", {"name": "thyroid", "root": str(odds_root)})


def test_your_own_table_conforms(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    frame["label"] = np.where(rng.random(300) < 0.2, np.where(rng.random(300) < 0.1, 1, 0), -1)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    assert_dataset_conforms("table", {"path": str(tmp_path / "rows.csv"), "test_fraction": 0.3})


class _Sloppy(Dataset):
    """Breaks the dataset contract in the way ``mistake`` says."""

    def __init__(self, mistake: str = "", ratio_known_outlier: float = 0.0, val_fraction: float = 0.1, seed: int = 0):
        if mistake == "valueerror" and not 0 <= ratio_known_outlier <= 1:
            raise ValueError("bad ratio")
        super().__init__(ratio_known_outlier=0.0 if mistake == "valueerror" else ratio_known_outlier, seed=seed)
        self.mistake = mistake
        self.val_fraction = val_fraction

    def load(self):
        rng = np.random.default_rng(None if self.mistake == "unseeded" else self.seed)
        X = rng.normal(size=(400, 3)).astype(np.float32)
        y = (np.arange(400) % 10 == 0).astype(np.int64)
        if self.mistake == "ignores_ratio":
            self.ratio_known_outlier = 0.0
        (X_tr, y_tr, l_tr), (X_va, y_va, l_va) = self.semi_supervised_splits(
            np.arange(300), y[:300], [0], [1], [1], rng
        )
        if self.mistake == "mislabeled":
            l_tr = np.where(l_tr == 1, 0, l_tr)  # labeled anomalies given the normal label
        train = Split(X[X_tr], y_tr, labels=l_tr, ids=X_tr)
        val = Split(X[X_va], y_va, labels=l_va, ids=X_va)
        test_rows = np.arange(250, 400) if self.mistake == "overlap" else np.arange(300, 400)
        test_labels = y[test_rows] if self.mistake == "labeled_test" else None
        return train, val, Split(X[test_rows], y[test_rows], labels=test_labels, ids=test_rows)


@pytest.mark.parametrize(
    ("mistake", "check", "message"),
    [
        ("", None, None),
        ("overlap", "splits_disjoint", "id(s) are in both the train and the test split (e.g. ["),
        ("unseeded", "same_seed_same_splits", "two loads with the same seed give other train.X"),
        ("ignores_ratio", "ratios_honoured", "ratio_known_outlier=0.02 gave 0.0000 (0 of"),
        (
            "valueerror",
            "rejects_bad_params",
            "ratio_known_outlier=1.5 raised ValueError (bad ratio), not a sadkit error",
        ),
        ("mislabeled", "label_conventions", "train sample(s) are labeled against their ground truth"),
        ("labeled_test", "label_conventions", "the test split labels 100 sample(s); build it as Split(X, y)"),
    ],
)
def test_a_broken_dataset_fails_the_check_that_names_its_rule(mistake, check, message):
    results = {r.name: r for r in check_dataset(_Sloppy, {"mistake": mistake, "ratio_known_outlier": 0.05})}
    assert [r.name for r in results.values()] == [c.__name__.removeprefix("check_") for c in DATASET_CHECKS]
    failed = {name: r.message for name, r in results.items() if not r.passed}
    if check is None:
        assert not failed, failed
    else:
        assert check in failed and message in failed[check], failed


def test_a_dataset_that_does_not_load_fails_once_and_skips_the_rest():
    class _Missing(_Sloppy):
        def load(self):
            raise InvalidInputError("no file at /nowhere/rows.csv")

    results = check_dataset(_Missing)
    assert results[0].message.startswith("InvalidInputError: no file at /nowhere/rows.csv")
    assert {r.message for r in results[1:]} == {"not run: load() failed"}
