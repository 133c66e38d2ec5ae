"""The shallow baselines of the paper on scikit-learn: OC-SVM, Isolation Forest and KDE.

Each runs on the raw input (``features="raw"``, the default) or, as the paper's *hybrid* variants, on
the encoder features of an autoencoder pretrained the way Deep SAD pretrains (``features="ae"``; see
:mod:`sadkit.plugins.hybrid`). Scores are always "higher = more anomalous":

* OC-SVM: ``-decision_function``, i.e. ``rho - sum_i alpha_i k(sv_i, x)``;
* Isolation Forest: ``-score_samples``, i.e. ``2^(-E[h(x)] / c(psi))``;
* KDE: ``-log p(x)`` under a Gaussian kernel density estimate.

Model selection never looks at the test split:

* OC-SVM chooses ``nu`` from {0.01, 0.05, 0.1, 0.2, 0.5} and the RBF ``gamma`` from
  {2^-7, ..., 2^2} (the paper's grids) by AUROC on the *validation* split that the experiment
  runner passes to ``fit`` (the reference code chose on a tenth of the test set). Ties go to the
  higher validation AUPRC, then to the first candidate in grid order (smallest ``gamma``, then
  smallest ``nu``). A value given by the user (``nu=0.1``) leaves the grid. When there is no
  validation split with both normals and anomalies (e.g. a dataset with no labeled anomalies), the
  defaults ``nu=0.1`` and ``gamma="scale"`` (``1 / (n_features * Var(X))``) are used. The choice
  is reported by :meth:`selected_params` (logged as ``selected.*`` run parameters).
* KDE chooses its bandwidth by 5-fold cross-validated log-likelihood on the training data, as the
  paper does, from {2^-7, 2^-6.5, ..., 2^5} (the reference's grid {2^0.5, ..., 2^5} extended
  downwards, since the features are scaled to [0, 1]; on the ODDS data the cross-validated optimum
  lies between 2^-5 and 2^-3, inside the grid). A choice at either end of the grid is reported as
  ``selected.at_grid_edge`` so that a truncated search does not go unnoticed.
* Isolation Forest has no search: 100 trees on subsamples of 256, as the paper.

Every model is stored as plain arrays (support vectors and dual coefficients; the trees' node arrays;
the training points and the bandwidth) and always scored from those arrays by numpy code, so a loaded
detector scores exactly like the fitted one. The Isolation Forest scoring reimplements
scikit-learn's path-length computation and agrees with ``IsolationForest.score_samples``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sadkit import InvalidInputError

from .hybrid import (
    FeatureDetector,
    gamma_scale,
    rbf_expansion,
    row_blocks,
    select_on_validation,
    squared_distances,
    subsample,
    to_numpy,
    usable_eval_set,
)

#: the paper's grids for OC-SVM
NU_GRID = (0.01, 0.05, 0.1, 0.2, 0.5)
GAMMA_GRID = tuple(2.0**k for k in range(-7, 3))
DEFAULT_NU = 0.1
#: KDE bandwidths searched by cross-validation: 2^-7, 2^-6.5, ..., 2^5
BANDWIDTH_GRID = tuple(2.0 ** (k / 2) for k in range(-14, 11))

#: parameters that keep the conformance checks quick (the autoencoder ones matter with features=ae)
_FAST_AE = {"ae_n_epochs": 2, "ae_lr_milestones": (1,), "device": "cpu"}


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}") from err
    if number < minimum or number != value:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def _check_max_samples(value: Any) -> int | None:
    return None if value is None else _positive_int("max_samples", value, 2)


# ------------------------------------------------------------------------------------------ OC-SVM
class OCSVM(FeatureDetector):
    """One-class SVM (Schölkopf et al. 2001) with a Gaussian kernel, on raw or autoencoder features.

    Args:
        nu: upper bound on the fraction of training errors; None chooses it on the validation split
            from {0.01, 0.05, 0.1, 0.2, 0.5} (0.1 without a usable validation split).
        gamma: RBF kernel ``exp(-gamma ||x - x'||^2)``; None chooses it on the validation split from
            {2^-7, ..., 2^2} (``1 / (n_features * Var(X))`` without a usable validation split).
        max_samples: fit on a seeded random subsample of this many training samples (None: all);
            libsvm's time grows about quadratically with the samples, and the grid fits 50 models.
        features: ``raw`` or ``ae`` (the encoder features of an autoencoder; the paper's hybrid).
        net_name, net_params: the network whose autoencoder is pretrained (``features="ae"``); the
            experiment runner fills ``net_name`` in from the dataset.
        ae_run_id: load the autoencoder from this earlier MLflow run instead of training one.
        ae_tracking_uri: the tracking store of ``ae_run_id`` (default: ``$MLFLOW_TRACKING_URI`` or
            ``sqlite:///mlflow.db``).
        ae_n_epochs, ae_lr, ae_lr_milestones, ae_batch_size, ae_weight_decay: autoencoder
            pretraining, as Deep SAD's (paper: 150 epochs, lr 1e-4 dropped 10x at epoch 50).
        device: where the autoencoder trains (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        seed: drives the subsample and the autoencoder; None draws one.
    """

    uses_labels = False
    fast_params = dict(_FAST_AE)

    def __init__(
        self,
        nu: float | None = None,
        gamma: float | None = None,
        max_samples: int | None = None,
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
    ) -> None:
        self.nu = nu
        self.gamma = gamma
        self.max_samples = max_samples
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

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "nu": trial.suggest_float("nu", 0.01, 0.5, log=True),
            "gamma": trial.suggest_float("gamma", 2.0**-7, 2.0**2, log=True),
        }

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.nu is not None and not 0.0 < float(self.nu) <= 1.0:
            raise InvalidInputError(f"OCSVM: nu must be in (0, 1], got {self.nu!r}")
        if self.gamma is not None and not float(self.gamma) > 0.0:
            raise InvalidInputError(f"OCSVM: gamma must be > 0, got {self.gamma!r}")
        _check_max_samples(self.max_samples)

    def _fit_features(self, Z, semi_y, *, eval_set, seed) -> None:
        from sklearn.svm import OneClassSVM

        idx = subsample(semi_y, self.max_samples, np.random.default_rng(seed))
        Z = Z[idx]

        def fit(candidate: dict[str, float]) -> dict[str, Any]:
            model = OneClassSVM(kernel="rbf", nu=candidate["nu"], gamma=candidate["gamma"], cache_size=500).fit(Z)
            return {
                "support": np.asarray(model.support_vectors_, dtype=np.float64),
                "coef": np.asarray(model.dual_coef_[0], dtype=np.float64),
                "intercept": float(model.intercept_[0]),
                "gamma": float(candidate["gamma"]),
            }

        nus = [float(self.nu)] if self.nu is not None else list(NU_GRID)
        gammas = [float(self.gamma)] if self.gamma is not None else list(GAMMA_GRID)
        self.selection_: list[dict[str, Any]] = []
        if len(nus) * len(gammas) > 1 and usable_eval_set(eval_set):
            candidates = [{"nu": nu, "gamma": g} for g in gammas for nu in nus]
            chosen, model, self.selection_ = select_on_validation(candidates, fit, _ocsvm_scores, eval_set)
            how = "validation"
        else:
            chosen = {
                "nu": nus[0] if self.nu is not None else DEFAULT_NU,
                "gamma": gammas[0] if self.gamma is not None else gamma_scale(Z),
            }
            model = fit(chosen)
            how = "given" if self.nu is not None and self.gamma is not None else "default"
        self.model_ = model
        self.selected_ = {"nu": chosen["nu"], "gamma": chosen["gamma"], "selection": how, "n_fit": len(Z)}

    def _score_features(self, Z: np.ndarray) -> np.ndarray:
        return _ocsvm_scores(self.model_, Z)

    def _get_model_state(self) -> dict[str, Any]:
        return dict(self.model_)

    def _set_model_state(self, state: dict[str, Any]) -> None:
        self.model_ = {
            "support": to_numpy(state["support"]),
            "coef": to_numpy(state["coef"]),
            "intercept": float(state["intercept"]),
            "gamma": float(state["gamma"]),
        }


def _ocsvm_scores(model: dict[str, Any], Z: np.ndarray) -> np.ndarray:
    """``-decision_function``: ``-(sum_i coef_i k(sv_i, z) + intercept)``."""
    return -(rbf_expansion(Z, model["support"], model["coef"], model["gamma"]) + model["intercept"])


# -------------------------------------------------------------------------------- Isolation Forest
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
    fast_params = {**_FAST_AE, "n_estimators": 20}

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

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "n_estimators": trial.suggest_categorical("n_estimators", [50, 100, 200, 400]),
            "max_samples": trial.suggest_categorical("max_samples", [64, 128, 256, 512]),
            "max_features": trial.suggest_float("max_features", 0.5, 1.0),
        }

    def _validate_params(self) -> None:
        super()._validate_params()
        _positive_int("n_estimators", self.n_estimators)
        _positive_int("max_samples", self.max_samples)
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


# -------------------------------------------------------------------------------------------- KDE
def _gaussian_log_densities(D: np.ndarray, bandwidths: Sequence[float], n_train: int, dim: int) -> np.ndarray:
    """``log p`` for each bandwidth (rows of the result) from squared distances ``D`` (points x training).

    A log-sum-exp shifted by each point's nearest squared distance, which is the largest term for
    every bandwidth: so the shift is computed once, and each bandwidth costs one scaled ``exp`` in a
    reused buffer and a row sum (about 7x faster than ``scipy.special.logsumexp`` per bandwidth, which
    takes the maximum, allocates and checks again each time; the results agree to rounding).
    """
    d_min = D.min(axis=1)
    excess = np.subtract(d_min[:, None], D)  # <= 0
    buffer = np.empty_like(excess)
    out = np.empty((len(bandwidths), len(D)), dtype=np.float64)
    for j, bandwidth in enumerate(bandwidths):
        h2 = float(bandwidth) ** 2
        scale = 1.0 / (2.0 * h2)
        np.multiply(excess, scale, out=buffer)
        np.exp(buffer, out=buffer)
        out[j] = np.log(buffer.sum(axis=1)) - d_min * scale - np.log(n_train) - 0.5 * dim * np.log(2.0 * np.pi * h2)
    return out


class KDE(FeatureDetector):
    """Gaussian kernel density estimation; the score is ``-log p(x)``.

    Args:
        bandwidth: the kernel's standard deviation; None chooses it by ``cv_folds``-fold
            cross-validated log-likelihood on the training data from {2^-7, 2^-6.5, ..., 2^5}.
        cv_folds: folds of the bandwidth search (paper: 5).
        max_samples: keep a seeded random subsample of this many training samples (None: all);
            the search costs about ``n^2`` kernel evaluations per bandwidth.
        features, net_name, net_params, ae_run_id, ae_tracking_uri, ae_*: as :class:`OCSVM`.
        device: where the autoencoder trains.
        seed: drives the folds and the subsample (and the autoencoder); None draws one.
    """

    uses_labels = False
    fast_params = dict(_FAST_AE)

    def __init__(
        self,
        bandwidth: float | None = None,
        cv_folds: int = 5,
        max_samples: int | None = None,
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
    ) -> None:
        self.bandwidth = bandwidth
        self.cv_folds = cv_folds
        self.max_samples = max_samples
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

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {"bandwidth": trial.suggest_float("bandwidth", 2.0**-7, 2.0**5, log=True)}

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.bandwidth is not None and not float(self.bandwidth) > 0.0:
            raise InvalidInputError(f"KDE: bandwidth must be > 0, got {self.bandwidth!r}")
        _positive_int("cv_folds", self.cv_folds, 2)
        _check_max_samples(self.max_samples)

    def _fit_features(self, Z, semi_y, *, eval_set, seed) -> None:
        from sklearn.model_selection import KFold

        folds = int(self.cv_folds)
        rng = np.random.default_rng(seed)
        Z = Z[subsample(semi_y, self.max_samples, rng)]
        self.cv_loglik_: list[float] = []
        if self.bandwidth is not None:
            bandwidth, how = float(self.bandwidth), "given"
        else:
            grid = np.asarray(BANDWIDTH_GRID)
            loglik = np.zeros(len(grid))
            splitter = KFold(n_splits=min(folds, len(Z)), shuffle=True, random_state=seed)
            for train_idx, held_idx in splitter.split(Z):
                train = Z[train_idx]
                for block in row_blocks(len(held_idx), len(train)):
                    D = squared_distances(Z[held_idx[block]], train)
                    loglik += _gaussian_log_densities(D, grid, len(train), Z.shape[1]).sum(axis=1)
            self.cv_loglik_ = loglik.tolist()
            best = int(np.argmax(loglik))
            bandwidth, how = float(grid[best]), "cross-validation"
        self.train_ = Z
        self.bandwidth_ = bandwidth
        self.selected_ = {"bandwidth": bandwidth, "selection": how, "n_fit": len(Z)}
        if how == "cross-validation":
            self.selected_["at_grid_edge"] = best in (0, len(BANDWIDTH_GRID) - 1)

    def _score_features(self, Z: np.ndarray) -> np.ndarray:
        out = np.empty(len(Z), dtype=np.float64)
        for block in row_blocks(len(Z), len(self.train_)):
            D = squared_distances(Z[block], self.train_)
            out[block] = -_gaussian_log_densities(D, [self.bandwidth_], len(self.train_), self.train_.shape[1])[0]
        return out

    def _get_model_state(self) -> dict[str, Any]:
        return {"train": self.train_, "bandwidth": self.bandwidth_, "cv_loglik": list(self.cv_loglik_)}

    def _set_model_state(self, state: dict[str, Any]) -> None:
        self.train_ = to_numpy(state["train"])
        self.bandwidth_ = float(state["bandwidth"])
        self.cv_loglik_ = list(state["cv_loglik"])
