"""TorchDetector: what every deep detector shares (seed, devices, schedules, default network, timings).

A deep detector trains torch modules with :func:`sadkit.training.train_network`. The parameters it
shares with the others (``net_name``, ``device``, ``seed`` and, per training phase, ``lr``,
``n_epochs``, ``lr_milestones``, ``batch_size`` and ``weight_decay`` under a prefix) are read here, once:
the seed drawn when none is given, the training and scoring devices, the :class:`~sadkit.training.Schedule`
of a phase, and the network used when neither the user nor the dataset names one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .detector import Detector
from .errors import DeviceError
from .training import Schedule, resolve_device

#: the network a deep detector uses when neither the user nor the dataset names one
DEFAULT_NETWORK = "mlp"


@dataclass(frozen=True)
class PretrainedAutoencoder:
    """An autoencoder a detector pretrained, as what rebuilds it: network plugin, its keywords, weights.

    Attributes:
        net_name: the network plugin (``create_network(net_name, input_shape, autoencoder=True)``).
        net_params: keyword arguments of the network factory.
        input_shape: the shape of one sample it was trained on.
        state: its state dict (CPU tensors).
    """

    net_name: str
    net_params: dict[str, Any]
    input_shape: tuple[int, ...]
    state: dict[str, torch.Tensor]


class TorchDetector(Detector):
    """Base class of the detectors that train torch networks.

    Subclasses take the constructor parameters ``net_name``, ``net_params``, ``device`` and ``seed``, and
    per training phase ``{prefix}lr``, ``{prefix}n_epochs``, ``{prefix}lr_milestones``,
    ``{prefix}batch_size`` and ``{prefix}weight_decay`` (prefix ``""`` for the main phase, e.g. ``"ae_"``
    for autoencoder pretraining), which the helpers below read.

    Attributes:
        timings_: seconds per phase of the last fit: ``{"pretrain": s, "train": s}`` (``pretrain`` is 0
            when the detector did not pretrain).
        train_losses_: mean batch loss of every epoch of the main training phase (empty when that phase
            trains no network, e.g. a shallow model on autoencoder features).
        seed_: the seed the fit used (the given ``seed``, or the one drawn when it is None).
    """

    def _resolve_seed(self) -> int:
        """``seed`` as an int, or a fresh one below 2**31 when it is None (kept as ``seed_``)."""
        if self.seed is not None:
            return int(self.seed)
        return int(np.random.SeedSequence().entropy % (2**31))

    def _training_device(self) -> torch.device:
        """The device ``device`` names (``auto``: CUDA when available).

        Raises:
            DeviceError: a CUDA device was asked for and is not there.
        """
        return resolve_device(self.device)

    def _scoring_device(self) -> torch.device:
        """The training device where it exists, else the CPU: a model trained on a GPU still scores without one."""
        try:
            return resolve_device(self.device)
        except DeviceError:
            return torch.device("cpu")

    def _network_name(self) -> str:
        """``net_name``, or :data:`DEFAULT_NETWORK` when it is not set."""
        return self.net_name or DEFAULT_NETWORK

    def _schedule(self, prefix: str = "", **options: Any) -> Schedule:
        """The :class:`~sadkit.training.Schedule` of the training phase whose parameters start with ``prefix``.

        Args:
            prefix: ``""`` reads ``lr``, ``n_epochs``, ``lr_milestones``, ``batch_size`` and
                ``weight_decay``; ``"ae_"`` reads ``ae_lr``, ``ae_n_epochs``, ... .
            options: the other fields of the schedule (``amsgrad``, ``reference_scheduler``, ``amp``, ...).
        """
        return Schedule(
            n_epochs=int(getattr(self, f"{prefix}n_epochs")),
            lr=getattr(self, f"{prefix}lr"),
            lr_milestones=getattr(self, f"{prefix}lr_milestones"),
            batch_size=int(getattr(self, f"{prefix}batch_size")),
            weight_decay=getattr(self, f"{prefix}weight_decay"),
            **options,
        )

    def pretrained_autoencoder(self) -> PretrainedAutoencoder | None:
        """The autoencoder this fitted detector pretrained (or loaded), or None when it has none.

        Another detector can start from it (the hybrid baselines' ``ae_run_id``). The default is None;
        a detector that pretrains an autoencoder returns it.
        """
        return None
