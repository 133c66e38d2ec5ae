"""Stacked training: S models of one architecture trained as one grouped network, each exactly as alone.

The paper's tables are grids of tiny, independent trainings (a cardio step multiplies a 128 x 21 batch by
a 21 x 32 matrix), so one training spends its time in per-operation overhead. Here S models of the same
architecture train together: their parameters and buffers are stacked along a new first dimension
(:func:`torch.func.stack_module_state`) and one forward pass runs all of them with
:func:`torch.func.vmap` over :func:`torch.func.functional_call`. vmap's batching rules turn the S
linear layers into one batched matrix product, the S convolutions into one grouped convolution (S
groups) and the S BatchNorms into one BatchNorm over the S x C channels, which normalises each model's
channels over its own batch and updates its own running statistics. The per-model losses are summed, so
each model's gradient is its own, and :class:`sadkit.optim.Adam` is elementwise with per-model learning
rates and weight decays, so each model's Adam state is its own too.

Each model keeps everything its solo training has: its own data (all models of a stack have the same
number of training samples: stacks are grouped by size, nothing is padded), its own initial weights
(the caller builds them as the solo run does), its own batch order (its own generator, drawn exactly as
:func:`sadkit.training.train_network` draws it) and its own callbacks. What differs from solo training is
float rounding only: a batched product may round differently from a plain one (the tests check that the
weights after a few epochs agree to rounding).

Networks whose modules use kernels vmap cannot batch (a custom ``torch.autograd.Function``) switch to
their plain equivalents for stacking: any module may define ``use_plain_kernels()`` (the LeNets' fused
pooling does), which is called on every module of the copy that is stacked.

A network may also write its stacked forward pass by hand, where that beats vmap's batching rules:
``stacked_forward(state, x, prefix="")`` computes model ``s`` with ``state[prefix + name][s]`` on
``x[s]`` (``(S, b, ...) -> (S, b, ...)``; ``state`` holds the stacked parameters and buffers by their
names in the module, and BatchNorm's running statistics are updated in it in place). An
:class:`~sadkit.AutoEncoder` has one when its encoder and decoder have one. The ODDS MLPs do (one
``bmm`` per layer in a features-first layout, the S BatchNorms one ``batch_norm`` call without
copies): a cardio step of 20 stacked autoencoders takes 2.0 ms against vmap's 3.2 ms.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .callbacks import Callback, CallbackList
from .errors import InvalidInputError
from .network import AutoEncoder
from .optim import Adam, StepSchedule
from .training import Schedule, autocast, batch_slices

#: a stacked loss: (forward, *batch tensors of shape (S, b, ...)) -> per-model losses of shape (S,)
StackedLossFn = Callable[..., torch.Tensor]


def plain_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in which every submodule that can has switched to vmap-friendly kernels."""
    module = copy.deepcopy(module)
    for sub in module.modules():
        switch = getattr(sub, "use_plain_kernels", None)
        if callable(switch):
            switch()
    return module


class StackedModules:
    """S modules of one architecture as one grouped network.

    Args:
        modules: the S modules; their parameters and buffers must have the same names and shapes. They
            are not changed until :meth:`write_back`.

    Attributes:
        params: name -> parameter of shape ``(S, *shape)`` (leaf tensors that require grad).
        buffers: name -> buffer of shape ``(S, *shape)`` (BatchNorm's running statistics, ...).
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        modules = list(modules)
        if not modules:
            raise InvalidInputError("a stack needs at least one module")
        shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in modules]
        if any(s != shapes[0] for s in shapes[1:]):
            raise InvalidInputError("stacked modules must have the same parameters and buffers (names and shapes)")
        self.modules = modules
        self.n_models = len(modules)
        self.params, self.buffers = stack_module_state(modules)
        #: per model, the exception its callbacks raised (it stopped: a pruned trial), else None
        self.errors: list[Exception | None] = [None] * self.n_models
        self._base = plain_copy(modules[0]).to("meta")
        self._by_hand = hand_written_forward(self._base)
        self._forward = vmap(self._call)
        self._forward_shared = vmap(self._call, in_dims=(0, 0, None))

    def _call(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._base, (params, buffers), (x,))

    def train(self, mode: bool = True) -> StackedModules:
        """Training (batch statistics, running statistics updated) or evaluation mode, as ``nn.Module.train``."""
        self._base.train(mode)
        return self

    def eval(self) -> StackedModules:
        return self.train(False)

    def has_batchnorm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self._base.modules())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Model ``s`` applied to ``x[s]``: ``(S, b, ...) -> (S, b, ...)``."""
        if self._by_hand is not None:
            return self._by_hand({**self.params, **self.buffers}, x)
        return self._forward(self.params, self.buffers, x)

    def shared(self, x: torch.Tensor) -> torch.Tensor:
        """Every model applied to the same batch ``x``: ``(b, ...) -> (S, b, ...)``."""
        if self._by_hand is not None:
            return self(x.unsqueeze(0).expand(self.n_models, *x.shape))
        return self._forward_shared(self.params, self.buffers, x)

    def write_back(self) -> list[nn.Module]:
        """Copy each model's trained parameters and buffers into its module; return the modules."""
        stacked = {**self.params, **self.buffers}
        with torch.no_grad():
            for s, module in enumerate(self.modules):
                module.load_state_dict({k: stacked[k][s] for k in module.state_dict()}, strict=True)
        return self.modules


def hand_written_forward(module: nn.Module, prefix: str = "") -> Callable[[dict, torch.Tensor], torch.Tensor] | None:
    """``module``'s own stacked forward pass (``stacked_forward``; an autoencoder's from its two halves'),
    or None: vmap batches its ``forward``."""
    if isinstance(module, AutoEncoder):
        encode = hand_written_forward(module.encoder, prefix + "encoder.")
        decode = hand_written_forward(module.decoder, prefix + "decoder.")
        if encode is None or decode is None:
            return None
        return lambda state, x: decode(state, encode(state, x))
    own = getattr(module, "stacked_forward", None)
    return (lambda state, x: own(state, x, prefix)) if callable(own) else None


def check_stackable(schedules: Sequence[Schedule]) -> None:
    """Raise unless the schedules differ at most in what a stacked optimiser carries per model (lr, weight decay)."""
    first = schedules[0]
    for other in schedules[1:]:
        for name in ("n_epochs", "milestones", "batch_size", "amsgrad", "reference_scheduler", "lr_gamma", "amp"):
            if getattr(other, name) != getattr(first, name):
                raise InvalidInputError(
                    f"models whose {name} differs cannot be stacked ({getattr(first, name)!r} vs"
                    f" {getattr(other, name)!r}); only lr and weight_decay may differ per model"
                )


def train_stacked(
    stack: StackedModules,
    loss_fn: StackedLossFn,
    tensors: Sequence[torch.Tensor],
    schedules: Sequence[Schedule],
    *,
    phase: str,
    generators: Sequence[torch.Generator],
    callbacks: Sequence[Sequence[Callback]] | None = None,
    evaluate: Callable[[], list[dict[str, float]]] | None = None,
) -> list[list[float]]:
    """Train the stacked models in place, each as :func:`sadkit.training.train_network` trains it alone.

    Args:
        loss_fn: ``loss_fn(stack, *batch)`` returns the ``(S,)`` losses of a batch (each model's mean).
        tensors: tensors of shape ``(S, n, ...)`` on the training device; model ``s`` trains on ``t[s]``.
        schedules: one per model (see :func:`check_stackable`: only lr and weight decay may differ).
        generators: one per model; each draws its model's batch order as its solo run draws it.
        callbacks: one list per model; each gets its own model's losses. A callback that raises (a pruned
            trial) stops its own model: the exception is kept in ``stack.errors`` and its callbacks hear no
            more epochs, while the others train on (its weights keep moving, but its fit is discarded).
        evaluate: called after each epoch when there are callbacks; one dict per model joins its logs.

    Returns:
        Per model, the mean batch loss of every epoch.
    """
    n_models = stack.n_models
    if len(schedules) != n_models or len(generators) != n_models:
        raise InvalidInputError(f"a stack of {n_models} models needs {n_models} schedules and generators")
    check_stackable(schedules)
    schedule = schedules[0]
    cbs = [CallbackList(c) for c in (callbacks or [()] * n_models)]
    n = tensors[0].shape[1]
    device = tensors[0].device
    optimizer = Adam(
        list(stack.params.values()),
        lr=[s.lr for s in schedules],
        weight_decay=[s.weight_decay for s in schedules],
        amsgrad=schedule.amsgrad,
    )
    scheduler = StepSchedule(optimizer, schedule.milestones, gamma=schedule.lr_gamma)
    rows = torch.arange(n_models, device=device).unsqueeze(1)
    usable = n - 1 if stack.has_batchnorm() and n % schedule.batch_size == 1 and n > 1 else n
    losses: list[list[float]] = [[] for _ in range(n_models)]
    for cb in cbs:
        cb.on_phase_start(phase, schedule.n_epochs)
    try:
        for epoch in range(schedule.n_epochs):
            if schedule.reference_scheduler:
                scheduler.step()
            epoch_lr = optimizer.lr
            stack.train()
            order = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device, non_blocking=True)
            shuffled = [t[rows, order] for t in tensors]  # one gather per epoch; batches are then slices
            total = torch.zeros(n_models, device=device)
            n_batches = 0
            for cols in batch_slices(usable, schedule.batch_size):
                batch = [t[:, cols] for t in shuffled]
                optimizer.zero_grad(set_to_none=True)
                with autocast(schedule.amp, device):
                    per_model = loss_fn(stack, *batch)
                per_model.sum().backward()
                optimizer.step()
                total += per_model.detach()
                n_batches += 1
            if not schedule.reference_scheduler:
                scheduler.step()
            for s, summed in enumerate(total.tolist()):  # the one host sync of the epoch
                losses[s].append(summed / max(n_batches, 1))
            if any(cbs):
                extra = evaluate() if evaluate is not None else [{}] * n_models
                for s, cb in enumerate(cbs):
                    if stack.errors[s] is None:
                        try:
                            cb.on_epoch_end(phase, epoch, {"loss": losses[s][-1], "lr": epoch_lr[s], **extra[s]})
                        except Exception as err:  # noqa: BLE001 - this model stops (e.g. a pruned trial); not the others
                            stack.errors[s] = err
            if all(err is not None for err in stack.errors):
                break
    finally:
        for cb in cbs:
            cb.on_phase_end(phase)
    return losses
