"""A tiny bias-free MLP and its autoencoder: a complete sadkit network plugin in one small file.

What a network plugin is (see ``sadkit.Network`` and ``sadkit.AutoEncoder``): a factory
``(input_shape, *, autoencoder=False, **params)`` registered under ``sadkit.networks``. It returns a
``sadkit.Network`` (a ``torch.nn.Module`` with ``input_shape`` and ``rep_dim``) mapping a float32 batch
``(n, *input_shape)`` to ``(n, rep_dim)``; with ``autoencoder=True`` a ``sadkit.AutoEncoder`` whose
``encoder`` is exactly that network (the same layers, so Deep SAD's pretrained weights load into it key for
key) and whose decoder gives back ``(n, *input_shape)``. The rules the checks hold it to:

* bias-free: no bias and no affine normalisation (``bias=False``, ``BatchNorm1d(affine=False)``), or Deep SAD
  can map every sample to its center c (Ruff et al. 2020, Sec. 3);
* ``rep_dim`` as asked; weights drawn from torch's generator only (the detector seeds it); no device
  chosen here (the detector moves the module: ``device=cpu|cuda``);
* built again from the same keywords, it takes its saved state dict (a detector's ``_set_state`` rebuilds
  the network through this factory and loads CPU tensors into it).

Check it with ``sadkit plugins check tiny_mlp`` or ``sadkit.testing.assert_network_conforms("tiny_mlp")``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sadkit import AutoEncoder, InvalidInputError, Network


def _block(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, n_out, bias=False), nn.BatchNorm1d(n_out, eps=1e-4, affine=False), nn.LeakyReLU()
    )


class TinyMLP(Network):
    """``x -> hidden -> rep_dim``, bias-free."""

    def __init__(self, input_shape: Sequence[int], hidden: int, rep_dim: int) -> None:
        super().__init__(input_shape, rep_dim)
        self.hidden = _block(math.prod(self.input_shape), hidden)
        self.code = nn.Linear(hidden, rep_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.code(self.hidden(x.reshape(len(x), -1)))


class TinyDecoder(nn.Module):
    """``rep_dim -> hidden -> x``, ending in a sigmoid (sadkit's tabular datasets scale features to [0, 1])."""

    def __init__(self, input_shape: Sequence[int], hidden: int, rep_dim: int) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.hidden = _block(rep_dim, hidden)
        self.out = nn.Linear(hidden, math.prod(self.input_shape), bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(self.hidden(z))).reshape(len(z), *self.input_shape)


def tiny_mlp(
    input_shape: tuple[int, ...], *, hidden: int = 16, rep_dim: int = 4, autoencoder: bool = False
) -> TinyMLP | AutoEncoder:
    """A one-hidden-layer MLP (``-p net_name=tiny_mlp -p net_params='{hidden: 32, rep_dim: 8}'``).

    Args:
        input_shape: the shape of one sample, e.g. ``(21,)``.
        hidden: width of the hidden layer.
        rep_dim: size of the representation.
        autoencoder: return the autoencoder whose encoder is this network.

    Raises:
        InvalidInputError: a size below 1 (a sadkit error: the CLI prints it as one line).
    """
    if int(hidden) < 1 or int(rep_dim) < 1 or not input_shape:
        raise InvalidInputError(f"tiny_mlp needs positive sizes and a sample shape, got {hidden=}, {rep_dim=}")
    encoder = TinyMLP(input_shape, int(hidden), int(rep_dim))
    if not autoencoder:
        return encoder
    return AutoEncoder(encoder, TinyDecoder(input_shape, int(hidden), int(rep_dim)))
