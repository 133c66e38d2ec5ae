"""OC-SVM (Schölkopf et al. 2001), the paper's one-class SVM baseline, on raw or autoencoder features.

It runs on the raw input (``features="raw"``, the default) or, as the paper's *hybrid* variant, on the
encoder features of an autoencoder pretrained the way Deep SAD pretrains (``features="ae"``; see
:mod:`sadkit.plugins.shallow.features`). The score is ``-decision_function``, i.e.
``rho - sum_i alpha_i k(sv_i, x)``: higher = more anomalous.

By default model selection never looks at the test split: ``nu`` is chosen from {0.01, 0.05, 0.1, 0.2,
0.5} and the RBF ``gamma`` from {2^-7, ..., 2^2} (the paper's grids) by AUROC on the *validation* split
that the experiment runner passes to ``fit``; ``selection="cv"`` cross-validates over the labeled
training samples instead, and ``selection="paper_test_holdout"`` reproduces the reference code's leaky
choice on a tenth of the test set (see :mod:`sadkit.plugins.shallow.selection`). Ties go to
the higher validation AUPRC, then to the first candidate in grid order (smallest ``gamma``, then
smallest ``nu``). A value given by the user (``nu=0.1``) leaves the grid. When there is no validation
split with both normals and anomalies (e.g. a dataset with no labeled anomalies), the defaults
``nu=0.1`` and ``gamma="scale"`` (``1 / (n_features * Var(X))``) are used. The choice is reported by
:meth:`selected_params` (logged as ``selected.*`` run parameters).

The model is stored as plain arrays (support vectors and dual coefficients) and always scored from
them by numpy code, so a loaded detector scores exactly like the fitted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sadkit import InvalidInputError

from .features import (
    FAST_AE,
    FeatureDetector,
    check_max_samples,
    gamma_scale,
    rbf_expansion,
    subsample,
    to_numpy,
)
from .selection import check_selection, select_model

#: the paper's grids for OC-SVM
NU_GRID = (0.01, 0.05, 0.1, 0.2, 0.5)
GAMMA_GRID = tuple(2.0**k for k in range(-7, 3))
DEFAULT_NU = 0.1


class OCSVM(FeatureDetector):
    """One-class SVM (Schölkopf et al. 2001) with a Gaussian kernel, on raw or autoencoder features.

    Args:
        nu: upper bound on the fraction of training errors; None chooses it on the validation split
            from {0.01, 0.05, 0.1, 0.2, 0.5} (0.1 without a usable validation split).
        gamma: RBF kernel ``exp(-gamma ||x - x'||^2)``; None chooses it on the validation split from
            {2^-7, ..., 2^2} (``1 / (n_features * Var(X))`` without a usable validation split).
        max_samples: fit on a seeded random subsample of this many training samples (None: all);
            libsvm's time grows about quadratically with the samples, and the grid fits 50 models.
        selection: ``validation`` (default), ``cv`` (cross-validation over the labeled training
            samples) or ``paper_test_holdout`` (the reference's leaky protocol, tagged on the run).
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
    fast_params = dict(FAST_AE)

    def __init__(
        self,
        nu: float | None = None,
        gamma: float | None = None,
        max_samples: int | None = None,
        selection: str = "validation",
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
        self.nu = nu
        self.gamma = gamma
        self.max_samples = max_samples
        self.selection = selection
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
            "nu": trial.suggest_float("nu", 0.01, 0.5, log=True),
            "gamma": trial.suggest_float("gamma", 2.0**-7, 2.0**2, log=True),
        }

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.nu is not None and not 0.0 < float(self.nu) <= 1.0:
            raise InvalidInputError(f"OCSVM: nu must be in (0, 1], got {self.nu!r}")
        if self.gamma is not None and not float(self.gamma) > 0.0:
            raise InvalidInputError(f"OCSVM: gamma must be > 0, got {self.gamma!r}")
        check_max_samples(self.max_samples)
        check_selection("OCSVM", self.selection)

    def _fit_features(self, Z, semi_y, *, eval_set, seed) -> None:
        from sklearn.svm import OneClassSVM

        idx = subsample(semi_y, self.max_samples, np.random.default_rng(seed))
        Z, semi_y = Z[idx], semi_y[idx]

        def fit(candidate: dict[str, float], rows: np.ndarray | None = None) -> dict[str, Any]:
            model = OneClassSVM(kernel="rbf", nu=candidate["nu"], gamma=candidate["gamma"], cache_size=500)
            model.fit(Z if rows is None else Z[rows])
            return {
                "support": np.asarray(model.support_vectors_, dtype=np.float64),
                "coef": np.asarray(model.dual_coef_[0], dtype=np.float64),
                "intercept": float(model.intercept_[0]),
                "gamma": float(candidate["gamma"]),
            }

        nus = [float(self.nu)] if self.nu is not None else list(NU_GRID)
        gammas = [float(self.gamma)] if self.gamma is not None else list(GAMMA_GRID)
        self.selection_: list[dict[str, Any]] = []
        candidates = [{"nu": nu, "gamma": g} for g in gammas for nu in nus]
        found = select_model(
            self.selection, candidates, fit, _ocsvm_scores, eval_set=eval_set, Z=Z, semi_y=semi_y, seed=seed,
            owner="OCSVM",
        )  # fmt: skip
        if found is not None:
            chosen, model, self.selection_, how = found
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
