"""TorchDetector's shared helpers, and the Detector hooks every detector goes through (validation, timings)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from sadkit import DeviceError, InvalidInputError, TorchDetector, create_detector
from sadkit.torch_detector import DEFAULT_NETWORK, PretrainedAutoencoder


class Tiny(TorchDetector):
    """A torch detector without training: enough to exercise the helpers."""

    def __init__(
        self,
        net_name: str | None = None,
        net_params: dict[str, Any] | None = None,
        lr: float = 1e-3,
        n_epochs: int = 4,
        lr_milestones: tuple[int, ...] = (2,),
        batch_size: int = 16,
        weight_decay: float = 0.0,
        ae_lr: float = 1e-2,
        ae_n_epochs: int = 3,
        ae_lr_milestones: tuple[int, ...] = (1,),
        ae_batch_size: int = 8,
        ae_weight_decay: float = 1e-5,
        device: str = "cpu",
        seed: int | None = 0,
    ) -> None:
        self.net_name = net_name
        self.net_params = net_params
        self.lr = lr
        self.n_epochs = n_epochs
        self.lr_milestones = lr_milestones
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.ae_lr = ae_lr
        self.ae_n_epochs = ae_n_epochs
        self.ae_lr_milestones = ae_lr_milestones
        self.ae_batch_size = ae_batch_size
        self.ae_weight_decay = ae_weight_decay
        self.device = device
        self.seed = seed

    def _validate_params(self) -> None:
        self._reject_invalid({"lr": self.lr > 0, "n_epochs": self.n_epochs >= 0}, "lr > 0, epochs >= 0")

    def _fit(self, X, y, *, eval_set, callbacks) -> None:
        self.seed_ = self._resolve_seed()
        self.mean_ = X.mean(axis=0)

    def _score(self, X):
        return ((X - self.mean_) ** 2).reshape(len(X), -1).sum(axis=1)

    def _get_state(self):
        return {"mean": self.mean_, "seed": self.seed_}

    def _set_state(self, state):
        self.mean_ = np.asarray(state["mean"])
        self.seed_ = state["seed"]


X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)


def test_seed_is_kept_or_drawn():
    assert Tiny(seed=7).fit(X).seed_ == 7
    drawn = {Tiny(seed=None).fit(X).seed_ for _ in range(3)}
    assert all(0 <= s < 2**31 for s in drawn) and len(drawn) > 1


def test_schedules_read_the_parameters_of_their_prefix():
    detector = Tiny()
    main, ae = detector._schedule(), detector._schedule("ae_", amsgrad=True)
    assert (main.n_epochs, main.lr, main.milestones, main.batch_size, main.weight_decay) == (4, 1e-3, [2], 16, 0.0)
    assert (ae.n_epochs, ae.lr, ae.milestones, ae.batch_size, ae.weight_decay) == (3, 1e-2, [1], 8, 1e-5)
    assert ae.amsgrad and not main.amsgrad


def test_default_network_and_devices():
    assert Tiny()._network_name() == DEFAULT_NETWORK == "mlp"
    assert Tiny(net_name="cardio_mlp")._network_name() == "cardio_mlp"
    assert Tiny(device="cpu")._training_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a machine without a GPU")
def test_a_model_trained_on_a_gpu_scores_without_one():
    detector = Tiny(device="cuda")
    with pytest.raises(DeviceError, match="CUDA"):
        detector._training_device()
    assert detector._scoring_device() == torch.device("cpu")


def test_validation_runs_before_fit_and_names_the_bad_values():
    with pytest.raises(InvalidInputError, match=r"Tiny: invalid lr=0, n_epochs=-1 \(lr > 0, epochs >= 0\)"):
        Tiny(lr=0, n_epochs=-1).fit(X)


def test_fit_times_a_detector_that_does_not_and_a_load_keeps_timings_a_dict(tmp_path):
    detector = Tiny().fit(X)
    assert set(detector.timings_) == {"train"} and detector.timings_["train"] >= 0
    assert isinstance(type(detector).load(detector.save(tmp_path / "d")).timings_, dict)


def test_no_pretrained_autoencoder_by_default_and_deep_sads_is_its_own():
    assert Tiny().fit(X).pretrained_autoencoder() is None
    deepsad = create_detector("deepsad", n_epochs=1, ae_n_epochs=1, device="cpu").fit(X)
    ae = deepsad.pretrained_autoencoder()
    assert isinstance(ae, PretrainedAutoencoder)
    assert (ae.net_name, ae.net_params, ae.input_shape) == ("mlp", {}, (3,))
    assert ae.state is deepsad.ae_state_ and set(deepsad.timings_) == {"pretrain", "train"}
    assert create_detector("deepsad", pretrain=False, n_epochs=1, device="cpu").fit(X).pretrained_autoencoder() is None
