"""sadkit's Adam against torch's on one device: the same parameters? and what does a training step cost?

    python benchmarks/optim_check.py                    # CPU
    python benchmarks/optim_check.py --device cuda      # a GPU (torch's default there is the foreach Adam)

Checks, on Deep SAD's MNIST LeNet (batch 128) and the cardio MLP: parameters after 20 steps against
``torch.optim.Adam(foreach=False)`` (the single-tensor code sadkit's follows; expected: equal) and against
torch's default for the device (foreach on CUDA; expected: equal up to rounding); three models stacked
with per-model rates against each trained alone (expected: equal). Then the median time of a whole
training step (forward, backward, update) with each optimiser.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from sadkit.optim import Adam
from sadkit.plugins.networks.lenet import mnist_lenet
from sadkit.plugins.networks.mlp import cardio_mlp


def _nets(device: torch.device) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    out = {}
    for name, factory, shape in (("mnist_lenet", mnist_lenet, (1, 28, 28)), ("cardio_mlp", cardio_mlp, (21,))):
        torch.manual_seed(0)
        out[name] = (factory(shape).to(device), torch.rand(128, *shape, generator=gen).to(device))
    return out


def _train(net: torch.nn.Module, x: torch.Tensor, optimizer, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        (net(x) ** 2).sum(1).mean().backward()
        optimizer.step()
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times


def _optimizers(params, foreach_default: bool) -> dict:
    kw = {"lr": 1e-3, "weight_decay": 1e-6}
    found = {
        "sadkit Adam": lambda: Adam(params(), **kw),
        "torch Adam foreach=False": lambda: torch.optim.Adam(params(), foreach=False, **kw),
    }
    if foreach_default:
        found["torch Adam (foreach)"] = lambda: torch.optim.Adam(params(), foreach=True, **kw)
        found["torch Adam fused"] = lambda: torch.optim.Adam(params(), fused=True, **kw)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    device = torch.device(args.device)
    report: dict = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    for name, (net, x) in _nets(device).items():
        start = {k: v.clone() for k, v in net.state_dict().items()}
        finals = {}
        for label, make in _optimizers(lambda net=net: net.parameters(), device.type == "cuda").items():
            net.load_state_dict(start)
            _train(net, x, make(), 20)
            finals[label] = [p.detach().clone() for p in net.parameters()]
        ours = finals["sadkit Adam"]
        report[f"{name}: equal to torch foreach=False"] = all(
            torch.equal(a, b) for a, b in zip(ours, finals["torch Adam foreach=False"], strict=True)
        )
        for label, params in finals.items():
            if label.startswith("torch Adam") and "False" not in label:
                diff = max(float((a - b).abs().max()) for a, b in zip(ours, params, strict=True))
                report[f"{name}: max |difference| to {label}"] = diff
        timings = {}
        for _ in range(2):  # interleaved rounds; the first warms up
            for label, make in _optimizers(lambda net=net: net.parameters(), device.type == "cuda").items():
                net.load_state_dict(start)
                times = _train(net, x, make(), args.steps)
                timings[label] = 1000 * statistics.median(times[10:])
        report[f"{name}: median ms per training step"] = {k: round(v, 4) for k, v in timings.items()}
    # per-model rates on stacked parameters against each model alone
    gen = torch.Generator().manual_seed(1)
    start = [torch.randn(3, 50, 20, generator=gen).to(device), torch.randn(3, 20, generator=gen).to(device)]
    grads = [[torch.randn(p.shape, generator=gen).to(device) for p in start] for _ in range(10)]
    lrs = [1e-3, 3e-4, 1e-2]
    stacked = [p.clone().requires_grad_() for p in start]
    opt = Adam(stacked, lr=lrs, weight_decay=[0.0, 1e-4, 1e-2])
    for g in grads:
        for p, gi in zip(stacked, g, strict=True):
            p.grad = gi.clone()
        opt.step()
    same = True
    for s, (lr, wd) in enumerate(zip(lrs, [0.0, 1e-4, 1e-2], strict=True)):
        alone = [p[s].clone().requires_grad_() for p in start]
        one = Adam(alone, lr=lr, weight_decay=wd)
        for g in grads:
            for p, gi in zip(alone, g, strict=True):
                p.grad = gi[s].clone()
            one.step()
        same &= all(torch.equal(a[s].detach(), b.detach()) for a, b in zip(stacked, alone, strict=True))
    report["stacked per-model Adam equal to each model alone"] = same
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
