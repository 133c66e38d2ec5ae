"""The MLPs' hand-written stacked forward pass (``stacked_forward``) computes what vmap over ``forward`` does."""

from __future__ import annotations

import copy

import pytest
import torch

from sadkit import create_network
from sadkit.stacking import StackedModules, hand_written_forward


def _pair(net_name: str, n_models: int, **params):
    torch.manual_seed(0)
    modules = [create_network(net_name, (21,), **params) for _ in range(n_models)]
    by_hand = StackedModules([copy.deepcopy(m) for m in modules])
    by_vmap = StackedModules([copy.deepcopy(m) for m in modules])
    by_vmap._by_hand = None  # the generic path
    return by_hand, by_vmap


@pytest.mark.parametrize(
    "net_name, params",
    [("cardio_mlp", {}), ("cardio_mlp", {"autoencoder": True}), ("mlp", {"bias": True, "hidden": [16, 8]})],
)
def test_hand_written_stacked_forward_matches_vmap(net_name, params):
    """Outputs, gradients, BatchNorm running statistics (training mode) and eval-mode outputs agree."""
    by_hand, by_vmap = _pair(net_name, 3, **params)
    assert by_hand._by_hand is not None
    x = torch.rand(3, 40, 21)
    out_hand, out_vmap = by_hand(x), by_vmap(x)
    torch.testing.assert_close(out_hand, out_vmap, rtol=1e-5, atol=1e-6)
    out_hand.square().sum().backward()
    out_vmap.square().sum().backward()
    # a bias before BatchNorm has no gradient but rounding noise: compare at the scale of the largest gradient
    scale = max(float(p.grad.abs().max()) for p in by_vmap.params.values())
    for name, param in by_hand.params.items():
        torch.testing.assert_close(param.grad, by_vmap.params[name].grad, rtol=1e-4, atol=1e-5 * scale)
    for name, buffer in by_hand.buffers.items():  # running mean, var, num_batches_tracked
        torch.testing.assert_close(buffer, by_vmap.buffers[name], rtol=1e-5, atol=1e-7)
    assert any(name.endswith("num_batches_tracked") and int(b[0]) == 1 for name, b in by_hand.buffers.items())
    by_hand.eval(), by_vmap.eval()
    with torch.no_grad():
        torch.testing.assert_close(by_hand(x), by_vmap(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(by_hand.shared(x[0]), by_vmap.shared(x[0]), rtol=1e-5, atol=1e-6)


def test_each_stacked_model_is_its_own_network():
    """Model s of the stack on x[s] is module s on x[s] (training mode: batch statistics)."""
    torch.manual_seed(1)
    modules = [create_network("cardio_mlp", (21,), autoencoder=True) for _ in range(2)]
    stack = StackedModules([copy.deepcopy(m) for m in modules])
    x = torch.rand(2, 32, 21)
    out = stack(x)
    for s, module in enumerate(modules):
        torch.testing.assert_close(out[s], module.train()(x[s]), rtol=1e-5, atol=1e-6)


def test_a_network_without_one_is_batched_by_vmap():
    lenet = create_network("mnist_lenet", (1, 28, 28))
    assert hand_written_forward(lenet) is None
    assert hand_written_forward(create_network("mnist_lenet", (1, 28, 28), autoencoder=True)) is None
