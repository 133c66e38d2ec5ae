"""ESAD's network: an encoder-decoder-encoder built from a network plugin's autoencoder."""

from __future__ import annotations

import torch
from torch import nn

from sadkit import AutoEncoder


class EncoderDecoderEncoder(nn.Module):
    """``x -> z = E(x) -> x_hat = D(z) -> z_hat = E'(x_hat)``; E' is E when ``second`` is None."""

    def __init__(self, autoencoder: AutoEncoder, second: nn.Module | None) -> None:
        super().__init__()
        self.encoder = autoencoder.encoder
        self.decoder = autoencoder.decoder
        self.second = second  # None: shared (no second set of weights in the state dict)

    @property
    def shared(self) -> bool:
        return self.second is None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        x_hat = self.decoder(z)
        z_hat = (self.encoder if self.second is None else self.second)(x_hat)
        return z, x_hat, z_hat
