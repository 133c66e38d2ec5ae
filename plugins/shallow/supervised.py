"""The paper's supervised baseline: a deep binary classifier (normal vs. anomaly).

The reference code has no implementation of it (its issue #15 asks for one). The network is the one
Deep SAD uses on the dataset (``net_name``, filled in by the experiment runner) followed by a linear
layer to one logit, trained with the binary cross-entropy loss, Adam and the same schedule as Deep SAD
(lr 1e-4 for 150 epochs, dropped 10x at epoch 50; batch 128; weight decay 1e-6). The anomaly score is
the logit.

Which samples it learns from:

* ``unlabeled="normal"`` (default, the paper's setting): every unlabeled sample counts as normal,
  next to the labeled normals, and the labeled anomalies are the positive class. In the paper's
  experiments only a few anomalies are labeled and most unlabeled data is normal, so this is a
  classifier of "known anomalies vs. the rest";
* ``unlabeled="ignore"``: only the labeled samples, so both labeled normals and labeled anomalies
  are needed.

With ``class_weight="balanced"`` (default) the anomalies' loss is weighted by
``n_normal / n_anomalous`` so that the few labeled anomalies are not drowned out.

A classifier cannot learn what an anomaly is without a labeled one: fitting without labeled anomalies
(or, with ``unlabeled="ignore"``, without labeled normals) raises :class:`sadkit.InvalidInputError`
saying so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sadkit import Callback, InvalidInputError, SadkitError, TorchDetector, auroc, create_network
from sadkit.data import to_semi_y
from sadkit.training import as_tensor, predict, seed_everything, train_network

UNLABELED = ("normal", "ignore")
CLASS_WEIGHTS = ("balanced", None)


class Classifier(nn.Module):
    """A network plugin's representation followed by a linear layer to one logit."""

    def __init__(self, network: nn.Module, rep_dim: int) -> None:
        super().__init__()
        self.network = network
        self.head = nn.Linear(rep_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.network(x).reshape(len(x), -1)).squeeze(1)


class Supervised(TorchDetector):
    """Deep binary classifier on the labeled data (the paper's supervised baseline).

    Args:
        unlabeled: ``normal`` (unlabeled samples count as normal; the paper) or ``ignore``.
        class_weight: ``balanced`` (weigh the anomalies by ``n_normal / n_anomalous``) or None.
        net_name, net_params: the network (the dataset's Deep SAD network by default).
        lr, n_epochs, lr_milestones, batch_size, weight_decay: Adam training, as Deep SAD's.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: drives initialisation and batch order; None draws one.

    Attributes:
        net_: the trained :class:`Classifier`.
        pos_weight_: the weight of the anomalies' loss (``n_normal / n_anomalous`` when balanced, else 1).
        n_train_: how many samples the classifier learned from.
        timings_, train_losses_, seed_: as :class:`~sadkit.TorchDetector` (no pretraining phase).
    """

    requires_labels = True
    fast_params = {"n_epochs": 3, "lr_milestones": (2,), "device": "cpu"}

    def __init__(
        self,
        unlabeled: str = "normal",
        class_weight: str | None = "balanced",
        net_name: str | None = None,
        net_params: dict[str, Any] | None = None,
        lr: float = 1e-4,
        n_epochs: int = 150,
        lr_milestones: Sequence[int] = (50,),
        batch_size: int = 128,
        weight_decay: float = 1e-6,
        device: str = "auto",
        seed: int | None = 0,
        contamination: float = 0.1,
        threshold: str | float | None = None,
    ) -> None:
        self.unlabeled = unlabeled
        self.class_weight = class_weight
        self.net_name = net_name
        self.net_params = net_params
        self.lr = lr
        self.n_epochs = n_epochs
        self.lr_milestones = lr_milestones
        self.batch_size = batch_size
        self.weight_decay = weight_decay
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
        }

    def _validate_params(self) -> None:
        if self.unlabeled not in UNLABELED:
            raise InvalidInputError(f"Supervised: unlabeled must be 'normal' or 'ignore', got {self.unlabeled!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise InvalidInputError(f"Supervised: class_weight must be 'balanced' or None, got {self.class_weight!r}")
        self._reject_invalid(
            {
                "lr": self.lr > 0,
                "n_epochs": int(self.n_epochs) >= 0,
                "batch_size": int(self.batch_size) >= 2,
                "weight_decay": self.weight_decay >= 0,
            },
            "lr > 0, epochs >= 0, batch size >= 2, decay >= 0",
        )

    def _training_set(self, semi_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the samples the classifier learns from, and their targets (1 = anomaly)."""
        n_anomalies = int((semi_y == -1).sum())
        n_normals = int((semi_y == 1).sum())
        if n_anomalies == 0:
            raise InvalidInputError(
                "the supervised baseline needs labeled anomalies (semi_y = -1) to learn what an anomaly is, but"
                f" none of the {len(semi_y)} training samples is a labeled anomaly ({n_normals} labeled normal);"
                " label some (e.g. --data ratio_known_outlier=0.01) or use a detector that learns without"
                " labels, such as deepsad or ocsvm"
            )
        if self.unlabeled == "ignore":
            if n_normals == 0:
                raise InvalidInputError(
                    "the supervised baseline with unlabeled='ignore' learns from labeled samples only, and there"
                    f" is no labeled normal (semi_y = +1) among the {len(semi_y)} training samples; label some"
                    " (e.g. --data ratio_known_normal=0.05) or use unlabeled='normal' to take the unlabeled"
                    " samples as normal (the paper's setting)"
                )
            idx = np.flatnonzero(semi_y != 0)
        else:
            idx = np.arange(len(semi_y))
        return idx, (semi_y[idx] == -1).astype(np.float32)

    def _build(self, input_shape: tuple[int, ...]) -> Classifier:
        name = self._network_name()
        try:
            network = create_network(name, tuple(input_shape), **(self.net_params or {}))
        except SadkitError as err:
            raise InvalidInputError(f"Supervised: network {name!r} cannot be built here: {err}") from err
        rep_dim = getattr(network, "rep_dim", None)
        if rep_dim is None:
            raise InvalidInputError(f"Supervised: network {name!r} has no rep_dim; use a sadkit Network plugin")
        return Classifier(network, int(rep_dim))

    def _fit(self, X: np.ndarray, y: np.ndarray, *, eval_set, callbacks: list[Callback]) -> None:
        semi_y = to_semi_y(y)  # the paper's codes: +1 labeled normal, -1 labeled anomaly, 0 unlabeled
        idx, targets = self._training_set(semi_y)
        device = self._training_device()
        seed = self._resolve_seed()
        generator = seed_everything(seed)
        net = self._build(tuple(X.shape[1:])).to(device)
        n_pos = float(targets.sum())
        n_neg = float(len(targets) - n_pos)
        pos_weight = n_neg / n_pos if self.class_weight == "balanced" and n_neg > 0 else 1.0
        loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))

        def loss_fn(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return loss(model(x), t)

        evaluate = None
        if eval_set is not None and callbacks and len(eval_set[0]):
            X_val_t = as_tensor(eval_set[0], device)
            y_val = np.asarray(eval_set[1])

            def evaluate() -> dict[str, float]:
                net.eval()
                with torch.no_grad():
                    return {"val_auroc": auroc(y_val, predict(net, X_val_t).cpu().numpy())}

        start = time.perf_counter()
        self.train_losses_ = train_network(
            net,
            loss_fn,
            [as_tensor(X[idx], device), as_tensor(targets, device)],
            self._schedule(),
            phase="train",
            generator=generator,
            callbacks=callbacks,
            evaluate=evaluate,
        )
        self.timings_ = {"pretrain": 0.0, "train": time.perf_counter() - start}
        self.net_ = net.eval()
        self.pos_weight_ = pos_weight
        self.n_train_ = len(idx)
        self.seed_ = seed

    def _score(self, X: np.ndarray) -> np.ndarray:
        device = self._scoring_device()
        net = self.net_.to(device).eval()
        with torch.no_grad():
            return predict(net, as_tensor(X, device), fixed=True).cpu().numpy().astype(np.float64)

    def _get_state(self) -> dict[str, Any]:
        return {
            "net": self.net_.state_dict(),
            "pos_weight": self.pos_weight_,
            "n_train": self.n_train_,
            "train_losses": list(self.train_losses_),
            "timings": dict(self.timings_),
            "seed": self.seed_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        net = self._build(self.input_shape_)
        net.load_state_dict(state["net"], strict=True)
        self.net_ = net.eval()
        self.pos_weight_ = float(state["pos_weight"])
        self.n_train_ = int(state["n_train"])
        self.train_losses_ = list(state["train_losses"])
        self.timings_ = dict(state["timings"])
        self.seed_ = state["seed"]
