"""Evaluation metrics. Label 1 is an anomaly; a higher score means more anomalous."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _prepare(y_true, scores) -> tuple[np.ndarray, np.ndarray] | None:
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if y.size == 0 or np.unique(y).size < 2:
        return None
    return y, s


def auroc(y_true, scores) -> float:
    """Area under the ROC curve; NaN when ``y_true`` holds only one class.

    For 0/1 labels it is computed as the Mann-Whitney statistic from the scores' ranks (ties count a half,
    as in scikit-learn's ``roc_auc_score``, which gives the same value up to float rounding): a training
    epoch evaluates it for every model, and scikit-learn's input validation alone costs about 8 ms a call.
    """
    prepared = _prepare(y_true, scores)
    if prepared is None:
        return math.nan
    y, s = prepared
    positive = y == 1
    if not np.all(positive | (y == 0)):
        return float(roc_auc_score(y, s))
    n_pos = int(positive.sum())
    n_neg = y.size - n_pos
    ranks = rankdata(s)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(y_true, scores) -> float:
    """Average precision with the anomalies as the positive class; NaN with one class."""
    prepared = _prepare(y_true, scores)
    return math.nan if prepared is None else float(average_precision_score(*prepared))


def roc(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates of the ROC curve (empty arrays with one class)."""
    prepared = _prepare(y_true, scores)
    if prepared is None:
        return np.empty(0), np.empty(0)
    fpr, tpr, _ = roc_curve(*prepared)
    return fpr, tpr


def decision_metrics(y: Any, scores: np.ndarray, threshold: float, split: str) -> dict[str, float]:
    """Precision, recall and F1 of the 0/1 decisions at ``threshold`` on a split with ground truth, and
    the fraction it flags (NaN where a split has no anomaly or no sample)."""
    y = np.asarray(y)
    known = y != -1
    flagged = scores[known] > threshold
    truth = y[known] == 1
    tp = float((flagged & truth).sum())
    precision = tp / flagged.sum() if flagged.any() else math.nan
    recall = tp / truth.sum() if truth.any() else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else math.nan
    return {
        f"{split}_precision": precision,
        f"{split}_recall": recall,
        f"{split}_f1": f1,
        f"{split}_flagged": float(flagged.mean()) if len(flagged) else math.nan,
    }
