"""SS-DGM: the semi-supervised deep generative model (Kingma et al. 2014) as an anomaly detector.

The two classes are normal (``y = 0``, ``semi_y = +1``) and anomaly (``y = 1``, ``semi_y = -1``). As in
the reference code, every batch minimises

    -mean_labeled L(x, y) - mean_unlabeled U(x) - alpha * mean_labeled log q(y|x)

where ``L`` is the ELBO of a labeled sample and ``U(x) = sum_y q(y|x) L(x, y) + H(q(y|x))`` that of an
unlabeled one, and the anomaly score is ``q(y = anomaly | x)``, reported as its log-odds
``log q(anomaly|x) - log q(normal|x)`` (the same ranking, without saturating at 1.0 in float32).
``alpha`` defaults to the reference's ``0.1 * n_unlabeled / n_labeled``.

Without any labeled sample the reference divides by zero; here the labeled terms are simply absent
(the model is then fitted without supervision: its two classes are two clusters and which of them
is called "anomaly" is arbitrary, which a warning says).

``model="m2"`` is M2 on the input (the reference's model for the ODDS tables); ``model="m1m2"``
first trains an M1 variational autoencoder and runs M2 on its latent. The layer sizes default to those
of the dataset's network (``net_name``, filled in by the experiment runner): its hidden sizes and its
``rep_dim`` as the latent size, as the reference's ``<dataset>_DGM_M2`` networks.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sadkit import Callback, InvalidInputError, SadkitError, TorchDetector, auroc, create_network
from sadkit.data import to_semi_y
from sadkit.training import as_tensor, predict, seed_everything, train_network

from .model import M2, VAE

MODELS = ("m2", "m1m2")
#: the layer sizes when the network has no linear hidden layers to copy
FALLBACK_HIDDEN = (128, 64)


class SemiDGM(TorchDetector):
    """Semi-supervised deep generative model (M2 or M1+M2), scored by ``q(y = anomaly | x)``.

    Args:
        model: ``m2`` or ``m1m2``.
        net_name, net_params: the network whose layer sizes the model copies (hidden sizes, and
            ``rep_dim`` as the latent size); the experiment runner fills ``net_name`` from the dataset.
        hidden, z_dim: explicit layer sizes instead (both must be given).
        alpha: weight of the classification loss; None: ``0.1 * n_unlabeled / n_labeled`` (reference).
        lr, n_epochs, lr_milestones, batch_size, weight_decay: Adam training of M2 (reference defaults:
            lr 1e-3, 50 epochs, batch 128, weight decay 1e-6).
        vae_lr, vae_n_epochs, vae_lr_milestones, vae_batch_size, vae_weight_decay: training of M1
            (``model="m1m2"`` only; reference: lr 1e-3, 100 epochs).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: drives initialisation, sampling and batch order; None draws one.

    Attributes:
        model_: the trained M2 (with its frozen M1 for ``m1m2``).
        pretrain_losses_: mean loss of every M1 epoch (empty for ``m2``).
        timings_, train_losses_, seed_: as :class:`~sadkit.TorchDetector` (``pretrain`` is M1's training).
    """

    fast_params = {"n_epochs": 3, "vae_n_epochs": 2, "device": "cpu"}

    def __init__(
        self,
        model: str = "m2",
        net_name: str | None = None,
        net_params: dict[str, Any] | None = None,
        hidden: Sequence[int] | None = None,
        z_dim: int | None = None,
        alpha: float | None = None,
        lr: float = 1e-3,
        n_epochs: int = 50,
        lr_milestones: Sequence[int] = (),
        batch_size: int = 128,
        weight_decay: float = 1e-6,
        vae_lr: float = 1e-3,
        vae_n_epochs: int = 100,
        vae_lr_milestones: Sequence[int] = (),
        vae_batch_size: int = 128,
        vae_weight_decay: float = 1e-6,
        device: str = "auto",
        seed: int | None = 0,
        contamination: float = 0.1,
        threshold: str | float | None = None,
    ) -> None:
        self.model = model
        self.net_name = net_name
        self.net_params = net_params
        self.hidden = hidden
        self.z_dim = z_dim
        self.alpha = alpha
        self.lr = lr
        self.n_epochs = n_epochs
        self.lr_milestones = lr_milestones
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.vae_lr = vae_lr
        self.vae_n_epochs = vae_n_epochs
        self.vae_lr_milestones = vae_lr_milestones
        self.vae_batch_size = vae_batch_size
        self.vae_weight_decay = vae_weight_decay
        self.device = device
        self.seed = seed
        self.contamination = contamination
        self.threshold = threshold

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "lr": trial.suggest_float("lr", 1e-5, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-7, 1e-3, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
            "alpha": trial.suggest_float("alpha", 0.01, 100.0, log=True),
        }

    # ------------------------------------------------------------------ building
    def _validate_params(self) -> None:
        if self.model not in MODELS:
            raise InvalidInputError(f"SemiDGM: model must be 'm2' or 'm1m2', got {self.model!r}")
        self._reject_invalid(
            {
                "lr": self.lr > 0,
                "vae_lr": self.vae_lr > 0,
                "n_epochs": int(self.n_epochs) >= 0,
                "vae_n_epochs": int(self.vae_n_epochs) >= 0,
                "batch_size": int(self.batch_size) >= 1,
                "vae_batch_size": int(self.vae_batch_size) >= 1,
                "weight_decay": self.weight_decay >= 0,
                "vae_weight_decay": self.vae_weight_decay >= 0,
                "alpha": self.alpha is None or self.alpha >= 0,
            },
            "rates > 0, epochs >= 0, batch sizes >= 1, decays and alpha >= 0",
        )
        if (self.hidden is None) != (self.z_dim is None):
            raise InvalidInputError("SemiDGM: give both hidden and z_dim, or neither (to copy net_name's sizes)")

    def _dims(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        x_dim = int(np.prod(input_shape))
        if self.hidden is not None:
            hidden, z_dim = [int(h) for h in self.hidden], int(self.z_dim)
        else:
            name = self._network_name()
            try:
                net = create_network(name, tuple(input_shape), **(self.net_params or {}))
            except SadkitError as err:
                raise InvalidInputError(
                    f"SemiDGM copies the layer sizes of network {name!r}, which cannot be built here: {err};"
                    " give hidden and z_dim instead"
                ) from err
            sizes = [m.out_features for m in net.modules() if isinstance(m, nn.Linear)]
            hidden = sizes[:-1] or list(FALLBACK_HIDDEN)
            z_dim = int(getattr(net, "rep_dim", sizes[-1] if sizes else 32))
        if not hidden or min(hidden) < 1 or z_dim < 1:
            raise InvalidInputError(f"SemiDGM: layer sizes must be positive, got hidden={hidden}, z_dim={z_dim}")
        return {"x_dim": x_dim, "hidden": hidden, "z_dim": z_dim}

    def _build(self, dims: dict[str, Any]) -> M2:
        features = VAE(dims["x_dim"], dims["hidden"], dims["z_dim"]) if self.model == "m1m2" else None
        return M2(dims["x_dim"], dims["hidden"], dims["z_dim"], features=features)

    # ------------------------------------------------------------------ fitting
    def _fit(self, X: np.ndarray, y: np.ndarray, *, eval_set, callbacks: list[Callback]) -> None:
        semi_y = to_semi_y(y)  # the paper's codes: +1 labeled normal, -1 labeled anomaly, 0 unlabeled
        dims = self._dims(tuple(X.shape[1:]))  # before seeding: building the sized network draws weights
        device = self._training_device()
        seed = self._resolve_seed()
        generator = seed_everything(seed)
        n_labeled = int((semi_y != 0).sum())
        n_unlabeled = len(semi_y) - n_labeled
        if n_labeled == 0:
            warnings.warn(
                "SemiDGM without labeled samples: q(y|x) is fitted without supervision, so which of its two"
                " classes scores as 'anomaly' is arbitrary; label a few anomalies (semi_y = -1)",
                UserWarning,
                stacklevel=3,
            )
            alpha = 0.0
        elif self.alpha is not None:
            alpha = float(self.alpha)
        else:
            alpha = 0.1 * max(n_unlabeled, n_labeled) / n_labeled
        X_t = as_tensor(X.reshape(len(X), -1), device)
        semi_t = as_tensor(semi_y, device, dtype=torch.long)
        model = self._build(dims).to(device)
        self.timings_ = {"pretrain": 0.0, "train": 0.0}
        self.pretrain_losses_: list[float] = []
        if model.features is not None and int(self.vae_n_epochs) > 0:
            start = time.perf_counter()
            self.pretrain_losses_ = train_network(
                model.features,
                lambda vae, x: -vae.elbo(x).mean(),
                [X_t],
                self._schedule("vae_"),
                phase="pretrain",
                generator=generator,
                callbacks=callbacks,
            )
            self.timings_["pretrain"] = time.perf_counter() - start
        model.freeze_features()

        def loss_fn(net: M2, x: torch.Tensor, semi: torch.Tensor) -> torch.Tensor:
            labeled = (semi != 0).to(x.dtype)
            unlabeled = 1.0 - labeled
            target = (semi == -1).long()  # class 1 = anomaly
            elbo = net.elbo_per_class(x)  # (n, 2)
            log_q = torch.log_softmax(net.class_logits(x), dim=1)
            q = log_q.exp()
            elbo_labeled = elbo.gather(1, target[:, None]).squeeze(1)
            u = torch.sum(q * elbo, dim=1) - torch.sum(q * log_q, dim=1)  # E_q[L(x, y)] + H(q(y|x))
            log_q_true = log_q.gather(1, target[:, None]).squeeze(1)
            n_l = labeled.sum().clamp(min=1.0)  # a batch without labeled samples has no labeled terms
            n_u = unlabeled.sum().clamp(min=1.0)
            labeled_loss = -(elbo_labeled * labeled).sum() / n_l
            unlabeled_loss = -(u * unlabeled).sum() / n_u
            classification = -(log_q_true * labeled).sum() / n_l
            return labeled_loss + unlabeled_loss + alpha * classification

        evaluate = None
        if eval_set is not None and callbacks and len(eval_set[0]):
            X_val_t = as_tensor(np.asarray(eval_set[0]).reshape(len(eval_set[0]), -1), device)
            y_val = np.asarray(eval_set[1])

            def evaluate() -> dict[str, float]:
                model.eval()
                return {"val_auroc": auroc(y_val, _log_odds(model, X_val_t).cpu().numpy())}

        start = time.perf_counter()
        self.train_losses_ = train_network(
            model,
            loss_fn,
            [X_t, semi_t],
            self._schedule(),
            phase="train",
            generator=generator,
            callbacks=callbacks,
            evaluate=evaluate,
        )
        self.timings_["train"] = time.perf_counter() - start
        self.model_ = model.eval()
        self.dims_ = dims
        self.alpha_ = alpha
        self.n_labeled_ = n_labeled
        self.seed_ = seed

    # ------------------------------------------------------------------ scoring
    def _score(self, X: np.ndarray) -> np.ndarray:
        device = self._scoring_device()
        model = self.model_.to(device).eval()
        scores = _log_odds(model, as_tensor(X.reshape(len(X), -1), device))
        return scores.cpu().numpy().astype(np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """``q(y|x)`` as ``(n, 2)`` probabilities of normal and anomaly."""

        self._check_fitted()
        X = self._model_input(X)
        device = self._scoring_device()
        model = self.model_.to(device).eval()
        with torch.no_grad():
            logits = predict(model.class_logits, as_tensor(X.reshape(len(X), -1), device), fixed=True)
        return torch.softmax(logits, dim=1).cpu().numpy().astype(np.float64)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {
            "model": self.model_.state_dict(),
            "dims": dict(self.dims_),
            "alpha": self.alpha_,
            "n_labeled": self.n_labeled_,
            "pretrain_losses": list(self.pretrain_losses_),
            "train_losses": list(self.train_losses_),
            "timings": dict(self.timings_),
            "seed": self.seed_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        dims = dict(state["dims"])
        model = self._build(dims)
        model.load_state_dict(state["model"], strict=True)
        model.freeze_features()
        self.model_ = model.eval()
        self.dims_ = dims
        self.alpha_ = float(state["alpha"])
        self.n_labeled_ = int(state["n_labeled"])
        self.pretrain_losses_ = list(state["pretrain_losses"])
        self.train_losses_ = list(state["train_losses"])
        self.timings_ = dict(state["timings"])
        self.seed_ = state["seed"]


def _log_odds(model: M2, X: torch.Tensor) -> torch.Tensor:
    """``log q(anomaly|x) - log q(normal|x)``: ranks like ``q(y = anomaly | x)``."""
    with torch.no_grad():
        logits = predict(model.class_logits, X, fixed=True)
    return logits[:, 1] - logits[:, 0]
