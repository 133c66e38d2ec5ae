"""Protocols that let test data into model selection, kept apart and named so that nobody uses one by mistake.

The Deep SAD reference code chose the kernel baselines' hyperparameters on a tenth of the *test* set.
sadkit never does by default; a detector asks for that protocol by name (its ``selection`` parameter set
to ``paper_test_holdout``), and only then does the experiment runner (:func:`sadkit.experiment.run_experiment`)
carve the holdout out of the test split, hand it to ``fit`` as ``eval_set`` (in place of the validation
split), report every test metric on the rest, and tag the run ``sadkit.leakage=paper_test_holdout``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .data import Split

PAPER_TEST_HOLDOUT = "paper_test_holdout"
#: the run tag naming a leaky protocol
LEAKAGE_TAG = "sadkit.leakage"
#: the reference code's share of the test set used for selection
HOLDOUT_FRACTION = 0.1


def requested_leakage(detector: Any) -> str | None:
    """The leaky protocol ``detector`` asks for by its ``selection`` parameter, or None (the default)."""
    return PAPER_TEST_HOLDOUT if getattr(detector, "selection", None) == PAPER_TEST_HOLDOUT else None


def paper_test_holdout(test: Split, seed: int, fraction: float = HOLDOUT_FRACTION) -> tuple[Split, Split]:
    """The reference code's selection holdout: ``(holdout, rest)`` of the test split.

    As the reference: ``n = int(fraction * len(test))`` samples, ``int(n * share)`` of each class
    (normal, anomaly) in its share of the test split, drawn at random (seeded by ``seed``). The
    reference then evaluates on the whole test set, holdout included; here the rest is the test split
    that is reported, so the reported numbers are at least not on the samples selected on.
    """
    y = np.asarray(test.y)
    n = int(fraction * len(y))
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(17,)))
    perm = rng.permutation(len(y))
    picked = []
    for label in (0, 1):
        share = int(n * np.mean(y == label)) if len(y) else 0
        picked.append(perm[y[perm] == label][:share])
    holdout = np.sort(np.concatenate(picked)).astype(np.int64)
    rest = np.setdiff1d(np.arange(len(y)), holdout)
    return _take(test, holdout), _take(test, rest)


def _take(split: Split, index: np.ndarray) -> Split:
    return Split(split.X[index], np.asarray(split.y)[index], labels=split.labels[index], ids=split.ids[index])
