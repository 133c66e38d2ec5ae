"""New SQLite stores are copies of a template built once per MLflow version; MLflow adds Default itself."""

from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient

from sadkit.tracking import Tracker, template


def test_a_new_store_is_a_copy_that_mlflow_completes(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(template, "template_folder", lambda: tmp_path / "cache")
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        uri = f"sqlite:///{tmp_path / folder / 'mlflow.db'}"  # MLflow caches stores by URI, so not a relative one
        tracker = Tracker(uri, "mine")
        experiments = {e.name: e for e in MlflowClient(uri).search_experiments()}
        assert set(experiments) == {"Default", "mine"} and experiments["Default"].experiment_id == "0"
        assert experiments["Default"].artifact_location == str(tmp_path / folder / "mlruns" / "0")
        assert tracker.experiment_id == experiments["mine"].experiment_id == "1"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"mlflow-{__import__('mlflow').__version__}.db"]
    assert set(os.listdir(tmp_path / "two")) <= {"mlflow.db", "mlflow.db.lock"}  # no temporary file


def test_an_existing_file_or_another_uri_is_left_alone(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(template, "template_folder", lambda: tmp_path / "cache")
    existing = tmp_path / "taken.db"
    existing.write_bytes(b"not a template")
    assert not template.create_from_template(f"sqlite:///{existing}")
    assert existing.read_bytes() == b"not a template"
    assert not template.create_from_template("sqlite:///:memory:")
    assert not template.create_from_template("postgresql://user@host/db")
    assert not template.create_from_template(f"sqlite:///{tmp_path}/no/such/folder/mlflow.db")
    assert not (tmp_path / "cache").exists()
