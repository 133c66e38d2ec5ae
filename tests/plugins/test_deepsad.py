"""Deep SAD and Deep SVDD: pretraining, center, loss, labels, networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sadkit import InvalidInputError, auroc, create_detector, create_network
from sadkit.data import to_semi_y
from sadkit.plugins.deepsad.detector import DeepSAD, init_center
from sadkit.testing import make_data

FAST = {"n_epochs": 3, "ae_n_epochs": 3, "lr_milestones": [2], "ae_lr_milestones": [2], "device": "cpu"}


@pytest.fixture(scope="module")
def data():
    X, y, X_test = make_data((6,), n_train=160)
    return X, to_semi_y(y), X_test  # these tests speak the paper's codes (semi_y=)


def test_pretrained_encoder_weights_really_initialise_the_network(data):
    """The reference loses the AE weights (its state-dict keys never match); here they arrive."""
    X, semi_y, _ = data
    # n_epochs=0: the Deep SAD network is exactly what pretraining left in the encoder
    detector = DeepSAD(**{**FAST, "n_epochs": 0}, net_name="thyroid_mlp").fit(X, semi_y=semi_y)
    encoder_state = {k[len("encoder.") :]: v for k, v in detector.ae_state_.items() if k.startswith("encoder.")}
    net_state = detector.net_.state_dict()
    assert set(encoder_state) == set(net_state)
    for key, value in net_state.items():
        assert torch.equal(value.cpu(), encoder_state[key]), key
    # ... and that is not what the same seed gives without pretraining
    scratch = DeepSAD(**{**FAST, "n_epochs": 0, "pretrain": False}, net_name="thyroid_mlp").fit(X, semi_y=semi_y)
    weight = "hidden.0.linear.weight"
    assert not torch.equal(scratch.net_.state_dict()[weight], net_state[weight])
    # pretraining moved the weights away from their (seed 0) initialisation
    torch.manual_seed(0)
    seeded = create_network("thyroid_mlp", (6,))
    assert not torch.equal(seeded.state_dict()[weight], net_state[weight])


def test_center_pushes_small_coordinates_to_eps():
    feats = torch.tensor([[0.05, -0.02, 0.5, 0.0], [0.03, -0.04, 0.7, 0.0]])
    c = init_center(feats, 0.1)
    assert torch.allclose(c, torch.tensor([0.1, -0.1, 0.6, 0.1]))


def test_center_is_the_mean_of_the_initial_representations(data):
    X, semi_y, _ = data
    detector = DeepSAD(**{**FAST, "n_epochs": 0, "center_eps": 0.0}, net_name="thyroid_mlp").fit(X, semi_y=semi_y)
    with torch.no_grad():
        mean = detector.net_(torch.as_tensor(X)).mean(0)
    assert torch.allclose(detector.c_, mean, atol=1e-6)
    assert detector.tracked_arrays()["c"].shape == (4,)


def test_score_is_the_squared_distance_to_c(data):
    X, semi_y, X_test = data
    detector = DeepSAD(**FAST).fit(X, semi_y=semi_y)
    with torch.no_grad():
        expected = ((detector.net_(torch.as_tensor(X_test)) - detector.c_) ** 2).sum(1).numpy()
    assert np.allclose(detector.decision_function(X_test), expected, rtol=1e-5)


def test_signal_is_the_terms_of_the_score(data):
    """The active layer re-weighs the score's terms: (phi(x)_k - c_k)^2, which sum to the score."""
    X, semi_y, X_test = data
    detector = DeepSAD(**FAST).fit(X, semi_y=semi_y)
    signal = detector.signal(X_test)
    assert signal.shape == (len(X_test), detector.c_.numel()) and (signal >= 0).all()
    assert np.allclose(signal.sum(axis=1), detector.decision_function(X_test), rtol=1e-5)


def test_labeled_anomalies_are_pushed_away_from_c():
    """With labeled anomalies, Deep SAD ranks their kind higher than Deep SVDD does."""
    rng = np.random.default_rng(0)
    normal = rng.normal(0.5, 0.1, size=(600, 6))
    anomaly = rng.normal(0.5, 0.1, size=(60, 6))
    anomaly[:, 0] += 0.35  # a subtle shift in one feature
    X = np.clip(np.vstack([normal, anomaly[:30]]), 0, 1).astype(np.float32)
    semi_y = np.r_[np.zeros(600), -np.ones(30)].astype(int)
    X_test = np.clip(np.vstack([normal[:100] + rng.normal(0, 0.01, (100, 6)), anomaly[30:]]), 0, 1)
    y_test = np.r_[np.zeros(100), np.ones(30)]
    params = {"n_epochs": 40, "ae_n_epochs": 10, "lr": 1e-3, "lr_milestones": [], "device": "cpu"}
    sad = create_detector("deepsad", **params).fit(X, semi_y=semi_y)
    svdd = create_detector("deepsvdd", **params).fit(X, semi_y=semi_y)
    assert auroc(y_test, sad.decision_function(X_test)) > auroc(y_test, svdd.decision_function(X_test)) + 0.1


def test_deepsvdd_ignores_labels(data):
    X, semi_y, X_test = data
    with_labels = create_detector("deepsvdd", **FAST).fit(X, semi_y=semi_y).decision_function(X_test)
    without = create_detector("deepsvdd", **FAST).fit(X).decision_function(X_test)
    assert np.array_equal(with_labels, without)
    assert "eta" not in create_detector("deepsvdd").get_params()


def test_eta_weights_the_labeled_terms(data):
    X, semi_y, X_test = data
    a = DeepSAD(**FAST, eta=1.0).fit(X, semi_y=semi_y).decision_function(X_test)
    b = DeepSAD(**FAST, eta=5.0).fit(X, semi_y=semi_y).decision_function(X_test)
    assert not np.allclose(a, b)


def test_paper_defaults():
    params = DeepSAD().get_params()
    assert params["eta"] == 1.0 and params["eps"] == 1e-6
    assert params["lr"] == 1e-4 and params["n_epochs"] == 150 and list(params["lr_milestones"]) == [50]
    assert params["ae_lr"] == 1e-4 and params["ae_n_epochs"] == 150 and list(params["ae_lr_milestones"]) == [50]
    assert params["weight_decay"] == 1e-6 and params["batch_size"] == 128 and params["center_eps"] == 0.1


def test_network_for_other_data_names_the_shape(data):
    X, semi_y, _ = data  # 6 features
    with pytest.raises(InvalidInputError, match=r"cardio_mlp.*21 features.*\(6,\)"):
        DeepSAD(**FAST, net_name="cardio_mlp").fit(X, semi_y=semi_y)


def test_invalid_hyperparameters_are_clear_errors(data):
    X, semi_y, _ = data
    with pytest.raises(InvalidInputError, match="lr=-1"):
        DeepSAD(**{**FAST, "lr": -1}).fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="batch_size=1"):
        DeepSAD(**{**FAST, "batch_size": 1}).fit(X, semi_y=semi_y)


def test_per_epoch_validation_auroc_reaches_callbacks(data):
    from sadkit import Callback

    X, semi_y, X_test = data
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, phase, epoch, logs):
            seen.append((phase, epoch, logs.get("val_auroc")))

    y_val = np.r_[np.zeros(30), np.ones(10)]
    DeepSAD(**FAST).fit(X, semi_y=semi_y, eval_set=(X_test, y_val), callbacks=[Spy()])
    train = [s for s in seen if s[0] == "train"]
    assert [s[1] for s in train] == [0, 1, 2]
    assert all(0.0 <= s[2] <= 1.0 for s in train)
    assert all(s[2] is None for s in seen if s[0] == "pretrain")


def test_generic_mlp_parameters(data):
    X, semi_y, X_test = data
    detector = DeepSAD(**FAST, net_name="mlp", net_params={"hidden": [16], "rep_dim": 3}).fit(X, semi_y=semi_y)
    assert detector.c_.shape == (3,)
