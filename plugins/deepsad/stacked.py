"""Deep SAD and Deep SVDD trained stacked: S detectors' pretraining and training as one grouped network.

Each model is built exactly as its solo fit builds it (its seed set, then its network, then its
autoencoder, drawn in that order from torch's global generator), keeps its own batch-order generator
through both phases, its own center ``c`` (from its own pretrained network), its own eta and eps, and its
own callbacks. Learning rates and weight decays may differ per model (a study's trials); everything else
that shapes training must agree (:func:`stack_key`). Stacked training runs in the plain memory layout
and without ``torch.compile`` (vmap batches the S models instead); results equal the solo fits' up to
float rounding (``tests/plugins/test_deepsad_stacked.py``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch

from sadkit import auroc
from sadkit.data import to_semi_y
from sadkit.network import check_encoder_is_network
from sadkit.stacking import StackedModules, train_stacked
from sadkit.training import as_tensor, predict, seed_everything

from .autoencoder import build_autoencoder
from .center import init_center, sad_terms

#: stack image (4-D) data on the CPU too. Off: there a LeNet step is compute-bound, so one grouped network is
#: no faster than its models one by one, and it loses the fused kernels and channels-last layout the solo
#: fit uses (benchmarks/stacked.py measured 10 stacked MNIST models at 0.47x the solo speed per model).
#: On a GPU, where a small convolution is launch-bound, images stack.
STACK_IMAGES_ON_CPU = False


def stack_key(det: Any, X: np.ndarray) -> tuple | None:
    """What must agree for detectors to train stacked (lr, weight decay, eta, eps, center_eps and seed may
    differ); None (train alone) for image data on the CPU unless :data:`STACK_IMAGES_ON_CPU`."""
    if X.ndim == 4 and det._training_device().type == "cpu" and not STACK_IMAGES_ON_CPU:
        return None
    fields = (
        "n_epochs", "lr_milestones", "batch_size", "amsgrad", "pretrain", "ae_n_epochs", "ae_lr_milestones",
        "ae_batch_size", "reference_scheduler", "device", "amp",
    )  # fmt: skip
    schedule = tuple(str(getattr(det, f)) for f in fields)
    network = (det._network_name(), json.dumps(det.net_params or {}, sort_keys=True, default=str))
    return (tuple(X.shape[1:]), network, schedule)  # Deep SVDD stacks with Deep SAD: its labels are all 0


def _reconstruction(stack: StackedModules, x: torch.Tensor) -> torch.Tensor:
    rec = stack(x)
    return torch.sum((rec - x) ** 2, dim=tuple(range(2, rec.dim()))).mean(dim=1)


def fit_stack(detectors: list, Xs: list, labels: list, eval_sets: list, callbacks: list) -> list[Exception | None]:
    """``_fit`` of every detector (Deep SAD or Deep SVDD, one :func:`stack_key`) as one stacked training.

    Returns, per detector, the exception that stopped it (its callback raised, e.g. a pruned trial) or None.
    """
    first = detectors[0]
    device = first._training_device()
    speed = {**first._speed_options(Xs[0]), "channels_last": False, "compile": False}
    shape = tuple(Xs[0].shape[1:])
    pretrain = bool(first.pretrain) and int(first.ae_n_epochs) > 0
    nets, aes, generators = [], [], []
    for det in detectors:  # each drawn as its solo fit draws it
        det.seed_ = det._resolve_seed()
        generators.append(seed_everything(det.seed_))
        nets.append(det._build(shape, autoencoder=False).to(device))
        if pretrain:
            aes.append(build_autoencoder(det._network_name(), shape, det.net_params).to(device))
            check_encoder_is_network(nets[-1], aes[-1], det._network_name())
    X_s = torch.stack([as_tensor(X, device) for X in Xs])
    n_models = len(detectors)

    started = time.perf_counter()
    pretrain_losses: list[list[float]] = [[] for _ in detectors]
    errors: list[Exception | None] = [None] * n_models
    if pretrain:
        stack = StackedModules(aes)
        pretrain_losses = train_stacked(
            stack,
            _reconstruction,
            [X_s],
            [d._phase_schedule("ae_", speed) for d in detectors],
            phase="pretrain",
            generators=generators,
            callbacks=callbacks,
        )
        for net, ae in zip(nets, stack.write_back(), strict=True):
            net.load_state_dict(ae.encoder.state_dict(), strict=True)
        errors = stack.errors
    pretrain_seconds = (time.perf_counter() - started) / n_models

    started = time.perf_counter()
    centers = []
    for det, net, X in zip(detectors, nets, X_s, strict=True):
        net.eval()
        with torch.no_grad():
            centers.append(init_center(predict(net, X, batch_size=1024), float(det.center_eps)))
    c = torch.stack(centers).unsqueeze(1)  # (S, 1, rep_dim)
    semi = torch.stack(
        [as_tensor(d._labels_for_training(to_semi_y(y)), device) for d, y in zip(detectors, labels, strict=True)]
    )
    eta = torch.tensor([float(d.eta) for d in detectors], device=device).unsqueeze(1)
    eps = torch.tensor([float(d.eps) for d in detectors], device=device).unsqueeze(1)

    def sad_loss(stack: StackedModules, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return sad_terms(torch.sum((stack(x) - c) ** 2, dim=2), s, eta, eps).mean(dim=1)

    stack = StackedModules(nets)
    stack.errors = list(errors)
    evaluate = None
    if any(callbacks) and any(ev is not None for ev in eval_sets):
        shapes = {tuple(np.shape(ev[0])) for ev in eval_sets if ev is not None}
        together = len(shapes) == 1 and all(ev is not None for ev in eval_sets)
        X_val = torch.stack([as_tensor(ev[0], device) for ev in eval_sets]) if together else None

        def evaluate() -> list[dict[str, float]]:
            """Each model's validation AUROC: all in one stacked forward pass when the splits have one shape."""
            stack.eval()
            with torch.no_grad():
                if X_val is not None:
                    chunks = [stack(X_val[:, i : i + 1024]) for i in range(0, X_val.shape[1], 1024)]
                    dists = torch.sum((torch.cat(chunks, dim=1) - c) ** 2, dim=2).cpu().numpy()
                else:
                    dists = [
                        None if ev is None else
                        torch.sum((predict(net.eval(), as_tensor(ev[0], device)) - center) ** 2, dim=1).cpu().numpy()
                        for net, center, ev in zip(stack.write_back(), centers, eval_sets, strict=True)
                    ]  # fmt: skip
            return [
                {} if ev is None else {"val_auroc": auroc(np.asarray(ev[1]), d)}
                for d, ev in zip(dists, eval_sets, strict=True)
            ]

    train_losses = train_stacked(
        stack,
        sad_loss,
        [X_s, semi],
        [d._phase_schedule("", speed) for d in detectors],
        phase="train",
        generators=generators,
        callbacks=callbacks,
        evaluate=evaluate,
    )
    stack.write_back()
    train_seconds = (time.perf_counter() - started) / n_models
    for s, (det, net) in enumerate(zip(detectors, nets, strict=True)):
        det.net_ = net.eval()
        det.c_ = centers[s].detach()
        det.ae_state_ = {k: v.detach().cpu().clone() for k, v in aes[s].state_dict().items()} if pretrain else None
        det.pretrain_losses_ = pretrain_losses[s]
        det.train_losses_ = train_losses[s]
        det.timings_ = {"pretrain": pretrain_seconds if pretrain else 0.0, "train": train_seconds}
    return stack.errors

