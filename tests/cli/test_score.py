"""``sadkit score``: a model trained on your own table scores a new file, by name, in chunks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FAST = ["-p", "n_epochs=3", "-p", "ae_n_epochs=2", "-p", "lr=1e-3", "-p", "ae_lr=1e-3", "--device", "cpu"]


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    anomaly = rng.random(n) < 0.1
    frame = pd.DataFrame(
        {
            "id": np.arange(n) + 10_000 * seed,
            "amount": np.where(anomaly, rng.normal(6, 1, n), rng.normal(0, 1, n)),
            "hour": rng.integers(0, 24, n),
            "shop": rng.choice(["north", "south"], n),
        }
    )
    frame["label"] = np.where(rng.random(n) < 0.3, anomaly.astype(float), np.nan)
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory, _mlflow_template):
    """One Deep SAD run on a CSV with a few labels, its model logged."""
    import os
    import shutil

    from typer.testing import CliRunner

    from sadkit.cli import app

    tmp = tmp_path_factory.mktemp("score")
    shutil.copy(_mlflow_template, tmp / "mlflow.db")
    _table(400, seed=0).to_csv(tmp / "train.csv", index=False)
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        args = [
            "run",
            "deepsad",
            "table",
            "-d",
            "path=train.csv",
            "-d",
            "id_column=id",
            "-d",
            "categorical_columns=[shop]",
        ]
        result = CliRunner().invoke(app, [*args, *FAST, "--json", "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.stderr
    return tmp, json.loads(result.stdout)


def test_score_writes_id_score_label_and_matches_the_python_api(cli, trained, tmp_path):
    from sadkit.scoring import resolve_model

    tmp, run = trained
    new = _table(250, seed=1)
    new.drop(columns=["label"]).to_csv(tmp_path / "new.csv", index=False)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    out = tmp_path / "scores.csv"
    result = cli("score", run["model_uri"], str(tmp_path / "new.csv"), "--out", str(out), "--tracking-uri", uri)
    assert result.exit_code == 0, result.stderr
    scores = pd.read_csv(out, float_precision="round_trip")
    assert list(scores.columns) == ["id", "score", "label"] and scores["id"].tolist() == new["id"].tolist()
    detector = resolve_model(run["model_uri"], uri)
    np.testing.assert_array_equal(scores["score"].to_numpy(), detector.decision_function(new))
    assert scores["label"].tolist() == (scores["score"] > run["threshold"]).astype(int).tolist()
    assert "250 rows scored" in result.stderr


def test_chunks_parquet_reordered_and_extra_columns_give_the_same_scores(cli, trained, tmp_path):
    tmp, run = trained
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    new = _table(250, seed=2)
    shuffled = new[["shop", "label", "hour", "id", "amount"]].assign(comment="x")  # reordered, extra columns
    shuffled.to_parquet(tmp_path / "new.parquet")
    new.to_csv(tmp_path / "new.csv", index=False)
    whole = tmp_path / "whole.csv"
    assert (
        cli("score", run["model_uri"], str(tmp_path / "new.csv"), "-o", str(whole), "--tracking-uri", uri).exit_code
        == 0
    )
    chunked = tmp_path / "chunked.parquet"
    result = cli(
        "score", run["model_uri"], str(tmp_path / "new.parquet"), "-o", str(chunked), "--chunk-rows", "60",
        "--tracking-uri", uri,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "ignored: label, comment" in result.stderr
    np.testing.assert_array_equal(
        pd.read_parquet(chunked)["score"], pd.read_csv(whole, float_precision="round_trip")["score"]
    )


def test_thresholds_a_terminal_table_and_a_saved_folder(cli, trained, tmp_path):
    from sadkit.tracking import download_model_detector

    tmp, run = trained
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    _table(100, seed=3).to_csv(tmp_path / "new.csv", index=False)
    folder = download_model_detector(run["model_uri"], tmp_path / "model", uri)
    shown = cli("score", str(folder), str(tmp_path / "new.csv"))
    assert shown.exit_code == 0, shown.stderr
    assert "first 20 rows" in shown.stdout and "100 rows scored" in shown.stderr
    loose = cli("score", str(folder), str(tmp_path / "new.csv"), "--threshold", "contamination:0.3", "--json", "-o",
                str(tmp_path / "a.csv"))  # fmt: skip
    strict = cli(
        "score", str(folder), str(tmp_path / "new.csv"), "--threshold", "1e9", "--json", "-o", str(tmp_path / "b.csv")
    )
    assert json.loads(loose.stdout)["n_flagged"] > json.loads(strict.stdout)["n_flagged"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["amount"]), r"lack the column\(s\) amount"),
        (lambda f: f.iloc[:0], "holds no rows"),
    ],
)
def test_bad_scoring_files_give_one_clear_line(cli, trained, tmp_path, change, message):
    tmp, run = trained
    change(_table(50, seed=4)).to_csv(tmp_path / "bad.csv", index=False)
    result = cli(
        "score", run["model_uri"], str(tmp_path / "bad.csv"), "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}"
    )
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and pytest.importorskip("re").search(message, result.stderr)


def test_a_model_uri_that_does_not_exist(cli, trained):
    tmp, _ = trained
    result = cli(
        "score",
        "runs:/nosuchrun/model",
        str(Path(tmp) / "train.csv"),
        "--tracking-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
    )
    assert result.exit_code == 1 and "no MLflow run 'nosuchrun'" in result.stderr
