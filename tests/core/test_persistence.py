"""Saved detectors: JSON and tensors; loading runs no code read from the files, and a damaged file is an
error naming it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sadkit import SadkitError, create_detector, load_detector
from sadkit.persistence import FORMAT_VERSION
from sadkit.plugins.shallow.iforest import IsolationForest


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    X = np.random.default_rng(0).normal(size=(60, 3))
    return create_detector("iforest", n_estimators=10, seed=0).fit(X).save(tmp_path / "model")


def _meta(folder: Path) -> dict:
    return json.loads((folder / "detector.json").read_text())


def test_the_saved_detector_names_its_entry_point_not_a_module_to_import(saved):
    meta = _meta(saved)
    assert meta["format"] == FORMAT_VERSION and meta["detector"] == "iforest"
    assert meta["distribution"] == "sadkit" and meta["version"]
    assert isinstance(load_detector(saved), IsolationForest)


def test_a_module_path_in_the_file_is_never_imported(saved, tmp_path, monkeypatch, capsys):
    """Format 1 named a class by module path; a tampered one (``this:x`` prints the Zen of Python when
    imported, a module in the working directory runs its top level) must not be imported."""
    marker = tmp_path / "ran.txt"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass X: pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for target in ("this:x", "evil_module:X"):
        meta = _meta(saved)
        meta.update({"format": 1, "class": target})
        meta.pop("detector", None)
        (saved / "detector.json").write_text(json.dumps(meta))
        with pytest.raises(SadkitError, match="not a registered detector"):
            load_detector(saved)
    assert "this" not in sys.modules and "evil_module" not in sys.modules and not marker.exists()
    assert "Zen of Python" not in capsys.readouterr().out


def test_a_format_one_file_of_a_built_in_still_loads(saved):
    meta = _meta(saved)
    meta.update({"format": 1, "class": "sadkit.plugins.shallow:IsolationForest"})  # its old module path
    for key in ("detector", "distribution", "version", "decision", "n_features_in", "feature_names_in"):
        meta.pop(key)
    (saved / "detector.json").write_text(json.dumps(meta))
    assert isinstance(load_detector(saved), IsolationForest)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "detector.json").write_text("{not json"), "detector.json is not a readable"),
        (lambda f: (f / "detector.json").write_text("[1, 2]"), "expected a JSON object"),
        (lambda f: (f / "detector.json").unlink(), "detector.json is missing"),
        (lambda f: (f / "state.pt").write_bytes(b""), "state.pt is not a readable state file"),
        (lambda f: (f / "state.pt").write_bytes((f / "state.pt").read_bytes()[:100]), "state.pt is not a readable"),
        (lambda f: (f / "state.pt").unlink(), "state.pt is missing"),
        (lambda f: _rewrite(f, lambda m: m.pop("params")), "lacks the key"),
        (lambda f: _rewrite(f, lambda m: m.update(format=99)), "format version 99.*newer sadkit"),
        (lambda f: _rewrite(f, lambda m: m.update(detector="nosuch")), "no detector named 'nosuch'"),
        (lambda f: _rewrite(f, lambda m: m["params"].update(bogus=1)), "parameters do not fit"),
        (lambda f: (f / "preprocessing.json").write_text("{bad"), "preprocessing.json is not a readable"),
    ],
)
def test_a_damaged_file_is_an_error_naming_it(saved, damage, message):
    (saved / "preprocessing.json").write_text(json.dumps({"steps": [], "input_shape": [3]}))
    damage(saved)
    with pytest.raises(SadkitError, match=message):
        load_detector(saved)


def _rewrite(folder: Path, change) -> None:
    meta = _meta(folder)
    change(meta)
    (folder / "detector.json").write_text(json.dumps(meta))


def test_an_unregistered_class_loads_only_through_its_own_load(tmp_path):
    from tests.core.test_conformance import _MeanDistance

    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    folder = _MeanDistance().fit(X).save(tmp_path / "own")
    with pytest.raises(SadkitError, match="not a registered detector"):
        load_detector(folder)
    assert np.array_equal(_MeanDistance.load(folder).decision_function(X), _MeanDistance().fit(X).decision_function(X))
