"""The image datasets (mnist, fmnist, cifar10): readers of the official formats, fetching with MD5
checks, the one-vs-rest protocol, preprocessing, bad input, and the image grids in MLflow.

Fashion-MNIST and CIFAR-10 are not available offline: their readers are tested on small files in the
real formats that the tests write (gzip IDX files; a tar.gz of Python pickles), served by a real HTTP
server on 127.0.0.1. MNIST's real files are used where ../shared/data has them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from httpserver import closed_port, serve

from sadkit import create_dataset
from sadkit.data import LABELED_ANOMALY, sample_counts
from sadkit.errors import DataError, InvalidInputError
from sadkit.plugins.datasets import images
from sadkit.plugins.datasets._formats import read_cifar_batch, read_idx
from sadkit.plugins.datasets.images import CIFAR10, MNIST, FashionMNIST, global_contrast_normalization

N_TRAIN_PER_CLASS, N_TEST_PER_CLASS = 30, 8

#: Deep SVDD's hard-coded min/max of the GCN-L1 MNIST training images, per class
DEEP_SVDD_MNIST_MIN_MAX = [
    (-0.8826567065619495, 9.001545489292527),
    (-0.6661464580883915, 20.108062262467364),
    (-0.7820454743183202, 11.665100841080346),
    (-0.7645772083211267, 12.895051191467457),
    (-0.7253923114302238, 12.683235701611533),
    (-0.7698501867861425, 13.103278415430502),
    (-0.778418217980696, 10.457837397569108),
    (-0.7129780970522351, 12.057777597673047),
    (-0.8280402650205075, 10.581538445782988),
    (-0.7369959242164307, 10.697039838804978),
]


# --------------------------------------------------------------------------------------------------
# writers of the real formats
# --------------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: magic (0, 0, type 0x08 = uint8, ndim), big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def write_gz(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(data)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fake_images(labels: np.ndarray, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """uint8 images whose mean brightness depends on the class (so a detector has something to find)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 60, size=(len(labels), *shape))
    return np.clip(base + 15 * labels.reshape(-1, *([1] * len(shape))), 0, 255).astype(np.uint8)


def class_labels(per_class: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(10), per_class)).astype(np.uint8)


def write_idx_dataset(root: Path, folder: str) -> dict[str, np.ndarray]:
    """Four gzip IDX files in ``root/folder/raw``; returns the arrays written."""
    y_train, y_test = class_labels(N_TRAIN_PER_CLASS, 1), class_labels(N_TEST_PER_CLASS, 2)
    arrays = {
        "train-images-idx3-ubyte.gz": fake_images(y_train, (28, 28), 3),
        "train-labels-idx1-ubyte.gz": y_train,
        "t10k-images-idx3-ubyte.gz": fake_images(y_test, (28, 28), 4),
        "t10k-labels-idx1-ubyte.gz": y_test,
    }
    for name, array in arrays.items():
        write_gz(root / folder / "raw" / name, idx_bytes(array))
    return arrays


def use_checksums_of(monkeypatch: pytest.MonkeyPatch, cls: type, raw: Path) -> None:
    """Make ``cls`` accept the test's own files (the official MD5s belong to the official files)."""
    monkeypatch.setattr(cls, "files", {name: md5(raw / name) for name in cls.files})


def cifar_batch_bytes(images_: np.ndarray, labels: np.ndarray, bytes_keys: bool = False) -> bytes:
    """A CIFAR-10 python batch: a pickle (protocol 2, as Python 2 wrote them) of data (n, 3072) and labels."""
    entry = {
        "batch_label": "testing batch",
        "labels": [int(v) for v in labels],
        "data": images_.reshape(len(images_), -1),
    }
    if bytes_keys:
        entry = {k.encode(): v for k, v in entry.items()}
    return pickle.dumps(entry, protocol=2)


def write_cifar_archive(path: Path, extra_members: dict[str, bytes] | None = None) -> dict[str, np.ndarray]:
    """``cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/{data_batch_1..5,test_batch}``."""
    y_train, y_test = class_labels(N_TRAIN_PER_CLASS, 5), class_labels(N_TEST_PER_CLASS, 6)
    X_train, X_test = fake_images(y_train, (3, 32, 32), 7), fake_images(y_test, (3, 32, 32), 8)
    members = {}
    for i, part in enumerate(np.array_split(np.arange(len(y_train)), 5)):
        members[f"cifar-10-batches-py/data_batch_{i + 1}"] = cifar_batch_bytes(X_train[part], y_train[part], i % 2 == 1)
    members["cifar-10-batches-py/test_batch"] = cifar_batch_bytes(X_test, y_test)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": list(CIFAR10.classes)}, protocol=2)
    members.update(extra_members or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {"X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test}


def cifar_checksums(monkeypatch: pytest.MonkeyPatch, archive: Path, root: Path) -> None:
    """Make CIFAR10 accept the test archive and its batches."""
    monkeypatch.setattr(CIFAR10, "archive_md5", md5(archive))
    with tarfile.open(archive) as tar:
        sums = {
            Path(m.name).name: hashlib.md5(tar.extractfile(m).read()).hexdigest()
            for m in tar.getmembers()
            if m.isfile() and m.name.startswith("cifar-10-batches-py/")
        }
    monkeypatch.setattr(CIFAR10, "batches", {name: sums[name] for name in CIFAR10.batches})


@pytest.fixture
def mnist_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = write_idx_dataset(tmp_path, "MNIST")
    use_checksums_of(monkeypatch, MNIST, tmp_path / "MNIST" / "raw")
    return tmp_path, arrays


# --------------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------------


def test_read_idx_round_trips_plain_and_gzip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(array))
    write_gz(tmp_path / "a-idx3-ubyte.gz", idx_bytes(array))
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        out = read_idx(tmp_path / name)
        assert out.dtype == np.uint8 and np.array_equal(out, array)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00\x08\x03" + np.asarray([2, 3, 4], ">u4").tobytes() + bytes(10), "truncated"),
        (b"\x12\x34\x56\x78" + bytes(20), "not an IDX file"),
        (b"\x00\x00\x08\x03\x00", "header is incomplete"),
    ],
)
def test_read_idx_rejects_truncated_or_foreign_files(tmp_path: Path, content: bytes, message: str) -> None:
    write_gz(tmp_path / "bad.gz", content)
    with pytest.raises(DataError, match=message):
        read_idx(tmp_path / "bad.gz")


def test_read_idx_rejects_a_cut_gzip_stream(tmp_path: Path) -> None:
    write_gz(tmp_path / "x.gz", idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    data = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "x.gz")


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_read_cifar_batch_is_channels_first(tmp_path: Path, bytes_keys: bool) -> None:
    images_ = np.zeros((2, 3, 32, 32), np.uint8)
    images_[0, 0] = 10  # red plane of the first image
    images_[1, 2] = 30  # blue plane of the second
    (tmp_path / "b").write_bytes(cifar_batch_bytes(images_, np.array([4, 7]), bytes_keys))
    X, y = read_cifar_batch(tmp_path / "b")
    assert X.shape == (2, 3, 32, 32) and X.dtype == np.uint8 and y.tolist() == [4, 7]
    assert (X[0, 0] == 10).all() and (X[0, 1:] == 0).all() and (X[1, 2] == 30).all()


def test_read_cifar_batch_refuses_code_in_the_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil").write_bytes(pickle.dumps({"data": Payload(), "labels": [1]}, protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        read_cifar_batch(tmp_path / "evil")
    assert not marker.exists()


def test_read_cifar_batch_rejects_wrong_content(tmp_path: Path) -> None:
    (tmp_path / "shape").write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8), "labels": [1, 2]}, protocol=2))
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        read_cifar_batch(tmp_path / "shape")
    (tmp_path / "junk").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="cannot read"):
        read_cifar_batch(tmp_path / "junk")


# --------------------------------------------------------------------------------------------------
# the protocol on a small MNIST in the real format
# --------------------------------------------------------------------------------------------------


def test_mnist_splits_follow_the_one_vs_rest_protocol(mnist_root) -> None:
    root, arrays = mnist_root
    ds = create_dataset(
        "mnist", root=root, normal_class=3, known_outlier_class=5, ratio_known_outlier=0.05, ratio_pollution=0.1, seed=1
    )
    train, val, test = ds.load()
    labels = arrays["train-labels-idx1-ubyte.gz"].astype(int)
    # test: the whole official test set, normal class -> 0, every other -> 1, unlabeled
    y_test_raw = arrays["t10k-labels-idx1-ubyte.gz"].astype(int)
    assert len(test) == len(y_test_raw)
    assert np.array_equal(test.y, (y_test_raw != 3).astype(int)) and (test.semi_y == 0).all()
    # pixels / 255 in float32, channels first, exactly as ToTensor
    assert test.X.shape == (len(y_test_raw), 1, 28, 28) and test.X.dtype == np.float32
    assert np.array_equal(test.X[:, 0], arrays["t10k-images-idx3-ubyte.gz"].astype(np.float32) / np.float32(255))
    # train + val: every normal of the pool, labeled anomalies only from the known class, no overlap
    idx = np.concatenate([ds._train_index, ds._val_index])
    assert len(np.unique(idx)) == len(idx)
    assert np.array_equal(train.X[:, 0], arrays["train-images-idx3-ubyte.gz"][ds._train_index] / np.float32(255))
    kn, un, ua, ka = sample_counts(N_TRAIN_PER_CLASS, 0.0, 0.05, 0.1)
    assert len(train) + len(val) == kn + un + ua + ka
    assert (labels[idx] == 3).sum() == N_TRAIN_PER_CLASS
    semi = np.concatenate([train.semi_y, val.semi_y])
    assert set(labels[idx][semi == LABELED_ANOMALY]) == {5} and (semi == LABELED_ANOMALY).sum() == ka
    assert np.array_equal(np.concatenate([train.y, val.y]), (labels[idx] != 3).astype(int))
    assert ds.known_outlier_classes == [5] and ds.network == "mnist_lenet"


def test_known_classes_are_drawn_by_the_seed(mnist_root) -> None:
    root, arrays = mnist_root
    labels = arrays["train-labels-idx1-ubyte.gz"].astype(int)

    def drawn(seed: int) -> list[int]:
        ds = MNIST(root=root, normal_class=0, n_known_outlier_classes=3, ratio_known_outlier=0.05, seed=seed)
        train, val, _ = ds.load()
        idx = np.concatenate([ds._train_index, ds._val_index])
        semi = np.concatenate([train.semi_y, val.semi_y])
        assert set(labels[idx][semi == LABELED_ANOMALY]) <= set(ds.known_outlier_classes)
        return ds.known_outlier_classes

    first = drawn(0)
    assert len(first) == 3 and 0 not in first and first == sorted(first)
    assert drawn(0) == first
    assert any(drawn(seed) != first for seed in range(1, 6))
    # None with one known class draws one as well
    ds = MNIST(root=root, normal_class=2, known_outlier_class=None, ratio_known_outlier=0.05, seed=0)
    ds.load()
    assert len(ds.known_outlier_classes) == 1 and ds.known_outlier_classes[0] != 2


def test_gcn_preprocessing_scales_with_training_statistics(mnist_root) -> None:
    root, _ = mnist_root
    ds = MNIST(root=root, normal_class=1, preprocessing="gcn", ratio_known_outlier=0.05, ratio_pollution=0.0, seed=0)
    train, val, test = ds.load()
    reference = train.X[train.semi_y != LABELED_ANOMALY]
    assert reference.min() == pytest.approx(0.0, abs=1e-6) and reference.max() == pytest.approx(1.0, abs=1e-6)
    # one affine map for all splits: undo it and every image has mean 0 and mean absolute deviation 1
    low, high = ds._minmax
    for split in (train, val, test):
        raw = split.X.reshape(len(split), -1).astype(np.float64) * (high - low) + low
        assert np.allclose(raw.mean(1), 0, atol=1e-4) and np.allclose(np.abs(raw).mean(1), 1, atol=1e-4)


def test_gcn_matches_deep_svdd_code() -> None:
    """Deep SVDD's global_contrast_normalization(x, 'l1') on one image, vectorised over many."""
    import torch

    X = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    X[4] = 0.5  # a constant image: zeros, not NaN
    ours = global_contrast_normalization(X.copy())
    for i in range(4):
        x = torch.tensor(X[i])
        x = x - torch.mean(x)
        x = x / torch.mean(torch.abs(x))
        assert np.allclose(ours[i], x.numpy(), atol=1e-5)
    assert (ours[4] == 0).all()


def test_the_network_follows_the_dataset() -> None:
    from sadkit.experiment import ExperimentSpec, build

    for dataset, network in (("mnist", "mnist_lenet"), ("fmnist", "fmnist_lenet"), ("cifar10", "cifar10_lenet")):
        _, detector = build(ExperimentSpec(detector="deepsad", dataset=dataset), seed=0)
        assert detector.net_name == network
    _, detector = build(ExperimentSpec(detector="deepsad", dataset="mnist", params={"net_name": "mlp"}), seed=0)
    assert detector.net_name == "mlp"


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"normal_class": 10}, r"normal_class must be one of the MNIST classes 0-9"),
        ({"normal_class": -1}, r"normal_class must be one of the MNIST classes 0-9"),
        ({"normal_class": True}, r"normal_class must be an integer"),
        ({"known_outlier_class": 12}, r"known_outlier_class must be one of the MNIST classes 0-9"),
        ({"normal_class": 4, "known_outlier_class": 4}, r"known_outlier_class=4 is the normal class"),
        (
            {"normal_class": 4, "known_outlier_class": 4, "n_known_outlier_classes": 3},
            r"known_outlier_class=4 is the normal class",
        ),
        (
            {"known_outlier_class": 2, "n_known_outlier_classes": 3},
            r"known_outlier_class=2 names one known anomaly class but n_known_outlier_classes=3",
        ),
        ({"known_outlier_class": 2, "n_known_outlier_classes": 0}, r"set n_known_outlier_classes=1"),
        ({"n_known_outlier_classes": 10}, r"n_known_outlier_classes must be between 0 and 9 .* got 10"),
        ({"n_known_outlier_classes": -1}, r"n_known_outlier_classes must be between 0 and 9"),
        ({"preprocessing": "zca"}, r"preprocessing must be one of scale, gcn"),
        ({"ratio_known_outlier": 1.5}, r"ratio_known_outlier must be in"),
    ],
)
def test_bad_parameters_are_clear_errors(params: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MNIST(root="/nonexistent", **params)


def test_class_errors_name_the_dataset_classes() -> None:
    with pytest.raises(InvalidInputError, match="CIFAR-10 classes 0-9 .*0 airplane.*9 truck"):
        CIFAR10(root="/nonexistent", normal_class=11)
    with pytest.raises(InvalidInputError, match="Fashion-MNIST"):
        FashionMNIST(root="/nonexistent", normal_class=10)


def test_labels_outside_0_to_9_in_the_files_are_an_error(mnist_root, monkeypatch: pytest.MonkeyPatch) -> None:
    root, arrays = mnist_root
    labels = arrays["t10k-labels-idx1-ubyte.gz"].copy()
    labels[3] = 12
    write_gz(root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz", idx_bytes(labels))
    use_checksums_of(monkeypatch, MNIST, root / "MNIST" / "raw")
    with pytest.raises(DataError, match=r"MNIST test labels hold classes outside 0-9: \[12\]"):
        MNIST(root=root).load()


def test_too_many_labeled_anomalies_is_a_clear_error(mnist_root) -> None:
    root, _ = mnist_root
    with pytest.raises(InvalidInputError, match="labeled anomalies"):
        MNIST(root=root, normal_class=0, known_outlier_class=1, ratio_known_outlier=0.9).load()


# --------------------------------------------------------------------------------------------------
# fetching: checksums, downloads, truncation
# --------------------------------------------------------------------------------------------------


def test_a_wrong_checksum_on_disk_is_an_error(mnist_root) -> None:
    root, _ = mnist_root
    path = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz is corrupt .*md5"):
        MNIST(root=root).load()


def test_a_truncated_file_on_disk_is_an_error(mnist_root) -> None:
    root, _ = mnist_root
    path = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt or not the expected file"):
        MNIST(root=root).load()


def test_missing_files_are_downloaded_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "server"
    arrays = write_idx_dataset(served, "fmnist")
    use_checksums_of(monkeypatch, FashionMNIST, served / "fmnist" / "raw")
    root = tmp_path / "data"
    with serve(served / "fmnist" / "raw") as server:
        # the first mirror is down: the next one is tried
        monkeypatch.setattr(FashionMNIST, "mirrors", (f"http://127.0.0.1:{closed_port()}/x", server.url))
        train, _, test = FashionMNIST(root=root, normal_class=7, ratio_known_outlier=0.05, seed=0).load()
    assert sorted(p.name for p in (root / "FashionMNIST" / "raw").iterdir()) == sorted(FashionMNIST.files)
    assert len(test) == len(arrays["t10k-labels-idx1-ubyte.gz"]) and train.X.shape[1:] == (1, 28, 28)


def test_a_truncated_download_is_an_error_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "server"
    write_idx_dataset(served, "MNIST")
    use_checksums_of(monkeypatch, MNIST, served / "MNIST" / "raw")
    root = tmp_path / "data"
    with serve(served / "MNIST" / "raw", mode="truncate") as server:
        with pytest.raises(DataError, match="cut short|corrupt|mismatch"):
            MNIST(root=root, url=server.url).load()
    assert not list((root / "MNIST" / "raw").glob("*.gz"))


def test_a_download_with_the_wrong_checksum_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "server"
    write_idx_dataset(served, "MNIST")  # not the official files: the official MD5s reject them
    with serve(served / "MNIST" / "raw") as server:
        with pytest.raises(DataError, match="corrupt or not the expected file"):
            MNIST(root=tmp_path / "data", url=server.url).load()
    assert not list((tmp_path / "data" / "MNIST" / "raw").glob("*.gz"))


def test_no_download_when_told_not_to(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="download=False"):
        MNIST(root=tmp_path, download=False).load()


def test_cifar10_is_downloaded_extracted_and_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "server"
    archive = served / CIFAR10.archive
    arrays = write_cifar_archive(
        archive, {"cifar-10-batches-py/../escaped": b"x", "elsewhere/file": b"y", "/abs/file": b"z"}
    )
    cifar_checksums(monkeypatch, archive, tmp_path)
    root = tmp_path / "data"
    with serve(served) as server:
        ds = CIFAR10(root=root, normal_class=6, known_outlier_class=2, ratio_known_outlier=0.05, url=server.url, seed=0)
        train, val, test = ds.load()
    assert (root / CIFAR10.archive).is_file()
    assert sorted(p.name for p in (root / CIFAR10.folder).iterdir()) == sorted([*CIFAR10.batches, "batches.meta"])
    assert not (root / "escaped").exists() and not (root / "elsewhere").exists() and not (tmp_path / "abs").exists()
    assert test.X.shape == (len(arrays["y_test"]), 3, 32, 32) and train.X.shape[1:] == (3, 32, 32)
    assert np.array_equal(test.X, arrays["X_test"] / np.float32(255))
    assert np.array_equal(test.y, (arrays["y_test"] != 6).astype(int))
    assert ds.network == "cifar10_lenet" and len(train) + len(val) > N_TRAIN_PER_CLASS
    # a second load uses the extracted batches (the archive is not needed any more)
    (root / CIFAR10.archive).unlink()
    assert np.array_equal(CIFAR10(root=root, normal_class=6).load()[2].X, test.X)


def test_cifar10_with_a_wrong_archive_or_batch_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "data" / CIFAR10.archive
    write_cifar_archive(archive)
    with pytest.raises(DataError, match="corrupt or not the expected file"):  # the official MD5 rejects it
        CIFAR10(root=tmp_path / "data", download=False).load()
    cifar_checksums(monkeypatch, archive, tmp_path)
    CIFAR10(root=tmp_path / "data").load()
    batch = tmp_path / "data" / CIFAR10.folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-10])
    with pytest.raises(DataError, match="data_batch_3 is corrupt"):
        CIFAR10(root=tmp_path / "data").load()


# --------------------------------------------------------------------------------------------------
# real MNIST (../shared/data), skipped where absent
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_mnist(shared_data: Path) -> Path:
    if not (shared_data / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found at {shared_data / 'MNIST' / 'raw'}; set SADKIT_DATA")
    return shared_data


def test_real_mnist_files_load(real_mnist: Path) -> None:
    X_train, y_train, X_test, y_test = MNIST(root=real_mnist).read()
    assert X_train.shape == (60000, 1, 28, 28) and X_test.shape == (10000, 1, 28, 28)
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_gcn_statistics_are_deep_svdds(real_mnist: Path) -> None:
    """With the training data of the normal class only, our min/max are Deep SVDD's hard-coded values."""
    X_train, y_train, _, _ = MNIST(root=real_mnist).read()
    for cls, (low, high) in enumerate(DEEP_SVDD_MNIST_MIN_MAX):
        gcn = global_contrast_normalization(images.scale_pixels(X_train[y_train == cls]))
        assert gcn.min() == pytest.approx(low, rel=1e-5) and gcn.max() == pytest.approx(high, rel=1e-5)
    ds = MNIST(root=real_mnist, normal_class=3, preprocessing="gcn", val_fraction=0.0, n_known_outlier_classes=0)
    ds.load()
    assert ds._minmax == pytest.approx(DEEP_SVDD_MNIST_MIN_MAX[3], rel=1e-5)


# --------------------------------------------------------------------------------------------------
# MLflow: grids of the most and least anomalous test images beside the ROC curve
# --------------------------------------------------------------------------------------------------


def test_an_image_run_logs_grids_of_the_most_and_least_anomalous_images(mnist_root, tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from sadkit.experiment import ExperimentSpec, run_experiment

    root, _ = mnist_root
    spec = ExperimentSpec(
        detector="deepsad",
        dataset="mnist",
        data={"root": str(root), "normal_class": 1, "ratio_known_outlier": 0.05},
        params={"n_epochs": 1, "ae_n_epochs": 1, "lr_milestones": [], "ae_lr_milestones": [], "batch_size": 32},
        device="cpu",
        threads=1,
        log_model=False,
        tracking_uri=tracking_uri,
    )
    result = run_experiment(spec)
    plots = {a.path for a in MlflowClient(tracking_uri).list_artifacts(result.run_id, "plots")}
    assert {"plots/roc_test.png", "plots/most_anomalous_test.png", "plots/least_anomalous_test.png"} <= plots
    assert result.params["net_name"] == "mnist_lenet"


def test_mnist_passes_the_dataset_checks_and_its_ids_name_every_image_once(mnist_root) -> None:
    from sadkit.testing import assert_dataset_conforms

    root, arrays = mnist_root
    assert_dataset_conforms("mnist", {"root": str(root), "ratio_known_outlier": 0.05})
    train, val, test = create_dataset("mnist", root=str(root), seed=0).load()
    n_train_images = len(arrays["train-labels-idx1-ubyte.gz"])
    assert len(test) == len(arrays["t10k-labels-idx1-ubyte.gz"])
    assert test.ids.min() == n_train_images  # numbered after the training images
    assert max(train.ids.max(), val.ids.max()) < n_train_images
