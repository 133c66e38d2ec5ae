"""``sadkit active``: the loop, its JSON and MLflow curve, the three oracles and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from sadkit import create_dataset
from sadkit.cli import app

FAST = ["-p", "n_epochs=2", "-p", "lr_milestones=[1]", "--device", "cpu", "--threads", "1"]
DATA = ["-d", "n_samples=500", "-d", "ratio_known_outlier=0", "-d", "ratio_pollution=0.1"]
DATA_PARAMS = {"n_samples": 500, "ratio_known_outlier": 0.0, "ratio_pollution": 0.1}


def active(*args: str, input: str | None = None):
    return CliRunner().invoke(app, ["active", "esad", "synthetic", *FAST, *DATA, *args], input=input)


def pool(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ids (rows of the synthetic table) and labels of the unlabeled training samples."""
    dataset = create_dataset("synthetic", seed=seed, **DATA_PARAMS)
    train, _, _ = dataset.load()
    unlabeled = np.asarray(train.semi_y) == 0
    return np.asarray(dataset._train_index)[unlabeled], np.asarray(train.y)[unlabeled]


def test_json_curve_and_mlflow_metrics(tracking_uri):
    result = active("--budget", "20", "--per-round", "8", "--strategy", "top", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    ids, labels = pool()
    assert out["pool_size"] == len(ids) and out["pool_anomaly_rate"] == pytest.approx(labels.mean())
    rounds = out["rounds"]
    assert [r["queried"] for r in rounds] == [0, 8, 16, 20]  # the last round queries what the budget leaves
    assert rounds[0]["anomalies_found"] == 0 and rounds[0]["queried_ids"] == []
    found = np.cumsum([labels[np.isin(ids, r["queried_ids"])].sum() for r in rounds])
    assert [r["anomalies_found"] for r in rounds] == found.tolist()
    queried = [i for r in rounds for i in r["queried_ids"]]
    assert len(set(queried)) == 20 and set(queried) <= set(ids.tolist())
    assert all(0.0 <= r["test_auroc"] <= 1.0 for r in rounds)

    client = MlflowClient(tracking_uri)
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(out["run_id"], "test_auroc")
    assert sorted((m.step, m.value) for m in history) == [
        (r["queried"], pytest.approx(r["test_auroc"])) for r in rounds
    ]
    steps = sorted((m.step, m.value) for m in client.get_metric_history(out["run_id"], "anomalies_found"))
    assert steps == [(r["queried"], r["anomalies_found"]) for r in rounds]
    artifacts = {a.path for a in client.list_artifacts(out["run_id"], "plots")}
    assert "plots/active_curve.png" in artifacts


def test_top_finds_more_anomalies_than_random(tracking_uri):
    found = {}
    for strategy in ("top", "random", "uncertain"):
        result = active("--budget", "30", "--per-round", "10", "--strategy", strategy, "--json")
        assert result.exit_code == 0, result.stderr
        found[strategy] = json.loads(result.stdout)["rounds"][-1]["anomalies_found"]
    _, labels = pool()
    assert found["top"] > 3 * labels.mean() * 30  # random expects about pool rate x budget
    assert found["top"] > found["random"]


def test_prompt_oracle_asks_a_person(tracking_uri):
    # two rounds of 2: answers y, n, then an invalid answer (asked again) and n, y
    result = active("--budget", "4", "--per-round", "2", "--oracle", "prompt", "--json", input="y\nn\nmaybe\nn\ny\n")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("an anomaly? [y/n]") == 5 and "answer y (anomaly) or n (normal)" in result.stderr
    # CliRunner echoes the typed answers into stdout (a terminal shows them itself); the JSON is the last line
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["anomalies_found"] for r in out["rounds"]] == [0, 1, 2]


def test_csv_oracle_gives_the_same_curve_as_the_ground_truth(tracking_uri, tmp_path):
    ids, labels = pool()
    path = tmp_path / "labels.csv"
    path.write_text("id,label\n" + "".join(f"{i},{label}\n" for i, label in zip(ids, labels, strict=True)))
    by_csv = active("--budget", "12", "--per-round", "6", "--oracle", f"csv:{path}", "--json")
    by_truth = active("--budget", "12", "--per-round", "6", "--json")
    assert by_csv.exit_code == 0 and by_truth.exit_code == 0, by_csv.stderr + by_truth.stderr
    keys = ("queried", "anomalies_found", "test_auroc", "queried_ids")
    curve = [{k: r[k] for k in keys} for r in json.loads(by_csv.stdout)["rounds"]]
    assert curve == [{k: r[k] for k in keys} for r in json.loads(by_truth.stdout)["rounds"]]


def test_deepsad_works_through_its_representation(tracking_uri):
    result = CliRunner().invoke(
        app,
        ["active", "deepsad", "synthetic", *DATA, "-p", "n_epochs=2", "-p", "ae_n_epochs=1", "-p", "lr_milestones=[1]",
         "-p", "ae_lr_milestones=[1]", "--device", "cpu", "--budget", "10", "--per-round", "5", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [r["queried"] for r in json.loads(result.stdout)["rounds"]] == [0, 5, 10]


# ---------------------------------------------------------------------------------------------- bad input
def _fails(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.stdout
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in message, message


def test_budget_larger_than_the_pool(tracking_uri):
    ids, _ = pool()
    _fails(active("--budget", str(len(ids) + 1), "--per-round", "10"), "larger than the pool", f"--budget {len(ids)}")


def test_csv_with_unknown_ids(tracking_uri, tmp_path):
    ids, _ = pool()
    path = tmp_path / "labels.csv"
    path.write_text(f"id,label\n{ids[0]},0\n999999,1\n-3,0\n")
    _fails(active("--budget", "4", "--per-round", "2", "--oracle", f"csv:{path}"), "999999", "-3", "not unlabeled")


def test_csv_with_labels_other_than_0_and_1(tracking_uri, tmp_path):
    ids, _ = pool()
    path = tmp_path / "labels.csv"
    path.write_text(f"id,label\n{ids[0]},1\n{ids[1]},2\n{ids[2]},anomaly\n")
    _fails(active("--budget", "4", "--per-round", "2", "--oracle", f"csv:{path}"), "must be 0 (normal) or 1", "'2'")


def test_csv_without_a_queried_id_or_header(tracking_uri, tmp_path):
    ids, labels = pool()
    partial = tmp_path / "partial.csv"
    partial.write_text(f"id,label\n{ids[0]},{labels[0]}\n")
    _fails(active("--budget", "4", "--per-round", "2", "--oracle", f"csv:{partial}"), "has no label for the queried")
    headless = tmp_path / "headless.csv"
    headless.write_text(f"{ids[0]},1\n")
    _fails(active("--budget", "4", "--per-round", "2", "--oracle", f"csv:{headless}"), "header with the columns id")
    _fails(active("--budget", "4", "--per-round", "2", "--oracle", f"csv:{tmp_path / 'nope.csv'}"), "does not exist")


def test_detector_without_signal(tracking_uri):
    result = CliRunner().invoke(app, ["active", "supervised", "synthetic", "--budget", "5", "--per-round", "5"])
    _fails(result, "'supervised' has no per-sample signal", "esad")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--budget", "0", "--per-round", "1"], "--budget must be a positive integer"),
        (["--budget", "5", "--per-round", "0"], "--per-round must be a positive integer"),
        (["--budget", "5", "--per-round", "1", "--strategy", "best"], "unknown strategy 'best'"),
        (["--budget", "5", "--per-round", "1", "--oracle", "human"], "unknown oracle 'human'"),
        (["--budget", "5", "--per-round", "1", "--layer", "esad"], "is not an active layer"),
    ],
)
def test_other_bad_options(tracking_uri, args, fragment):
    _fails(active(*args), fragment)


def test_the_layer_is_a_detector_that_sadkit_run_tracks_and_serves(tracking_uri):
    """``sadkit run active ...`` fits the layer on the dataset's labels; its model predicts the layer's logit."""
    import mlflow

    result = CliRunner().invoke(
        app,
        ["run", "active", "synthetic", "-p", "base_params={n_epochs: 2, lr_milestones: [1]}", "--seed", "3",
         "--device", "cpu", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["params"]["net_name"] == "mlp" and out["params"]["seed"] == 3
    assert out["test_auroc"] > 0.5
    dataset = create_dataset("synthetic", seed=3)
    dataset.load()
    raw, _, _ = dataset._read()  # the model takes raw rows (its scaling is part of it)
    model = mlflow.pyfunc.load_model(out["model_uri"])
    predicted = model.predict(raw[dataset._test_index][:7])
    assert list(predicted.columns) == ["score", "label"] and predicted.shape == (7, 2)
    assert np.isfinite(predicted["score"]).all() and set(predicted["label"]) <= {0, 1}


def test_active_on_your_own_table_with_an_oracle_keyed_by_your_ids(tracking_uri, tmp_path):
    """A table with text ids: the CSV oracle answers by those ids; ground truth is refused (it is unknown)."""
    rng = np.random.default_rng(0)
    n = 300
    anomaly = rng.random(n) < 0.1
    frame = {
        "id": [f"tx-{i:04d}" for i in range(n)],
        "a": np.where(anomaly, rng.normal(5, 1, n), rng.normal(0, 1, n)),
        "b": rng.normal(0, 1, n),
        "label": np.where(np.arange(n) < 30, anomaly.astype(float), np.nan),
    }
    import pandas as pd

    pd.DataFrame(frame).to_csv(tmp_path / "t.csv", index=False)
    answers = pd.DataFrame({"id": frame["id"], "label": anomaly.astype(int)}).iloc[30:]  # the unlabeled rows
    answers.to_csv(tmp_path / "answers.csv", index=False)
    base = ["active", "esad", "table", *FAST, "-d", f"path={tmp_path / 't.csv'}", "-d", "id_column=id"]
    result = CliRunner().invoke(app, [*base, "--budget", "6", "--per-round", "3", "--oracle",
                                      f"csv:{tmp_path / 'answers.csv'}", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    queried = [i for r in json.loads(result.stdout)["rounds"] for i in r["queried_ids"]]
    assert len(queried) == 6 and all(str(i).startswith("tx-") for i in queried)
    refused = CliRunner().invoke(app, [*base, "--budget", "3", "--per-round", "3", "--oracle", "ground-truth"])
    assert refused.exit_code == 1 and "no ground truth" in refused.stderr
