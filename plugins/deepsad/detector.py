"""Deep SAD and Deep SVDD.

Deep SAD maps data through a bias-free network ``phi`` and minimises, for a fixed center ``c``,

    1/(n+m) * [ sum_unlabeled ||phi(x) - c||^2 + eta * sum_labeled (||phi(x) - c||^2 + eps)^semi_y ]

so labeled normals (semi_y=+1) are pulled to ``c`` and labeled anomalies (semi_y=-1) are pushed away
(weighted by eta / (d + eps)). The anomaly score is ``||phi(x) - c||^2``. Deep SVDD is the same
machinery without labels.

Differences from the authors' reference code (each a fix, documented in the README):

* Autoencoder pretraining really initialises the network: the autoencoder's ``encoder`` *is* the
  network architecture, so its state dict loads key for key (the reference filters the AE's state
  dict by the network's keys, which never match, and silently trains from scratch).
* The learning-rate schedule drops at the milestone epoch, not one epoch early;
  ``reference_scheduler=True`` restores the reference's timing.
* ``c`` coordinates with |c_i| < center_eps are pushed to ±center_eps, and an exact zero to
  +center_eps (the reference leaves exact zeros at 0).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sadkit import Callback, InvalidInputError, TorchDetector, auroc, create_network
from sadkit.data import to_semi_y
from sadkit.torch_detector import PretrainedAutoencoder
from sadkit.training import Schedule, as_tensor, predict, resolve_amp, seed_everything, train_network

from .autoencoder import pretrain_autoencoder
from .center import init_center, sad_loss
from .finetune import fine_tune
from .stacked import fit_stack, stack_key


class DeepSAD(TorchDetector):
    """Deep Semi-supervised Anomaly Detection.

    Args:
        net_name: network plugin (``cardio_mlp``, ``mlp``, ...); None means ``mlp`` (the experiment
            runner picks the dataset's network instead when this is not set).
        net_params: keyword arguments of the network factory (e.g. ``{"hidden": [64, 32]}``).
        eta: weight of the labeled terms (paper: 1).
        eps: added to the distance of labeled samples for numerical stability (paper: 1e-6).
        lr, n_epochs, lr_milestones, batch_size, weight_decay, amsgrad: Deep SAD training with Adam;
            the learning rate is multiplied by 0.1 at each milestone epoch.
        pretrain: pretrain an autoencoder and start from its encoder's weights.
        ae_lr, ae_n_epochs, ae_lr_milestones, ae_batch_size, ae_weight_decay: autoencoder pretraining.
        center_eps: |c_i| below this is pushed to ±center_eps (paper: 0.1).
        reference_scheduler: step the LR schedule one epoch early, as the reference code does.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: drives weight initialisation and batch order; None draws one.
        amp: mixed precision of the training forward passes: None (float32, default) or ``"bf16"``
            (autocast to bfloat16; fast on GPUs from Ampere on and CPUs with AMX; scoring stays float32).
        channels_last: train image batches (4-D data) in channels-last memory format; ``"auto"``
            (default) does so for 4-D data (measured faster on CPU; same results), False never.
        compile: train through ``torch.compile`` (compiles on the first batches of each phase).

    Attributes:
        net_: the trained network ``phi``.
        c_: the hypersphere center.
        ae_state_: the state dict of the pretrained autoencoder (CPU tensors), or None without
            pretraining; :meth:`pretrained_autoencoder` returns it with what rebuilds the autoencoder.
        pretrain_losses_: mean loss of every pretraining epoch (empty without pretraining).
        timings_, train_losses_, seed_: as :class:`~sadkit.TorchDetector`.
    """

    can_stack = True
    fast_params = {"n_epochs": 3, "ae_n_epochs": 2, "lr_milestones": (2,), "ae_lr_milestones": (1,), "device": "cpu"}

    def __init__(
        self,
        net_name: str | None = None,
        net_params: dict[str, Any] | None = None,
        eta: float = 1.0,
        eps: float = 1e-6,
        lr: float = 1e-4,
        n_epochs: int = 150,
        lr_milestones: Sequence[int] = (50,),
        batch_size: int = 128,
        weight_decay: float = 1e-6,
        amsgrad: bool = False,
        pretrain: bool = True,
        ae_lr: float = 1e-4,
        ae_n_epochs: int = 150,
        ae_lr_milestones: Sequence[int] = (50,),
        ae_batch_size: int = 128,
        ae_weight_decay: float = 1e-6,
        center_eps: float = 0.1,
        reference_scheduler: bool = False,
        device: str = "auto",
        seed: int | None = 0,
        amp: str | None = None,
        channels_last: bool | str = "auto",
        compile: bool = False,
        contamination: float = 0.1,
        threshold: str | float | None = None,
    ) -> None:
        self.net_name = net_name
        self.net_params = net_params
        self.eta = eta
        self.eps = eps
        self.lr = lr
        self.n_epochs = n_epochs
        self.lr_milestones = lr_milestones
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.amsgrad = amsgrad
        self.pretrain = pretrain
        self.ae_lr = ae_lr
        self.ae_n_epochs = ae_n_epochs
        self.ae_lr_milestones = ae_lr_milestones
        self.ae_batch_size = ae_batch_size
        self.ae_weight_decay = ae_weight_decay
        self.center_eps = center_eps
        self.reference_scheduler = reference_scheduler
        self.device = device
        self.seed = seed
        self.amp = amp
        self.channels_last = channels_last
        self.compile = compile
        self.contamination = contamination
        self.threshold = threshold

    # ------------------------------------------------------------------ search space
    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        space = _network_training_space(trial)
        space["eta"] = trial.suggest_float("eta", 0.1, 10.0, log=True)
        return space

    # ------------------------------------------------------------------ fitting
    def _labels_for_training(self, semi_y: np.ndarray) -> np.ndarray:
        return semi_y

    def _validate_params(self) -> None:
        self._reject_invalid(
            {
                "eta": self.eta > 0,
                "eps": self.eps > 0,
                "lr": self.lr > 0,
                "ae_lr": self.ae_lr > 0,
                "n_epochs": int(self.n_epochs) >= 0,
                "ae_n_epochs": int(self.ae_n_epochs) >= 0,
                "batch_size": int(self.batch_size) >= 2,
                "ae_batch_size": int(self.ae_batch_size) >= 2,
                "weight_decay": self.weight_decay >= 0,
                "ae_weight_decay": self.ae_weight_decay >= 0,
                "center_eps": self.center_eps >= 0,
            },
            "rates and eta must be > 0, epochs >= 0, batch sizes >= 2, decays >= 0",
        )

    def _build(self, input_shape: tuple[int, ...], autoencoder: bool):
        return create_network(self._network_name(), input_shape, autoencoder=autoencoder, **(self.net_params or {}))

    def _speed_options(self, X: np.ndarray) -> dict[str, Any]:
        """The training-speed switches of :class:`~sadkit.training.Schedule` for data ``X``."""
        channels_last = self.channels_last
        if channels_last not in (True, False, "auto"):
            raise InvalidInputError(f"channels_last must be True, False or 'auto', got {channels_last!r}")
        return {
            "amp": resolve_amp(self.amp),
            "channels_last": X.ndim == 4 if channels_last == "auto" else bool(channels_last),
            "compile": bool(self.compile),
        }

    def _phase_schedule(self, prefix: str, speed: dict[str, Any]) -> Schedule:
        """The schedule of the training (``""``) or pretraining (``"ae_"``) phase, with Adam's options."""
        return self._schedule(prefix, amsgrad=self.amsgrad, reference_scheduler=self.reference_scheduler, **speed)

    def _fit(self, X: np.ndarray, y: np.ndarray, *, eval_set, callbacks: list[Callback]) -> None:
        semi_y = to_semi_y(y)  # the paper's codes: +1 labeled normal, -1 labeled anomaly, 0 unlabeled
        speed = self._speed_options(X)
        semi_y = self._labels_for_training(semi_y)
        device = self._training_device()
        seed = self._resolve_seed()
        generator = seed_everything(seed)
        input_shape = tuple(X.shape[1:])
        X_t = as_tensor(X, device)
        self.timings_ = {"pretrain": 0.0, "train": 0.0}

        net = self._build(input_shape, autoencoder=False).to(device)
        self.pretrain_losses_: list[float] = []
        self.ae_state_: dict[str, torch.Tensor] | None = None
        if self.pretrain and self.ae_n_epochs > 0:
            start = time.perf_counter()
            ae, self.pretrain_losses_ = pretrain_autoencoder(
                X_t,
                self._network_name(),
                self._phase_schedule("ae_", speed),
                generator=generator,
                net_params=self.net_params,
                callbacks=callbacks,
                network=net,
            )
            # The encoder of the autoencoder is the network architecture itself (checked before pretraining):
            # its weights (and BatchNorm statistics) load key for key.
            net.load_state_dict(ae.encoder.state_dict(), strict=True)
            self.ae_state_ = {k: v.detach().cpu().clone() for k, v in ae.state_dict().items()}
            self.timings_["pretrain"] = time.perf_counter() - start

        start = time.perf_counter()
        net.eval()
        with torch.no_grad():
            c = init_center(predict(net, X_t, batch_size=1024), float(self.center_eps))
        semi_t = as_tensor(semi_y, device)
        evaluate = None
        if eval_set is not None and callbacks:
            X_val_t = as_tensor(eval_set[0], device)
            y_val = np.asarray(eval_set[1])

            def evaluate() -> dict[str, float]:
                net.eval()
                with torch.no_grad():
                    d = torch.sum((predict(net, X_val_t) - c) ** 2, dim=1)
                return {"val_auroc": auroc(y_val, d.cpu().numpy())}

        self.train_losses_ = train_network(
            net,
            sad_loss(c, float(self.eta), float(self.eps)),
            [X_t, semi_t],
            self._phase_schedule("", speed),
            phase="train",
            generator=generator,
            callbacks=callbacks,
            evaluate=evaluate,
        )
        self.timings_["train"] = time.perf_counter() - start
        net.eval()
        self.net_ = net
        self.c_ = c.detach()
        self.seed_ = seed

    def _stack_key(self, X: np.ndarray) -> tuple:
        return stack_key(self, X)

    @classmethod
    def _fit_stack(cls, detectors: list, Xs: list, labels: list, eval_sets: list, callbacks: list) -> list:
        return fit_stack(detectors, Xs, labels, eval_sets, callbacks)

    def fine_tune(self, X: Any, y: Any = None, *, semi_y=None, n_epochs=20, eval_set=None, callbacks=()) -> DeepSAD:
        """Train the fitted network ``n_epochs`` more on ``X`` with Deep SAD's objective, labels read as by
        :meth:`fit`, the center kept (Deep SVDD's network too: see :mod:`sadkit.plugins.deepsad.finetune`)."""
        return fine_tune(self, X, y, semi_y, n_epochs, eval_set, callbacks)

    # ------------------------------------------------------------------ scoring
    def _score(self, X: np.ndarray) -> np.ndarray:
        device = self._scoring_device()
        net = self.net_.to(device).eval()
        c = self.c_.to(device)
        with torch.no_grad():
            dist = torch.sum((predict(net, as_tensor(X, device), fixed=True) - c) ** 2, dim=1)
        return dist.cpu().numpy().astype(np.float64)

    def _signal(self, X: np.ndarray) -> np.ndarray:
        """The score's terms: ``(phi(x)_k - c_k)^2`` per dimension (their sum is the score).

        A layer on top (``sadkit active``) then weighs the parts of the distance, so "more distant in a
        dimension never means less anomalous" is a constraint it can keep (``signal_weights="nonnegative"``).
        """
        return (self._embed(X) - self.c_.cpu().numpy().astype(np.float64)) ** 2

    def embed(self, X: Any) -> np.ndarray:
        """The network's representations ``phi(X)`` of raw rows (through the model's preprocessing)."""
        self._check_fitted()
        return self._embed(self._model_input(X))

    def _embed(self, X: np.ndarray) -> np.ndarray:
        """``phi`` of validated model input."""
        device = self._scoring_device()
        net = self.net_.to(device).eval()
        with torch.no_grad():
            return predict(net, as_tensor(X, device), fixed=True).cpu().numpy()

    def tracked_arrays(self) -> dict[str, np.ndarray]:
        return {"c": self.c_.cpu().numpy()} if hasattr(self, "c_") else {}

    def pretrained_autoencoder(self) -> PretrainedAutoencoder | None:
        """The autoencoder whose encoder initialised ``net_`` (None when the fit did not pretrain)."""
        self._check_fitted()
        if not self.ae_state_:
            return None
        return PretrainedAutoencoder(
            self._network_name(), dict(self.net_params or {}), tuple(self.input_shape_), self.ae_state_
        )

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {
            "net": self.net_.state_dict(),
            "c": self.c_,
            "ae": self.ae_state_,
            "pretrain_losses": list(self.pretrain_losses_),
            "train_losses": list(self.train_losses_),
            "timings": dict(self.timings_),
            "seed": self.seed_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        net = self._build(self.input_shape_, autoencoder=False)
        net.load_state_dict(state["net"], strict=True)
        self.net_ = net.eval()
        self.c_ = state["c"]
        self.ae_state_ = state["ae"]
        self.pretrain_losses_ = list(state["pretrain_losses"])
        self.train_losses_ = list(state["train_losses"])
        self.timings_ = dict(state["timings"])
        self.seed_ = state["seed"]


class DeepSVDD(DeepSAD):
    """One-class Deep SVDD (Ruff et al. 2018): Deep SAD's machinery with every label ignored."""

    uses_labels = False
    #: not parameters: Deep SVDD has no labeled terms for them to weigh (Deep SAD's loss reads them)
    eta = 1.0
    eps = 1e-6

    def __init__(
        self,
        net_name: str | None = None,
        net_params: dict[str, Any] | None = None,
        lr: float = 1e-4,
        n_epochs: int = 150,
        lr_milestones: Sequence[int] = (50,),
        batch_size: int = 128,
        weight_decay: float = 1e-6,
        amsgrad: bool = False,
        pretrain: bool = True,
        ae_lr: float = 1e-4,
        ae_n_epochs: int = 150,
        ae_lr_milestones: Sequence[int] = (50,),
        ae_batch_size: int = 128,
        ae_weight_decay: float = 1e-6,
        center_eps: float = 0.1,
        reference_scheduler: bool = False,
        device: str = "auto",
        seed: int | None = 0,
        amp: str | None = None,
        channels_last: bool | str = "auto",
        compile: bool = False,
        contamination: float = 0.1,
        threshold: str | float | None = None,
    ) -> None:
        super().__init__(
            net_name=net_name,
            net_params=net_params,
            lr=lr,
            n_epochs=n_epochs,
            lr_milestones=lr_milestones,
            batch_size=batch_size,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            pretrain=pretrain,
            ae_lr=ae_lr,
            ae_n_epochs=ae_n_epochs,
            ae_lr_milestones=ae_lr_milestones,
            ae_batch_size=ae_batch_size,
            ae_weight_decay=ae_weight_decay,
            center_eps=center_eps,
            reference_scheduler=reference_scheduler,
            device=device,
            seed=seed,
            amp=amp,
            channels_last=channels_last,
            compile=compile,
            contamination=contamination,
            threshold=threshold,
        )
        del self.eta, self.eps  # DeepSAD.__init__ sets them; here they are class constants, not parameters

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return _network_training_space(trial)

    def _labels_for_training(self, semi_y: np.ndarray) -> np.ndarray:
        return np.zeros_like(semi_y)


def _network_training_space(trial: Any) -> dict[str, Any]:
    """The optimisation settings both detectors search over."""
    return {
        "lr": trial.suggest_float("lr", 1e-5, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-7, 1e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
        "ae_lr": trial.suggest_float("ae_lr", 1e-5, 1e-2, log=True),
    }
