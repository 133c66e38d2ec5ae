"""The split contract and the paper's semi-supervised sampling protocol (sadkit.data)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sadkit.data import (
    LABELED_ANOMALY,
    LABELED_NORMAL,
    SEMI_UNLABELED,
    Dataset,
    Split,
    check_features,
    check_labels,
    check_ratio,
    check_semi_labels,
    default_data_root,
    from_semi_y,
    resolve_known_outlier_classes,
    sample_counts,
    semi_supervised_sample,
    stratified_holdout,
    to_semi_y,
)
from sadkit.errors import InvalidInputError

# --------------------------------------------------------------------------------------------------
# the 4-equation system
# --------------------------------------------------------------------------------------------------


def expected_counts(n: int, r_n: float, r_a: float, r_p: float) -> tuple[int, int, int, int]:
    """Closed-form solution of the paper's system, truncated like the reference code.

    With T the training set size and p = r_p / (1 - r_p): x0 = r_n T, x3 = r_a T, x0 + x1 = n,
    x2 = p x1, so T = n (1 + p) / (1 + p r_n - r_a).
    """
    p = r_p / (1 - r_p)
    total = n * (1 + p) / (1 + p * r_n - r_a)
    x0, x3 = r_n * total, r_a * total
    x1 = n - x0
    x2 = p * x1
    return tuple(int(math.floor(v + 1e-9)) for v in (x0, x1, x2, x3))  # type: ignore[return-value]


def test_sample_counts_paper_example() -> None:
    # 1000 normals, 1% labeled anomalies: x3 = 0.01 (1000 + x3) = 10.1 -> 10
    assert sample_counts(1000, 0.0, 0.01, 0.0) == (0, 1000, 0, 10)
    assert sample_counts(1000, 0.0, 0.0, 0.0) == (0, 1000, 0, 0)


@pytest.mark.parametrize(
    ("n", "r_n", "r_a", "r_p"),
    [
        (1000, 0.0, 0.01, 0.0),
        (1000, 0.0, 0.05, 0.1),
        (1000, 0.1, 0.05, 0.1),
        (5000, 0.2, 0.2, 0.2),
        (333, 0.05, 0.01, 0.01),
        (100, 1.0, 0.0, 0.0),
        (60, 0.0, 0.0, 0.5),
    ],
)
def test_sample_counts_solve_the_system(n: int, r_n: float, r_a: float, r_p: float) -> None:
    counts = sample_counts(n, r_n, r_a, r_p)
    assert counts == expected_counts(n, r_n, r_a, r_p)
    kn, un, ua, ka = counts
    assert min(counts) >= 0
    assert kn + un <= n and kn + un >= n - 1  # every normal is used (up to truncation)
    total = kn + un + ua + ka
    # each ratio holds up to the truncation of the counts
    assert kn == pytest.approx(r_n * total, abs=2)
    assert ka == pytest.approx(r_a * total, abs=2)
    assert ua == pytest.approx(r_p * (un + ua), abs=2)


@pytest.mark.parametrize(("r_n", "r_a"), [(0.7, 0.5), (0.9, 0.2), (0.6, 0.6)])
def test_sample_counts_impossible_ratios(r_n: float, r_a: float) -> None:
    with pytest.raises(InvalidInputError, match="ratio_known_normal \\+ ratio_known_outlier"):
        sample_counts(1000, r_n, r_a, 0.0)


def test_sample_counts_everything_labeled() -> None:
    # r_n + r_a = 1 is the boundary: no unlabeled sample at all
    assert sample_counts(1000, 0.5, 0.5, 0.0) == (1000, 0, 0, 1000)


# --------------------------------------------------------------------------------------------------
# ratio checks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "abc", None])
def test_check_ratio_rejects(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="my_ratio"):
        check_ratio("my_ratio", bad)  # type: ignore[arg-type]


def test_check_ratio_bounds() -> None:
    assert check_ratio("r", 0) == 0.0
    assert check_ratio("r", 1) == 1.0
    with pytest.raises(InvalidInputError, match=r"\[0, 1\)"):
        check_ratio("r", 1.0, upper_open=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ratio_known_normal": -0.1},
        {"ratio_known_normal": 1.1},
        {"ratio_known_outlier": 1.0},
        {"ratio_known_outlier": -1},
        {"ratio_pollution": 1.0},
        {"ratio_pollution": 2},
    ],
)
def test_sampler_rejects_ratios_outside_unit_interval(kwargs: dict[str, float]) -> None:
    params = {"ratio_known_normal": 0.0, "ratio_known_outlier": 0.0, "ratio_pollution": 0.0} | kwargs
    labels = np.array([0] * 50 + [1] * 10)
    with pytest.raises(InvalidInputError, match=next(iter(kwargs))):
        semi_supervised_sample(labels, [0], [1], [1], rng=np.random.default_rng(0), **params)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ratio_known_normal": 1.5},
        {"ratio_known_outlier": 1.0},
        {"ratio_pollution": -0.5},
        {"val_fraction": 1.0},
    ],
)
def test_dataset_rejects_ratios_outside_unit_interval(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(kwargs))):
        ToyDataset(**kwargs)


# --------------------------------------------------------------------------------------------------
# drawing the training set
# --------------------------------------------------------------------------------------------------


def pool(n_normal: int, per_outlier_class: dict[int, int]) -> np.ndarray:
    labels = [0] * n_normal
    for cls, count in per_outlier_class.items():
        labels += [cls] * count
    return np.random.default_rng(123).permutation(np.array(labels))


def test_sample_follows_the_counts_and_classes() -> None:
    labels = pool(1000, {1: 100, 2: 100})
    r_n, r_a, r_p = 0.1, 0.05, 0.1
    s = semi_supervised_sample(labels, [0], [1, 2], [1], r_n, r_a, r_p, np.random.default_rng(0))
    kn, un, ua, ka = sample_counts(1000, r_n, r_a, r_p)
    assert (len(s.known_normal), len(s.unlabeled_normal), len(s.unlabeled_anomaly), len(s.known_anomaly)) == (
        kn,
        un,
        ua,
        ka,
    )
    assert (labels[s.known_normal] == 0).all() and (labels[s.unlabeled_normal] == 0).all()
    assert (labels[s.known_anomaly] == 1).all()  # labeled anomalies only from the known class
    assert np.isin(labels[s.unlabeled_anomaly], [1, 2]).all()  # pollution from every anomaly class
    idx, semi = s.indices_and_semi_labels()
    assert len(np.unique(idx)) == len(idx)  # no sample twice
    assert idx.dtype == np.int64 and semi.dtype == np.int64
    assert (semi == LABELED_NORMAL).sum() == kn
    assert (semi == LABELED_ANOMALY).sum() == ka
    assert (semi == SEMI_UNLABELED).sum() == un + ua


@pytest.mark.parametrize("seed", range(20))
def test_labeled_and_unlabeled_anomalies_never_share_a_sample(seed: int) -> None:
    # 20 anomalies of the known class only: 8 labeled + 10 polluting ones must be 18 distinct
    # samples (the reference code drew both sets independently, so they overlapped).
    labels = pool(200, {1: 20})
    r_n, r_a, r_p = 0.0, 0.04, 0.05
    _, _, ua, ka = sample_counts(200, r_n, r_a, r_p)
    assert ua + ka > 10  # independent draws from 20 would overlap almost surely
    s = semi_supervised_sample(labels, [0], [1], [1], r_n, r_a, r_p, np.random.default_rng(seed))
    assert len(s.known_anomaly) == ka and len(s.unlabeled_anomaly) == ua
    assert np.intersect1d(s.known_anomaly, s.unlabeled_anomaly).size == 0
    assert np.intersect1d(s.known_normal, s.unlabeled_normal).size == 0


def test_sample_is_deterministic_given_the_generator() -> None:
    labels = pool(300, {1: 30})
    a = semi_supervised_sample(labels, [0], [1], [1], 0.1, 0.05, 0.05, np.random.default_rng(7))
    b = semi_supervised_sample(labels, [0], [1], [1], 0.1, 0.05, 0.05, np.random.default_rng(7))
    c = semi_supervised_sample(labels, [0], [1], [1], 0.1, 0.05, 0.05, np.random.default_rng(8))
    pairs = zip(a.indices_and_semi_labels(), b.indices_and_semi_labels(), strict=True)
    assert all(np.array_equal(x, y) for x, y in pairs)
    assert not np.array_equal(a.known_anomaly, c.known_anomaly) or not np.array_equal(a.known_normal, c.known_normal)


def test_too_many_labeled_anomalies_is_a_clear_error() -> None:
    labels = pool(1000, {1: 5, 2: 100})
    # 1% of the training set is 10 labeled anomalies, but the known class 1 has only 5
    with pytest.raises(InvalidInputError) as info:
        semi_supervised_sample(labels, [0], [1, 2], [1], 0.0, 0.01, 0.0, np.random.default_rng(0))
    message = str(info.value)
    assert "asks for 10 labeled anomalies" in message
    assert "only 5" in message
    assert "lower ratio_known_outlier" in message


def test_too_much_pollution_is_a_clear_error() -> None:
    labels = pool(1000, {1: 20})
    # 10 labeled + 52 polluting anomalies wanted, only 20 exist
    with pytest.raises(InvalidInputError, match="lower ratio_pollution"):
        semi_supervised_sample(labels, [0], [1], [1], 0.0, 0.01, 0.05, np.random.default_rng(0))


def test_pool_without_normals_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="no sample of the normal class"):
        semi_supervised_sample(np.ones(10, dtype=int), [0], [1], [1], 0, 0, 0, np.random.default_rng(0))


# --------------------------------------------------------------------------------------------------
# validation hold-out
# --------------------------------------------------------------------------------------------------


def test_stratified_holdout_holds_out_per_stratum() -> None:
    strata = np.random.default_rng(0).permutation(np.array([0] * 100 + [1] * 10 + [2] * 3 + [3] * 15))
    kept, held = stratified_holdout(strata, 0.1, np.random.default_rng(0))
    assert np.intersect1d(kept, held).size == 0
    assert np.array_equal(np.union1d(kept, held), np.arange(len(strata)))
    assert np.array_equal(kept, np.sort(kept)) and np.array_equal(held, np.sort(held))
    held_counts = {int(v): int((strata[held] == v).sum()) for v in np.unique(strata)}
    # round(0.1 * size) per stratum: 10, 1, round(0.3) = 0, round(1.5) = 2
    assert held_counts == {0: 10, 1: 1, 2: 0, 3: 2}


def test_stratified_holdout_zero_fraction_and_bounds() -> None:
    strata = np.array([0, 0, 1, 1])
    kept, held = stratified_holdout(strata, 0.0, np.random.default_rng(0))
    assert held.size == 0 and np.array_equal(kept, np.arange(4))
    with pytest.raises(InvalidInputError, match="val_fraction"):
        stratified_holdout(strata, 1.0, np.random.default_rng(0))
    kept, held = stratified_holdout(np.array([], dtype=int), 0.5, np.random.default_rng(0))
    assert kept.size == 0 and held.size == 0


# --------------------------------------------------------------------------------------------------
# known anomaly classes
# --------------------------------------------------------------------------------------------------


def test_resolve_known_outlier_classes() -> None:
    rng = np.random.default_rng(0)
    assert resolve_known_outlier_classes([1, 2, 3], 2, 0, rng) == []
    assert resolve_known_outlier_classes([1, 2, 3], 2, 1, rng) == [2]
    drawn = resolve_known_outlier_classes([1, 2, 3, 4], None, 2, np.random.default_rng(5))
    assert drawn == sorted(drawn) and len(set(drawn)) == 2 and set(drawn) <= {1, 2, 3, 4}
    assert drawn == resolve_known_outlier_classes([1, 2, 3, 4], None, 2, np.random.default_rng(5))
    assert resolve_known_outlier_classes([1], None, 1, rng) == [1]


@pytest.mark.parametrize(
    ("known", "n_known", "match"),
    [
        (0, 1, "not an anomaly class"),
        (7, 1, "not an anomaly class"),
        (None, 4, "only 3 anomaly classes"),
        (1, -1, ">= 0"),
    ],
)
def test_resolve_known_outlier_classes_errors(known: int | None, n_known: int, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        resolve_known_outlier_classes([1, 2, 3], known, n_known, np.random.default_rng(0))


# --------------------------------------------------------------------------------------------------
# Split, feature and label checks
# --------------------------------------------------------------------------------------------------


def test_split_length_mismatch() -> None:
    with pytest.raises(InvalidInputError, match="disagree in length"):
        Split(np.zeros((3, 2)), np.zeros(2), labels=np.zeros(3))
    with pytest.raises(InvalidInputError, match="labels 4"):
        Split(np.zeros((3, 2)), np.zeros(3), labels=np.zeros(4))
    with pytest.raises(InvalidInputError, match="ids 2"):
        Split(np.zeros((3, 2)), np.zeros(3), ids=[7, 8])


def test_split_summary_and_len() -> None:
    split = Split(np.zeros((5, 2)), np.array([0, 0, 1, 1, 0]), labels=np.array([0, -1, 1, -1, -1]))
    assert len(split) == 5
    assert split.summary() == {"n": 5, "n_anomalies": 2, "n_labeled_normal": 1, "n_labeled_anomalies": 1}
    assert split.ids.tolist() == [0, 1, 2, 3, 4]


def test_split_is_frozen() -> None:
    split = Split(np.zeros((1, 1)), np.zeros(1))
    with pytest.raises(AttributeError):
        split.X = np.ones((1, 1))  # type: ignore[misc]


def test_split_labels_are_the_users_convention_and_semi_y_the_papers() -> None:
    """1 = anomaly, 0 = normal, -1 = unlabeled; the paper's +1/-1/0 only when asked for by name."""
    labels = np.array([1, 0, -1, 1])
    split = Split(np.zeros((4, 1)), np.zeros(4), labels=labels)
    assert split.semi_y.tolist() == [LABELED_ANOMALY, LABELED_NORMAL, SEMI_UNLABELED, LABELED_ANOMALY]
    ported = Split(np.zeros((4, 1)), np.zeros(4), semi_y=[-1, 1, 0, -1])
    assert ported.labels.tolist() == labels.tolist()
    assert Split(np.zeros((2, 1)), np.zeros(2)).labels.tolist() == [-1, -1]  # no labels: all unlabeled
    with pytest.raises(TypeError):  # a positional third argument (written for the paper's codes) is refused
        Split(np.zeros((2, 1)), np.zeros(2), np.ones(2))  # type: ignore[misc]
    with pytest.raises(InvalidInputError, match="not both"):
        Split(np.zeros((2, 1)), np.zeros(2), labels=[1, 0], semi_y=[1, 0])
    assert from_semi_y(to_semi_y(labels)).tolist() == labels.tolist()


def test_check_labels_reads_the_users_convention() -> None:
    assert check_labels(None, 3).tolist() == [-1, -1, -1]
    assert check_labels([1, 0, -1], 3).tolist() == [1, 0, -1]
    assert check_labels(np.array([1.0, np.nan, 0.0]), 3).tolist() == [1, -1, 0]
    assert check_labels(np.array([True, False]), 2).tolist() == [1, 0]
    with pytest.warns(Warning, match="column-vector"):  # scikit-learn's DataConversionWarning
        assert check_labels(np.array([[1], [0]]), 2).tolist() == [1, 0]
    with pytest.raises(InvalidInputError, match="found \\[2.0\\]"):
        check_labels([1, 2, 0], 3)
    with pytest.raises(InvalidInputError, match="shape \\(3,\\)"):
        check_labels([1, 0], 3)
    with pytest.raises(InvalidInputError, match="must hold 1"):
        check_labels(["fraud", "ok"], 2)


def test_check_features_accepts_and_converts() -> None:
    out = check_features([[1, 2], [3, 4]])
    assert out.dtype == np.float32 and out.shape == (2, 2)
    assert check_features(np.zeros((2, 1, 3, 3))).shape == (2, 1, 3, 3)


def test_check_features_rejects_nan_and_inf() -> None:
    X = np.zeros((6, 3))
    X[1, 0] = np.nan
    X[4, 2] = np.inf
    X[4, 1] = -np.inf
    with pytest.raises(InvalidInputError, match="in 2 sample"):
        check_features(X)


@pytest.mark.parametrize("bad", [np.zeros(5), np.float64(3.0)])
def test_check_features_rejects_1d(bad: np.ndarray) -> None:
    with pytest.raises(InvalidInputError, match="reshape"):
        check_features(bad)


def test_check_features_other_errors() -> None:
    with pytest.raises(InvalidInputError, match="numeric"):
        check_features([["a", "b"]])
    with pytest.raises(InvalidInputError, match="at least 3"):
        check_features(np.zeros((2, 2)), min_samples=3)


def test_check_semi_labels() -> None:
    assert np.array_equal(check_semi_labels(None, 3), np.zeros(3))
    assert check_semi_labels([1, 0, -1], 3).dtype == np.int64
    with pytest.raises(InvalidInputError, match="shape"):
        check_semi_labels([1, 0], 3)
    with pytest.raises(InvalidInputError, match="only hold"):
        check_semi_labels([1, 2, 0], 3)


# --------------------------------------------------------------------------------------------------
# the Dataset base class
# --------------------------------------------------------------------------------------------------


class ToyDataset(Dataset):
    """A pool of 400 normals (class 0) and 40 + 40 anomalies (classes 1 and 2)."""

    def load(self) -> tuple[Split, Split, Split]:
        labels = pool(400, {1: 40, 2: 40})
        X = np.arange(len(labels), dtype=np.float64).reshape(-1, 1)  # X holds each row's position
        rng = np.random.default_rng(self.seed)
        known = resolve_known_outlier_classes([1, 2], self.known_outlier_class, self.n_known_outlier_classes, rng)
        train, val = self.semi_supervised_splits(X, labels, [0], [1, 2], known, rng)
        self._labels = labels
        empty = Split(np.zeros((0, 1)), np.zeros(0))
        return Split(train[0], train[1], labels=train[2]), Split(val[0], val[1], labels=val[2]), empty


def test_semi_supervised_splits_carves_a_disjoint_stratified_validation_set() -> None:
    ds = ToyDataset(ratio_known_normal=0.05, ratio_known_outlier=0.05, ratio_pollution=0.05, val_fraction=0.2)
    train, val, _ = ds.load()
    kn, un, ua, ka = sample_counts(400, 0.05, 0.05, 0.05)
    assert len(train) + len(val) == kn + un + ua + ka
    train_rows, val_rows = train.X[:, 0].astype(int), val.X[:, 0].astype(int)
    assert np.intersect1d(train_rows, val_rows).size == 0
    assert len(np.unique(np.concatenate([train_rows, val_rows]))) == len(train) + len(val)
    for split, rows in ((train, train_rows), (val, val_rows)):
        assert np.array_equal(split.y, np.isin(ds._labels[rows], [1, 2]).astype(int))
        assert (split.y[split.semi_y == LABELED_ANOMALY] == 1).all()
        assert (split.y[split.semi_y == LABELED_NORMAL] == 0).all()
        assert (ds._labels[rows][split.semi_y == LABELED_ANOMALY] == 1).all()  # known class only
    # every kind of sample is held out in proportion
    for semi in (LABELED_NORMAL, SEMI_UNLABELED, LABELED_ANOMALY):
        total = (train.semi_y == semi).sum() + (val.semi_y == semi).sum()
        assert total > 0
        assert abs((val.semi_y == semi).sum() - 0.2 * total) <= 1
    assert (val.y == 1).sum() > 0 and (train.y == 1).sum() > 0


def test_semi_supervised_splits_without_validation() -> None:
    train, val, _ = ToyDataset(val_fraction=0.0, ratio_known_outlier=0.02).load()
    assert len(val) == 0 and len(train) == sum(sample_counts(400, 0.0, 0.02, 0.0))


def test_dataset_root_and_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ToyDataset(root=tmp_path).root == tmp_path
    monkeypatch.setenv("SADKIT_DATA", str(tmp_path / "env"))
    assert default_data_root() == tmp_path / "env"
    ds = ToyDataset(seed=3)
    assert ds.root == tmp_path / "env"
    ds.load()  # sets a private attribute, which get_params leaves out
    params = ds.get_params()
    assert params["root"] == str(tmp_path / "env") and params["seed"] == 3
    assert not any(key.startswith("_") for key in params)
    assert ds.network == "mlp"
    monkeypatch.delenv("SADKIT_DATA")
    assert default_data_root().name == "data"


@pytest.mark.parametrize(
    "counts,ratios",
    [
        ({1: 5, 2: 100}, (0.0, 0.01, 0.0)),
        ({1: 56}, (0.0, 0.05, 0.0)),
        ({1: 40}, (0.0, 0.01, 0.05)),
        ({1: 56}, (0.0, 0.0, 0.5)),
    ],
)
def test_a_ratio_too_large_says_the_largest_that_works(counts, ratios) -> None:
    """The hint names a ratio (README's thyroid at 5% said only "lower ratio_known_outlier"), and it works."""
    import re

    labels = pool(2000, counts)
    with pytest.raises(InvalidInputError) as info:
        semi_supervised_sample(labels, [0], sorted(counts), [1], *ratios, np.random.default_rng(0))
    name, largest = re.search(r"lower (ratio_\w+) to ([\d.e-]+) or less", str(info.value)).groups()
    fixed = list(ratios)
    fixed[("ratio_known_normal", "ratio_known_outlier", "ratio_pollution").index(name)] = float(largest)
    assert 0 < float(largest) < max(ratios)
    semi_supervised_sample(labels, [0], sorted(counts), [1], *fixed, np.random.default_rng(0))


def test_pollution_with_no_anomaly_left_says_to_set_it_to_zero() -> None:
    labels = pool(1000, {1: 10})  # the 10 labeled anomalies take them all
    with pytest.raises(InvalidInputError, match="set ratio_pollution to 0, or lower ratio_known_outlier"):
        semi_supervised_sample(labels, [0], [1], [1], 0.0, 0.01, 0.05, np.random.default_rng(0))
