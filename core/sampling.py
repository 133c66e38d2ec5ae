"""The paper's semi-supervised sampling protocol, implemented once for every dataset.

Ruff et al. (2020) and their code fix, with a 4-equation linear system, how many labeled normals,
unlabeled normals, unlabeled (polluting) anomalies and labeled anomalies a training set holds. Two bugs of
the reference code are fixed here: labeled and unlabeled anomalies never share a sample, and the
validation split is carved from the sampled training set (so train, validation and test never overlap).
The indices and semi-supervised codes it returns are the paper's (+1 labeled normal, -1 labeled anomaly,
0 unlabeled); :meth:`sadkit.Dataset.semi_supervised_splits` turns them into the users' labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InvalidInputError

#: the paper's code convention for semi-supervised labels, used only where asked for by name (``semi_y``):
#: +1 labeled normal, -1 labeled anomaly, 0 unlabeled. Detectors' ``_fit`` hooks receive it.
LABELED_NORMAL = 1
LABELED_ANOMALY = -1
SEMI_UNLABELED = 0


def check_ratio(name: str, value: float, *, upper_open: bool = False) -> float:
    """Return ``value`` as a float or raise when it is outside [0, 1] (or [0, 1))."""
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be a number in [0, 1], got {value!r}") from err
    if not (0.0 <= value <= 1.0) or (upper_open and value == 1.0):
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise InvalidInputError(f"{name} must be in {bound}, got {value}")
    return value


@dataclass(frozen=True)
class SemiSupervisedSample:
    """Indices chosen by :func:`semi_supervised_sample` (into the pool it was given)."""

    known_normal: np.ndarray
    unlabeled_normal: np.ndarray
    unlabeled_anomaly: np.ndarray
    known_anomaly: np.ndarray

    def indices_and_semi_labels(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.concatenate(
            [self.known_normal, self.unlabeled_normal, self.unlabeled_anomaly, self.known_anomaly]
        ).astype(np.int64)
        semi = np.concatenate(
            [
                np.full(len(self.known_normal), LABELED_NORMAL),
                np.zeros(len(self.unlabeled_normal) + len(self.unlabeled_anomaly)),
                np.full(len(self.known_anomaly), LABELED_ANOMALY),
            ]
        ).astype(np.int64)
        return idx, semi


def sample_counts(
    n_normal: int, ratio_known_normal: float, ratio_known_outlier: float, ratio_pollution: float
) -> tuple[int, int, int, int]:
    """Solve the paper's system for (known normal, unlabeled normal, unlabeled anomaly, known anomaly).

    All normals of the pool are used; ``ratio_known_normal`` and ``ratio_known_outlier`` are fractions
    of the whole training set, ``ratio_pollution`` the fraction of anomalies among unlabeled samples.
    Counts are truncated to integers as in the reference code.
    """
    r_n, r_a, r_p = ratio_known_normal, ratio_known_outlier, ratio_pollution
    a = np.array(
        [
            [1, 1, 0, 0],
            [1 - r_n, -r_n, -r_n, -r_n],
            [-r_a, -r_a, -r_a, 1 - r_a],
            [0, -r_p, 1 - r_p, 0],
        ],
        dtype=np.float64,
    )
    b = np.array([n_normal, 0, 0, 0], dtype=np.float64)
    try:
        x = np.linalg.solve(a, b)
    except np.linalg.LinAlgError as err:
        raise InvalidInputError(
            "these ratios admit no training set (ratio_known_normal + ratio_known_outlier must not"
            f" exceed 1): {ratio_known_normal}, {ratio_known_outlier}, {ratio_pollution}"
        ) from err
    if (x < -1e-6).any():
        raise InvalidInputError(
            "these ratios admit no training set: ratio_known_normal + ratio_known_outlier must not"
            f" exceed 1 (got {ratio_known_normal} + {ratio_known_outlier})"
        )
    counts = tuple(max(0, int(v + 1e-9)) for v in x)
    return counts  # type: ignore[return-value]


def _largest_ratio(fits: Callable[[float], bool], too_large: float) -> float:
    """The largest ratio below ``too_large`` for which ``fits`` holds (it holds at 0 and, the counts
    growing with the ratio, up to some point), rounded down to two significant digits for a message."""
    low, high = 0.0, too_large
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    if low <= 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(low)) - 1)
    return math.floor(low / step) * step


def semi_supervised_sample(
    labels: np.ndarray,
    normal_classes: Sequence[int],
    outlier_classes: Sequence[int],
    known_outlier_classes: Sequence[int],
    ratio_known_normal: float,
    ratio_known_outlier: float,
    ratio_pollution: float,
    rng: np.random.Generator,
) -> SemiSupervisedSample:
    """Draw the semi-supervised training set from a pool with class ``labels``.

    Labeled anomalies are drawn first, from the known anomaly classes; the polluting unlabeled
    anomalies are then drawn from every anomaly class, excluding those already labeled.

    Raises:
        InvalidInputError: a ratio outside [0, 1], or more labeled or polluting anomalies asked for
            than the pool holds.
    """
    r_n = check_ratio("ratio_known_normal", ratio_known_normal)
    r_a = check_ratio("ratio_known_outlier", ratio_known_outlier, upper_open=True)
    r_p = check_ratio("ratio_pollution", ratio_pollution, upper_open=True)
    labels = np.asarray(labels)
    idx_normal = np.flatnonzero(np.isin(labels, normal_classes))
    idx_outlier = np.flatnonzero(np.isin(labels, outlier_classes))
    idx_known_candidates = np.flatnonzero(np.isin(labels, known_outlier_classes))
    if len(idx_normal) == 0:
        raise InvalidInputError(f"the training pool has no sample of the normal class(es) {list(normal_classes)}")

    n_kn, n_un, n_ua, n_ka = sample_counts(len(idx_normal), r_n, r_a, r_p)
    if n_ka > len(idx_known_candidates):
        largest = _largest_ratio(
            lambda r: sample_counts(len(idx_normal), r_n, r, r_p)[3] <= len(idx_known_candidates), r_a
        )
        raise InvalidInputError(
            f"ratio_known_outlier={r_a} asks for {n_ka} labeled anomalies but the training pool holds"
            f" only {len(idx_known_candidates)} of the known anomaly class(es)"
            f" {list(known_outlier_classes)}; lower ratio_known_outlier to {largest:g} or less"
        )

    known_anomaly = rng.permutation(idx_known_candidates)[:n_ka]
    remaining_outliers = np.setdiff1d(idx_outlier, known_anomaly)
    if n_ua > len(remaining_outliers):
        if len(remaining_outliers):
            largest = _largest_ratio(
                lambda r: sample_counts(len(idx_normal), r_n, r_a, r)[2] <= len(remaining_outliers), r_p
            )
            todo = f"lower ratio_pollution to {largest:g} or less (or ratio_known_outlier)"
        else:
            todo = "set ratio_pollution to 0, or lower ratio_known_outlier"
        raise InvalidInputError(
            f"ratio_pollution={r_p} asks for {n_ua} unlabeled anomalies but only"
            f" {len(remaining_outliers)} anomalies are left after drawing {n_ka} labeled ones; {todo}"
        )
    perm_normal = rng.permutation(idx_normal)
    return SemiSupervisedSample(
        known_normal=perm_normal[:n_kn],
        unlabeled_normal=perm_normal[n_kn : n_kn + n_un],
        unlabeled_anomaly=rng.permutation(remaining_outliers)[:n_ua],
        known_anomaly=known_anomaly,
    )


def stratified_holdout(strata: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..n-1`` into (kept, held out), holding out ``fraction`` of every stratum.

    Each stratum gives ``fraction * size`` samples rounded half up, so small strata (a handful of labeled
    anomalies) are split as evenly as they can be. Both outputs are sorted.
    """
    fraction = check_ratio("val_fraction", fraction, upper_open=True)
    strata = np.asarray(strata)
    held: list[np.ndarray] = []
    for value in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == value))
        held.append(members[: int(np.floor(fraction * len(members) + 0.5))])  # half rounds up
    held_out = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(strata)), held_out)
    return kept, held_out


def resolve_known_outlier_classes(
    outlier_classes: Sequence[int],
    known_outlier_class: int | None,
    n_known_outlier_classes: int,
    rng: np.random.Generator,
) -> list[int]:
    """The known anomaly classes: none, the given one, or ``n`` drawn by ``rng`` (as in the paper).

    Raises:
        InvalidInputError: an unknown class or more known classes than anomaly classes exist.
    """
    outlier_classes = list(outlier_classes)
    if n_known_outlier_classes < 0:
        raise InvalidInputError(f"n_known_outlier_classes must be >= 0, got {n_known_outlier_classes}")
    if n_known_outlier_classes == 0:
        return []
    if n_known_outlier_classes == 1 and known_outlier_class is not None:
        if known_outlier_class not in outlier_classes:
            raise InvalidInputError(
                f"known_outlier_class={known_outlier_class} is not an anomaly class here;"
                f" choose one of {outlier_classes}"
            )
        return [int(known_outlier_class)]
    if n_known_outlier_classes > len(outlier_classes):
        raise InvalidInputError(
            f"n_known_outlier_classes={n_known_outlier_classes} but only {len(outlier_classes)}"
            f" anomaly classes exist ({outlier_classes})"
        )
    return sorted(int(c) for c in rng.choice(outlier_classes, n_known_outlier_classes, replace=False))
