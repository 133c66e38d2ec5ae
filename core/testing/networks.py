"""Conformance checks of network plugins: factories ``(input_shape, *, autoencoder=False, **params)``.

Run by ``sadkit plugins check NAME --group networks`` and :func:`sadkit.testing.assert_network_conforms`.
A network is built for the factory's ``example_input_shape`` when it declares one (a network made for one
shape, such as a paper's MLP or LeNet), else for samples of shape ``(5,)``; ``input_shape`` overrides both.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import SadkitError
from ._runner import CheckResult, assert_passed, resolve_plugin, run_checks

#: samples per forward pass in the checks (more than one: BatchNorm needs it in training mode)
BATCH = 4
#: the sample shape of a factory that declares no ``example_input_shape``
DEFAULT_INPUT_SHAPE = (5,)
#: the rule of :func:`check_bias_free`, as its message states it
BIAS_RULE = (
    "Deep SAD's networks are bias-free: a bias (or a normalisation with affine parameters) lets the network map"
    " every sample to the center c, the trivial solution of Ruff et al. 2020, Sec. 3"
)


@dataclass
class NetworkContext:
    """What every network check gets: the factory, its keywords and the sample shape."""

    name: str
    factory: Callable[..., Any]
    params: dict[str, Any]
    input_shape: tuple[int, ...]

    def build(self, *, autoencoder: bool = False, **changes: Any) -> Any:
        return self.factory(self.input_shape, autoencoder=autoencoder, **{**self.params, **changes})

    def batch(self, seed: int = 0) -> Any:
        import torch

        generator = torch.Generator().manual_seed(seed)
        return torch.rand((BATCH, *self.input_shape), generator=generator)


def _forward(module: Any, x: Any, *, train: bool = False) -> Any:
    import torch

    module.train(train)
    with torch.no_grad():
        return module(x)


# ------------------------------------------------------------------------------------ the checks
def check_builds(ctx: NetworkContext) -> None:
    """The factory builds a :class:`sadkit.Network` for the sample shape, holding that shape and its ``rep_dim``."""
    from ..network import Network

    net = ctx.build()
    assert isinstance(net, Network), (
        f"the factory returned a {type(net).__name__}, not a sadkit.Network (subclass Network and call"
        " super().__init__(input_shape, rep_dim))"
    )
    assert tuple(net.input_shape) == ctx.input_shape, (
        f"net.input_shape is {net.input_shape}, built for {ctx.input_shape}"
    )
    assert isinstance(net.rep_dim, int) and net.rep_dim >= 1, f"net.rep_dim is {net.rep_dim!r}, not a positive integer"


def check_forward_shapes(ctx: NetworkContext) -> None:
    """``forward`` maps a float32 batch ``(n, *input_shape)`` to finite ``(n, rep_dim)``, in training and eval mode."""
    import torch

    net = ctx.build()
    for train in (True, False):
        out = _forward(net, ctx.batch(), train=train)
        mode = "training" if train else "eval"
        assert isinstance(out, torch.Tensor), f"forward returned a {type(out).__name__} in {mode} mode, not a tensor"
        assert tuple(out.shape) == (BATCH, net.rep_dim), (
            f"forward of {BATCH} samples of shape {ctx.input_shape} returned shape {tuple(out.shape)} in {mode} mode,"
            f" not ({BATCH}, rep_dim={net.rep_dim})"
        )
        assert out.dtype == torch.float32, f"forward returned {out.dtype}, not float32"
        assert torch.isfinite(out).all(), f"forward returned NaN or infinity in {mode} mode"


def check_rep_dim_honoured(ctx: NetworkContext) -> None:
    """A factory that takes ``rep_dim`` builds a network of that size (checked with twice its default)."""
    if not _accepts(ctx.factory, "rep_dim"):
        return  # a fixed representation size: forward_shapes checks it against rep_dim
    wanted = 2 * ctx.build().rep_dim
    try:
        net = ctx.build(rep_dim=wanted)
    except SadkitError as err:
        raise AssertionError(f"rep_dim={wanted} (twice the default) was refused: {err}") from err
    assert net.rep_dim == wanted, f"built with rep_dim={wanted}, the network says rep_dim={net.rep_dim}"
    out = _forward(net, ctx.batch())
    assert tuple(out.shape) == (BATCH, wanted), f"built with rep_dim={wanted}, forward returned {tuple(out.shape)}"


def check_bias_free(ctx: NetworkContext) -> None:
    """The network has no bias and no affine normalisation (Deep SAD's contract, Ruff et al. 2020)."""
    from torch import nn

    net = ctx.build()
    found = [name for name, _ in net.named_parameters() if name.rsplit(".", 1)[-1] == "bias"]
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    found += [
        f"{name} (affine {type(m).__name__})"
        for name, m in net.named_modules()
        if isinstance(m, norms) and (getattr(m, "affine", False) or getattr(m, "elementwise_affine", False))
    ]
    assert not found, (
        f"{BIAS_RULE}; found {', '.join(found[:4])}{' ...' if len(found) > 4 else ''}: build layers with"
        " bias=False and normalisations with affine=False"
    )


def check_autoencoder_encoder_is_network(ctx: NetworkContext) -> None:
    """``autoencoder=True`` gives a :class:`sadkit.AutoEncoder` whose encoder is the network itself (the same
    parameters and buffers, name for name, shape for shape): pretrained weights load into the network."""
    from ..network import AutoEncoder, check_encoder_is_network

    ae = ctx.build(autoencoder=True)
    assert isinstance(ae, AutoEncoder), f"autoencoder=True returned a {type(ae).__name__}, not a sadkit.AutoEncoder"
    try:
        check_encoder_is_network(ctx.build(), ae, ctx.name)
    except SadkitError as err:
        raise AssertionError(str(err)) from err


def check_autoencoder_shapes(ctx: NetworkContext) -> None:
    """The autoencoder encodes to ``(n, rep_dim)`` and reconstructs ``(n, *input_shape)``, finite."""
    import torch

    ae = ctx.build(autoencoder=True)
    x = ctx.batch()
    code = _forward(ae.encoder, x)
    assert tuple(code.shape) == (BATCH, ae.rep_dim), f"the encoder returned {tuple(code.shape)}, not ({BATCH}, rep_dim)"
    for train in (True, False):
        out = _forward(ae, x, train=train)
        assert tuple(out.shape) == tuple(x.shape), (
            f"the autoencoder reconstructs shape {tuple(out.shape)} from {tuple(x.shape)}: the decoder must give"
            " back the input shape"
        )
        assert torch.isfinite(out).all(), "the reconstruction holds NaN or infinity"


def check_deterministic_under_seed(ctx: NetworkContext) -> None:
    """The same seed builds the same weights, and the same input gives the same output (eval mode)."""
    import torch

    from ..training import seed_everything

    built = []
    for _ in range(2):
        seed_everything(0)
        net = ctx.build()
        built.append((net.state_dict(), _forward(net, ctx.batch())))
    (first, out_a), (second, out_b) = built
    differ = [k for k in first if not torch.equal(first[k], second[k])]
    assert not differ, (
        f"two builds after the same seed differ in {', '.join(differ[:3])}: draw initial weights from torch's"
        " generator only"
    )
    assert torch.equal(out_a, out_b), "the same weights and input give other outputs"


def check_rebuilds_from_state(ctx: NetworkContext) -> None:
    """A state dict loads into a fresh build (``strict=True``) and gives the same outputs: how a saved
    detector is loaded (its ``_set_state`` gets CPU tensors back and rebuilds the network from the factory)."""
    import torch

    from ..training import seed_everything

    seed_everything(1)
    source = ctx.build()
    _forward(source, ctx.batch(), train=True)  # moves BatchNorm statistics away from their start
    state = {k: v.detach().cpu().clone() for k, v in source.state_dict().items()}
    seed_everything(2)
    target = ctx.build()
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise AssertionError(f"a state dict does not load into a fresh build: {str(err).splitlines()[0]}") from err
    assert torch.allclose(_forward(source, ctx.batch()), _forward(target, ctx.batch())), (
        "a fresh build with the loaded state gives other outputs"
    )


def check_works_on_cpu(ctx: NetworkContext) -> None:
    """Built, moved to the CPU and trained one step there: the loss backpropagates to every parameter."""
    import torch

    net = ctx.build().to("cpu")
    net.train()
    loss = net(ctx.batch()).pow(2).sum()
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reaches {', '.join(missing[:3])}: a parameter the forward pass never uses"
    bad = [n for n, p in net.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"NaN or infinite gradients in {', '.join(bad[:3])}"


NETWORK_CHECKS: list[Callable[[NetworkContext], None]] = [
    check_builds,
    check_forward_shapes,
    check_rep_dim_honoured,
    check_bias_free,
    check_autoencoder_encoder_is_network,
    check_autoencoder_shapes,
    check_deterministic_under_seed,
    check_rebuilds_from_state,
    check_works_on_cpu,
]


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def check_network(
    network: str | Callable[..., Any],
    params: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> list[CheckResult]:
    """Run every network check; return one result per check (none raises).

    Args:
        network: a registered name or the factory itself.
        params: keywords of the factory (``rep_dim``, ``hidden``, ...).
        input_shape: the shape of one sample; default the factory's ``example_input_shape``, else ``(5,)``.
    """
    name, factory = resolve_plugin("networks", network)
    shape = input_shape or getattr(factory, "example_input_shape", None) or DEFAULT_INPUT_SHAPE
    ctx = NetworkContext(
        name=name, factory=factory, params=dict(params or {}), input_shape=tuple(int(d) for d in shape)
    )
    return run_checks(NETWORK_CHECKS, ctx)


def assert_network_conforms(
    network: str | Callable[..., Any],
    params: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> None:
    """Raise ``AssertionError`` naming every failed check."""
    assert_passed(check_network(network, params, input_shape))
