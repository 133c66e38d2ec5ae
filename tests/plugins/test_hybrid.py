"""Hybrid baselines (features=ae): Deep SAD's autoencoder, trained in the run or loaded from an earlier one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sadkit import InvalidInputError, create_detector, load_detector
from sadkit.cli import app
from sadkit.data import to_semi_y
from sadkit.experiment import ExperimentSpec, run_experiment
from sadkit.plugins.deepsad.detector import DeepSAD
from sadkit.plugins.shallow.ocsvm import OCSVM
from sadkit.plugins.shallow.ssad import SSAD
from sadkit.testing import assert_detector_conforms, make_data
from sadkit.tracking import download_detector

AE = {"ae_n_epochs": 3, "ae_lr_milestones": [2], "device": "cpu"}
HYBRIDS = ["ocsvm", "iforest", "kde", "ssad"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    X, y, X_test = make_data((6,), n_train=160)
    return X, to_semi_y(y), X_test  # these tests speak the paper's codes (semi_y=)


@pytest.mark.parametrize("name", HYBRIDS)
def test_every_hybrid_conforms(name):
    assert_detector_conforms(name, {"features": "ae"}, input_shape=(6,), sklearn=False)


def test_the_autoencoder_is_the_one_deep_sad_pretrains(data):
    """Same seed and settings: weight for weight the autoencoder of a Deep SAD fit (shared code)."""
    X, semi_y, X_test = data
    hybrid = OCSVM(features="ae", net_name="thyroid_mlp", gamma=1.0, nu=0.1, seed=5, **AE).fit(X, semi_y=semi_y)
    deepsad = DeepSAD(net_name="thyroid_mlp", n_epochs=0, seed=5, **AE).fit(X, semi_y=semi_y)
    assert set(hybrid.ae_state_) == set(deepsad.ae_state_)
    for key, value in deepsad.ae_state_.items():
        assert torch.equal(value, hybrid.ae_state_[key]), key
    assert hybrid.pretrain_losses_ == deepsad.pretrain_losses_
    # the shallow model sees the encoder's output: with n_epochs=0 that is Deep SAD's network phi
    assert np.allclose(hybrid.embed(X_test), deepsad.embed(X_test), atol=1e-6)
    assert hybrid.embed(X_test).shape == (len(X_test), 4)  # thyroid_mlp's rep_dim


def test_raw_and_ae_features_differ(data):
    X, semi_y, X_test = data
    raw = OCSVM(nu=0.1, gamma=1.0).fit(X, semi_y=semi_y)
    assert raw.ae_state_ is None and np.array_equal(raw.embed(X_test), X_test.astype(np.float64))
    hybrid = OCSVM(nu=0.1, gamma=1.0, features="ae", **AE).fit(X, semi_y=semi_y)
    assert hybrid.embed(X_test).shape == (len(X_test), 8)  # mlp's rep_dim
    assert hybrid.timings_["pretrain"] > 0


def test_autoencoder_from_an_earlier_deep_sad_run(tracking_uri, data, tmp_path):
    X, semi_y, X_test = data
    spec = ExperimentSpec(
        detector="deepsad",
        dataset="synthetic",
        params={"n_epochs": 1, "lr_milestones": [1], **AE},
        data={"n_samples": 400, "n_features": 6},
        seed=2,
        threads=1,
    )
    run = run_experiment(spec)
    source = load_detector(download_detector(run.run_id, tmp_path / "dl", tracking_uri))
    assert isinstance(source, DeepSAD)
    hybrid = SSAD(features="ae", ae_run_id=run.run_id, gamma=1.0).fit(X, semi_y=semi_y)
    for key, value in source.ae_state_.items():
        assert torch.equal(value, hybrid.ae_state_[key]), key
    assert hybrid.pretrain_losses_ == []  # nothing was trained here

    # through the runner too, and a second hybrid loads the autoencoder of the first hybrid's run
    first = run_experiment(
        ExperimentSpec(
            detector="ocsvm",
            dataset="synthetic",
            params={"features": "ae", "ae_run_id": run.run_id},
            data={"n_samples": 400, "n_features": 6},
            seed=2,
            threads=1,
        )
    )
    assert first.params["ae_run_id"] == run.run_id and first.params["net_name"] == "mlp"
    second = create_detector("iforest", features="ae", ae_run_id=first.run_id).fit(X, semi_y=semi_y)
    for key, value in source.ae_state_.items():
        assert torch.equal(value, second.ae_state_[key]), key


def test_saved_hybrid_keeps_its_autoencoder(tmp_path, data):
    X, semi_y, X_test = data
    detector = SSAD(features="ae", gamma=0.5, **AE).fit(X, semi_y=semi_y)
    detector.save(tmp_path / "ssad")
    loaded = load_detector(tmp_path / "ssad")
    assert np.array_equal(loaded.decision_function(X_test), detector.decision_function(X_test))
    assert loaded.ae_net_ == detector.ae_net_


# ------------------------------------------------------------------------------------------ errors
def test_no_autoencoder_can_be_built(data):
    X, semi_y, _ = data
    with pytest.raises(InvalidInputError, match="no autoencoder can be built from network 'nope'"):
        OCSVM(features="ae", net_name="nope", **AE).fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="cardio_mlp.*21 features"):
        SSAD(features="ae", net_name="cardio_mlp", **AE).fit(X, semi_y=semi_y)  # X has 6 features
    with pytest.raises(InvalidInputError, match="ae_n_epochs >= 1.*ae_run_id"):
        OCSVM(features="ae", ae_n_epochs=0).fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="features must be 'raw' or 'ae'"):
        OCSVM(features="autoencoder").fit(X, semi_y=semi_y)
    with pytest.raises(InvalidInputError, match="only used with features='ae'"):
        OCSVM(ae_run_id="abc").fit(X, semi_y=semi_y)


def test_no_autoencoder_can_be_found(tracking_uri, data):
    X, semi_y, _ = data
    with pytest.raises(InvalidInputError, match="no MLflow run 'f00'"):
        OCSVM(features="ae", ae_run_id="f00").fit(X, semi_y=semi_y)

    def run(detector, params, log_model=True, n_features=6):
        spec = ExperimentSpec(
            detector=detector,
            dataset="synthetic",
            params=params,
            data={"n_samples": 300, "n_features": n_features},
            threads=1,
            log_model=log_model,
        )
        return run_experiment(spec).run_id

    without_model = run("ocsvm", {"nu": 0.1, "gamma": 1.0}, log_model=False)
    with pytest.raises(InvalidInputError, match="logged no detector model"):
        OCSVM(features="ae", ae_run_id=without_model).fit(X, semi_y=semi_y)
    raw = run("ocsvm", {"nu": 0.1, "gamma": 1.0})
    with pytest.raises(InvalidInputError, match="holds a OCSVM without a pretrained autoencoder"):
        OCSVM(features="ae", ae_run_id=raw).fit(X, semi_y=semi_y)
    no_pretraining = run("deepsad", {"n_epochs": 1, "pretrain": False, "lr_milestones": [1], "device": "cpu"})
    with pytest.raises(InvalidInputError, match="holds a DeepSAD without a pretrained autoencoder"):
        OCSVM(features="ae", ae_run_id=no_pretraining).fit(X, semi_y=semi_y)
    other_shape = run("kde", {"features": "ae", "bandwidth": 1.0, **AE}, n_features=3)
    with pytest.raises(InvalidInputError, match=r"shape \(3,\), but this data has samples of shape \(6,\)"):
        OCSVM(features="ae", ae_run_id=other_shape).fit(X, semi_y=semi_y)


def test_cli_error_is_one_clear_line(tracking_uri):
    result = CliRunner().invoke(
        app, ["run", "ocsvm", "synthetic", "-p", "features=ae", "-p", "net_name=nope", "--no-model"]
    )
    assert result.exit_code != 0
    assert "no autoencoder can be built from network 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
