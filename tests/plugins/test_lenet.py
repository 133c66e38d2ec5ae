"""The LeNet networks (mnist_lenet, fmnist_lenet, cifar10_lenet): the reference's layers, shapes and
state-dict keys, the fused (polyphase) upsampling, options, errors, and the training-speed switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sadkit import AutoEncoder, InvalidInputError, create_detector, create_network
from sadkit.plugins.networks._fused import UpsampleConvTranspose2d, bn_leaky_pool
from sadkit.training import Schedule, resolve_amp

SHAPES = {"mnist_lenet": (1, 28, 28), "fmnist_lenet": (1, 28, 28), "cifar10_lenet": (3, 32, 32)}
REP_DIMS = {"mnist_lenet": 32, "fmnist_lenet": 64, "cifar10_lenet": 128}

#: the reference code's parameter and buffer names (Deep-SAD-PyTorch/src/networks/*_LeNet.py)
REFERENCE_KEYS = {
    "mnist_lenet": {
        "encoder": ["conv1.weight", "bn1", "conv2.weight", "bn2", "fc1.weight"],
        "decoder": ["deconv1.weight", "bn3", "deconv2.weight", "bn4", "deconv3.weight"],
    },
    "fmnist_lenet": {
        "encoder": ["conv1.weight", "bn2d1", "conv2.weight", "bn2d2", "fc1.weight", "bn1d1", "fc2.weight"],
        "decoder": ["fc3.weight", "bn1d2", "deconv1.weight", "bn2d3", "deconv2.weight", "bn2d4", "deconv3.weight"],
    },
    "cifar10_lenet": {
        "encoder": ["conv1.weight", "bn2d1", "conv2.weight", "bn2d2", "conv3.weight", "bn2d3", "fc1.weight"],
        "decoder": [
            *("deconv1.weight", "bn2d4", "deconv2.weight", "bn2d5", "deconv3.weight", "bn2d6", "deconv4.weight"),
        ],
    },
}


def expand(names: list[str]) -> set[str]:
    out = set()
    for name in names:
        if name.endswith(".weight"):
            out.add(name)
        else:  # a BatchNorm without affine parameters: its three buffers
            out |= {f"{name}.running_mean", f"{name}.running_var", f"{name}.num_batches_tracked"}
    return out


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shapes_keys_and_reference_layers(name: str) -> None:
    shape = SHAPES[name]
    torch.manual_seed(0)
    net = create_network(name, shape)
    ae = create_network(name, shape, autoencoder=True)
    assert isinstance(ae, AutoEncoder) and net.rep_dim == REP_DIMS[name]
    x = torch.rand(4, *shape)
    assert net(x).shape == (4, REP_DIMS[name])
    assert ae(x).shape == x.shape and ((ae(x) > 0) & (ae(x) < 1)).all()  # sigmoid output
    # the reference's names, key for key; the encoder of the AE is the network
    assert set(net.state_dict()) == expand(REFERENCE_KEYS[name]["encoder"])
    assert set(ae.decoder.state_dict()) == expand(REFERENCE_KEYS[name]["decoder"])
    net.load_state_dict(ae.encoder.state_dict(), strict=True)
    assert torch.equal(net.eval()(x), ae.encoder.eval()(x))
    # bias-free everywhere; BatchNorm eps 1e-4 without affine parameters
    assert not [n for n, _ in ae.named_parameters() if "bias" in n]
    bns = [m for m in ae.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(m.eps == 1e-4 and not m.affine for m in bns)
    assert all(m.kernel_size == (5, 5) for m in ae.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def test_mnist_lenet_layer_by_layer() -> None:
    net = create_network("mnist_lenet", (1, 28, 28))
    assert (net.conv1.in_channels, net.conv1.out_channels, net.conv1.padding) == (1, 8, (2, 2))
    assert (net.conv2.in_channels, net.conv2.out_channels) == (8, 4)
    assert (net.fc1.in_features, net.fc1.out_features) == (4 * 7 * 7, 32)
    dec = create_network("mnist_lenet", (1, 28, 28), autoencoder=True).decoder
    assert [(m.in_channels, m.out_channels, m.padding) for m in (dec.deconv1, dec.deconv2, dec.deconv3)] == [
        (2, 4, (2, 2)),
        (4, 8, (3, 3)),
        (8, 1, (2, 2)),
    ]
    assert net.negative_slope == 0.01


def test_fmnist_paper_variant_and_slope_option() -> None:
    ref = create_network("fmnist_lenet", (1, 28, 28))
    assert (ref.fc1.out_features, ref.rep_dim, ref.negative_slope) == (128, 64, 0.01)
    paper = create_network("fmnist_lenet", (1, 28, 28), variant="paper", autoencoder=True)
    assert (paper.encoder.fc1.out_features, paper.rep_dim, paper.encoder.negative_slope) == (64, 32, 0.1)
    assert paper.decoder.deconv1.in_channels == 64 // 16
    assert paper(torch.rand(3, 1, 28, 28)).shape == (3, 1, 28, 28)
    custom = create_network("mnist_lenet", (1, 28, 28), negative_slope=0.1, rep_dim=64)
    assert custom.negative_slope == 0.1 and custom.rep_dim == 64


def test_mnist_network_accepts_28x28_samples() -> None:
    ae = create_network("mnist_lenet", (28, 28), autoencoder=True)
    assert ae(torch.rand(2, 28, 28)).shape == (2, 28, 28)


@pytest.mark.parametrize(
    ("name", "shape", "params", "message"),
    [
        ("mnist_lenet", (21,), {}, r"expects grayscale images of shape \(1, 28, 28\) .* samples of shape \(21,\)"),
        ("cifar10_lenet", (1, 28, 28), {}, r"expects RGB images of shape \(3, 32, 32\) .* \(1, 28, 28\)"),
        ("fmnist_lenet", (3, 32, 32), {}, r"\(1, 28, 28\)"),
        ("mnist_lenet", (1, 28, 28), {"rep_dim": 20}, r"rep_dim must be a positive multiple of 16"),
        ("fmnist_lenet", (1, 28, 28), {"hidden": 40}, r"hidden must be a positive multiple of 16"),
        ("fmnist_lenet", (1, 28, 28), {"variant": "text"}, r"variant must be one of"),
    ],
)
def test_bad_networks_are_clear_errors(name: str, shape: tuple, params: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        create_network(name, shape, **params)


def test_an_image_network_on_tabular_data_fails_in_fit() -> None:
    X = np.random.default_rng(0).random((40, 21), dtype=np.float32)
    detector = create_detector("deepsad", net_name="mnist_lenet", n_epochs=1, ae_n_epochs=1, device="cpu")
    with pytest.raises(InvalidInputError, match=r"\(1, 28, 28\).*shape \(21,\)"):
        detector.fit(X)


# --------------------------------------------------------------------------------------------------
# fused upsampling = interpolate + transposed convolution
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("size", [(4, 4), (7, 5)])
def test_fused_upsampling_equals_interpolate_then_conv_transpose(padding: int, size: tuple[int, int]) -> None:
    torch.manual_seed(padding)
    layer = UpsampleConvTranspose2d(3, 2, 5, padding=padding).double()
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    ref = F.conv_transpose2d(F.interpolate(x, scale_factor=2), layer.weight, padding=padding)
    out = layer(x)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-10)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (x, layer.weight), g)
    ref_grads = torch.autograd.grad(ref, (x, layer.weight), g)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(grads, ref_grads, strict=True))
    assert list(layer.state_dict()) == ["weight"]  # the constant phase matrix is not saved


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_fused_and_reference_decoders_agree(name: str) -> None:
    torch.manual_seed(1)
    fused = create_network(name, SHAPES[name], autoencoder=True).double()
    plain = create_network(name, SHAPES[name], autoencoder=True, fused_upsampling=False).double()
    plain.load_state_dict(fused.state_dict())
    x = torch.rand(6, *SHAPES[name], dtype=torch.float64)
    loss_f, loss_p = ((fused(x) - x) ** 2).sum(), ((plain(x) - x) ** 2).sum()
    assert torch.allclose(loss_f, loss_p, rtol=1e-10)
    loss_f.backward()
    loss_p.backward()
    for (key, a), (_, b) in zip(fused.named_parameters(), plain.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-7, atol=1e-9), key


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(16, 8, 28, 28), (5, 3, 7, 9)])
def test_pooling_first_equals_batchnorm_leaky_relu_then_pool(shape: tuple, channels_last: bool) -> None:
    """Same output, input gradient and running statistics as the reference's three steps (float64)."""
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 0.5
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    g = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, dtype=torch.float64)
    bn_fused, bn_ref = (nn.BatchNorm2d(shape[1], eps=1e-4, affine=False).double() for _ in range(2))
    for _ in range(2):  # two steps: the running averages follow BatchNorm's
        out = bn_leaky_pool(x, bn_fused, 0.1)
        ref = F.max_pool2d(F.leaky_relu(bn_ref(x), 0.1), 2)
        assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)
        (grad,) = torch.autograd.grad(out, x, g)
        (ref_grad,) = torch.autograd.grad(ref, x, g)
        assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)
    for key, value in bn_ref.state_dict().items():
        assert torch.allclose(bn_fused.state_dict()[key].double(), value.double(), rtol=1e-12), key
    bn_fused.eval()
    bn_ref.eval()
    with torch.no_grad():
        out, ref = bn_leaky_pool(x, bn_fused, 0.1), F.max_pool2d(F.leaky_relu(bn_ref(x), 0.1), 2)
        assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_fused_and_reference_encoders_train_alike(name: str) -> None:
    """A training step of each encoder with and without pooling first: same loss, gradients and statistics."""
    torch.manual_seed(2)
    fused = create_network(name, SHAPES[name])
    plain = create_network(name, SHAPES[name], fused_pooling=False)
    plain.load_state_dict(fused.state_dict())
    x = torch.rand(12, *SHAPES[name])
    losses = []
    for net in (fused, plain):
        loss = (net(x) ** 2).sum(1).mean()
        loss.backward()
        losses.append(loss.detach())
    assert torch.allclose(losses[0], losses[1], rtol=1e-5)
    for (key, a), (_, b) in zip(fused.named_parameters(), plain.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-3, atol=1e-5 * b.grad.abs().max()), key
    for (key, a), (_, b) in zip(fused.state_dict().items(), plain.state_dict().items(), strict=True):
        assert torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-7), key
    fused.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.allclose(fused(x), plain(x), rtol=1e-4, atol=1e-5)


def test_pooling_first_keeps_the_plain_path_where_it_would_not_be_exact() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 6, 6)
    affine = nn.BatchNorm2d(3, eps=1e-4)
    with torch.no_grad():
        affine.weight.copy_(torch.tensor([1.0, -2.0, 0.5]))  # a negative scale reverses the order
    assert torch.allclose(bn_leaky_pool(x, affine, 0.01), F.max_pool2d(F.leaky_relu(affine(x), 0.01), 2))
    bn = nn.BatchNorm2d(3, eps=1e-4, affine=False)
    assert torch.allclose(bn_leaky_pool(x, bn, -0.5), F.max_pool2d(F.leaky_relu(bn(x), -0.5), 2))


# --------------------------------------------------------------------------------------------------
# training-speed switches
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.random((96, 1, 28, 28), dtype=np.float32) * 0.3
    X[:8] += 0.5  # a few brighter "anomalies"
    semi = np.zeros(96, dtype=np.int64)
    semi[:4] = -1
    return X, semi


FAST = {
    "net_name": "mnist_lenet",
    "n_epochs": 2,
    "ae_n_epochs": 2,
    "lr_milestones": [],
    "ae_lr_milestones": [],
    "batch_size": 32,
    "ae_batch_size": 32,
    "device": "cpu",
}


def test_channels_last_gives_the_same_training(images) -> None:
    X, semi = images
    a = create_detector("deepsad", **FAST, channels_last=True).fit(X, semi_y=semi)
    b = create_detector("deepsad", **FAST, channels_last=False).fit(X, semi_y=semi)
    assert a.net_.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.allclose(a.pretrain_losses_, b.pretrain_losses_, rtol=1e-4)
    assert np.allclose(a.train_losses_, b.train_losses_, rtol=1e-3)
    assert np.allclose(a.decision_function(X), b.decision_function(X), rtol=1e-3, atol=1e-6)


def test_bf16_autocast_trains(images) -> None:
    X, semi = images
    detector = create_detector("deepsad", **FAST, amp="bf16").fit(X, semi_y=semi)
    assert np.isfinite(detector.decision_function(X)).all() and np.isfinite(detector.train_losses_).all()
    assert detector.decision_function(X).dtype == np.float64


def test_amp_names() -> None:
    assert resolve_amp(None) is None and resolve_amp("none") is None and resolve_amp("BF16") == "bf16"
    assert Schedule(n_epochs=1, lr=0.1, amp="bfloat16").amp == "bf16"
    with pytest.raises(InvalidInputError, match="float16 is not offered"):
        resolve_amp("fp16")
    with pytest.raises(InvalidInputError, match="channels_last must be"):
        create_detector("deepsad", **FAST, channels_last="yes").fit(np.zeros((8, 1, 28, 28), np.float32))
