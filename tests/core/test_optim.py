"""sadkit's Adam and step schedule: bit-identical to torch's on the CPU, per-model values, no torch._dynamo."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from sadkit.errors import InvalidInputError
from sadkit.optim import Adam, StepSchedule


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 8, bias=False), nn.BatchNorm1d(8, eps=1e-4), nn.LeakyReLU(), nn.Linear(8, 3, bias=True)
    )


def _train(net: nn.Module, make_optimizer, make_schedule, steps_per_epoch: int = 4, epochs: int = 6) -> list[float]:
    X = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    optimizer = make_optimizer(net.parameters())
    schedule = make_schedule(optimizer)
    lrs = []
    for _ in range(epochs):
        for i in range(steps_per_epoch):
            optimizer.zero_grad(set_to_none=True)
            loss = (net(X[i * 16 : (i + 1) * 16]) ** 2).sum(1).mean()
            loss.backward()
            optimizer.step()
        schedule.step()
        lrs.append(optimizer.lr if isinstance(optimizer, Adam) else optimizer.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_bit_identical_to_torch_adam_and_multisteplr(amsgrad, weight_decay):
    kwargs = {"lr": 1e-2, "betas": (0.9, 0.99), "eps": 1e-7, "weight_decay": weight_decay, "amsgrad": amsgrad}
    ours, theirs = _net(), _net()
    our_lrs = _train(ours, lambda p: Adam(p, **kwargs), lambda o: StepSchedule(o, [2, 4, 4], gamma=0.5))
    their_lrs = _train(
        theirs,
        lambda p: torch.optim.Adam(p, foreach=False, **kwargs),
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 4, 4], gamma=0.5),
    )
    assert our_lrs == their_lrs  # the same floats, not merely close
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_per_model_values_update_each_model_as_if_alone():
    S, steps = 3, 7
    lrs, decays = [1e-2, 3e-3, 5e-2], [0.0, 1e-3, 1e-1]
    beta1s, beta2s, epss = [0.9, 0.8, 0.95], [0.999, 0.99, 0.9], [1e-8, 1e-6, 1e-7]
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(S, 33, 5, generator=gen), torch.randn(S, 7, generator=gen)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(steps)]
    for amsgrad in (False, True):
        stacked = [p.clone().requires_grad_() for p in start]
        opt = Adam(
            stacked,
            lr=torch.tensor(lrs, dtype=torch.float64),  # float32 would round the rates
            betas=(beta1s, torch.tensor(beta2s, dtype=torch.float64)),
            eps=epss,
            weight_decay=decays,
            amsgrad=amsgrad,
        )
        schedule = StepSchedule(opt, [3])
        for step in range(steps):
            for p, g in zip(stacked, grads[step], strict=True):
                p.grad = g.clone()
            opt.step()
            if step % 2:
                schedule.step()
        assert opt.lr == tuple(lr * 0.1 for lr in lrs)
        for s in range(S):
            alone = [p[s].clone().requires_grad_() for p in start]
            one = Adam(
                alone, lr=lrs[s], betas=(beta1s[s], beta2s[s]), eps=epss[s], weight_decay=decays[s], amsgrad=amsgrad
            )
            schedule = StepSchedule(one, [3])
            for step in range(steps):
                for p, g in zip(alone, grads[step], strict=True):
                    p.grad = g[s].clone()
                one.step()
                if step % 2:
                    schedule.step()
            for p, q in zip(stacked, alone, strict=True):
                assert torch.equal(p[s].detach(), q.detach()), (amsgrad, s)


def test_a_milestone_at_zero_drops_before_the_first_epoch_as_in_torch():
    ours = Adam([nn.Parameter(torch.zeros(2))], lr=1.0)
    theirs = torch.optim.Adam([nn.Parameter(torch.zeros(2))], lr=1.0)
    StepSchedule(ours, [0, 2])
    torch.optim.lr_scheduler.MultiStepLR(theirs, milestones=[0, 2])
    assert ours.lr == theirs.param_groups[0]["lr"] == pytest.approx(0.1)


def test_invalid_values_are_errors():
    p = [nn.Parameter(torch.zeros(2, 3))]
    with pytest.raises(InvalidInputError, match="lr"):
        Adam(p, lr=-1.0)
    with pytest.raises(InvalidInputError, match="beta"):
        Adam(p, betas=(1.0, 0.999))
    with pytest.raises(InvalidInputError, match="different lengths"):
        Adam(p, lr=[1e-3, 1e-3], eps=[1e-8, 1e-8, 1e-8])
    with pytest.raises(InvalidInputError, match="stacked along their first dimension"):
        Adam(p, lr=[1e-3, 1e-3, 1e-3])
    with pytest.raises(InvalidInputError, match="keep its form"):
        Adam(p, lr=1e-3).lr = [1e-3, 1e-3]


def test_training_does_not_import_torch_dynamo():
    code = textwrap.dedent(
        """
        import sys
        import torch
        from sadkit.training import Schedule, seed_everything, train_network
        net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
        train_network(net, lambda m, x: (m(x) ** 2).mean(), [torch.rand(50, 3)], Schedule(n_epochs=2, lr=1e-3),
                      phase="train", generator=seed_everything(0))
        print("torch._dynamo" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
