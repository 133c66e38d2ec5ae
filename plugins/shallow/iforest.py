"""Isolation Forest (Liu et al. 2008), the paper's baseline, on raw or autoencoder features.

It runs on the raw input (``features="raw"``, the default) or, as the paper's *hybrid* variant, on the
encoder features of an autoencoder pretrained the way Deep SAD pretrains (``features="ae"``; see
:mod:`sadkit.plugins.shallow.features`). There is no search: 100 trees on subsamples of 256, as the
paper. The score is ``-score_samples``, i.e. ``2^(-E[h(x)] / c(psi))``: higher = more anomalous.

The fitted forest is stored as the trees' node arrays and always scored from them by numpy code, so a
loaded detector scores exactly like the fitted one; the scoring reimplements scikit-learn's path-length
computation and agrees with ``IsolationForest.score_samples``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sadkit import InvalidInputError

from .features import FAST_AE, FeatureDetector, positive_int, to_numpy


def average_path_length(n: np.ndarray) -> np.ndarray:
    """``c(n)``: the average path length of an unsuccessful search in a binary search tree of n nodes."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    two = n == 2
    more = n > 2
    out[two] = 1.0
    out[more] = 2.0 * (np.log(n[more] - 1.0) + np.euler_gamma) - 2.0 * (n[more] - 1.0) / n[more]
    return out


def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Depth of every node of one tree, the root at depth 1 (as scikit-learn counts)."""
    depth = np.zeros(len(left), dtype=np.float64)
    depth[0] = 1.0
    for node in range(len(left)):  # children always come after their parent in a fitted tree
        if left[node] >= 0:
            depth[left[node]] = depth[node] + 1.0
            depth[right[node]] = depth[node] + 1.0
    return depth


class IsolationForest(FeatureDetector):
    """Isolation Forest (Liu et al. 2008) on raw or autoencoder features: 100 trees on 256 samples each.

    Args:
        n_estimators: number of trees (paper: 100).
        max_samples: samples drawn to grow each tree (paper: 256; the whole set if it is smaller).
        max_features: fraction of features each tree sees (1.0: all).
        features, net_name, net_params, ae_run_id, ae_tracking_uri, ae_*: as :class:`OCSVM`.
        device: where the autoencoder trains.
        seed: drives the trees (and the autoencoder); None draws one.
    """

    uses_labels = False
    fast_params = {**FAST_AE, "n_estimators": 20}

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int = 256,
        max_features: float = 1.0,
        features: str = "raw",
        net_name: str | None = None,
        net_params: dict[str, Any] | None = None,
        ae_run_id: str | None = None,
        ae_tracking_uri: str | None = None,
        ae_n_epochs: int = 150,
        ae_lr: float = 1e-4,
        ae_lr_milestones: Sequence[int] = (50,),
        ae_batch_size: int = 128,
        ae_weight_decay: float = 1e-6,
        device: str = "auto",
        seed: int | None = 0,
        contamination: float = 0.1,
        threshold: str | float | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.features = features
        self.net_name = net_name
        self.net_params = net_params
        self.ae_run_id = ae_run_id
        self.ae_tracking_uri = ae_tracking_uri
        self.ae_n_epochs = ae_n_epochs
        self.ae_lr = ae_lr
        self.ae_lr_milestones = ae_lr_milestones
        self.ae_batch_size = ae_batch_size
        self.ae_weight_decay = ae_weight_decay
        self.device = device
        self.seed = seed
        self.contamination = contamination
        self.threshold = threshold

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "n_estimators": trial.suggest_categorical("n_estimators", [50, 100, 200, 400]),
            "max_samples": trial.suggest_categorical("max_samples", [64, 128, 256, 512]),
            "max_features": trial.suggest_float("max_features", 0.5, 1.0),
        }

    def _validate_params(self) -> None:
        super()._validate_params()
        positive_int("n_estimators", self.n_estimators)
        positive_int("max_samples", self.max_samples)
        if not 0.0 < float(self.max_features) <= 1.0:
            raise InvalidInputError(f"IsolationForest: max_features must be in (0, 1], got {self.max_features!r}")

    def _fit_features(self, Z, semi_y, *, eval_set, seed) -> None:
        from sklearn.ensemble import IsolationForest as SkIsolationForest

        forest = SkIsolationForest(
            n_estimators=int(self.n_estimators),
            max_samples=min(int(self.max_samples), len(Z)),
            max_features=float(self.max_features),
            random_state=seed,
            n_jobs=1,
        ).fit(Z)
        self.forest_ = self.arrays_from_sklearn(forest, Z.shape[1])
        self.selected_ = {}

    @staticmethod
    def arrays_from_sklearn(forest: Any, n_features: int) -> dict[str, Any]:
        """The fitted forest as flat node arrays (children indices are global across trees)."""
        subsampled = forest._max_features != n_features  # scikit-learn indexes features only then
        lefts, rights, feats, thresholds, values, roots = [], [], [], [], [], []
        offset = 0
        for tree, columns in zip(forest.estimators_, forest.estimators_features_, strict=True):
            t = tree.tree_
            left = np.asarray(t.children_left, dtype=np.int64)
            right = np.asarray(t.children_right, dtype=np.int64)
            internal = left >= 0
            feature = np.where(internal, np.asarray(t.feature, dtype=np.int64), 0)
            if subsampled:
                feature = np.where(internal, np.asarray(columns, dtype=np.int64)[feature], 0)
            value = (_node_depths(left, right) + average_path_length(t.n_node_samples)) - 1.0
            lefts.append(np.where(internal, left + offset, -1))
            rights.append(np.where(internal, right + offset, -1))
            feats.append(feature)
            thresholds.append(np.asarray(t.threshold, dtype=np.float64))
            values.append(value)
            roots.append(offset)
            offset += len(left)
        return {
            "left": np.concatenate(lefts),
            "right": np.concatenate(rights),
            "feature": np.concatenate(feats),
            "threshold": np.concatenate(thresholds),
            "value": np.concatenate(values),
            "roots": np.asarray(roots, dtype=np.int64),
            "max_samples": int(forest._max_samples),
            "max_depth": int(max(tree.tree_.max_depth for tree in forest.estimators_)),
        }

    def _score_features(self, Z: np.ndarray) -> np.ndarray:
        f = self.forest_
        roots = f["roots"]
        n_trees = len(roots)
        denominator = n_trees * float(average_path_length(np.array([f["max_samples"]]))[0])
        out = np.empty(len(Z), dtype=np.float64)
        step = max(1, (1 << 21) // n_trees)
        for start in range(0, len(Z), step):
            Zb = Z[start : start + step]
            cols = np.arange(len(Zb))[None, :]
            node = np.repeat(roots[:, None], len(Zb), axis=1)
            for _ in range(f["max_depth"] + 1):
                left = f["left"][node]
                internal = left >= 0
                if not internal.any():
                    break
                go_left = Zb[cols, f["feature"][node]] <= f["threshold"][node]
                node = np.where(internal, np.where(go_left, left, f["right"][node]), node)
            per_tree = f["value"][node]
            depths = np.zeros(len(Zb), dtype=np.float64)
            for t in range(n_trees):  # tree by tree, in order, as scikit-learn adds them up
                depths += per_tree[t]
            ratio = depths / denominator if denominator != 0 else np.ones_like(depths)
            out[start : start + step] = 2 ** (-ratio)
        return out

    def _get_model_state(self) -> dict[str, Any]:
        return dict(self.forest_)

    def _set_model_state(self, state: dict[str, Any]) -> None:
        self.forest_ = {k: (int(v) if k in ("max_samples", "max_depth") else to_numpy(v)) for k, v in state.items()}
