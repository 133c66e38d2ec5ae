"""The ``table`` dataset: your own file, your own labels, used as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sadkit import InvalidInputError, create_dataset, create_detector
from sadkit.errors import DataError


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Two numeric features, a categorical one, an id; 10% anomalies, of which a third are labeled, and a
    few labeled normals; every other label blank."""
    rng = np.random.default_rng(seed)
    anomaly = np.zeros(n, dtype=bool)
    anomaly[: n // 10] = True
    frame = pd.DataFrame(
        {
            "id": [f"row{i}" for i in range(n)],
            "amount": np.where(anomaly, rng.normal(8, 1, n), rng.normal(0, 1, n)),
            "count": rng.integers(0, 5, n),
            "shop": rng.choice(["north", "south", "west"], n),
        }
    )
    label = np.full(n, np.nan)
    label[: n // 30] = 1
    label[n // 10 : n // 10 + 30] = 0
    frame["label"] = label
    frame["truth"] = anomaly.astype(int)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "shop.csv"
    _frame().to_csv(path, index=False)
    return path


def _load(path: Path, **params):
    dataset = create_dataset("table", path=str(path), **params)
    return dataset, *dataset.load()


def test_labels_are_used_as_they_are(csv):
    frame = pd.read_csv(csv)
    dataset, train, val, test = _load(csv, id_column="id", categorical_columns=["shop"], drop_columns=["truth"])
    assert len(test) == 0  # no test split unless asked for
    n_labeled = int(frame["label"].notna().sum())
    assert (train.labels != -1).sum() + len(val) == n_labeled  # labeled rows stay labeled
    assert (train.labels == -1).sum() == int(frame["label"].isna().sum())  # unlabeled stay unlabeled
    assert (val.labels != -1).all() and set(val.labels) == {0, 1}  # validation: stratified, from labeled rows
    assert set(train.ids) | set(val.ids) == set(frame["id"]) and not set(train.ids) & set(val.ids)
    assert train.X.shape[1] == 2 + 3  # two numeric columns and three shops, one-hot
    assert dataset.preprocessor.feature_names_in_ == ["amount", "count", "shop"]


def test_every_format_reads_the_same_rows(tmp_path, csv):
    frame = pd.read_csv(csv).drop(columns=["id", "shop", "truth"])
    reference = _load(csv, id_column="id", drop_columns=["shop", "truth"])[1]
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for path in (tmp_path / "t.tsv", tmp_path / "t.parquet"):
        train = _load(path)[1]
        np.testing.assert_array_equal(np.sort(train.X, axis=0), np.sort(reference.X, axis=0))
    np.save(tmp_path / "t.npy", frame.to_numpy())
    np.savez(tmp_path / "t.npz", X=frame[["amount", "count"]].to_numpy(), y=frame["label"].to_numpy())
    import scipy.io

    scipy.io.savemat(tmp_path / "t.mat", {"X": frame[["amount", "count"]].to_numpy(), "y": frame["label"].to_numpy()})
    for path, label in ((tmp_path / "t.npy", "x2"), (tmp_path / "t.npz", "y"), (tmp_path / "t.mat", "y")):
        train = _load(path, label_column=label)[1]
        np.testing.assert_array_equal(np.sort(train.X, axis=0), np.sort(reference.X, axis=0))


def test_text_labels_with_a_mapping_and_values_outside_it(tmp_path):
    frame = pd.DataFrame({"a": np.arange(40.0), "label": ["fraud", "ok"] * 10 + [""] * 20})
    frame.to_csv(tmp_path / "t.csv", index=False)
    _, train, val, _ = _load(tmp_path / "t.csv", anomaly_values=["fraud"], normal_values=["ok"])
    assert set(np.r_[train.labels, val.labels]) == {-1, 0, 1}
    with pytest.raises(InvalidInputError, match=r"holds value\(s\) \['fraud', 'ok'\] outside the label mapping"):
        _load(tmp_path / "t.csv")


def test_a_test_split_only_when_asked(csv, tmp_path):
    _, train, val, test = _load(csv, id_column="id", drop_columns=["shop", "truth"], test_fraction=0.3)
    assert len(test) > 0 and (test.labels == -1).all() and set(test.y) == {0, 1}
    assert not set(test.ids) & (set(train.ids) | set(val.ids))
    other = tmp_path / "test.csv"
    _frame(60, seed=5).assign(label=lambda f: f["truth"]).to_csv(other, index=False)
    _, _, _, test = _load(csv, id_column="id", drop_columns=["shop", "truth"], test_path=str(other))
    assert len(test) == 60 and list(test.ids[:2]) == list(pd.read_csv(other)["id"][:2])


def test_unknown_categories_at_scoring_time_are_zeros_and_counted(csv):
    dataset, train, _, _ = _load(csv, id_column="id", categorical_columns=["shop"], drop_columns=["truth"])
    rows = pd.DataFrame({"shop": ["north", "east"], "count": [1, 2], "amount": [0.1, 0.2]})  # reordered too
    X = dataset.preprocessor.transform(rows)
    assert X.shape == (2, 5) and dataset.preprocessor.unknown_categories() == {"shop": 1}


@pytest.mark.parametrize(
    ("frame", "params", "message"),
    [
        (
            pd.DataFrame({"a": [1.0, np.nan, 3.0] * 5, "label": [1, 0, None] * 5}),
            {},
            r"missing feature values.*a \(5\)",
        ),
        (pd.DataFrame({"a": [1.0, 2.0] * 5, "s": ["x", "y"] * 5, "label": [1, 0] * 5}), {}, "not numeric.*categorical"),
        (pd.DataFrame({"a": [1.0, 2.0] * 5}), {}, "no label column 'label'"),
        (pd.DataFrame({"a": [1.0, 2.0] * 5, "label": [1, 0] * 5}), {"feature_columns": ["b"]}, r"no column\(s\) b"),
        (pd.DataFrame({"a": [1.0, 2.0] * 5, "label": [1, 0] * 5}), {"scaling": "log"}, "scaling must be"),
    ],
)
def test_bad_tables_give_clear_errors(tmp_path, frame, params, message):
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InvalidInputError, match=message):
        _load(tmp_path / "bad.csv", **params)


def test_missing_values_are_imputed_when_asked(tmp_path):
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0] * 5, "label": [1, 0, None] * 5})
    frame.to_csv(tmp_path / "t.csv", index=False)
    _, train, _, _ = _load(tmp_path / "t.csv", impute="median")
    assert np.isfinite(train.X).all()


def test_an_empty_file_and_a_missing_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InvalidInputError, match="empty"):
        _load(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="does not exist"):
        _load(tmp_path / "nope.csv")


def test_a_detector_that_needs_labels_says_so_on_an_unlabeled_file(tmp_path):
    pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) ** 2}).to_csv(tmp_path / "t.csv", index=False)
    _, train, _, _ = _load(tmp_path / "t.csv", label_column=None)
    with pytest.raises(InvalidInputError, match="labeled anomalies"):
        create_detector("supervised", device="cpu", n_epochs=1).fit(train.X, train.labels)


def test_every_built_in_detector_trains_on_a_table(csv):
    from sadkit import registry

    _, train, val, _ = _load(csv, id_column="id", categorical_columns=["shop"], drop_columns=["truth"])
    for name in registry.names("detectors"):
        cls = registry.get("detectors", name)
        scores = cls(**cls.fast_params).fit(train.X, train.labels).decision_function(val.X)
        assert np.isfinite(scores).all(), name
