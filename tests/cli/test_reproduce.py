"""`sadkit reproduce`, the reproduction specs in projects/, and the MLproject entry points."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from loopback import signal_after
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from sadkit.cli import app
from sadkit.reproduce import KEY_TAG, ReproductionSpec

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FAST = {"n_epochs": 2, "ae_n_epochs": 1, "lr_milestones": [1], "ae_lr_milestones": [1]}


def _spec(tmp_path: Path, seeds: int = 2, **extra) -> Path:
    raw = {
        "kind": "reproduction",
        "name": "tiny",
        "dataset": "synthetic",
        "data": {"n_samples": 300},
        "grid": {"ratio_known_outlier": [0.0, 0.05]},
        "seeds": seeds,
        "experiment": "tiny",
        "device": "cpu",
        "threads": 1,
        "methods": [
            {"label": "Deep SAD", "detector": "deepsad", "params": FAST},
            {"label": "Deep SVDD", "detector": "deepsvdd", "params": FAST},
        ],
        **extra,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _finished_keys(uri: str, experiment: str = "tiny") -> list[str]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'")
    return [r.data.tags[KEY_TAG] for r in runs if KEY_TAG in r.data.tags]


def test_reproduce_writes_table_csv_plot_and_parent_run(tracking_uri, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["reproduce", str(_spec(tmp_path)), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_cells"] == 8 and summary["n_computed"] == 8 and summary["n_reused"] == 0
    assert {p.name for p in out.iterdir()} >= {"table.md", "cells.csv", "runs.csv", "plot.png"}
    table = (out / "table.md").read_text()
    assert "| ratio_known_outlier | Deep SAD | paper | Δ | Deep SVDD | paper | Δ |" in table
    assert len([c for c in summary["cells"] if c["n"] == 2]) == 4
    client = MlflowClient(tracking_uri)
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"table.md", "cells.csv", "plot.png"}
    keys = _finished_keys(tracking_uri)
    assert len(keys) == 8 == len(set(keys))
    # nested under the parent
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 8
    # one line per method too, and each run's wall time (runs.csv) with the medians (table.md, cells.csv)
    assert "| Deep SAD | " in table and "Median wall time of one cell's run" in table
    with (out / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    first_seconds = {r["run_id"]: float(r["wall_seconds"]) for r in rows}
    # each run names its grid values: in runs.csv, and in the MLflow run's name
    assert {r["setting"] for r in rows} == {"ratio_known_outlier=0.0", "ratio_known_outlier=0.05"}
    names = {client.get_run(r["run_id"]).info.run_name for r in rows}
    assert "Deep SVDD ratio_known_outlier=0.05 seed1" in names and len(names) == 8
    assert len(first_seconds) == 8 and all(0 < x < 120 for x in first_seconds.values())
    assert all(0 < c["median_wall_seconds"] < 120 for c in summary["cells"])
    # a second invocation reads everything back, the wall times from the runs' MLflow start and end
    again = json.loads(CliRunner().invoke(app, ["reproduce", str(_spec(tmp_path)), "--out", str(out), "--json"]).stdout)
    assert again["n_computed"] == 0 and again["n_reused"] == 8
    assert len(_finished_keys(tracking_uri)) == 8
    with (out / "runs.csv").open() as f:
        read_back = {r["run_id"]: float(r["wall_seconds"]) for r in csv.DictReader(f)}
    for run_id, seconds in first_seconds.items():  # the MLflow run lies within the timed call
        assert 0 < read_back[run_id] <= seconds + 0.01


@pytest.mark.slow
def test_interrupted_reproduction_resumes_without_recomputing(tracking_uri, tmp_path):
    """A real SIGTERM half-way; the restart computes exactly the cells that had not finished."""
    spec = _spec(tmp_path, seeds=6)  # 24 cells: plenty still to do when the signal comes
    total = 24
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    cmd = [str(BIN / "sadkit"), "reproduce", str(spec), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # reproduce prints "[k/24] ..." on stderr as each cell finishes: stop it after the third
    signal_after(proc, "[3/", signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    before = set(_finished_keys(tracking_uri))
    assert 3 <= len(before) < total
    done = subprocess.run([*cmd, "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["n_reused"] == len(before)
    assert summary["n_computed"] == total - len(before)
    keys = _finished_keys(tracking_uri)
    assert len(keys) == total == len(set(keys)), "a cell was computed twice or lost"
    all_keys = {c.key for c in ReproductionSpec.from_yaml(spec).cells()}
    assert set(keys) == all_keys


@pytest.mark.slow
def test_parallel_workers(tracking_uri, tmp_path):
    result = CliRunner().invoke(
        app, ["reproduce", str(_spec(tmp_path, seeds=1)), "--out", str(tmp_path / "o"), "--workers", "2", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["n_computed"] == 4
    assert len(set(_finished_keys(tracking_uri))) == 4


def test_a_failing_cell_does_not_stop_the_others(tracking_uri, tmp_path):
    """Cells that raise are reported at the end, after the outputs are written from the others."""
    broken = {"label": "Broken", "detector": "deepsad", "params": {**FAST, "n_epochs": -1}}  # fails when it runs
    path = _spec(tmp_path, seeds=1, methods=[{"label": "Deep SAD", "detector": "deepsad", "params": FAST}, broken])
    result = CliRunner().invoke(app, ["reproduce", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "2 cell(s) failed: Broken ratio_known_outlier=0.0 seed 0: InvalidInputError" in message
    assert "Rerunning the command computes only the cells not yet finished" in message
    assert len(_finished_keys(tracking_uri)) == 2
    assert "| Deep SAD |" in (tmp_path / "o" / "table.md").read_text()
    client = MlflowClient(tracking_uri)
    parent = client.search_runs(
        [client.get_experiment_by_name("tiny").experiment_id], "tags.`sadkit.reproduce` = 'tiny'"
    )[0]
    assert parent.info.status == "FAILED" and parent.data.metrics["n_failed"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key(s) colour"),
        ({"methods": [{"label": "x", "detector": "nosuch"}]}, "no detector named 'nosuch'"),
        ({"methods": [{"detector": "deepsad", "parms": {}}]}, "methods[0] has unknown key(s) parms"),
        ({"methods": [{"detector": "deepsad", "params": {"learning_rate": 1}}]}, "no parameter(s) learning_rate"),
        ({"rows": ["name"]}, "rows ['name'] are not grid keys"),
        ({"dataset": "nosuchdata"}, "no dataset named 'nosuchdata'"),
        ({"paper": {"table": "odds", "file": "missing.yaml"}}, "does not exist"),
    ],
)
def test_bad_specs_name_the_problem(tmp_path, change, message):
    path = _spec(tmp_path, **change)
    with pytest.raises(Exception) as err:
        ReproductionSpec.from_yaml(path)
    assert message in str(err.value)
    result = CliRunner().invoke(app, ["reproduce", str(path)])
    assert result.exit_code == 1 and message in result.stderr


def test_missing_dataset_that_cannot_be_downloaded_fails_before_any_cell(tracking_uri, tmp_path):
    from httpserver import closed_port

    raw = {
        "kind": "reproduction", "name": "nodata", "dataset": "odds", "experiment": "nodata",
        "data": {"root": str(tmp_path / "empty"), "url": f"http://127.0.0.1:{closed_port()}"},
        "grid": {"name": ["cardio"]}, "seeds": 1, "methods": [{"detector": "deepsad"}],
    }  # fmt: skip
    path = tmp_path / "nodata.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["reproduce", str(path)])
    assert result.exit_code == 1
    assert "cannot be loaded" in result.stderr and "cannot download" in result.stderr
    assert MlflowClient(tracking_uri).get_experiment_by_name("nodata") is None


def test_every_shipped_spec_parses():
    """projects/*.yaml: experiment specs and reproduction specs (image ones need their datasets)."""
    from sadkit import registry
    from sadkit.experiment import ExperimentSpec

    for path in sorted((REPO / "projects").glob("*.yaml")):
        if path.name == "paper_results.yaml":
            continue
        raw = yaml.safe_load(path.read_text())
        if raw.get("kind") == "reproduction":
            if raw["dataset"] not in registry.names("datasets"):
                with pytest.raises(Exception, match=f"no dataset named '{raw['dataset']}'"):
                    ReproductionSpec.from_yaml(path)
                continue
            spec = ReproductionSpec.from_yaml(path)
            assert spec.cells()
            if spec.paper:
                values, source = spec.paper_values()
                assert values and source
        elif {"study_name", "n_trials"} & set(raw):
            from sadkit.tuning import StudySpec

            StudySpec.from_yaml(path)
        else:
            ExperimentSpec.from_yaml(path)


def test_odds_table_spec_is_the_papers(odds_root):
    spec = ReproductionSpec.from_yaml(REPO / "projects" / "odds_table.yaml")
    assert spec.grid["name"] == ["arrhythmia", "cardio", "satellite", "satimage-2", "shuttle", "thyroid"]
    assert spec.seeds == list(range(10)) and spec.data["ratio_known_outlier"] == 0.01
    values, _ = spec.paper_values()
    assert values["Deep SAD"]["cardio"] == [95.0, 1.6]
    labels = {m.label for m in spec.methods}
    assert set(values) <= labels, f"paper columns without a method: {set(values) - labels}"


def _mlflow_run(args: list[str], tracking_uri: str, tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.update(env_extra)
    return subprocess.run(
        [str(BIN / "mlflow"), "run", str(REPO), *args, "--env-manager", "local"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400,
    )  # fmt: skip


@pytest.mark.slow
def test_mlflow_run_main_entry_point(tracking_uri, tmp_path, odds_root):
    """`mlflow run . -e main -P spec=projects/quick.yaml --env-manager local` logs one complete run."""
    # (run from a scratch folder, so the spec path is absolute; from the repository root it is relative)
    spec = REPO / "projects" / "quick.yaml"
    done = _mlflow_run(
        ["-e", "main", "-P", f"spec={spec}", "-P", "seed=2"], tracking_uri, tmp_path, SADKIT_DATA=str(odds_root)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1, "sadkit must log into the run that `mlflow run` created"
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.source.type"] == "PROJECT"
    assert run.data.params["seed"] == "2" and run.data.params["net_name"] == "cardio_mlp"
    assert "test_auroc" in run.data.metrics


@pytest.mark.slow
def test_mlflow_run_reproduce_entry_point(tracking_uri, tmp_path):
    spec = _spec(tmp_path, seeds=1)
    done = _mlflow_run(["-e", "reproduce", "-P", f"spec={spec}", "-P", f"out={tmp_path / 'o'}"], tracking_uri, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "o" / "table.md").is_file()
    assert len(_finished_keys(tracking_uri)) == 4


def test_conda_env_and_mlproject_agree():
    project = yaml.safe_load((REPO / "MLproject").read_text())
    assert set(project["entry_points"]) >= {"main", "study", "reproduce"}
    conda = yaml.safe_load((REPO / project["conda_env"]).read_text())
    assert "python=3.11" in conda["dependencies"]
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert "-c constraints.txt" in pip and "-e ." in pip
    assert shutil.which("sadkit", path=str(BIN))


def test_a_cell_without_known_anomaly_classes_runs_without_labeled_anomalies(tmp_path):
    """Scenario (iii)'s k_l = 0 row: the cell drops gamma_l, which the dataset refuses without a known class."""
    path = _spec(
        tmp_path,
        seeds=1,
        data={"n_samples": 300, "ratio_known_outlier": 0.05, "known_outlier_class": None},
        grid={"n_known_outlier_classes": [0, 1]},
    )
    cells = {c.setting["n_known_outlier_classes"]: c for c in ReproductionSpec.from_yaml(path).cells()}
    assert cells[0].data["ratio_known_outlier"] == 0.0
    assert cells[1].data["ratio_known_outlier"] == 0.05
    from sadkit import registry

    train, _, _ = registry.create_dataset("synthetic", seed=0, **cells[0].data).load()
    assert (train.semi_y == -1).sum() == 0


def test_report_only_writes_the_finished_cells_and_computes_nothing(tracking_uri, tmp_path):
    spec = str(_spec(tmp_path, seeds=2))
    first = CliRunner().invoke(app, ["reproduce", spec, "--seeds", "1", "--out", str(tmp_path / "a"), "--json"])
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["n_computed"] == 4
    out = tmp_path / "b"
    result = CliRunner().invoke(app, ["reproduce", spec, "--report-only", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["n_computed"], summary["n_reused"], summary["n_missing"]) == (0, 4, 4)
    assert len(_finished_keys(tracking_uri)) == 4  # nothing new ran
    assert "(n=1)" in (out / "table.md").read_text()


def test_cells_trained_one_by_one_in_a_task_get_their_own_wall_time(tracking_uri, tmp_path):
    """OC-SVM and Isolation Forest cannot stack: one task trains them one by one. Each cell's wall time is
    its own fit plus an equal share of the task's rest, not the task's average (they used to be equal)."""
    from sadkit.reproduce.tasks import group_cells, run_task

    spec = ReproductionSpec.from_yaml(
        _spec(
            tmp_path,
            seeds=1,
            grid={"ratio_known_outlier": [0.05]},
            methods=[
                {"label": "OC-SVM", "detector": "ocsvm", "params": {}},
                {"label": "IF", "detector": "iforest", "params": {}},
            ],
        )
    )
    spec.tracking_uri = tracking_uri
    (task,) = group_cells(spec.cells())
    results = run_task(task, parent_run_id=None)
    client = MlflowClient(tracking_uri)
    metrics = [client.get_run(r.run_id).data.metrics for r in results]
    own = [m["pretrain_seconds"] + m["train_seconds"] for m in metrics]
    rest = [r.wall_seconds - o for r, o in zip(results, own, strict=True)]
    assert rest[0] == pytest.approx(rest[1]) and rest[0] > 0
    assert results[0].wall_seconds != results[1].wall_seconds
