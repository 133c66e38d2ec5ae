"""Network contracts: a :class:`Network` maps inputs to a ``rep_dim`` representation; an
:class:`AutoEncoder` pairs such an encoder with a decoder.

Network plugins are factories ``(input_shape, *, autoencoder=False, **params)``: with
``autoencoder=True`` they return an :class:`AutoEncoder` whose ``encoder`` is exactly the network the
factory builds otherwise, so pretrained encoder weights load into it key for key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class Network(nn.Module, ABC):
    """A feature extractor with a fixed output size ``rep_dim``.

    Attributes:
        input_shape: the shape of one sample (without the batch dimension).
        rep_dim: the size of the representation ``forward`` returns.
    """

    def __init__(self, input_shape: tuple[int, ...], rep_dim: int) -> None:
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        self.rep_dim = int(rep_dim)

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch ``(n, *input_shape)`` to ``(n, rep_dim)``."""


class AutoEncoder(nn.Module):
    """An encoder :class:`Network` and a decoder back to the input space."""

    def __init__(self, encoder: Network, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    @property
    def rep_dim(self) -> int:
        return self.encoder.rep_dim

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.encoder.input_shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
