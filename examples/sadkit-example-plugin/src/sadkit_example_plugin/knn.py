"""k-nearest-neighbour anomaly detection: a complete sadkit detector in one small file.

A sample's score is the distance to its k-th nearest training sample (``aggregate="kth"``, Ramaswamy
et al. 2000) or the mean distance to its k nearest (``aggregate="mean"``, Angiulli and Pizzuti 2002).
Labeled anomalies are left out of the reference set (``exclude_labeled_anomalies``), so a known anomaly
never makes its neighbourhood look normal.

What a detector plugin implements (see ``sadkit.Detector``): ``__init__`` that only stores its
keyword arguments; optionally ``_validate_params`` to check them (``fit`` calls it before ``_fit``);
``_fit`` (with labels ``y``: 1 anomaly, 0 normal, -1 unlabeled) and ``_score`` on validated float32
arrays; ``_get_state`` and ``_set_state`` with arrays and numbers only (no pickle); optionally
``search_space`` for Optuna and ``fast_params`` for the conformance checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sadkit import Detector, InvalidInputError

AGGREGATES = ("mean", "kth")
_BLOCK_ENTRIES = 1 << 22


class KNN(Detector):
    """Distance to the k nearest training samples; higher means more anomalous.

    Args:
        n_neighbors: k.
        aggregate: ``mean`` (mean distance to the k nearest) or ``kth`` (distance to the k-th).
        exclude_labeled_anomalies: leave labeled anomalies (``y = 1``) out of the reference set.
    """

    fast_params = {"n_neighbors": 3}

    def __init__(self, n_neighbors: int = 5, aggregate: str = "mean", exclude_labeled_anomalies: bool = True) -> None:
        self.n_neighbors = n_neighbors
        self.aggregate = aggregate
        self.exclude_labeled_anomalies = exclude_labeled_anomalies

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "n_neighbors": trial.suggest_int("n_neighbors", 1, 50, log=True),
            "aggregate": trial.suggest_categorical("aggregate", list(AGGREGATES)),
        }

    def _validate_params(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise InvalidInputError(f"knn: aggregate must be 'mean' or 'kth', got {self.aggregate!r}")
        if int(self.n_neighbors) != self.n_neighbors or int(self.n_neighbors) < 1:
            raise InvalidInputError(f"knn: n_neighbors must be an integer >= 1, got {self.n_neighbors!r}")

    def _fit(self, X: np.ndarray, y: np.ndarray, *, eval_set, callbacks) -> None:
        keep = y != 1 if self.exclude_labeled_anomalies else np.ones(len(X), dtype=bool)
        reference = X[keep].reshape(int(keep.sum()), -1).astype(np.float64)
        if len(reference) < int(self.n_neighbors):
            raise InvalidInputError(
                f"knn: n_neighbors={self.n_neighbors} but only {len(reference)} training samples remain to compare"
                " with; lower n_neighbors"
            )
        self.reference_ = reference

    def _score(self, X: np.ndarray) -> np.ndarray:
        X = X.reshape(len(X), -1).astype(np.float64)
        ref = self.reference_
        k = int(self.n_neighbors)
        ref_sq = np.einsum("ij,ij->i", ref, ref)
        out = np.empty(len(X))
        step = max(1, _BLOCK_ENTRIES // len(ref))
        for start in range(0, len(X), step):
            block = X[start : start + step]
            d2 = np.einsum("ij,ij->i", block, block)[:, None] + ref_sq[None, :] - 2.0 * block @ ref.T
            nearest = np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, :k], 0.0))
            out[start : start + step] = nearest.max(axis=1) if self.aggregate == "kth" else nearest.mean(axis=1)
        return out

    def _get_state(self) -> dict[str, Any]:
        return {"reference": self.reference_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.reference_ = state["reference"].numpy()
