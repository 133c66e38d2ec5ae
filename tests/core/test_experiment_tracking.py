"""An experiment end to end in a real MLflow store: params, per-epoch losses, metrics, c, model, plots."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from sadkit import InvalidInputError, SpecError, create_dataset
from sadkit.experiment import ExperimentSpec, run_experiment
from sadkit.tracking import flatten

FAST = {"n_epochs": 4, "ae_n_epochs": 3, "lr_milestones": [2], "ae_lr_milestones": [2]}


def _spec(**overrides):
    base = dict(
        detector="deepsad",
        dataset="synthetic",
        params=dict(FAST),
        data={"n_samples": 600, "ratio_known_outlier": 0.05},
        seed=3,
        device="cpu",
        experiment="tests",
    )
    base.update(overrides)
    return ExperimentSpec(**base)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, _mlflow_template):
    """One complete run (module-scoped: it is the expensive part)."""
    import os
    import shutil

    tmp = tmp_path_factory.mktemp("run")
    shutil.copy(_mlflow_template, tmp / "mlflow.db")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        result = run_experiment(_spec(tracking_uri=uri))
    finally:
        os.chdir(cwd)
    return uri, result, tmp


def test_run_finishes_with_params_metrics_and_artifacts(finished):
    uri, result, _ = finished
    client = MlflowClient(uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["detector"] == "deepsad" and params["dataset"] == "synthetic" and params["seed"] == "3"
    assert params["lr"] == "0.0001" and params["lr_milestones"] == "[2]" and params["n_epochs"] == "4"
    assert params["data.ratio_known_outlier"] == "0.05" and params["data.n_samples"] == "600"
    assert params["net_name"] == "mlp"
    metrics = run.data.metrics
    for key in ("val_auroc", "val_auprc", "test_auroc", "test_auprc", "train_seconds", "c_norm"):
        assert key in metrics, key
    assert metrics["test_auroc"] == pytest.approx(result.test_auroc)
    assert 0.5 < result.test_auroc <= 1.0
    train_loss = client.get_metric_history(result.run_id, "train_loss")
    assert sorted(m.step for m in train_loss) == [0, 1, 2, 3]
    assert sorted(m.step for m in client.get_metric_history(result.run_id, "pretrain_loss")) == [0, 1, 2]
    assert len(client.get_metric_history(result.run_id, "train_val_auroc")) == 4
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"arrays", "plots", "model", "results.json", "data"} <= artifacts
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/roc_test.png", "plots/scores_test.png"} <= plots


def test_center_artifact_matches_its_norm(finished):
    uri, result, tmp = finished
    path = mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="arrays/c.json", tracking_uri=uri, dst_path=str(tmp / "dl")
    )
    c = np.array(json.loads(open(path).read()))
    assert c.shape == (8,)
    assert np.all(np.abs(c) >= 0.1 - 1e-7)  # the paper's eps push
    norm = MlflowClient(uri).get_run(result.run_id).data.metrics["c_norm"]
    assert np.linalg.norm(c) == pytest.approx(norm, rel=1e-5)


def test_logged_model_loads_by_uri_and_scores_new_rows(finished, monkeypatch):
    uri, result, _ = finished
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # not mlflow.set_tracking_uri: it would outlive the test
    model = mlflow.pyfunc.load_model(result.model_uri)
    test = create_dataset("synthetic", n_samples=300, seed=11).load()[2]  # rows the model never saw
    scores = np.asarray(model.predict(test.X))
    assert scores.shape == (len(test.X),)
    from sadkit import load_detector

    detector_dir = mlflow.artifacts.download_artifacts(f"{result.model_uri}/artifacts/detector", tracking_uri=uri)
    assert np.allclose(scores, load_detector(detector_dir).score(test.X))
    import pandas as pd

    frame_scores = np.asarray(model.predict(pd.DataFrame(test.X[:7])))
    assert np.allclose(frame_scores, scores[:7])


def test_a_run_that_raises_ends_failed_and_keeps_its_params(tracking_uri):
    spec = _spec(params={**FAST, "lr": -1.0}, tracking_uri=tracking_uri)
    with pytest.raises(InvalidInputError, match="lr=-1"):
        run_experiment(spec)
    runs = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("tests").experiment_id]
    )
    assert len(runs) == 1
    assert runs[0].info.status == "FAILED"
    assert runs[0].data.params["lr"] == "-1.0"
    assert "lr=-1" in runs[0].data.tags["error"]


def test_same_seed_same_scores_across_runs(tracking_uri):
    a = run_experiment(_spec(log_model=False, tracking_uri=tracking_uri))
    b = run_experiment(_spec(log_model=False, tracking_uri=tracking_uri))
    assert a.test_auroc == b.test_auroc and a.val_auroc == b.val_auroc
    assert a.run_id != b.run_id


def test_random_seed_is_drawn_and_logged(tracking_uri):
    result = run_experiment(_spec(seed=-1, log_model=False, tracking_uri=tracking_uri))
    assert result.seed >= 0
    assert MlflowClient(tracking_uri).get_run(result.run_id).data.params["seed"] == str(result.seed)


def test_spec_errors_name_the_bad_key(tmp_path):
    with pytest.raises(SpecError, match="unknown key.*detektor"):
        ExperimentSpec.from_dict({"detektor": "deepsad", "dataset": "odds"})
    with pytest.raises(SpecError, match="missing key.*dataset"):
        ExperimentSpec.from_dict({"detector": "deepsad"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("detector: deepsad\ndataset: odds\nparams: [1, 2]\n")
    with pytest.raises(SpecError, match="'params' must be a mapping"):
        ExperimentSpec.from_yaml(bad)
    with pytest.raises(SpecError, match="does not exist"):
        ExperimentSpec.from_yaml(tmp_path / "missing.yaml")


def test_flatten_nested_params():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "None"}


def test_unreachable_tracking_store_is_a_clear_error(tmp_path):
    from sadkit import SadkitError
    from sadkit.tracking import Tracker

    with pytest.raises(SadkitError, match="cannot use the MLflow tracking store"):
        Tracker("postgresql://nobody@127.0.0.1:1/none", "x")
