"""Multilayer perceptrons for tabular data, as in Deep SAD's ODDS experiments.

Every layer is bias-free and followed by BatchNorm without affine parameters (eps 1e-4) and a
LeakyReLU, as in the reference code (``Linear_BN_leakyReLU``); the representation layer is a plain
bias-free linear map. The decoder mirrors the encoder and ends in a sigmoid (the inputs are
min-max scaled to [0, 1]). Bias-free layers and BN without affine keep Deep SAD away from the trivial
constant solution (the paper's Section 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from sadkit import AutoEncoder, InvalidInputError, Network


class LinearBNLeakyReLU(nn.Module):
    """Linear (bias-free) -> BatchNorm1d (eps 1e-4, affine=False) -> LeakyReLU."""

    def __init__(self, in_features: int, out_features: int, negative_slope: float = 0.01, bias: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.bn = nn.BatchNorm1d(out_features, eps=1e-4, affine=bias)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.linear(x)))

    def stacked_forward(self, state: Mapping[str, torch.Tensor], h: torch.Tensor, prefix: str) -> torch.Tensor:
        """S of these blocks on features-first activations ``(S, features, b)`` (see :func:`_stacked_linear`).

        The S BatchNorms are one over S x C channels, each normalised over its own model's batch; running
        statistics and ``num_batches_tracked`` are updated in place in ``state``, as ``nn.BatchNorm1d`` does.
        """
        h = _stacked_linear(self.linear, state, prefix + "linear.", h)
        bn, n_models, channels = self.bn, h.shape[0], h.shape[1]
        stats = prefix + "bn."

        def flat(name: str) -> torch.Tensor | None:
            return state[stats + name].view(-1) if stats + name in state else None

        momentum = bn.momentum
        if bn.training and bn.track_running_stats:
            state[stats + "num_batches_tracked"].add_(1)
            if momentum is None:  # a cumulative average, as nn.BatchNorm1d computes it (all models agree)
                momentum = 1.0 / float(state[stats + "num_batches_tracked"][0])
        use_batch = bn.training or not bn.track_running_stats
        running = not bn.training or bn.track_running_stats  # the statistics read or updated, as nn.BatchNorm1d
        h = F.batch_norm(
            h.reshape(1, n_models * channels, h.shape[2]),
            flat("running_mean") if running else None,
            flat("running_var") if running else None,
            flat("weight"),
            flat("bias"),
            use_batch,
            0.0 if momentum is None else momentum,
            bn.eps,
        ).view(n_models, channels, -1)
        return F.leaky_relu(h, self.act.negative_slope)


class MLP(Network):
    """``x_dim -> hidden... -> rep_dim``."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        hidden: Sequence[int] = (32, 16),
        rep_dim: int = 8,
        negative_slope: float = 0.01,
        bias: bool = False,
    ):
        super().__init__(input_shape, rep_dim)
        x_dim = _flat_dim(input_shape)
        sizes = [x_dim, *hidden]
        self.hidden = nn.Sequential(*(LinearBNLeakyReLU(a, b, negative_slope, bias) for a, b in pairwise(sizes)))
        self.code = nn.Linear(sizes[-1], rep_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.code(self.hidden(x.reshape(len(x), -1)))

    def stacked_forward(self, state: Mapping[str, torch.Tensor], x: torch.Tensor, prefix: str = "") -> torch.Tensor:
        """S stacked MLPs (:mod:`sadkit.stacking`): model ``s`` with ``state[name][s]`` on ``x[s]``,
        ``(S, b, *input_shape) -> (S, b, rep_dim)``, faster than vmap over ``forward`` (:mod:`sadkit.stacking`)."""
        h = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)
        for i, block in enumerate(self.hidden):
            h = block.stacked_forward(state, h, f"{prefix}hidden.{i}.")
        return _stacked_linear(self.code, state, prefix + "code.", h).transpose(1, 2)


class MLPDecoder(nn.Module):
    """``rep_dim -> reversed(hidden)... -> x_dim`` ending in a sigmoid."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        hidden: Sequence[int] = (32, 16),
        rep_dim: int = 8,
        negative_slope: float = 0.01,
        bias: bool = False,
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        sizes = [rep_dim, *reversed(hidden)]
        self.hidden = nn.Sequential(*(LinearBNLeakyReLU(a, b, negative_slope, bias) for a, b in pairwise(sizes)))
        self.reconstruction = nn.Linear(sizes[-1], _flat_dim(input_shape), bias=bias)
        self.output = nn.Sigmoid()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.output(self.reconstruction(self.hidden(z)))
        return x.reshape(len(z), *self.input_shape)

    def stacked_forward(self, state: Mapping[str, torch.Tensor], z: torch.Tensor, prefix: str = "") -> torch.Tensor:
        """S stacked decoders: ``(S, b, rep_dim) -> (S, b, *input_shape)`` (see :meth:`MLP.stacked_forward`)."""
        h = z.transpose(1, 2)
        for i, block in enumerate(self.hidden):
            h = block.stacked_forward(state, h, f"{prefix}hidden.{i}.")
        h = torch.sigmoid(_stacked_linear(self.reconstruction, state, prefix + "reconstruction.", h))
        return h.transpose(1, 2).reshape(z.shape[0], z.shape[1], *self.input_shape)


def _stacked_linear(layer: nn.Linear, state: Mapping[str, torch.Tensor], prefix: str, h: torch.Tensor) -> torch.Tensor:
    """S linear layers as one batched product on features-first activations: ``(S, in, b) -> (S, out, b)``.

    Features-first keeps every product's output contiguous, so the BatchNorm that follows reads it as
    ``(1, S x C, b)`` without a copy."""
    out = torch.bmm(state[prefix + "weight"], h)
    return out if layer.bias is None else out + state[prefix + "bias"].unsqueeze(2)


def _flat_dim(input_shape: Sequence[int]) -> int:
    if len(input_shape) == 0:
        raise InvalidInputError("an MLP needs samples with at least one feature")
    dim = 1
    for d in input_shape:
        dim *= int(d)
    return dim


def mlp(
    input_shape: tuple[int, ...],
    *,
    hidden: Sequence[int] = (32, 16),
    rep_dim: int = 8,
    negative_slope: float = 0.01,
    bias: bool = False,
    autoencoder: bool = False,
) -> Network | AutoEncoder:
    """A generic MLP (``--param net_name=mlp --param net_params='{hidden: [64, 32], rep_dim: 16}'``).

    Args:
        hidden: hidden layer sizes of the encoder (the decoder mirrors them).
        rep_dim: size of the representation.
        negative_slope: LeakyReLU slope (0.01 as in the reference code).
        bias: add biases and BatchNorm affine parameters (off for Deep SAD, see the paper).
        autoencoder: return the autoencoder whose ``encoder`` is this MLP.
    """
    hidden = [int(h) for h in hidden]
    if not hidden or min(hidden) < 1 or int(rep_dim) < 1:
        raise InvalidInputError(
            f"mlp needs at least one hidden layer and positive sizes, got hidden={hidden}, rep_dim={rep_dim}"
        )
    kwargs = dict(hidden=hidden, rep_dim=int(rep_dim), negative_slope=negative_slope, bias=bias)
    encoder = MLP(input_shape, **kwargs)
    return AutoEncoder(encoder, MLPDecoder(input_shape, **kwargs)) if autoencoder else encoder


def _paper_mlp(x_dim: int, hidden: Sequence[int], rep_dim: int, name: str):
    def factory(
        input_shape: tuple[int, ...], *, negative_slope: float = 0.01, autoencoder: bool = False
    ) -> Network | AutoEncoder:
        if _flat_dim(input_shape) != x_dim:
            raise InvalidInputError(
                f"network {name!r} is built for {x_dim} features but the data has samples of shape"
                f" {tuple(input_shape)}; use net_name=mlp for other data"
            )
        return mlp(input_shape, hidden=hidden, rep_dim=rep_dim, negative_slope=negative_slope, autoencoder=autoencoder)

    factory.__name__ = name.replace("-", "")
    factory.__doc__ = f"The paper's {name}: {x_dim}-{'-'.join(map(str, hidden))}-{rep_dim}."
    factory.example_input_shape = (x_dim,)  # the shape the conformance checks build it for
    return factory


# The paper's ODDS networks (Appendix D of Ruff et al. 2020).
arrhythmia_mlp = _paper_mlp(274, (128, 64), 32, "arrhythmia_mlp")
cardio_mlp = _paper_mlp(21, (32, 16), 8, "cardio_mlp")
satellite_mlp = _paper_mlp(36, (32, 16), 8, "satellite_mlp")
satimage2_mlp = _paper_mlp(36, (32, 16), 8, "satimage-2_mlp")
shuttle_mlp = _paper_mlp(9, (32, 16), 8, "shuttle_mlp")
thyroid_mlp = _paper_mlp(6, (32, 16), 4, "thyroid_mlp")
