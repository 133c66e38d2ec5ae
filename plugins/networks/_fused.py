"""The fused kernels of the LeNets: the same functions as the reference's layers, computed faster.

By default each "upsample x2, then transposed convolution" pair of a decoder runs as one convolution on
the *low-resolution* input followed by a pixel shuffle (a polyphase decomposition): nearest upsampling
repeats every pixel, so each of the four output phases sees a 3x3 (or 4x4) kernel made of sums of the
5x5 kernel's taps. The result is the same up to float rounding (checked by the tests), with about 2.8x
fewer multiply-adds and no upsampled tensor; ``fused_upsampling=False`` runs the reference's two steps
instead.

Likewise each encoder block "BatchNorm -> LeakyReLU -> 2x2 max-pool" pools *first* (``fused_pooling``,
default on): BatchNorm without affine parameters and LeakyReLU with a positive slope are increasing
per channel, so they commute with the max. The batch statistics are still taken over the full-resolution
map, the normalisation and the activation run on a quarter of the values, and the backward pass is
BatchNorm's closed form restricted to the pooled positions (one autograd node instead of three, no
full-resolution normalised or activated tensor kept for backward). Same function and gradients up to
float rounding (checked by the tests); ``fused_pooling=False`` runs the reference's three steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sadkit import InvalidInputError


class UpsampleConvTranspose2d(nn.ConvTranspose2d):
    """Nearest-neighbour upsampling by 2 followed by a stride-1, bias-free transposed convolution.

    Holds exactly the parameters of the ``nn.ConvTranspose2d`` it replaces (same name, shape,
    initialisation and state-dict key). ``forward(x)`` equals
    ``conv_transpose2d(interpolate(x, scale_factor=2), weight, padding=padding)``.

    With ``fused=True`` it is computed without materialising the upsampled input: a transposed
    convolution with stride 1 is a convolution with the flipped, transposed kernel ``K`` and padding
    ``k - 1 - p``; on a 2x nearest-upsampled input, output pixel ``2i + r`` (per axis, ``r`` in {0, 1})
    sees input pixels ``i + d`` through the summed taps ``K_r[d] = sum(K[a] for a with
    floor((r + a - q) / 2) = d)``. The four phase kernels form one convolution with ``4 * out``
    channels whose output a pixel shuffle interleaves.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int, fused: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.fused = bool(fused)
        k, q = int(kernel_size), int(kernel_size) - 1 - int(padding)
        if q < 0:
            raise InvalidInputError(f"padding {padding} is larger than kernel_size - 1 = {k - 1}")
        self._q = q
        self._dmin = math.floor(-q / 2)
        dmax = math.floor((k - q) / 2)
        self._taps = dmax - self._dmin + 1
        phase = torch.zeros(2, self._taps, k)
        for r in range(2):
            for a in range(k):
                phase[r, math.floor((r + a - q) / 2) - self._dmin, a] = 1.0
        # a constant (moves with the module, never saved)
        self.register_buffer("_phase", phase, persistent=False)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", upsample=2, fused={self.fused}"

    def forward(self, x: torch.Tensor, output_size: Sequence[int] | None = None) -> torch.Tensor:  # noqa: ARG002
        if not self.fused:
            return F.conv_transpose2d(F.interpolate(x, scale_factor=2), self.weight, padding=self.padding)
        B, _, H, W = x.shape
        k, q, dmin, taps = self.kernel_size[0], self._q, self._dmin, self._taps
        # output size of the reference: 2H + 2q - k + 1 (per axis)
        out_h, out_w = 2 * H + 2 * q - k + 1, 2 * W + 2 * q - k + 1
        rows_h, rows_w = (out_h + 1) // 2, (out_w + 1) // 2
        kernel = self.weight.transpose(0, 1).flip(2, 3)  # (out, in, k, k): the equivalent convolution
        phase = self._phase.to(kernel.dtype)
        # (r, s, out, in, taps, taps) -> (out, r, s, ...) so that pixel_shuffle puts phase (r, s) at (2i+r, 2j+s)
        fused = torch.einsum("rda,seb,ocab->orscde", phase, phase, kernel)
        fused = fused.reshape(4 * self.out_channels, self.in_channels, taps, taps)
        pad_l = -dmin
        x = F.pad(x, (pad_l, rows_w + taps - 1 - W - pad_l, pad_l, rows_h + taps - 1 - H - pad_l))
        y = F.pixel_shuffle(F.conv2d(x, fused), 2)
        if y.shape[-2] != out_h or y.shape[-1] != out_w:
            y = y[:, :, :out_h, :out_w]
        return y


def _per_channel(v: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, 1, 1)


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    cl = t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl else torch.contiguous_format


class _BatchNormLeakyPool(torch.autograd.Function):
    """``max_pool2d(leaky_relu(batch_norm(x)), 2)`` in training mode, pooled first (see the module docstring).

    ``mean`` and ``invstd`` are the batch statistics of ``x`` (computed without autograd); the backward
    pass includes their dependence on ``x`` in closed form:
    ``dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))``, where ``dxhat`` is non-zero only
    at the positions the pooling picked.
    """

    @staticmethod
    def forward(ctx, x, mean, invstd, slope):  # noqa: ANN001, ANN205
        pooled, idx = F.max_pool2d_with_indices(x, 2)
        xhat = (pooled.to(mean.dtype) - _per_channel(mean)) * _per_channel(invstd)
        ctx.save_for_backward(x, idx, xhat, mean, invstd)
        ctx.slope = slope
        return F.leaky_relu(xhat, slope)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, idx, xhat, mean, invstd = ctx.saved_tensors
        n = x.numel() // x.shape[1]
        grad = grad.contiguous(memory_format=_memory_format(xhat))
        g = torch.ops.aten.leaky_relu_backward(grad, xhat, ctx.slope, False)  # d loss / d xhat at the picks
        dims = (0, 2, 3)
        a, b = g.sum(dims) / n, (g * xhat).sum(dims) / n
        beta = -invstd * invstd * b
        alpha = -invstd * a - beta * mean
        dx = torch.addcmul(_per_channel(alpha), x.to(mean.dtype), _per_channel(beta))  # the statistics' part
        u = g * _per_channel(invstd)  # the direct part, at the picked positions
        N, C, H, W = dx.shape
        if _memory_format(dx) == torch.channels_last:
            dx.permute(0, 2, 3, 1).reshape(N, H * W, C).scatter_add_(
                1, idx.permute(0, 2, 3, 1).reshape(N, -1, C), u.permute(0, 2, 3, 1).reshape(N, -1, C)
            )
        else:
            dx = dx.contiguous()
            dx.view(N, C, H * W).scatter_add_(2, idx.reshape(N, C, -1), u.reshape(N, C, -1))
        return dx.to(x.dtype), None, None, None


def _batch_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel mean and (biased) variance of ``x`` (N, C, H, W), and the count per channel.

    With few channels (the MNIST LeNet has 8 and 4) the sums of squares come from one small Gram
    matrix product, which reads ``x`` once and writes nothing of its size; with more, two passes.
    """
    N, C, H, W = x.shape
    n = N * H * W
    if C <= 16 and _memory_format(x) == torch.channels_last:
        rows = x.permute(0, 2, 3, 1).reshape(n, C)
        mean = rows.sum(0) / n
        var = (torch.mm(rows.T, rows).diagonal() / n - mean * mean).clamp_min(0)
    elif C <= 16 and x.is_contiguous():
        planes = x.view(N, C, H * W)
        mean = planes.sum((0, 2)) / n
        var = (torch.bmm(planes, planes.transpose(1, 2)).diagonal(dim1=1, dim2=2).sum(0) / n - mean * mean).clamp_min(0)
    else:
        mean = x.sum((0, 2, 3)) / n
        centred = x - _per_channel(mean)
        var = (centred * centred).sum((0, 2, 3)) / n
    return mean, var, n


class FusedPooling:
    """A network whose "BatchNorm -> LeakyReLU -> pool" blocks may run fused (its ``fused_pooling``)."""

    fused_pooling: bool

    def use_plain_kernels(self) -> None:
        """Run the three plain steps: what ``torch.func.vmap`` can batch (stacked training, :mod:`sadkit.stacking`)."""
        self.fused_pooling = False


def bn_leaky_pool(x: torch.Tensor, bn: nn.BatchNorm2d, slope: float, fused: bool = True) -> torch.Tensor:
    """``max_pool2d(leaky_relu(bn(x), slope), 2)``, by default pooled first (same function, faster).

    ``bn`` keeps its semantics: batch statistics and a running-average update (momentum, unbiased
    variance, ``num_batches_tracked``) in training mode, the running statistics in eval mode. Falls back
    to the three plain steps where pooling first would not be exact (affine BatchNorm, a negative slope).
    """
    if not fused or bn.affine or slope < 0 or (bn.training is False and not bn.track_running_stats):
        return F.max_pool2d(F.leaky_relu(bn(x), slope), 2)
    if not bn.training:
        pooled = F.max_pool2d(x, 2)
        return F.leaky_relu(
            F.batch_norm(pooled, bn.running_mean, bn.running_var, None, None, False, 0.0, bn.eps), slope
        )
    with torch.no_grad():
        # statistics in float32 at least (bfloat16 under autocast), as BatchNorm computes them
        mean, var, n = _batch_statistics(x.detach().to(torch.promote_types(x.dtype, torch.float32)))
        if bn.track_running_stats and bn.running_mean is not None:
            bn.num_batches_tracked.add_(1)
            factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1 - factor).add_(mean.to(bn.running_mean.dtype), alpha=factor)
            unbiased = var * (n / max(n - 1, 1))
            bn.running_var.mul_(1 - factor).add_(unbiased.to(bn.running_var.dtype), alpha=factor)
        invstd = torch.rsqrt(var + bn.eps)
    return _BatchNormLeakyPool.apply(x, mean, invstd, float(slope))
