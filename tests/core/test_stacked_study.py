"""Stacked trials and stacked runs: `sadkit study --stack K` (Optuna's threads, one stack per round), a
model stopped by its callback (a pruned trial) stopping alone, and each run ending on its own."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient

from sadkit import Callback, SpecError, create_network
from sadkit.experiment import STACK_TAG, ExperimentSpec, run_experiments
from sadkit.stacking import StackedModules, train_stacked
from sadkit.training import Schedule, seed_everything, train_network
from sadkit.tuning import StudySpec, open_storage, run_study

FAST = {"n_epochs": 3, "ae_n_epochs": 1, "lr_milestones": [2], "ae_lr_milestones": [1], "batch_size": 64}


class _PruneTrial(optuna.pruners.BasePruner):
    """Prunes exactly the trials whose numbers it is given (at their first report)."""

    def __init__(self, numbers: set[int]) -> None:
        self.numbers = numbers

    def prune(self, study, trial) -> bool:  # noqa: ANN001
        return trial.number in self.numbers


def _study_spec(tmp_path, tracking_uri, **study) -> StudySpec:
    experiment = ExperimentSpec(
        detector="deepsad",
        dataset="synthetic",
        params=dict(FAST),
        data={"n_samples": 400, "val_fraction": 0.3},
        seed=0,
        device="cpu",
        threads=1,
        log_model=False,
        tracking_uri=tracking_uri,
        experiment="stacked-study",
    )
    study.setdefault("storage", f"sqlite:///{tmp_path / 'optuna.db'}")
    return StudySpec(experiment=experiment, sampler="random", heartbeat=2, **study)


def test_a_stacked_round_trains_its_trials_together_each_in_its_own_run(tmp_path, tracking_uri):
    spec = _study_spec(tmp_path, tracking_uri, n_trials=3, stack=3, pruner="none", study_name="stacked")
    result = run_study(spec)
    assert result.n_complete == 3
    study = optuna.load_study(study_name="stacked", storage=open_storage(spec.storage))
    client = MlflowClient(tracking_uri)
    run_ids = {t.user_attrs["sadkit.run_id"] for t in study.get_trials()}
    assert len(run_ids) == 3
    for trial in study.get_trials():
        run = client.get_run(trial.user_attrs["sadkit.run_id"])
        assert run.info.status == "FINISHED" and run.data.tags[STACK_TAG] == "3"
        assert run.data.tags["sadkit.trial"] == str(trial.number)
        assert float(run.data.params["lr"]) == pytest.approx(trial.params["lr"])  # its own learning rate
        assert run.data.metrics["val_auroc"] == pytest.approx(trial.value)


def test_a_pruned_trial_stops_alone_in_its_round(tmp_path, tracking_uri):
    spec = _study_spec(tmp_path, tracking_uri, n_trials=3, stack=3, pruner=_PruneTrial({1}), study_name="pruned")
    run_study(spec)
    study = optuna.load_study(study_name="pruned", storage=open_storage(spec.storage))
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {0: optuna.trial.TrialState.COMPLETE, 1: optuna.trial.TrialState.PRUNED,
                      2: optuna.trial.TrialState.COMPLETE}  # fmt: skip
    client = MlflowClient(tracking_uri)
    statuses = {t.number: client.get_run(t.user_attrs["sadkit.run_id"]).info.status for t in study.get_trials()}
    assert statuses == {0: "FINISHED", 1: "KILLED", 2: "FINISHED"}


def test_stack_with_several_seeds_is_refused(tmp_path, tracking_uri):
    with pytest.raises(SpecError, match="single-seed trials"):
        _study_spec(tmp_path, tracking_uri, stack=2, seeds=[0, 1]).validate()


class _StopAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.seen: list[int] = []

    def on_epoch_end(self, phase, epoch, logs) -> None:  # noqa: ANN001
        self.seen.append(epoch)
        if epoch == self.epoch:
            raise RuntimeError(f"stop at {epoch}")


def test_a_model_whose_callback_raises_stops_alone():
    """The others train on exactly as they would alone; the stopped one's callbacks hear no more."""
    X = torch.rand(3, 200, 6)
    schedule = Schedule(n_epochs=4, lr=1e-3, lr_milestones=(2,), batch_size=64)
    nets, generators = [], []
    for s in range(3):
        generators.append(seed_everything(s))
        nets.append(create_network("thyroid_mlp", (6,)))
    solo = []
    for s in range(3):
        seed_everything(s)
        net = create_network("thyroid_mlp", (6,))
        gen = seed_everything(s)
        train_network(net, lambda m, x: (m(x) ** 2).sum(1).mean(), [X[s]], schedule, phase="train", generator=gen)
        solo.append(net)
    stop = _StopAt(1)
    stack = StackedModules(nets)
    train_stacked(
        stack,
        lambda st, x: (st(x) ** 2).sum(2).mean(1),
        [X],
        [schedule] * 3,
        phase="train",
        generators=generators,
        callbacks=[[], [stop], []],
    )
    assert stack.errors[0] is None and stack.errors[2] is None
    assert isinstance(stack.errors[1], RuntimeError) and stop.seen == [0, 1]
    for s in (0, 2):
        trained = stack.write_back()[s].state_dict()
        for name, value in solo[s].state_dict().items():
            np.testing.assert_allclose(trained[name].numpy(), value.numpy(), rtol=1e-4, atol=1e-5)


def test_one_failing_run_ends_failed_and_the_others_finish(tracking_uri):
    specs = [
        ExperimentSpec(
            detector="deepsad",
            dataset="synthetic",
            params=dict(FAST),
            data={"n_samples": 300},
            seed=seed,
            device="cpu",
            log_model=False,
            experiment="stacked-failure",
        )
        for seed in (0, 1)
    ]
    outcomes = run_experiments(specs, [[], [_StopAt(0)]], return_exceptions=True)
    assert isinstance(outcomes[1], RuntimeError) and outcomes[0].run_id
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("stacked-failure").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    with pytest.raises(RuntimeError, match="stop at 0"):
        run_experiments(specs, [[], [_StopAt(0)]])
