"""An experiment end to end in a real MLflow store: params, per-epoch losses, metrics, c, model, plots."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from sadkit import Callback, InvalidInputError, SpecError, create_dataset
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
    assert {"arrays", "plots", "results.json", "data", "scores"} <= artifacts
    # the model is an MLflow 3 LoggedModel of the run (the run page's "Logged models"), and the dataset an input
    models = [client.get_logged_model(o.model_id) for o in run.outputs.model_outputs]
    assert [m.name for m in models] == ["model"] and result.model_uri == f"models:/{models[0].model_id}"
    assert models[0].source_run_id == result.run_id and str(models[0].status) == "READY"
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.name == "synthetic" and dataset.dataset.digest
    assert metrics["threshold"] == pytest.approx(result.threshold) and "test_recall" in metrics
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


def test_logged_model_scores_raw_rows_as_the_run_did(finished):
    """The MLflow model is complete: on the raw test rows (before the dataset's scaling) its ``predict``
    gives the run's test scores exactly, with a 0/1 label at the fitted threshold; a data frame by column
    name works too, in any column order and with extra columns."""
    import pandas as pd

    from sadkit import load_detector
    from sadkit.tracking import download_model_detector, load_model

    uri, result, tmp = finished
    dataset = create_dataset("synthetic", **_spec().data, seed=result.seed)
    dataset.load()
    raw, _, _ = dataset._read()
    raw_test = raw[dataset._test_index]
    logged = pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="scores/test.csv", tracking_uri=uri),
        float_precision="round_trip",
    )
    for model_uri in (result.model_uri, f"runs:/{result.run_id}/model"):
        model = load_model(model_uri, tracking_uri=uri)
        out = model.predict(raw_test)
        assert list(out.columns) == ["score", "label"]
        np.testing.assert_array_equal(out["score"].to_numpy(), logged["score"].to_numpy())
        np.testing.assert_array_equal(out["label"].to_numpy(), (out["score"] > result.threshold).astype(int))
    frame = pd.DataFrame(raw_test, columns=[f"x{i}" for i in range(raw_test.shape[1])])
    shuffled = frame[frame.columns[::-1]].assign(comment="extra")
    with pytest.warns(UserWarning, match="ignored: comment"):
        np.testing.assert_array_equal(model.predict(shuffled)["score"].to_numpy(), logged["score"].to_numpy())
    detector = load_detector(download_model_detector(result.model_uri, tmp / "dl-model", tracking_uri=uri))
    np.testing.assert_array_equal(detector.decision_function(raw_test), logged["score"].to_numpy())


def test_bad_parameters_leave_no_run_behind(tracking_uri):
    spec = _spec(params={**FAST, "lr": -1.0}, tracking_uri=tracking_uri)
    with pytest.raises(InvalidInputError, match="lr=-1"):
        run_experiment(spec)
    experiment = MlflowClient(tracking_uri).get_experiment_by_name("tests")
    assert experiment is None or not MlflowClient(tracking_uri).search_runs([experiment.experiment_id])


def test_a_run_that_raises_ends_failed_and_keeps_its_params(tracking_uri):
    class Diverges(Callback):
        def on_epoch_end(self, phase, epoch, logs):
            if phase == "train":
                raise InvalidInputError("the loss diverged")  # a failure once the work has started

    with pytest.raises(InvalidInputError, match="diverged"):
        run_experiment(_spec(tracking_uri=tracking_uri), callbacks=[Diverges()])
    runs = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("tests").experiment_id]
    )
    assert len(runs) == 1
    assert runs[0].info.status == "FAILED"
    assert runs[0].data.params["lr"] == "0.0001"
    assert "diverged" in runs[0].data.tags["error"]


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


def test_log_batch_sends_everything_within_mlflows_limits(tracking_uri):
    """Parameters, metrics and tags beyond one request's limits (100 / 1000 / 100) all arrive."""
    from sadkit.tracking import Tracker

    tracker = Tracker(tracking_uri, "batch")
    with tracker.start_run(run_name="batch") as run:
        run.log_metrics({"buffered": 1.0}, step=3, buffered=True)
        run.log_batch(
            params={f"p{i}": i for i in range(250)},
            metrics={**{f"m{i}": float(i) for i in range(1200)}, "skipped": None},
            tags={f"t{i}": i for i in range(150)},
        )
    data = tracker.get_run(run.run_id).data
    assert len(data.params) == 250 and data.params["p249"] == "249"
    assert {f"m{i}" for i in range(1200)} | {"buffered"} <= set(data.metrics) and "skipped" not in data.metrics
    assert sum(k.startswith("t") and k[1:].isdigit() for k in data.tags) == 150
