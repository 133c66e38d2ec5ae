"""Optuna studies through the Python API, on real storages (SQLite, journal file, PostgreSQL) and a
real MLflow store: nested runs, pruning, failures, resuming, stale trials, specs and bad input."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from sadkit import DeviceError, SadkitError, SpecError
from sadkit.experiment import ExperimentSpec, run_experiment
from sadkit.tuning import (
    SearchSpace,
    StudySpec,
    best_spec,
    describe_storage,
    export_best,
    fail_stale_trials,
    open_storage,
    run_study,
    storage_url,
    study_report,
)

FAST = {"n_epochs": 3, "ae_n_epochs": 1, "lr_milestones": [2], "ae_lr_milestones": [1]}
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _spec(tmp_path, tracking_uri, **study) -> StudySpec:
    params = {**FAST, **study.pop("params", {})}
    experiment = ExperimentSpec(
        detector=study.pop("detector", "deepsad"),
        dataset="synthetic",
        params=params,
        data=study.pop("data", {"n_samples": 400}),
        seed=0,
        device="cpu",
        threads=1,
        log_model=False,
        tracking_uri=tracking_uri,
    )
    study.setdefault("storage", f"sqlite:///{tmp_path / 'optuna.db'}")
    study.setdefault("sampler", "random")
    study.setdefault("heartbeat", 2)
    return StudySpec(experiment=experiment, **study)


def _runs(tracking_uri: str, experiment: str):
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000)


def _study(spec: StudySpec):
    return optuna.load_study(study_name=spec.resolved_name(), storage=open_storage(spec.storage))


# ---------------------------------------------------------------------------------------------- runs


def test_a_study_tracks_one_parent_and_one_nested_run_per_trial(tmp_path, tracking_uri):
    spec = _spec(tmp_path, tracking_uri, n_trials=3, study_name="nested")
    result = run_study(spec)
    assert result.n_trials == result.n_complete == 3 and result.n_run == 3 and result.n_failed == 0

    trials = _study(spec).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    runs = {r.info.run_id: r for r in _runs(tracking_uri, "nested")}
    parent = runs[result.parent_run_id]
    assert parent.info.status == "FINISHED" and parent.data.tags["sadkit.role"] == "study"
    best = max(trials, key=lambda t: t.value)
    assert parent.data.tags["sadkit.best_run_id"] == best.user_attrs["sadkit.run_id"] == result.best_run_id
    assert json.loads(parent.data.tags["sadkit.best_params"]) == result.best_params
    assert float(parent.data.tags["best.lr"]) == pytest.approx(best.params["lr"])
    assert parent.data.metrics["best_value"] == pytest.approx(best.value)
    for trial in trials:
        run = runs[trial.user_attrs["sadkit.run_id"]]
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert run.info.status == "FINISHED" and run.data.tags["sadkit.trial_state"] == "COMPLETE"
        # the objective is the validation metric; the test metric is only logged
        assert trial.value == pytest.approx(run.data.metrics["val_auroc"])
        assert "test_auroc" in run.data.metrics
        assert float(run.data.params["lr"]) == pytest.approx(trial.params["lr"])
        assert run.data.params["n_epochs"] == "3"
    assert len(runs) == 4


def test_fixed_params_leave_the_space_and_overrides_narrow_it():
    space = SearchSpace(
        "deepsad",
        {"lr": 1e-3, "n_epochs": 3},
        {
            "batch_size": {"type": "categorical", "choices": [32, 64]},
            "eta": None,
            "weight_decay": {"type": "float", "low": "1e-6", "high": "1e-4", "log": True},
            "ae_n_epochs": {"type": "int", "low": 1, "high": 3},
            "lr": {"type": "float", "low": 1e-5, "high": 1e-2},  # fixed wins
        },
    )
    dists = space.distributions
    assert set(dists) == {"weight_decay", "batch_size", "ae_lr", "ae_n_epochs"}
    assert list(dists["batch_size"].choices) == [32, 64]
    assert dists["weight_decay"].low == 1e-6 and dists["weight_decay"].log
    assert dists["ae_n_epochs"].high == 3


def test_a_fixed_param_is_not_searched_in_a_study(tmp_path, tracking_uri):
    spec = _spec(tmp_path, tracking_uri, n_trials=2, params={"lr": 2e-3}, study_name="fixed")
    run_study(spec)
    for trial in _study(spec).get_trials():
        assert "lr" not in trial.params and "eta" in trial.params
        run = MlflowClient(tracking_uri).get_run(trial.user_attrs["sadkit.run_id"])
        assert run.data.params["lr"] == "0.002"


def test_pruned_trials_end_pruned_in_optuna_and_tagged_in_mlflow(tmp_path, tracking_uri):
    spec = _spec(tmp_path, tracking_uri, n_trials=2, study_name="pruned", pruner=optuna.pruners.ThresholdPruner(2.0))
    result = run_study(spec)
    assert result.n_pruned == 2 and result.best_value is None
    for trial in _study(spec).get_trials():
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert trial.intermediate_values == {0: pytest.approx(trial.intermediate_values[0])}
        run = MlflowClient(tracking_uri).get_run(trial.user_attrs["sadkit.run_id"])
        assert run.info.status == "KILLED"
        assert run.data.tags["sadkit.trial_state"] == "PRUNED"
        assert "error" not in run.data.tags and "pruned at epoch 0" in run.data.tags["sadkit.stopped"]


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruners_see_every_training_epoch(tmp_path, tracking_uri, pruner):
    spec = _spec(tmp_path, tracking_uri, n_trials=1, study_name="reports", pruner=pruner)
    run_study(spec)
    (trial,) = _study(spec).get_trials()
    assert sorted(trial.intermediate_values) == [0, 1, 2]  # n_epochs = 3; pretraining does not report


def test_a_failing_trial_fails_in_optuna_and_mlflow_and_the_study_goes_on(tmp_path, tracking_uri):
    space = {"lr": {"type": "categorical", "choices": [1e-3, -1.0]}, "weight_decay": None, "ae_lr": None}
    space.update({"batch_size": None, "eta": None})
    spec = _spec(tmp_path, tracking_uri, n_trials=2, sampler="grid", space=space, study_name="failing", sampler_seed=1)
    result = run_study(spec)
    trials = _study(spec).get_trials()
    states = [t.state for t in trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]  # it went on
    assert result.n_failed == 1 and result.n_complete == 1
    failed = trials[0]
    assert "lr=-1.0" in failed.user_attrs["sadkit.error"]
    # invalid parameters are refused before a run opens (issue 14): the failed trial leaves no MLflow run
    assert "sadkit.run_id" not in failed.user_attrs
    trial_runs = [r for r in _runs(tracking_uri, "failing") if r.data.tags.get("sadkit.role") != "study"]
    assert [r.info.status for r in trial_runs] == ["FINISHED"]


def test_resume_adds_trials_to_the_same_study(tmp_path, tracking_uri):
    spec = _spec(tmp_path, tracking_uri, n_trials=2, study_name="resume")
    first = run_study(spec)
    spec.n_trials = 3
    second = run_study(spec)
    again = run_study(spec)
    assert (first.n_run, second.n_run, again.n_run) == (2, 1, 0)
    assert second.n_trials == 3 and len(_study(spec).get_trials()) == 3
    parents = [r for r in _runs(tracking_uri, "resume") if r.data.tags.get("sadkit.role") == "study"]
    assert len(parents) == 3  # one parent run per invocation
    # a resumed sampler does not repeat the first invocation's draws
    lrs = [t.params["lr"] for t in _study(spec).get_trials()]
    assert len(set(lrs)) == 3


def test_the_objective_can_be_the_mean_over_seeds(tmp_path, tracking_uri):
    spec = _spec(tmp_path, tracking_uri, n_trials=1, seeds=[0, 1], study_name="seeds")
    run_study(spec)
    (trial,) = _study(spec).get_trials()
    client = MlflowClient(tracking_uri)
    trial_run = client.get_run(trial.user_attrs["sadkit.run_id"])
    runs = _runs(tracking_uri, "seeds")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == trial_run.info.run_id]
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1"]
    mean = np.mean([r.data.metrics["val_auroc"] for r in children])
    assert trial.value == pytest.approx(mean) == pytest.approx(trial_run.data.metrics["val_auroc"])
    assert "test_auroc" in trial_run.data.metrics


@pytest.mark.slow
def test_two_worker_processes_share_one_study_and_split_the_threads(tmp_path, tracking_uri):
    spec = _spec(tmp_path, tracking_uri, n_trials=4, n_jobs=2, study_name="workers")
    spec.experiment.threads = None
    result = run_study(spec)
    assert result.n_trials == 4 and result.n_jobs == 2 and result.worker_exit_codes == [0, 0]
    trials = _study(spec).get_trials()
    assert {t.user_attrs["sadkit.worker"] for t in trials} == {0, 1}
    runs = [r for r in _runs(tracking_uri, "workers") if r.data.tags.get("sadkit.role") != "study"]
    assert len(runs) == 4
    import os

    assert {r.data.tags["sadkit.threads"] for r in runs} == {str(max(1, len(os.sched_getaffinity(0)) // 2))}
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {result.parent_run_id}


# ---------------------------------------------------------------------------------------------- storages


def test_journal_file_storage(tmp_path, tracking_uri):
    spec = _spec(tmp_path, tracking_uri, n_trials=2, storage=f"journal:///{tmp_path / 'study.log'}")
    assert storage_url(spec.storage) == ("journal", str(tmp_path / "study.log"))
    result = run_study(spec)
    assert result.n_complete == 2 and (tmp_path / "study.log").stat().st_size > 0
    assert study_report(result.study_name, spec.storage).counts["COMPLETE"] == 2


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_stale_trials_of_a_journal_file_fail_after_the_grace_period(tmp_path):
    seen = []
    url = f"journal:///{tmp_path / 'stale.log'}"
    storage = open_storage(url, heartbeat=1, on_stale=lambda study, trial: seen.append(trial.number))
    study = optuna.create_study(storage=storage, study_name="stale")
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    fail_stale_trials(study)
    assert study.get_trials()[0].state == optuna.trial.TrialState.RUNNING  # still fresh
    time.sleep(3.5)  # grace = 3 heartbeats
    fail_stale_trials(study)
    assert study.get_trials()[0].state == optuna.trial.TrialState.FAIL and seen == [0]


def _postgres_or_skip() -> str:
    try:
        open_storage(POSTGRES)
    except SadkitError as err:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES} ({err})")
    return POSTGRES


def test_postgresql_storage(tmp_path, tracking_uri):
    url = _postgres_or_skip()
    name = f"sadkit-test-{uuid.uuid4().hex[:12]}"
    spec = _spec(tmp_path, tracking_uri, n_trials=2, storage=url, study_name=name)
    try:
        result = run_study(spec)
        assert result.n_complete == 2
        spec.n_trials = 3
        assert run_study(spec).n_run == 1
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(url))


def test_storage_urls():
    assert storage_url(None) == ("rdb", "sqlite:///optuna.db")
    assert storage_url("my.db") == ("rdb", "sqlite:///my.db")
    assert storage_url("runs/study.log") == ("journal", "runs/study.log")
    assert storage_url("journal:////abs/x.log") == ("journal", "/abs/x.log")
    assert storage_url("postgresql://u@h/db")[1].startswith("postgresql+psycopg://")
    assert describe_storage("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"


# ---------------------------------------------------------------------------------------------- after a study


def test_report_and_export_best_as_a_spec_sadkit_run_accepts(tmp_path, tracking_uri):
    spec = _spec(tmp_path, tracking_uri, n_trials=1, params={"lr": 1e-3}, study_name="export")
    result = run_study(spec)
    report = study_report("export", spec.storage)
    assert report.importances is None and "at least 2 complete trials" in report.importance_note
    assert report.top[0].run_id == result.best_run_id
    path = export_best("export", tmp_path / "best.yaml", spec.storage)
    loaded = ExperimentSpec.from_yaml(path)
    assert loaded.params == {**spec.experiment.params, **result.best_params}
    assert loaded.detector == "deepsad" and loaded.data == {"n_samples": 400} and loaded.seed == 0
    assert best_spec("export", spec.storage)["params"]["lr"] == 1e-3
    loaded.tracking_uri, loaded.log_model = tracking_uri, False
    assert run_experiment(loaded).val_auroc == pytest.approx(result.best_value)


def test_report_ranks_trials_and_computes_importances(tmp_path):
    storage = f"sqlite:///{tmp_path / 'imp.db'}"
    study = optuna.create_study(storage=storage, study_name="imp", direction="maximize")
    dists = {
        "lr": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True),
        "batch_size": optuna.distributions.CategoricalDistribution([64, 128]),
    }
    rng = np.random.default_rng(0)
    for i in range(8):
        lr, batch = float(10 ** rng.uniform(-5, -2)), [64, 128][i % 2]
        value = 0.5 + 0.1 * np.log10(lr / 1e-5) + 0.001 * (batch == 64)
        params = {"lr": lr, "batch_size": batch}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    report = study_report("imp", storage, top=3)
    assert report.counts["COMPLETE"] == 8 and report.counts["FAILED"] == 1
    assert [t.value for t in report.top] == sorted((t.value for t in study.get_trials() if t.value), reverse=True)[:3]
    assert set(report.importances) == {"lr", "batch_size"} and report.importances["lr"] > 0.5


# ---------------------------------------------------------------------------------------------- bad input


def test_spec_yaml_keys_are_checked_by_name(tmp_path):
    good = tmp_path / "study.yaml"
    good.write_text(
        "detector: deepsad\ndataset: synthetic\nn_trials: 5\nsampler: random\nseeds: [0, 1]\n"
        "space: {lr: {type: float, low: 1e-5, high: 1e-3, log: true}, batch_size: {type: categorical,"
        " choices: [64, 128]}}\n"
    )
    spec = StudySpec.from_yaml(good)
    assert spec.n_trials == 5 and spec.seeds == [0, 1] and spec.experiment.log_model is False
    cases = {
        "n_trails: 3": "unknown key(s) n_trails",
        "sampler: bayes": "unknown sampler 'bayes'; choose one of tpe, random, cmaes, grid",
        "pruner: sha": "unknown pruner 'sha'; choose one of median, hyperband, none",
        "metric: test_auroc": "unknown metric 'test_auroc'",
        "space: {lr: {type: flaot, low: 1, high: 2}}": "space.lr.type must be float, int or categorical",
        "space: {lr: {type: float, low: 1}}": "space.lr: missing key 'high'",
        "space: {lr: {type: float, low: 1, high: 2, lg: true}}": "space.lr: unknown key(s) lg",
        "space: {lr: {type: float, low: 0, high: 1, log: true}}": "space.lr:",
        "space: {lr: {type: categorical, choices: []}}": "space.lr.choices must be a non-empty list",
        "seed: 1\nseeds: [1]": "give 'seed' or 'seeds', not both",
        "seeds: [-1]": "seeds must be >= 0, got -1",
        "n_trials: 0": "n_trials must be >= 1",
    }
    for line, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"detector: deepsad\ndataset: synthetic\n{line}\n")
        with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
            StudySpec.from_yaml(bad)


def test_a_param_or_space_entry_the_detector_does_not_have(tmp_path, tracking_uri):
    with pytest.raises(SpecError, match="detector 'deepsad' has no parameter 'learning_rate'"):
        run_study(_spec(tmp_path, tracking_uri, params={"learning_rate": 1e-3}))
    with pytest.raises(SpecError, match="space.eta: detector 'deepsvdd' has no parameter 'eta'"):
        space = {"eta": {"type": "float", "low": 1, "high": 2}}
        run_study(_spec(tmp_path, tracking_uri, detector="deepsvdd", space=space))
    assert not (tmp_path / "optuna.db").exists()  # nothing was created


def test_unreachable_and_bad_storages(tmp_path, tracking_uri):
    with pytest.raises(SadkitError, match="cannot open the Optuna storage postgresql.*127.0.0.1:1"):
        run_study(_spec(tmp_path, tracking_uri, storage="postgresql://postgres@127.0.0.1:1/test"))
    with pytest.raises(SadkitError, match="the folder .*nowhere does not exist"):
        run_study(_spec(tmp_path, tracking_uri, storage=f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}"))
    with pytest.raises(SadkitError, match="is not a storage URL"):
        run_study(_spec(tmp_path, tracking_uri, storage="optuna"))
    with pytest.raises(SadkitError, match="cannot open the Optuna storage nosuch://"):
        run_study(_spec(tmp_path, tracking_uri, storage="nosuch://x"))


def test_an_existing_study_with_another_direction_or_metric(tmp_path, tracking_uri):
    spec = _spec(tmp_path, tracking_uri, n_trials=1, study_name="minimizing")
    optuna.create_study(storage=open_storage(spec.storage), study_name="minimizing", direction="minimize")
    with pytest.raises(SadkitError, match="direction is minimize, but a sadkit study maximizes val_auroc"):
        run_study(spec)
    spec = _spec(tmp_path, tracking_uri, n_trials=1, study_name="auroc")
    run_study(spec)
    spec.metric = "val_auprc"
    with pytest.raises(SadkitError, match="metric: study has 'val_auroc', asked for 'val_auprc'"):
        run_study(spec)
    spec.metric = "val_auroc"
    spec.experiment.params["n_epochs"] = 5
    with pytest.raises(SadkitError, match="another objective or setting \\(params"):
        run_study(spec)


def test_a_validation_split_without_anomalies_is_a_clear_error(tmp_path, tracking_uri):
    """With no anomaly in the whole training pool, "raise val_fraction" cannot help: it says to give some."""
    spec = _spec(tmp_path, tracking_uri, data={"n_samples": 400, "ratio_known_outlier": 0.0})
    with pytest.raises(
        SadkitError, match="all normal.*the training pool holds no anomaly at all.*ratio_known_outlier=0.01"
    ):
        run_study(spec)
    spec = _spec(tmp_path, tracking_uri, data={"n_samples": 400, "ratio_known_outlier": 0.01, "val_fraction": 0.01})
    with pytest.raises(SadkitError, match="validation split .* all normal.*raise val_fraction"):
        run_study(spec)


def test_grid_needs_finite_values_and_cmaes_needs_its_package(tmp_path, tracking_uri):
    with pytest.raises(SpecError, match="grid sampler needs finitely many values.*lr"):
        run_study(_spec(tmp_path, tracking_uri, sampler="grid"))
    import importlib.util

    if importlib.util.find_spec("cmaes") is None:
        with pytest.raises(SadkitError, match="pip install cmaes"):
            run_study(_spec(tmp_path, tracking_uri, sampler="cmaes"))
    else:
        assert run_study(_spec(tmp_path, tracking_uri, sampler="cmaes", n_trials=1)).n_complete == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_devices_without_cuda(tmp_path, tracking_uri):
    with pytest.raises(DeviceError, match="sees no CUDA"):
        run_study(_spec(tmp_path, tracking_uri, devices=[0]))


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_each_worker_trains_on_its_device(tmp_path, tracking_uri):
    import torch

    devices = list(range(min(2, torch.cuda.device_count())))
    spec = _spec(tmp_path, tracking_uri, n_trials=2 * len(devices), devices=devices, study_name="gpu")
    result = run_study(spec)
    assert result.n_complete == 2 * len(devices) and result.n_jobs == len(devices)
    runs = [r for r in _runs(tracking_uri, "gpu") if r.data.tags.get("sadkit.role") != "study"]
    assert {r.data.params["device"] for r in runs} == {f"cuda:{d}" for d in devices}
