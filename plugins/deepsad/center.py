"""Deep SAD's hypersphere: its center, and the per-sample terms of the loss around it."""

from __future__ import annotations

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
