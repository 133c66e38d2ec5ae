"""The ODDS dataset plugin: loading, the split protocol, scaling, checksums and downloads."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from httpserver import serve
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from sadkit.data import LABELED_ANOMALY, sample_counts
from sadkit.download import file_digest
from sadkit.errors import DataError, InvalidInputError
from sadkit.plugins.datasets.odds import KNOWN_FILES, ODDS, PAPER_NETWORKS, read_mat, source_url

CARDIO_N, CARDIO_ANOMALIES = 1831, 176


def class_counts(y: np.ndarray) -> tuple[int, int]:
    return int((y == 0).sum()), int((y == 1).sum())


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def cardio_raw(odds_root: Path) -> tuple[np.ndarray, np.ndarray]:
    X, y = read_mat(odds_root / "odds" / "cardio.mat")
    return np.asarray(X, dtype=np.float64), np.asarray(y).ravel().astype(int)


@pytest.fixture(scope="module")
def cardio(odds_root: Path):
    ds = ODDS("cardio", root=odds_root, ratio_known_outlier=0.01, seed=0)
    return ds, ds.load()


# --------------------------------------------------------------------------------------------------
# the known files
# --------------------------------------------------------------------------------------------------


def test_known_files_match_the_shared_checksums(shared_data: Path) -> None:
    sums = shared_data / "checksums.sha256"
    if not sums.is_file():
        pytest.skip(f"no checksums.sha256 at {shared_data}; set SADKIT_DATA")
    listed = {}
    for line in sums.read_text().splitlines():
        digest, _, rel = line.strip().partition("  ")
        if rel.startswith("odds/") and rel.endswith(".mat"):
            listed[rel[len("odds/") : -len(".mat")]] = digest
    assert listed == {name: f.sha256 for name, f in KNOWN_FILES.items()}
    assert len(KNOWN_FILES) == 22


def test_source_urls() -> None:
    assert source_url("thyroid") == (
        "https://raw.githubusercontent.com/yzhao062/pyod/ef6d5e8dc828615f498286c1d6a22cbd02fd4cd2"
        "/notebooks/data/thyroid.mat"
    )
    assert source_url("cardio") == (
        "https://raw.githubusercontent.com/yzhao062/pyod/34f7996effac700a5166d882d5e94c6e6078fae3"
        "/notebooks/data/cardio.mat"
    )
    assert source_url("cardio", "http://127.0.0.1:9/mirror/") == "http://127.0.0.1:9/mirror/cardio.mat"
    assert all(len(f.commit) == 40 and len(f.sha256) == 64 for f in KNOWN_FILES.values())


@pytest.mark.parametrize("name", sorted(KNOWN_FILES))
def test_every_known_file_loads(odds_root: Path, name: str) -> None:
    if not (odds_root / "odds" / f"{name}.mat").is_file():
        pytest.skip(f"{name}.mat not in {odds_root / 'odds'}")
    train, val, test = ODDS(name, root=odds_root).load()
    assert train.X.shape[1] == val.X.shape[1] == test.X.shape[1]
    assert (test.y == 1).any() and (test.y == 0).any()
    assert train.X.dtype == np.float32 and np.isfinite(train.X).all() and np.isfinite(test.X).all()


# --------------------------------------------------------------------------------------------------
# the protocol on cardio
# --------------------------------------------------------------------------------------------------


def test_cardio_types_and_labels(cardio) -> None:
    _, (train, val, test) = cardio
    for split in (train, val, test):
        assert split.X.dtype == np.float32 and split.X.shape[1] == 21
        assert split.y.dtype == np.int64 and split.semi_y.dtype == np.int64
        assert set(np.unique(split.y)) <= {0, 1}
    assert (test.semi_y == 0).all()
    # with ratio_known_normal=0 and no pollution, the only labels are the labeled anomalies,
    # and the only anomalies of train/val are labeled ones
    for split in (train, val):
        assert set(np.unique(split.semi_y)) <= {0, LABELED_ANOMALY}
        assert np.array_equal(split.semi_y == LABELED_ANOMALY, split.y == 1)
    assert (train.semi_y == LABELED_ANOMALY).sum() > 0


def test_cardio_sizes_follow_the_protocol(cardio) -> None:
    ds, (train, val, test) = cardio
    assert len(test) == int(np.ceil(0.4 * CARDIO_N))
    test_normal, test_anomalies = class_counts(test.y)
    # the test split holds 40% of each class
    assert abs(test_normal - 0.4 * (CARDIO_N - CARDIO_ANOMALIES)) <= 1
    assert abs(test_anomalies - 0.4 * CARDIO_ANOMALIES) <= 1
    pool_normal = CARDIO_N - CARDIO_ANOMALIES - test_normal
    pool_anomalies = CARDIO_ANOMALIES - test_anomalies
    kn, un, ua, ka = sample_counts(pool_normal, 0.0, 0.01, 0.0)
    assert (kn, ua) == (0, 0) and un == pool_normal and ka > 0
    # every pool normal is used, ka anomalies are labeled, the other pool anomalies are dropped
    assert len(train) + len(val) == pool_normal + ka
    assert len(train) + len(val) + len(test) == CARDIO_N - (pool_anomalies - ka)
    assert (train.y == 1).sum() + (val.y == 1).sum() == ka
    assert abs(len(val) - 0.1 * (len(train) + len(val))) <= 2


def test_cardio_splits_are_disjoint(cardio, cardio_raw) -> None:
    ds, (train, val, test) = cardio
    X_raw, y_raw = cardio_raw
    indices = (ds._train_index, ds._val_index, ds._test_index)
    for index, split in zip(indices, (train, val, test), strict=True):
        assert len(index) == len(split) and len(np.unique(index)) == len(index)
        assert np.array_equal(split.y, y_raw[index])
    assert np.intersect1d(ds._train_index, ds._test_index).size == 0
    assert np.intersect1d(ds._val_index, ds._test_index).size == 0
    assert np.intersect1d(ds._train_index, ds._val_index).size == 0
    every = np.concatenate(indices)
    assert every.min() >= 0 and every.max() < CARDIO_N and len(np.unique(every)) == len(every)
    # by value too: no test row appears in train, except rows that the file itself holds twice
    _, inverse, counts = np.unique(X_raw, axis=0, return_inverse=True, return_counts=True)
    unique_rows = counts[inverse.ravel()] == 1
    assert unique_rows.sum() > 0.9 * CARDIO_N
    train_rows = {row.tobytes() for row in X_raw[ds._train_index]}
    test_unique = ds._test_index[unique_rows[ds._test_index]]
    assert not any(row.tobytes() in train_rows for row in X_raw[test_unique])


def test_cardio_scaling_is_fitted_on_train_only(cardio, cardio_raw) -> None:
    ds, (train, val, test) = cardio
    X_raw, _ = cardio_raw
    # train: every feature spans exactly [0, 1] (a constant feature maps to 0)
    lo, hi = train.X.min(axis=0), train.X.max(axis=0)
    constant = np.ptp(X_raw[ds._train_index], axis=0) == 0
    np.testing.assert_allclose(lo, 0.0, atol=1e-6)
    np.testing.assert_allclose(hi[~constant], 1.0, atol=1e-6)
    assert (hi[constant] == 0).all()
    # val and test are transformed with the training statistics (standardize, then min-max)
    standard = StandardScaler().fit(X_raw[ds._train_index])
    minmax = MinMaxScaler().fit(standard.transform(X_raw[ds._train_index]))
    for index, split in ((ds._val_index, val), (ds._test_index, test), (ds._train_index, train)):
        expected = minmax.transform(standard.transform(X_raw[index]))
        np.testing.assert_allclose(split.X, expected, rtol=1e-5, atol=1e-6)
    # so they are not themselves in [0, 1]
    assert test.X.min() < 0 or test.X.max() > 1


def test_same_seed_same_splits_other_seed_other_splits(odds_root: Path, cardio) -> None:
    ds, (train, val, test) = cardio
    again = ODDS("cardio", root=odds_root, ratio_known_outlier=0.01, seed=0)
    train2, val2, test2 = again.load()
    for a, b in ((train, train2), (val, val2), (test, test2)):
        assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y) and np.array_equal(a.semi_y, b.semi_y)
    assert np.array_equal(ds._test_index, again._test_index)
    other = ODDS("cardio", root=odds_root, ratio_known_outlier=0.01, seed=1)
    other.load()
    assert not np.array_equal(np.sort(ds._test_index), np.sort(other._test_index))
    assert not np.array_equal(np.sort(ds._train_index), np.sort(other._train_index))


def test_pollution_and_no_known_class(odds_root: Path) -> None:
    ds = ODDS(
        "cardio",
        root=odds_root,
        known_outlier_class=None,
        n_known_outlier_classes=0,
        ratio_pollution=0.05,
        ratio_known_normal=0.05,
    )
    train, val, _ = ds.load()
    assert (train.semi_y != LABELED_ANOMALY).all() and (val.semi_y != LABELED_ANOMALY).all()
    assert (train.semi_y == 1).sum() > 0
    unlabeled = train.semi_y == 0
    assert (train.y[unlabeled] == 1).mean() == pytest.approx(0.05, abs=0.01)
    with pytest.raises(InvalidInputError, match="labeled anomalies"):
        ODDS("cardio", root=odds_root, n_known_outlier_classes=0, ratio_known_outlier=0.01).load()


def test_smtp_v73_loads_with_h5py(odds_root: Path) -> None:
    path = odds_root / "odds" / "smtp.mat"
    if not path.is_file():
        pytest.skip(f"smtp.mat not in {odds_root / 'odds'}")
    assert h5py.is_hdf5(path)
    X, y = read_mat(path)
    assert X.shape == (95156, 3) and np.asarray(y).size == 95156 and int(np.asarray(y).sum()) == 30
    train, val, test = ODDS("smtp", root=odds_root).load()
    assert len(test) == int(np.ceil(0.4 * 95156)) and (test.y == 1).sum() == 12
    assert train.X.shape[1] == 3


def test_too_many_labeled_anomalies(odds_root: Path) -> None:
    with pytest.raises(InvalidInputError, match="lower ratio_known_outlier"):
        ODDS("thyroid", root=odds_root, ratio_known_outlier=0.5).load()


def test_default_root_from_environment(odds_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SADKIT_DATA", str(odds_root))
    ds = ODDS("cardio")
    assert ds.root == odds_root and ds.path == odds_root / "odds" / "cardio.mat"
    assert len(ds.load()[2]) == int(np.ceil(0.4 * CARDIO_N))


# --------------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------------


def test_network_names() -> None:
    for name, network in PAPER_NETWORKS.items():
        assert ODDS(name).network == network
    assert ODDS("satimage-2").network == "satimage-2_mlp"
    assert ODDS("glass").network == "mlp"
    assert ODDS("my_own_table").network == "mlp"


def test_get_params(tmp_path: Path) -> None:
    params = ODDS("cardio", root=tmp_path, url="http://127.0.0.1:1", seed=4).get_params()
    assert params["name"] == "cardio" and params["url"] == "http://127.0.0.1:1"
    assert params["root"] == str(tmp_path) and params["seed"] == 4
    assert params["normal_class"] == 0 and params["known_outlier_class"] == 1
    assert ODDS(**{k: v for k, v in params.items()}).get_params() == params  # rebuildable


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"normal_class": 1}, "normal_class must be 0"),
        ({"known_outlier_class": 0}, "known_outlier_class must be 1"),
        ({"known_outlier_class": 2}, "known_outlier_class must be 1"),
        ({"n_known_outlier_classes": 2}, "n_known_outlier_classes must be 0 or 1"),
        ({"ratio_known_outlier": 1.5}, "ratio_known_outlier"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        ODDS("cardio", **kwargs)


@pytest.mark.parametrize("name", ["", "../cardio", "odds/cardio", ".hidden"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="name"):
        ODDS(name)


def test_known_class_parameters_accepted() -> None:
    ODDS("cardio", known_outlier_class=None)
    ODDS("cardio", known_outlier_class=None, n_known_outlier_classes=0)
    ODDS("cardio", n_known_outlier_classes=0)


def test_registered_as_a_plugin(tmp_path: Path) -> None:
    from sadkit.registry import create_dataset

    ds = create_dataset("odds", name="cardio", root=tmp_path)
    assert isinstance(ds, ODDS) and ds.name == "cardio"
    with pytest.raises(InvalidInputError, match="no parameter"):
        create_dataset("odds", name="cardio", nonsense=1)


# --------------------------------------------------------------------------------------------------
# checksums and downloads (a real HTTP server on 127.0.0.1)
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def mirror(odds_root: Path, tmp_path: Path) -> Path:
    """A folder to serve, holding an intact copy of cardio.mat."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copyfile(odds_root / "odds" / "cardio.mat", folder / "cardio.mat")
    return folder


def test_download_then_verify(mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serve(mirror) as server:
        ds = ODDS("cardio", root=root, url=server.url)
        train, val, test = ds.load()
    dest = root / "odds" / "cardio.mat"
    assert files(root) == [dest]
    assert file_digest(dest) == KNOWN_FILES["cardio"].sha256
    assert len(train) + len(val) + len(test) > 0
    # the server is gone: the verified local copy is used
    train2, _, _ = ODDS("cardio", root=root, url=server.url).load()
    assert np.array_equal(train.X, train2.X)


def test_download_of_a_corrupt_file(mirror: Path, tmp_path: Path) -> None:
    data = bytearray((mirror / "cardio.mat").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (mirror / "cardio.mat").write_bytes(bytes(data))
    root = tmp_path / "root"
    with serve(mirror) as server, pytest.raises(DataError, match="sha256"):
        ODDS("cardio", root=root, url=server.url).load()
    assert files(root) == []


def test_download_of_a_short_file(mirror: Path, tmp_path: Path) -> None:
    data = (mirror / "cardio.mat").read_bytes()
    (mirror / "cardio.mat").write_bytes(data[:1000])
    root = tmp_path / "root"
    with serve(mirror) as server, pytest.raises(DataError):
        ODDS("cardio", root=root, url=server.url).load()
    assert files(root) == []


def test_truncated_transfer(mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serve(mirror, mode="truncate") as server, pytest.raises(DataError, match="cut short"):
        ODDS("cardio", root=root, url=server.url).load()
    assert files(root) == []


def test_missing_on_the_server(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    root = tmp_path / "root"
    with serve(empty) as server, pytest.raises(DataError, match="404"):
        ODDS("cardio", root=root, url=server.url).load()
    assert files(root) == []


def test_existing_wrong_file_is_rejected(odds_root: Path, tmp_path: Path) -> None:
    (tmp_path / "odds").mkdir()
    # a real ODDS file, but not the one asked for
    shutil.copyfile(odds_root / "odds" / "glass.mat", tmp_path / "odds" / "cardio.mat")
    with pytest.raises(DataError, match="corrupt or not the expected file") as info:
        ODDS("cardio", root=tmp_path, url="http://127.0.0.1:9").load()
    assert "cardio.mat" in str(info.value)


def test_existing_truncated_file_is_rejected(odds_root: Path, tmp_path: Path) -> None:
    (tmp_path / "odds").mkdir()
    data = (odds_root / "odds" / "cardio.mat").read_bytes()
    (tmp_path / "odds" / "cardio.mat").write_bytes(data[: len(data) - 10])
    with pytest.raises(DataError, match="Delete it"):
        ODDS("cardio", root=tmp_path).load()


# --------------------------------------------------------------------------------------------------
# tables of the user's own
# --------------------------------------------------------------------------------------------------


def own_table(n: int = 200, d: int = 4, n_anomalies: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.zeros((n, 1))
    y[:n_anomalies] = 1
    X[:n_anomalies] += 3
    return X, y


def test_unknown_name_without_file_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        ODDS("not_a_table", root=tmp_path).load()
    message = str(info.value)
    assert "not a known ODDS table" in message
    assert all(name in message for name in KNOWN_FILES)
    assert str(tmp_path / "odds" / "not_a_table.mat") in message
    assert files(tmp_path) == []


def test_own_v5_table(tmp_path: Path) -> None:
    (tmp_path / "odds").mkdir()
    X, y = own_table()
    scipy.io.savemat(tmp_path / "odds" / "mine.mat", {"X": X, "y": y})
    ds = ODDS("mine", root=tmp_path, ratio_known_outlier=0.02)
    train, val, test = ds.load()
    assert len(test) == 80 and (test.y == 1).sum() == 8
    assert train.X.shape[1] == 4 and (train.semi_y == LABELED_ANOMALY).any()


def test_own_v73_table(tmp_path: Path) -> None:
    (tmp_path / "odds").mkdir()
    X, y = own_table(n=100, d=3, n_anomalies=10)
    with h5py.File(tmp_path / "odds" / "mine73.mat", "w") as f:  # MATLAB v7.3 stores transposed
        f["X"] = X.T
        f["y"] = y.T
    X_read, y_read = read_mat(tmp_path / "odds" / "mine73.mat")
    np.testing.assert_array_equal(X_read, X)
    np.testing.assert_array_equal(np.ravel(y_read), np.ravel(y))
    train, val, test = ODDS("mine73", root=tmp_path).load()
    assert len(test) == 40 and (test.y == 1).sum() == 4


def test_own_table_with_nan(tmp_path: Path) -> None:
    (tmp_path / "odds").mkdir()
    X, y = own_table()
    X[3, 1] = np.nan
    X[50, 0] = np.inf
    X[50, 2] = np.nan
    path = tmp_path / "odds" / "holes.mat"
    scipy.io.savemat(path, {"X": X, "y": y})
    with pytest.raises(InvalidInputError) as info:
        ODDS("holes", root=tmp_path).load()
    assert str(path) in str(info.value) and "2 of 200 rows" in str(info.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"X": np.zeros((10, 2))}, "lacks the variable"),
        ({"X": np.zeros((10, 2)), "y": np.full((10, 1), 2.0)}, "0 \\(normal\\) and 1 \\(anomaly\\) only"),
        ({"X": np.zeros((10, 2)), "y": np.zeros((9, 1))}, "9 labels"),
        ({"X": np.zeros((10, 2)), "y": np.r_[np.zeros(9), 1.0].reshape(-1, 1)}, "at least 2"),
    ],
)
def test_own_table_with_bad_content(tmp_path: Path, content: dict, match: str) -> None:
    (tmp_path / "odds").mkdir()
    scipy.io.savemat(tmp_path / "odds" / "bad.mat", content)
    with pytest.raises((DataError, InvalidInputError), match=match):
        ODDS("bad", root=tmp_path).load()


def test_own_file_that_is_not_matlab(tmp_path: Path) -> None:
    (tmp_path / "odds").mkdir()
    (tmp_path / "odds" / "text.mat").write_text("hello, I am not a MATLAB file\n" * 10)
    with pytest.raises(DataError, match="cannot read"):
        ODDS("text", root=tmp_path).load()
