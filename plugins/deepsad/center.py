"""Deep SAD's hypersphere center."""

from __future__ import annotations

import torch


def init_center(features: torch.Tensor, eps: float) -> torch.Tensor:
    """Mean of the initial representations, with coordinates near zero pushed to ±eps."""
    c = features.mean(dim=0)
    small = c.abs() < eps
    return torch.where(small, torch.where(c < 0, -eps, eps).to(c.dtype), c)
