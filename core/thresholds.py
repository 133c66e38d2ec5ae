"""From scores to decisions: how a fitted detector chooses ``threshold_`` and turns scores into 0/1 labels
and probabilities (PyOD's vocabulary).

Two rules, chosen by the detector's ``threshold`` parameter:

* ``contamination`` (the default, PyOD's meaning): the fraction of *training* samples flagged as
  anomalies; ``threshold_`` is the ``1 - contamination`` quantile of the training scores.
* ``"fpr:A"``: a target false-alarm rate on the labeled normals of the validation split
  (``eval_set`` rows with ``y == 0``): ``threshold_`` is their ``1 - A`` quantile, so at most a fraction
  ``A`` of them is flagged. Without such normals it is an error saying so.

A number (``threshold=2.5``) fixes the threshold on the score scale. A sample is flagged when its score is
*above* ``threshold_`` (PyOD: ``score > threshold_``). The fitted detector keeps 1,001 quantiles of its
training scores, so ``sadkit score --threshold contamination:0.05`` can choose another threshold later
without the training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError

#: quantiles of the training scores kept with a fitted detector (0%, 0.1%, ..., 100%)
N_QUANTILES = 1001


@dataclass(frozen=True)
class ThresholdRule:
    """A parsed threshold: ``kind`` is ``contamination``, ``fpr`` or ``value``; ``amount`` its number."""

    kind: str
    amount: float

    def describe(self) -> str:
        return {
            "contamination": f"{self.amount:g} of the training samples flagged (contamination)",
            "fpr": f"false-alarm rate {self.amount:g} on the validation split's labeled normals",
            "value": f"fixed at {self.amount:g}",
        }[self.kind]


def parse_threshold(threshold: Any, contamination: Any = 0.1) -> ThresholdRule:
    """The rule of a detector's ``threshold`` and ``contamination`` parameters.

    ``threshold`` may be None (use ``contamination``), a number, or a string ``contamination:F``,
    ``fpr:A`` or a number.

    Raises:
        InvalidInputError: anything else, or a fraction outside (0, 0.5] (contamination) / (0, 1) (fpr).
    """
    if threshold is None:
        return ThresholdRule("contamination", _fraction("contamination", contamination, upper=0.5))
    if isinstance(threshold, (int, float, np.integer, np.floating)) and not isinstance(threshold, bool):
        if not np.isfinite(threshold):
            raise InvalidInputError(f"threshold must be a finite number, got {threshold!r}")
        return ThresholdRule("value", float(threshold))
    if isinstance(threshold, str):
        kind, sep, amount = threshold.strip().partition(":")
        if not sep:
            try:
                return parse_threshold(float(kind), contamination)
            except ValueError:
                pass
        elif kind in ("contamination", "fpr"):
            upper = 0.5 if kind == "contamination" else 1.0
            return ThresholdRule(kind, _fraction(kind, amount, upper=upper, open_upper=kind == "fpr"))
    raise InvalidInputError(
        f"threshold must be None (use contamination), a number, 'contamination:F' or 'fpr:A'; got {threshold!r}"
    )


def _fraction(name: str, value: Any, *, upper: float, open_upper: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from err
    if not (0.0 < value <= upper) or (open_upper and value == upper):
        bound = f"(0, {upper:g})" if open_upper else f"(0, {upper:g}]"
        raise InvalidInputError(f"{name} must be in {bound}, got {value!r}")
    return value


def choose_threshold(rule: ThresholdRule, train_scores: np.ndarray, val_normal_scores: np.ndarray | None) -> float:
    """``threshold_`` under ``rule`` (see the module docstring).

    Raises:
        InvalidInputError: ``fpr`` without labeled normals in the validation split.
    """
    if rule.kind == "value":
        return rule.amount
    if rule.kind == "contamination":
        return float(np.percentile(train_scores, 100.0 * (1.0 - rule.amount)))
    if val_normal_scores is None or len(val_normal_scores) == 0:
        raise InvalidInputError(
            f"threshold='fpr:{rule.amount:g}' needs labeled normals in the validation split (eval_set rows with"
            " y = 0), and there are none; label some normals (or raise val_fraction), or use contamination"
        )
    return float(np.quantile(val_normal_scores, 1.0 - rule.amount, method="higher"))  # at most A flagged


def score_quantiles(train_scores: np.ndarray) -> np.ndarray:
    """The :data:`N_QUANTILES` quantiles of the training scores (kept with a fitted detector)."""
    return np.quantile(np.asarray(train_scores, dtype=np.float64), np.linspace(0.0, 1.0, N_QUANTILES))


def threshold_from_quantiles(quantiles: np.ndarray, contamination: float) -> float:
    """The ``contamination`` threshold recomputed from :func:`score_quantiles` (interpolated)."""
    levels = np.linspace(0.0, 1.0, len(quantiles))
    return float(np.interp(1.0 - contamination, levels, quantiles))


def linear_proba(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """PyOD's ``predict_proba(method="linear")``: scores min-max scaled by the training range, clipped to
    [0, 1]; columns ``[P(normal), P(anomaly)]``."""
    span = high - low
    anomaly = np.clip((scores - low) / span, 0.0, 1.0) if span > 0 else (scores > high).astype(np.float64)
    return np.column_stack([1.0 - anomaly, anomaly])
