"""Fine-tuning a fitted Deep SAD or Deep SVDD network on labels, its hypersphere center kept.

This is how an active layer trains the network *with* the labels an expert gives (Pimentel et al.,
arXiv 1805.09411, train their layer and the network beneath it jointly): the network that ``fit`` trained
continues under Deep SAD's objective, unlabeled and labeled-normal samples pulled to the center, labeled
anomalies pushed away (``eta (d + eps)^-1``), at the learning rate its schedule ended with (``lr`` times
0.1 per milestone passed). Unlike a refit from scratch it starts from the representation the ranking came
from, so a handful of labels moves it a little instead of drawing a new network. The learning rate
matters (issue 17, thyroid, Deep SVDD fitted at lr 1e-4 with a milestone at 50 of 150 epochs): fine-tuned
at 1e-4, the network drifts even without a label (84.9 -> 80.6 after 50 epochs, seed 1; 93.2 -> 89.9,
seed 4), at the final 1e-5 it stays within 0.6 and the labels alone move it. Deep SVDD's own ``fit``
ignores labels, so fine-tuning is the only way its network learns from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from sadkit import Callback, InvalidInputError
from sadkit.data import read_labels, to_semi_y
from sadkit.training import as_tensor, train_network

from .center import sad_loss

#: the generator stream of the fine-tuning's batch order (apart from the fit's, same seed)
_STREAM = 104729


def fine_tune(
    detector: Any,
    X: Any,
    y: Any,
    semi_y: Any,
    n_epochs: int,
    eval_set: tuple[Any, Any] | None = None,
    callbacks: Iterable[Callback] = (),
) -> Any:
    """What ``DeepSAD.fine_tune`` does: ``X``, the labels and ``eval_set`` read as ``fit`` reads them, the
    network trained on (see :func:`fine_tune_network`), then the training scores, threshold and decisions
    made again (``threshold="fpr:A"`` from ``eval_set``'s normals, as in ``fit``)."""
    detector._check_fitted()
    if int(n_epochs) < 0:
        raise InvalidInputError(f"fine_tune: n_epochs must be >= 0, got {n_epochs!r}")
    rule = detector.check_params()
    if rule.kind == "fpr" and eval_set is None:  # said before the network changes, not after
        raise InvalidInputError(f"fine_tune: threshold={detector.threshold!r} needs an eval_set with labeled normals")
    X = detector._model_input(X)
    labels = read_labels(y, semi_y, len(X))
    if eval_set is not None:
        eval_set = (detector._model_input(eval_set[0]), np.asarray(eval_set[1]))
    detector.fine_tune_losses_ = fine_tune_network(detector, X, to_semi_y(labels), int(n_epochs), list(callbacks))
    detector._end_fit(X, eval_set, rule)
    return detector


def fine_tune_network(
    detector: object, X: np.ndarray, semi_y: np.ndarray, n_epochs: int, callbacks: Sequence[Callback] = ()
) -> list[float]:
    """Train ``detector.net_`` in place for ``n_epochs`` on ``X`` with the paper's label codes ``semi_y``
    (+1 normal, -1 anomaly, 0 unlabeled): the fit's schedule (batch size, weight decay, Adam's options) at the
    learning rate it ended with (:func:`final_lr`), held, the center ``detector.c_`` fixed. Returns the mean
    batch loss of every epoch."""
    d = detector
    device = d._training_device()
    net = d.net_.to(device)
    schedule = replace(d._phase_schedule("", {}), n_epochs=int(n_epochs), lr=final_lr(d), lr_milestones=())
    generator = torch.Generator().manual_seed((int(d.seed_) + _STREAM) % 2**63)
    losses = train_network(
        net,
        sad_loss(d.c_.to(device), float(d.eta), float(d.eps)),
        [as_tensor(X, device), as_tensor(semi_y, device)],
        schedule,
        phase="fine_tune",
        generator=generator,
        callbacks=callbacks,
    )
    net.eval()
    return losses


def final_lr(detector: Any) -> float:
    """The learning rate the detector's training schedule ended with: ``lr`` times ``lr_gamma`` for every
    milestone before its last epoch."""
    schedule = detector._phase_schedule("", {})
    passed = sum(1 for m in schedule.milestones if m < schedule.n_epochs)
    return float(schedule.lr) * schedule.lr_gamma**passed
