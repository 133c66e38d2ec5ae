"""The LeNet-type CNNs of Deep SAD's image experiments (MNIST, Fashion-MNIST, CIFAR-10) and their autoencoders.

Layer by layer as in the reference code (``Deep-SAD-PyTorch/src/networks/{mnist,fmnist,cifar10}_LeNet.py``):
bias-free convolutions and dense layers, BatchNorm with ``eps=1e-4`` and ``affine=False``, LeakyReLU
(slope 0.01, the reference's ``F.leaky_relu`` default), 2x2 max-pooling; the decoders reshape the
representation to ``(rep_dim / 16, 4, 4)`` and alternate nearest-neighbour upsampling (x2) with
bias-free transposed convolutions, ending in a sigmoid. Representation sizes 32 (MNIST), 64
(Fashion-MNIST) and 128 (CIFAR-10). Parameter and buffer names are the reference's, so the state dicts
match key for key, and every autoencoder's ``encoder`` *is* the network (pretraining transfers exactly).

Where the paper's text differs from its code, the text's choice is an option: ``negative_slope=0.1``
(the text's LeakyReLU) for every network, and for Fashion-MNIST ``variant="paper"`` (dense layers
64 -> 32 instead of 128 -> 64, slope 0.1).

Speed without changing the function: the decoders' "upsample x2, then transposed convolution" pairs and
the encoders' "BatchNorm -> LeakyReLU -> 2x2 max-pool" blocks run as the fused kernels of
:mod:`sadkit.plugins.networks._fused` (``fused_upsampling`` and ``fused_pooling``, default on; False runs
the reference's steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sadkit import AutoEncoder, InvalidInputError, Network

from ._fused import FusedPooling, UpsampleConvTranspose2d, bn_leaky_pool

BN_EPS = 1e-4

#: the reference's slope (``F.leaky_relu`` default); the paper's text says 0.1
REFERENCE_SLOPE = 0.01
PAPER_SLOPE = 0.1


def _bn2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, affine=False)


def _bn1d(features: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(features, eps=BN_EPS, affine=False)


def _check_shape(name: str, input_shape: Sequence[int], expected: tuple[int, int, int]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in input_shape)
    c, h, w = expected
    if shape == expected or (c == 1 and shape == (h, w)):
        return shape
    kind = "grayscale" if c == 1 else "RGB"
    raise InvalidInputError(
        f"network {name!r} expects {kind} images of shape {expected} (channels, height, width) but the"
        f" data has samples of shape {shape}; use a network that fits the data (e.g. net_name=mlp for"
        " tabular data)"
    )


def _check_rep_dim(name: str, value: int, param: str = "rep_dim") -> int:
    value = int(value)
    if value < 16 or value % 16:
        raise InvalidInputError(
            f"{name}: {param} must be a positive multiple of 16 (the decoder reshapes it to"
            f" ({param} / 16, 4, 4)); got {value}"
        )
    return value


# ------------------------------------------------------------------------------------------------ MNIST


class MNISTLeNet(FusedPooling, Network):
    """``conv(1->8, 5x5) -> BN -> LReLU -> pool -> conv(8->4, 5x5) -> BN -> LReLU -> pool -> dense(196->rep_dim)``."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        rep_dim: int = 32,
        negative_slope: float = 0.01,
        fused_pooling: bool = True,
    ):
        super().__init__(tuple(input_shape), rep_dim)
        self.negative_slope = float(negative_slope)
        self.fused_pooling = bool(fused_pooling)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv1 = nn.Conv2d(1, 8, 5, bias=False, padding=2)
        self.bn1 = _bn2d(8)
        self.conv2 = nn.Conv2d(8, 4, 5, bias=False, padding=2)
        self.bn2 = _bn2d(4)
        self.fc1 = nn.Linear(4 * 7 * 7, self.rep_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.negative_slope
        x = x.reshape(len(x), 1, 28, 28)
        x = bn_leaky_pool(self.conv1(x), self.bn1, s, self.fused_pooling)
        x = bn_leaky_pool(self.conv2(x), self.bn2, s, self.fused_pooling)
        return self.fc1(x.flatten(1))


class MNISTLeNetDecoder(nn.Module):
    """``(rep_dim/16, 4, 4) -> up, deconv(->4) -> BN -> up, deconv(->8) -> BN -> up, deconv(->1) -> sigmoid``."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        rep_dim: int = 32,
        negative_slope: float = 0.01,
        fused_upsampling: bool = True,
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.rep_dim = int(rep_dim)
        self.negative_slope = float(negative_slope)
        self.deconv1 = UpsampleConvTranspose2d(self.rep_dim // 16, 4, 5, padding=2, fused=fused_upsampling)
        self.bn3 = _bn2d(4)
        self.deconv2 = UpsampleConvTranspose2d(4, 8, 5, padding=3, fused=fused_upsampling)
        self.bn4 = _bn2d(8)
        self.deconv3 = UpsampleConvTranspose2d(8, 1, 5, padding=2, fused=fused_upsampling)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.negative_slope
        x = z.reshape(len(z), self.rep_dim // 16, 4, 4)
        x = self.deconv1(F.leaky_relu(x, s))
        x = self.deconv2(F.leaky_relu(self.bn3(x), s))
        x = self.deconv3(F.leaky_relu(self.bn4(x), s))
        return torch.sigmoid(x).reshape(len(z), *self.input_shape)


# ----------------------------------------------------------------------------------------- Fashion-MNIST


class FashionMNISTLeNet(FusedPooling, Network):
    """Two ``conv(5x5) -> BN -> LReLU -> pool`` (1->16->32), ``dense(1568->hidden) -> BN1d -> LReLU -> dense``."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        rep_dim: int = 64,
        hidden: int = 128,
        negative_slope: float = 0.01,
        fused_pooling: bool = True,
    ):
        super().__init__(tuple(input_shape), rep_dim)
        self.negative_slope = float(negative_slope)
        self.fused_pooling = bool(fused_pooling)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv1 = nn.Conv2d(1, 16, 5, bias=False, padding=2)
        self.bn2d1 = _bn2d(16)
        self.conv2 = nn.Conv2d(16, 32, 5, bias=False, padding=2)
        self.bn2d2 = _bn2d(32)
        self.fc1 = nn.Linear(32 * 7 * 7, int(hidden), bias=False)
        self.bn1d1 = _bn1d(int(hidden))
        self.fc2 = nn.Linear(int(hidden), self.rep_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.negative_slope
        x = x.reshape(len(x), 1, 28, 28)
        x = bn_leaky_pool(self.conv1(x), self.bn2d1, s, self.fused_pooling)
        x = bn_leaky_pool(self.conv2(x), self.bn2d2, s, self.fused_pooling)
        x = F.leaky_relu(self.bn1d1(self.fc1(x.flatten(1))), s)
        return self.fc2(x)


class FashionMNISTLeNetDecoder(nn.Module):
    """``dense(rep_dim->hidden) -> BN1d -> (hidden/16, 4, 4)``, upsampling deconvolutions (->32->16->1), sigmoid."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        rep_dim: int = 64,
        hidden: int = 128,
        negative_slope: float = 0.01,
        fused_upsampling: bool = True,
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.hidden = int(hidden)
        self.negative_slope = float(negative_slope)
        self.fc3 = nn.Linear(int(rep_dim), self.hidden, bias=False)
        self.bn1d2 = _bn1d(self.hidden)
        self.deconv1 = UpsampleConvTranspose2d(self.hidden // 16, 32, 5, padding=2, fused=fused_upsampling)
        self.bn2d3 = _bn2d(32)
        self.deconv2 = UpsampleConvTranspose2d(32, 16, 5, padding=3, fused=fused_upsampling)
        self.bn2d4 = _bn2d(16)
        self.deconv3 = UpsampleConvTranspose2d(16, 1, 5, padding=2, fused=fused_upsampling)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.negative_slope
        x = self.bn1d2(self.fc3(z)).reshape(len(z), self.hidden // 16, 4, 4)
        x = self.deconv1(F.leaky_relu(x, s))
        x = self.deconv2(F.leaky_relu(self.bn2d3(x), s))
        x = self.deconv3(F.leaky_relu(self.bn2d4(x), s))
        return torch.sigmoid(x).reshape(len(z), *self.input_shape)


# ---------------------------------------------------------------------------------------------- CIFAR-10


class CIFAR10LeNet(FusedPooling, Network):
    """Three ``conv(5x5) -> BN -> LReLU -> pool`` modules (3->32->64->128) and ``dense(2048->rep_dim)``."""

    def __init__(
        self,
        input_shape: Sequence[int] = (3, 32, 32),
        rep_dim: int = 128,
        negative_slope: float = 0.01,
        fused_pooling: bool = True,
    ):
        super().__init__(tuple(input_shape), rep_dim)
        self.negative_slope = float(negative_slope)
        self.fused_pooling = bool(fused_pooling)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv1 = nn.Conv2d(3, 32, 5, bias=False, padding=2)
        self.bn2d1 = _bn2d(32)
        self.conv2 = nn.Conv2d(32, 64, 5, bias=False, padding=2)
        self.bn2d2 = _bn2d(64)
        self.conv3 = nn.Conv2d(64, 128, 5, bias=False, padding=2)
        self.bn2d3 = _bn2d(128)
        self.fc1 = nn.Linear(128 * 4 * 4, self.rep_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.negative_slope
        x = x.reshape(len(x), 3, 32, 32)
        x = bn_leaky_pool(self.conv1(x), self.bn2d1, s, self.fused_pooling)
        x = bn_leaky_pool(self.conv2(x), self.bn2d2, s, self.fused_pooling)
        x = bn_leaky_pool(self.conv3(x), self.bn2d3, s, self.fused_pooling)
        return self.fc1(x.flatten(1))


class CIFAR10LeNetDecoder(nn.Module):
    """``(rep_dim/16, 4, 4) -> LReLU -> deconv(->128) -> BN -> up, deconv(->64) -> ... -> deconv(->3) -> sigmoid``.

    As in the reference, the transposed convolutions are initialised with Xavier-uniform (gain of
    LeakyReLU) and the first one is not preceded by upsampling.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (3, 32, 32),
        rep_dim: int = 128,
        negative_slope: float = 0.01,
        fused_upsampling: bool = True,
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.rep_dim = int(rep_dim)
        self.negative_slope = float(negative_slope)
        gain = nn.init.calculate_gain("leaky_relu")
        self.deconv1 = nn.ConvTranspose2d(self.rep_dim // 16, 128, 5, bias=False, padding=2)
        nn.init.xavier_uniform_(self.deconv1.weight, gain=gain)
        self.bn2d4 = _bn2d(128)
        self.deconv2 = UpsampleConvTranspose2d(128, 64, 5, padding=2, fused=fused_upsampling)
        nn.init.xavier_uniform_(self.deconv2.weight, gain=gain)
        self.bn2d5 = _bn2d(64)
        self.deconv3 = UpsampleConvTranspose2d(64, 32, 5, padding=2, fused=fused_upsampling)
        nn.init.xavier_uniform_(self.deconv3.weight, gain=gain)
        self.bn2d6 = _bn2d(32)
        self.deconv4 = UpsampleConvTranspose2d(32, 3, 5, padding=2, fused=fused_upsampling)
        nn.init.xavier_uniform_(self.deconv4.weight, gain=gain)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.negative_slope
        x = self.deconv1(F.leaky_relu(z.reshape(len(z), self.rep_dim // 16, 4, 4), s))
        x = self.deconv2(F.leaky_relu(self.bn2d4(x), s))
        x = self.deconv3(F.leaky_relu(self.bn2d5(x), s))
        x = self.deconv4(F.leaky_relu(self.bn2d6(x), s))
        return torch.sigmoid(x).reshape(len(z), *self.input_shape)


# ---------------------------------------------------------------------------------------------- factories


def mnist_lenet(
    input_shape: tuple[int, ...],
    *,
    rep_dim: int = 32,
    negative_slope: float = REFERENCE_SLOPE,
    fused_upsampling: bool = True,
    fused_pooling: bool = True,
    autoencoder: bool = False,
) -> Network | AutoEncoder:
    """Deep SAD's MNIST LeNet (``--param net_name=mnist_lenet``), for samples of shape (1, 28, 28).

    Args:
        rep_dim: representation size (32 in the paper; a multiple of 16).
        negative_slope: LeakyReLU slope: 0.01 as the reference code, 0.1 as the paper's text.
        fused_upsampling: run the decoder's upsample + transposed convolution as one polyphase
            convolution (same function, faster); False runs the reference's two steps.
        fused_pooling: pool before BatchNorm and LeakyReLU in the encoder (same function, faster);
            False runs the reference's order.
        autoencoder: return the autoencoder whose ``encoder`` is this network.
    """
    shape = _check_shape("mnist_lenet", input_shape, (1, 28, 28))
    rep_dim = _check_rep_dim("mnist_lenet", rep_dim)
    encoder = MNISTLeNet(shape, rep_dim, negative_slope, fused_pooling)
    if not autoencoder:
        return encoder
    return AutoEncoder(encoder, MNISTLeNetDecoder(shape, rep_dim, negative_slope, fused_upsampling))


#: Fashion-MNIST sizes (hidden, rep_dim, slope): the reference code's and the paper's text
FMNIST_VARIANTS: dict[str, tuple[int, int, float]] = {
    "reference": (128, 64, REFERENCE_SLOPE),
    "paper": (64, 32, PAPER_SLOPE),
}


def fmnist_lenet(
    input_shape: tuple[int, ...],
    *,
    variant: str = "reference",
    rep_dim: int | None = None,
    hidden: int | None = None,
    negative_slope: float | None = None,
    fused_upsampling: bool = True,
    fused_pooling: bool = True,
    autoencoder: bool = False,
) -> Network | AutoEncoder:
    """Deep SAD's Fashion-MNIST LeNet (``--param net_name=fmnist_lenet``), for samples of shape (1, 28, 28).

    Args:
        variant: ``"reference"`` (the code: dense 128 -> 64, slope 0.01) or ``"paper"`` (the text:
            dense 64 -> 32, slope 0.1); ``rep_dim``, ``hidden`` and ``negative_slope`` override it.
        rep_dim: representation size.
        hidden: size of the dense hidden layer (a multiple of 16: the decoder reshapes it to (hidden/16, 4, 4)).
        negative_slope: LeakyReLU slope.
        fused_upsampling, fused_pooling: see :func:`mnist_lenet`.
        autoencoder: return the autoencoder whose ``encoder`` is this network.
    """
    if variant not in FMNIST_VARIANTS:
        raise InvalidInputError(f"fmnist_lenet: variant must be one of {sorted(FMNIST_VARIANTS)}, got {variant!r}")
    default_hidden, default_rep, default_slope = FMNIST_VARIANTS[variant]
    shape = _check_shape("fmnist_lenet", input_shape, (1, 28, 28))
    hidden = _check_rep_dim("fmnist_lenet", default_hidden if hidden is None else hidden, "hidden")
    rep_dim = int(default_rep if rep_dim is None else rep_dim)
    if rep_dim < 1:
        raise InvalidInputError(f"fmnist_lenet: rep_dim must be positive, got {rep_dim}")
    slope = default_slope if negative_slope is None else float(negative_slope)
    encoder = FashionMNISTLeNet(shape, rep_dim, hidden, slope, fused_pooling)
    if not autoencoder:
        return encoder
    return AutoEncoder(encoder, FashionMNISTLeNetDecoder(shape, rep_dim, hidden, slope, fused_upsampling))


def cifar10_lenet(
    input_shape: tuple[int, ...],
    *,
    rep_dim: int = 128,
    negative_slope: float = REFERENCE_SLOPE,
    fused_upsampling: bool = True,
    fused_pooling: bool = True,
    autoencoder: bool = False,
) -> Network | AutoEncoder:
    """Deep SAD's CIFAR-10 LeNet (``--param net_name=cifar10_lenet``), for samples of shape (3, 32, 32).

    Args:
        rep_dim: representation size (128 in the paper; a multiple of 16).
        negative_slope: LeakyReLU slope: 0.01 as the reference code, 0.1 as the paper's text.
        fused_upsampling, fused_pooling: see :func:`mnist_lenet`.
        autoencoder: return the autoencoder whose ``encoder`` is this network.
    """
    shape = _check_shape("cifar10_lenet", input_shape, (3, 32, 32))
    rep_dim = _check_rep_dim("cifar10_lenet", rep_dim)
    encoder = CIFAR10LeNet(shape, rep_dim, negative_slope, fused_pooling)
    if not autoencoder:
        return encoder
    return AutoEncoder(encoder, CIFAR10LeNetDecoder(shape, rep_dim, negative_slope, fused_upsampling))


# the one sample shape each LeNet takes (the conformance checks build them for it)
mnist_lenet.example_input_shape = (1, 28, 28)
fmnist_lenet.example_input_shape = (1, 28, 28)
cifar10_lenet.example_input_shape = (3, 32, 32)
