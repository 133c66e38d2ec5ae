"""The shared training loop: devices, schedules, batching, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sadkit.callbacks import Callback
from sadkit.errors import DeviceError
from sadkit.training import Schedule, resolve_device, seed_everything, train_network


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_phase_start(self, phase, n_epochs):
        self.events.append(("start", phase, n_epochs))

    def on_epoch_end(self, phase, epoch, logs):
        self.events.append(("epoch", phase, epoch, dict(logs)))

    def on_phase_end(self, phase):
        self.events.append(("end", phase))


def _net():
    return nn.Sequential(nn.Linear(3, 4, bias=False), nn.BatchNorm1d(4, affine=False), nn.Linear(4, 2, bias=False))


def _mse(net, x):
    return (net(x) ** 2).sum(1).mean()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA.*--device cpu"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")


def test_lr_drops_at_the_milestone_epoch_and_reference_one_early():
    X = torch.rand(40, 3)
    for reference, first_low in ((False, 3), (True, 2)):
        rec = Recorder()
        train_network(
            _net(),
            _mse,
            [X],
            Schedule(n_epochs=5, lr=1e-2, lr_milestones=[3], batch_size=16, reference_scheduler=reference),
            phase="train",
            generator=seed_everything(0),
            callbacks=[rec],
        )
        used = [e[3]["lr"] for e in rec.events if e[0] == "epoch"]  # the lr each epoch trained with
        assert used[:first_low] == [pytest.approx(1e-2)] * first_low, (reference, used)
        assert used[first_low:] == [pytest.approx(1e-3)] * (5 - first_low), (reference, used)


def test_callbacks_see_every_epoch_and_phase_end():
    rec = Recorder()
    losses = train_network(
        _net(),
        _mse,
        [torch.rand(50, 3)],
        Schedule(n_epochs=3, lr=1e-3),
        phase="pretrain",
        generator=seed_everything(1),
        callbacks=[rec],
    )
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert rec.events[0] == ("start", "pretrain", 3)
    assert [e[2] for e in rec.events if e[0] == "epoch"] == [0, 1, 2]
    assert rec.events[-1] == ("end", "pretrain")


def test_a_last_batch_of_one_sample_does_not_break_batchnorm():
    # 33 samples with batch 16: the last batch would hold one sample
    losses = train_network(
        _net(),
        _mse,
        [torch.rand(33, 3)],
        Schedule(n_epochs=2, lr=1e-3, batch_size=16),
        phase="t",
        generator=seed_everything(0),
    )
    assert len(losses) == 2


def test_same_seed_same_training():
    def run():
        seed_everything(7)
        net = _net()
        train_network(
            net,
            _mse,
            [torch.rand(64, 3)],
            Schedule(n_epochs=2, lr=1e-2, batch_size=8),
            phase="t",
            generator=seed_everything(7),
        )
        return [p.detach().clone() for p in net.parameters()]

    for a, b in zip(run(), run(), strict=True):
        assert torch.equal(a, b)
