"""Deep SAD's hypersphere: its center, and the per-sample terms of the loss around it."""

from __future__ import annotations

from collections.abc import Callable

import torch


def init_center(features: torch.Tensor, eps: float) -> torch.Tensor:
    """Mean of the initial representations, with coordinates near zero pushed to ±eps."""
    c = features.mean(dim=0)
    small = c.abs() < eps
    return torch.where(small, torch.where(c < 0, -eps, eps).to(c.dtype), c)


def sad_terms(
    dist: torch.Tensor, semi: torch.Tensor, eta: float | torch.Tensor, eps: float | torch.Tensor
) -> torch.Tensor:
    """Each sample's term of Deep SAD's loss: ``dist`` when unlabeled (``semi == 0``), else
    ``eta * (dist + eps) ** semi`` (pulled in for +1 normals, pushed out for -1 anomalies).

    ``eta`` and ``eps`` are numbers, or per-model tensors broadcasting against ``dist`` (stacked training).
    """
    return torch.where(semi == 0, dist, eta * (dist + eps) ** semi)


def sad_loss(
    c: torch.Tensor, eta: float, eps: float
) -> Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Deep SAD's loss around the center ``c`` as :func:`sadkit.training.train_network` takes it:
    ``loss(net, x, semi)``, the mean of the batch's :func:`sad_terms`."""

    def loss(model: torch.nn.Module, x: torch.Tensor, semi: torch.Tensor) -> torch.Tensor:
        return sad_terms(torch.sum((model(x) - c) ** 2, dim=1), semi, eta, eps).mean()

    return loss
