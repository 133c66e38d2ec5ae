"""ESAD: the encoder-decoder-encoder, its loss and score, shared/separate encoders, networks, signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sadkit import InvalidInputError, auroc, create_dataset, create_detector
from sadkit.data import to_semi_y
from sadkit.errors import SignalNotAvailableError
from sadkit.plugins.esad.detector import ESAD
from sadkit.testing import assert_detector_conforms, make_data

FAST = {"n_epochs": 3, "lr_milestones": [2], "device": "cpu"}


@pytest.fixture(scope="module")
def data():
    X, y, X_test = make_data((6,), n_train=160)
    return X, to_semi_y(y), X_test  # these tests speak the paper's codes (semi_y=)


def test_shared_encoder_variant_conforms_too():
    assert_detector_conforms("esad", {"shared_encoder": True}, sklearn=False)


def test_separate_second_encoder_starts_as_the_first_and_shared_has_none(data):
    X, semi_y, _ = data
    separate = ESAD(**{**FAST, "n_epochs": 0}, net_name="mlp").fit(X, semi_y=semi_y)
    state = separate.net_.state_dict()
    second = {k[len("second.") :]: v for k, v in state.items() if k.startswith("second.")}
    first = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    assert second and set(second) == set(first)
    for key, value in first.items():
        assert torch.equal(value, second[key]), key
    shared = ESAD(**{**FAST, "n_epochs": 0}, shared_encoder=True).fit(X, semi_y=semi_y)
    assert not any(k.startswith("second.") for k in shared.net_.state_dict())
    assert shared.net_.shared and not separate.net_.shared
    # after training, the separate encoders have moved apart
    trained = ESAD(**FAST).fit(X, semi_y=semi_y)
    weights = trained.net_.state_dict()
    assert not torch.equal(weights["encoder.code.weight"], weights["second.code.weight"])


def test_score_is_reconstruction_error_plus_weighted_latent_norm(data):
    X, semi_y, X_test = data
    detector = ESAD(**FAST, score_latent_weight=0.5).fit(X, semi_y=semi_y)
    with torch.no_grad():
        x = torch.as_tensor(X_test)
        _, x_hat, z_hat = detector.net_.eval()(x)
        rec = ((x_hat - x) ** 2).sum(1).numpy()
        lat = (z_hat**2).sum(1).numpy()
    np.testing.assert_allclose(detector.decision_function(X_test), rec + 0.5 * lat, rtol=1e-5)
    parts = detector.score_parts(X_test)
    np.testing.assert_allclose(parts["reconstruction"], rec, rtol=1e-5)
    np.testing.assert_allclose(parts["latent"], lat, rtol=1e-5)
    # the signal is what the score sums: 6 squared residuals, then 8 squared code entries (mlp rep_dim 8)
    signal = detector.signal(X_test)
    assert signal.shape == (len(X_test), 6 + 8)
    np.testing.assert_allclose(
        signal[:, :6].sum(1) + 0.5 * signal[:, 6:].sum(1), detector.decision_function(X_test), rtol=1e-5
    )


def test_the_julia_readings_score_with_the_mean_error_and_the_plain_norm(data):
    """norm="euclidean" + score_reconstruction="mean": mean squared error + ||z_hat||, as the Julia package."""
    X, semi_y, X_test = data
    params = {"norm": "euclidean", "anomaly_reconstruction": "keep", "score_reconstruction": "mean"}
    detector = ESAD(**FAST, **params).fit(X, semi_y=semi_y)
    with torch.no_grad():
        x = torch.as_tensor(X_test)
        _, x_hat, z_hat = detector.net_.eval()(x)
        expected = ((x_hat - x) ** 2).mean(1).numpy() + torch.linalg.norm(z_hat, dim=1).numpy()
    np.testing.assert_allclose(detector.decision_function(X_test), expected, rtol=1e-4)
    assert np.isfinite(detector.train_losses_).all()


def test_keeping_the_anomalies_reconstruction_trains_them_like_normals(data):
    """anomaly_reconstruction="keep" minimises a labeled anomaly's error (ours inverts it): lower error."""
    X, semi_y, _ = data
    anomalies = X[semi_y == -1]
    kept = ESAD(**FAST, anomaly_reconstruction="keep").fit(X, semi_y=semi_y).score_parts(anomalies)["reconstruction"]
    inverted = ESAD(**FAST).fit(X, semi_y=semi_y).score_parts(anomalies)["reconstruction"]
    assert kept.mean() < inverted.mean()


def test_labeled_anomalies_are_pushed_away(data):
    """The same data with its labeled anomalies marked scores those anomalies far higher than unmarked."""
    X, semi_y, _ = data
    anomalies = semi_y == -1
    params = {**FAST, "n_epochs": 30, "lr_milestones": [25]}
    labeled = ESAD(**params).fit(X, semi_y=semi_y)
    unlabeled = ESAD(**params).fit(X, semi_y=np.where(anomalies, 0, semi_y))

    def margin(det: ESAD) -> float:
        s = det.decision_function(X)
        return float(np.median(s[anomalies]) / np.median(s[~anomalies]))

    assert margin(labeled) > 1.5 * margin(unlabeled)


def test_lenet_autoencoder_works_end_to_end():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(24, 1, 28, 28)).astype(np.float32)
    semi_y = np.zeros(24, dtype=np.int64)
    semi_y[:2] = -1
    detector = ESAD(n_epochs=1, lr_milestones=[], batch_size=8, device="cpu", net_name="mnist_lenet").fit(
        X, semi_y=semi_y
    )
    assert detector.decision_function(X[:5]).shape == (5,)
    assert detector.signal(X[:5]).shape == (5, 784 + 32)


def test_real_odds_thyroid_beats_chance_quickly(odds_root):
    train, _, test = create_dataset("odds", name="thyroid", root=odds_root, ratio_known_outlier=0.01, seed=0).load()
    detector = create_detector("esad", net_name="thyroid_mlp", n_epochs=10, lr_milestones=[8], device="cpu")
    assert auroc(test.y, detector.fit(train.X, semi_y=train.semi_y).decision_function(test.X)) > 0.8


@pytest.mark.parametrize(
    "params, match",
    [
        ({"lambda_latent": -1.0}, "lambda_latent"),
        ({"eta": 0.0}, "eta"),
        ({"batch_size": 1}, "batch_size"),
        ({"shared_encoder": "yes"}, "shared_encoder"),
        ({"norm": "l1"}, "norm"),
        ({"anomaly_reconstruction": "noise"}, "anomaly_reconstruction"),
        ({"score_reconstruction": "max"}, "score_reconstruction"),
        ({"net_name": "thyroid_mlp"}, "thyroid_mlp"),  # 6 features expected, the data has 5
    ],
)
def test_bad_parameters_are_clear_errors(params, match):
    X, y, _ = make_data((5,))
    semi_y = to_semi_y(y)
    with pytest.raises(InvalidInputError, match=match):
        ESAD(**{**FAST, **params}).fit(X, semi_y=semi_y)


def test_search_space_builds_valid_detectors():
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    X, y, X_test = make_data((5,))
    semi_y = to_semi_y(y)
    for _ in range(2):
        space = ESAD.search_space(study.ask())
        assert {"lambda_latent", "lambda_consistency", "shared_encoder", "lr", "eta"} <= set(space)
        assert np.isfinite(ESAD(**{**FAST, **space}).fit(X, semi_y=semi_y).decision_function(X_test)).all()


def test_signal_hook_default_is_a_clear_error_for_detectors_without_one():
    from sadkit.registry import get

    assert get("detectors", "esad").has_signal()
    assert get("detectors", "deepsad").has_signal()  # through its transform (the representation)
    supervised = get("detectors", "supervised")
    assert not supervised.has_signal()
    X, y, X_test = make_data((5,))
    semi_y = to_semi_y(y)
    detector = supervised(**supervised.fast_params).fit(X, semi_y=semi_y)
    with pytest.raises(SignalNotAvailableError, match="no per-sample signal"):
        detector.signal(X_test)
