"""Stacked training (sadkit.stacking): each stacked model trains as it does alone, to float rounding."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sadkit import Callback
from sadkit.errors import SadkitWarning
from sadkit.experiment import STACK_TAG, ExperimentSpec, run_experiments
from sadkit.plugins.deepsad import stacked as stacked_module
from sadkit.plugins.deepsad.detector import DeepSAD, DeepSVDD
from sadkit.plugins.shallow.iforest import IsolationForest
from sadkit.stacked_fit import fit_together
from sadkit.stacking import StackedModules

FAST = dict(
    net_name="cardio_mlp",
    n_epochs=4,
    ae_n_epochs=3,
    lr_milestones=(2,),
    ae_lr_milestones=(1,),
    batch_size=64,
    ae_batch_size=64,
    device="cpu",
)


def _data(n_models: int, n: int = 300, shape: tuple[int, ...] = (21,)):
    rng = np.random.default_rng(0)
    Xs = [rng.random((n, *shape)).astype(np.float32) for _ in range(n_models)]
    ys = [np.where(rng.random(n) < 0.05, 1, -1) for _ in range(n_models)]
    return list(zip(Xs, ys, strict=True))


def _max_weight_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


class _Losses(Callback):
    def __init__(self) -> None:
        self.logs: list[tuple[str, int, float, float]] = []

    def on_epoch_end(self, phase, epoch, logs) -> None:  # noqa: ANN001
        self.logs.append((phase, epoch, logs["loss"], logs["lr"], logs.get("val_auroc")))


@pytest.mark.parametrize("cls", [DeepSAD, DeepSVDD])
def test_stacked_models_end_where_their_solo_fits_end(cls):
    """Each model starts from its solo weights and sees its solo batches: after a few epochs the weights,
    centers, scores and per-epoch losses agree to float rounding, with per-model lr and weight decay."""
    data = _data(3)
    per_model = [dict(seed=s, lr=1e-3 * (s + 1), weight_decay=10.0 ** -(s + 4)) for s in range(3)]
    if cls is DeepSAD:
        per_model = [{**p, "eta": 0.5 + s} for s, p in enumerate(per_model)]
    rng = np.random.default_rng(1)
    val = [(rng.random((120, 21)).astype(np.float32), (rng.random(120) < 0.2).astype(int)) for _ in data]
    solo_logs = [_Losses() for _ in data]
    solo = [
        cls(**FAST, **p).fit(X, y, eval_set=ev, callbacks=[cb])
        for p, (X, y), ev, cb in zip(per_model, data, val, solo_logs, strict=True)
    ]
    stacked_logs = [_Losses() for _ in data]
    stacked = fit_together(
        [cls(**FAST, **p) for p in per_model], data, eval_sets=val, callbacks=[[cb] for cb in stacked_logs]
    )
    for a, b, la, lb in zip(solo, stacked, solo_logs, stacked_logs, strict=True):
        assert b.stack_size_ == 3
        assert _max_weight_difference(a.net_, b.net_) < 1e-5
        assert float((a.c_ - b.c_).abs().max()) < 1e-5
        np.testing.assert_allclose(a.decision_scores_, b.decision_scores_, rtol=1e-4, atol=1e-5)
        assert [(p, e) for p, e, *_ in la.logs] == [(p, e) for p, e, *_ in lb.logs]  # pretrain 3, train 4 epochs
        np.testing.assert_allclose([x[2] for x in la.logs], [x[2] for x in lb.logs], rtol=1e-5)
        assert [x[3] for x in la.logs] == [x[3] for x in lb.logs]  # the same learning rate, epoch by epoch
        val_a, val_b = [x[4] for x in la.logs if x[0] == "train"], [x[4] for x in lb.logs if x[0] == "train"]
        assert len(val_a) == 4 and val_a == pytest.approx(val_b, abs=1e-3)  # per-epoch validation AUROC
        assert a.threshold_ == pytest.approx(b.threshold_, rel=1e-4)


def test_models_that_differ_in_schedule_or_size_train_apart():
    data = _data(2) + _data(1, n=250)
    detectors = [DeepSAD(**FAST, seed=0), DeepSAD(**{**FAST, "n_epochs": 2}, seed=1), DeepSAD(**FAST, seed=2)]
    fit_together(detectors, data)
    assert [d.stack_size_ for d in detectors] == [1, 1, 1]
    together = fit_together([DeepSAD(**FAST, seed=s) for s in range(3)], data)
    assert [d.stack_size_ for d in together] == [2, 2, 1]  # the third has 250 samples, not 300
    assert fit_together([DeepSAD(**FAST, seed=s) for s in range(2)], data[:2], stack=False)[0].stack_size_ == 1


def test_a_detector_that_cannot_stack_fits_alone_and_says_so_once(monkeypatch):
    from sadkit import stacked_fit

    monkeypatch.setattr(stacked_fit, "_told", set())
    data = _data(2)
    with pytest.warns(SadkitWarning, match="cannot train stacked"):
        fitted = fit_together([IsolationForest(seed=s) for s in range(2)], data)
    assert all(d.stack_size_ == 1 and hasattr(d, "threshold_") for d in fitted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_together([IsolationForest(seed=s) for s in range(2)], data)


def test_lenet_stacks_through_its_plain_kernels(monkeypatch):
    """The LeNets' fused pooling is a custom autograd function vmap cannot batch: stacking switches to the
    plain three steps (the same function) and the trained weights load back into the fused network."""
    monkeypatch.setattr(stacked_module, "STACK_IMAGES_ON_CPU", True)
    data = _data(2, n=96, shape=(1, 28, 28))
    kw = {**FAST, "net_name": "mnist_lenet", "n_epochs": 1, "ae_n_epochs": 1, "batch_size": 32, "ae_batch_size": 32}
    solo = [DeepSAD(**kw, seed=s).fit(X, y) for s, (X, y) in enumerate(data)]
    stacked = fit_together([DeepSAD(**kw, seed=s) for s in range(2)], data)
    for a, b in zip(solo, stacked, strict=True):
        assert b.stack_size_ == 2 and b.net_.fused_pooling  # scoring keeps the fused kernels
        assert _max_weight_difference(a.net_, b.net_) < 1e-3


def test_stacked_modules_check_their_members():
    from sadkit import create_network

    with pytest.raises(Exception, match="same parameters"):
        StackedModules([create_network("mlp", (5,)), create_network("mlp", (6,))])


def test_stacked_experiments_each_get_their_own_run(tracking_uri):
    import mlflow

    specs = [
        ExperimentSpec(
            detector="deepsad",
            dataset="synthetic",
            params={"n_epochs": 3, "ae_n_epochs": 2, "lr_milestones": [2], "ae_lr_milestones": [1]},
            data={"n_samples": 400, "ratio_known_outlier": 0.05},
            seed=seed,
            device="cpu",
            experiment="stacked",
        )
        for seed in (0, 1)
    ]
    stacked = run_experiments(specs)
    alone = run_experiments(specs, stack=False)
    client = mlflow.MlflowClient(tracking_uri)
    for a, b in zip(stacked, alone, strict=True):
        run = client.get_run(a.run_id)
        assert run.info.status == "FINISHED" and run.data.tags[STACK_TAG] == "2"
        assert STACK_TAG not in client.get_run(b.run_id).data.tags
        assert len(client.get_metric_history(a.run_id, "train_loss")) == 3
        assert a.test_auroc == pytest.approx(b.test_auroc, abs=1e-3)
    assert len({r.run_id for r in stacked}) == 2


def test_images_on_the_cpu_train_one_by_one_by_default():
    data = _data(2, n=64, shape=(1, 28, 28))
    kw = {**FAST, "net_name": "mnist_lenet", "n_epochs": 1, "ae_n_epochs": 0, "batch_size": 32}
    assert [d.stack_size_ for d in fit_together([DeepSAD(**kw, seed=s) for s in range(2)], data)] == [1, 1]
