"""The shared torch training loop.

The whole training set lives in one tensor on the training device and batches are index slices of it:
no per-sample ``__getitem__``, no DataLoader workers, and no host synchronisation inside the batch
loop (the epoch loss is accumulated on the device and read once per epoch). Adam with weight decay
and a MultiStepLR schedule stepped after each epoch, as the paper describes (sadkit's own, in
:mod:`sadkit.optim`: bit-identical to torch's on the CPU, without the ``torch._dynamo`` import that
torch's optimisers cost every process). Per phase, a :class:`Schedule` can switch on bfloat16
autocast (``amp``), channels-last memory format for image batches and ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .callbacks import Callback, CallbackList
from .errors import DeviceError, InvalidInputError
from .optim import Adam, StepSchedule

#: a loss function: (network, *batch tensors) -> scalar loss
LossFn = Callable[..., torch.Tensor]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without CUDA is a :class:`DeviceError`."""
    if isinstance(device, torch.device):
        device = str(device)
    device = (device or "auto").lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {device!r} was asked for but this torch ({torch.__version__}) sees no CUDA"
                " GPU; use --device cpu (or auto)"
            )
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{device} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
        return dev
    if device == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a CPU generator for batch order."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def configure_threads(n_threads: int | None = None) -> int:
    """Set torch's intra-op threads explicitly (default: every core this process may use)."""
    if n_threads is None or n_threads <= 0:
        try:
            n_threads = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            n_threads = os.cpu_count() or 1
    torch.set_num_threads(int(n_threads))
    return int(n_threads)


def as_tensor(X: np.ndarray | torch.Tensor, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    """One contiguous tensor on ``device`` (copied once, not per batch)."""
    if isinstance(X, np.ndarray) and not X.flags.writeable:
        X = X.copy()  # torch cannot share memory with a read-only array
    return torch.as_tensor(X, dtype=dtype).contiguous().to(device)


def batch_slices(n: int, batch_size: int, order: torch.Tensor | None = None):
    """Yield index tensors (or slices when ``order`` is None) covering ``0..n-1`` in batches."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]


@dataclass
class Schedule:
    """Optimisation settings of one training phase."""

    n_epochs: int
    lr: float
    lr_milestones: Sequence[int] = ()
    batch_size: int = 128
    weight_decay: float = 1e-6
    amsgrad: bool = False
    #: step MultiStepLR before each epoch's batches, as the reference code does (one epoch early)
    reference_scheduler: bool = False
    lr_gamma: float = 0.1
    #: mixed precision for the forward pass: None (float32) or "bf16" (autocast to bfloat16)
    amp: str | None = None
    #: train 4-D (image) batches in channels-last memory format (network and data converted once)
    channels_last: bool = False
    #: run the loss through ``torch.compile(net)`` (compiles on the first batches of the phase)
    compile: bool = False
    milestones: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.milestones = sorted(int(m) for m in self.lr_milestones)
        self.amp = resolve_amp(self.amp)


#: accepted names of the mixed-precision modes
_AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def resolve_amp(amp: str | None) -> str | None:
    """``None``/``"none"``/``"off"`` -> None; ``"bf16"``/``"bfloat16"`` -> ``"bf16"``; anything else is an error.

    float16 is not offered: it needs loss scaling, whose overflow check reads the device every batch.
    bfloat16 has float32's range and needs none (GPUs from Ampere on; CPUs with AVX-512-BF16 or AMX).
    """
    if amp is None or (isinstance(amp, str) and amp.lower() in ("none", "off", "fp32", "float32", "")):
        return None
    if isinstance(amp, str) and amp.lower() in _AMP_DTYPES:
        return "bf16"
    raise InvalidInputError(
        f"amp must be None (float32) or 'bf16', got {amp!r} (float16 is not offered: its loss scaling syncs"
        " the host every batch)"
    )


def autocast(amp: str | None, device: torch.device):
    """The autocast context of ``amp`` on ``device`` (a no-op context for None)."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AMP_DTYPES[amp])


def to_channels_last(net: nn.Module, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Convert ``net`` (in place) and the 4-D tensors to channels-last memory format (others unchanged)."""
    net.to(memory_format=torch.channels_last)
    return [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in tensors]


def train_network(
    net: nn.Module,
    loss_fn: LossFn,
    tensors: Sequence[torch.Tensor],
    schedule: Schedule,
    *,
    phase: str,
    generator: torch.Generator,
    callbacks: Sequence[Callback] = (),
    evaluate: Callable[[], dict[str, float]] | None = None,
) -> list[float]:
    """Train ``net`` in place and return the mean batch loss of every epoch.

    Args:
        loss_fn: ``loss_fn(net, *batch)`` returns the scalar loss of a batch.
        tensors: equally long tensors already on the training device; batches index all of them.
        phase: a name for the callbacks (``pretrain``, ``train``).
        generator: drives the batch order (on the CPU, so the same seed gives the same order
            whatever the device).
        evaluate: called after each epoch when there are callbacks; its dict joins the logs.
    """
    cb = CallbackList(callbacks)
    n = len(tensors[0])
    device = tensors[0].device
    if schedule.channels_last and tensors[0].dim() == 4:
        tensors = to_channels_last(net, tensors)
    model = torch.compile(net) if schedule.compile else net
    optimizer = Adam(net.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay, amsgrad=schedule.amsgrad)
    scheduler = StepSchedule(optimizer, schedule.milestones, gamma=schedule.lr_gamma)
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    losses: list[float] = []
    cb.on_phase_start(phase, schedule.n_epochs)
    try:
        for epoch in range(schedule.n_epochs):
            if schedule.reference_scheduler:  # the reference steps first, so each drop comes an epoch early
                scheduler.step()
            epoch_lr = optimizer.lr
            net.train()
            order = torch.randperm(n, generator=generator).to(device, non_blocking=True)
            # BatchNorm cannot train on a batch of one sample: leave that sample out this epoch
            # (the order is new every epoch, so no sample is left out for good).
            usable = n - 1 if has_batchnorm and n % schedule.batch_size == 1 and n > 1 else n
            total = torch.zeros((), device=device)
            n_batches = 0
            for idx in batch_slices(usable, schedule.batch_size, order):
                batch = [t[idx] for t in tensors]
                optimizer.zero_grad(set_to_none=True)
                with autocast(schedule.amp, device):
                    loss = loss_fn(model, *batch)
                loss.backward()
                optimizer.step()
                total += loss.detach()
                n_batches += 1
            if not schedule.reference_scheduler:
                scheduler.step()
            epoch_loss = float(total) / max(n_batches, 1)  # the one host sync of the epoch
            losses.append(epoch_loss)
            if cb:
                logs = {"loss": epoch_loss, "lr": epoch_lr}
                if evaluate is not None:
                    logs.update(evaluate())
                cb.on_epoch_end(phase, epoch, logs)
    finally:
        cb.on_phase_end(phase)
    return losses


#: the batch size at which scores are computed (see ``predict``'s ``fixed``)
SCORE_BATCH = 1024


@torch.no_grad()
def predict(
    fn: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, batch_size: int = SCORE_BATCH, *, fixed: bool = False
) -> torch.Tensor:
    """Apply ``fn`` to ``X`` in batches and concatenate (the caller sets eval mode).

    Args:
        fixed: compute every batch at the full ``batch_size``, the last one padded with zeros, so that a
            sample's output does not depend on how many samples it came with: matrix libraries block their
            float32 arithmetic by shape, so the same row can differ in the last bits between a batch of 10
            and one of 250. Scoring uses it: ``sadkit score`` in chunks, the served model and the run give
            the same scores to the last digit.
    """
    outputs = []
    for idx in batch_slices(len(X), batch_size):
        batch = X[idx]
        n = len(batch)
        if fixed and n < batch_size:
            batch = torch.cat([batch, batch.new_zeros((batch_size - n, *batch.shape[1:]))])
        outputs.append(fn(batch)[:n])
    return torch.cat(outputs) if outputs else torch.empty(0, device=X.device)
