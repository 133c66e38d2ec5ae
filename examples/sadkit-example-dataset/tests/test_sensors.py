"""The example dataset's own tests: sadkit's conformance checks, then what is special about reading your own file."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sadkit_example_dataset", reason="pip install -e examples/sadkit-example-dataset (CI does)")

from sadkit_example_dataset import Sensors  # noqa: E402

from sadkit import DataError, create_dataset, create_detector, registry  # noqa: E402
from sadkit.testing import assert_dataset_conforms  # noqa: E402


def test_registered_under_its_entry_point():
    assert registry.get("datasets", "sensors") is Sensors


def test_passes_sadkit_conformance_checks():
    assert_dataset_conforms("sensors")
    assert_dataset_conforms(Sensors, {"ratio_known_outlier": 0.02, "ratio_pollution": 0.02, "seed": 3})


def test_ids_are_the_files_reading_ids_and_the_splits_share_none():
    train, val, test = create_dataset("sensors", ratio_known_outlier=0.02).load()
    ids = np.concatenate([train.ids, val.ids, test.ids])
    assert len(np.unique(ids)) == len(ids) and set(ids) <= set(range(1000, 2200))
    assert (
        len(test) == 360
    )  # 30% of the file; the protocol leaves out the training pool's unlabeled faults (gamma_p = 0)
    assert (train.labels == 1).sum() > 0 and (test.labels == -1).all()


def test_your_file_under_root_is_read_first(tmp_path):
    folder = tmp_path / "sensors"
    folder.mkdir()
    shipped = Sensors().source
    rows = open(shipped).read().splitlines()[:401]
    (folder / "sensors.csv").write_text("\n".join(rows) + "\n")
    dataset = Sensors(root=tmp_path)
    train, val, test = dataset.load()
    assert dataset.source == str(folder / "sensors.csv") and len(test) == 120 and test.ids.max() < 1400
    assert Sensors(path="sensors/sensors.csv", root=tmp_path).source == dataset.source  # relative to root


def test_a_missing_file_or_column_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no sensor file at .*nowhere.csv"):
        Sensors(path=tmp_path / "nowhere.csv").load()
    (tmp_path / "bad.csv").write_text("reading_id,temperature\n1,2\n")
    with pytest.raises(DataError, match="lacks the column\\(s\\) vibration, pressure, current, fault"):
        Sensors(path=tmp_path / "bad.csv").load()


def test_a_detector_fits_on_it_and_the_model_takes_raw_rows():
    dataset = create_dataset("sensors", ratio_known_outlier=0.02)
    train, _, test = dataset.load()
    detector = create_detector("iforest", seed=0).fit(train.X, train.labels)
    assert detector.score(test.X, test.y) > 0.8
    detector.set_preprocessor(dataset.preprocessor)
    raw = np.loadtxt(dataset.source, delimiter=",", skiprows=1)[:5, 1:5]
    assert detector.decision_function(raw).shape == (5,)
