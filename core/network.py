"""Network contracts: a :class:`Network` maps inputs to a ``rep_dim`` representation; an
:class:`AutoEncoder` pairs such an encoder with a decoder.

Network plugins are factories ``(input_shape, *, autoencoder=False, **params)``: with
``autoencoder=True`` they return an :class:`AutoEncoder` whose ``encoder`` is exactly the network the
factory builds otherwise, so pretrained encoder weights load into it key for key
(:func:`check_encoder_is_network` says so in one line where it is not). A factory built for one sample
shape may say which as its ``example_input_shape`` attribute (the conformance checks use it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from .errors import InvalidInputError


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


#: the rule :func:`check_encoder_is_network` enforces, as its errors state it
ENCODER_RULE = (
    "the autoencoder's encoder must be the network itself (AutoEncoder(<the network the factory builds>,"
    " decoder)), so that pretrained weights load into the network key for key"
)


def check_encoder_is_network(network: nn.Module, autoencoder: nn.Module, name: str) -> None:
    """Raise unless ``autoencoder.encoder`` has exactly ``network``'s parameters and buffers (names and shapes).

    Deep SAD initialises its network with the pretrained encoder (``load_state_dict(strict=True)``); a
    factory whose encoder differs would otherwise fail there with torch's "size mismatch", after pretraining.

    Raises:
        InvalidInputError: one line naming the rule and the first differences.
    """
    encoder = getattr(autoencoder, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise InvalidInputError(
            f"network {name!r}: autoencoder=True returned a {type(autoencoder).__name__} without an encoder module;"
            f" {ENCODER_RULE}"
        )
    ours = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    differences = [f"{k} only in the network" for k in ours if k not in theirs]
    differences += [f"{k} only in the encoder" for k in theirs if k not in ours]
    differences += [
        f"{k} has shape {list(ours[k])} in the network, {list(theirs[k])} in the encoder"
        for k in ours
        if k in theirs and ours[k] != theirs[k]
    ]
    if differences:
        shown = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
        raise InvalidInputError(f"network {name!r}: {ENCODER_RULE}; they differ: {shown}")
