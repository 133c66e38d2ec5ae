"""Kernel SSAD: semi-supervised anomaly detection (Görnitz, Kloft, Rieck and Brefeld, JAIR 2013).

The primal, with labels ``y_j = +1`` (labeled normal) and ``y_j = -1`` (labeled anomaly)::

    min_{w, rho, gamma >= 0, xi >= 0}  1/2 ||w||^2 - rho - kappa * gamma
                                       + eta_u * sum_{i unlabeled} xi_i + eta_l * sum_{j labeled} xi_j
    s.t.  <w, phi(x_i)> >= rho - xi_i                       (unlabeled)
          y_j <w, phi(x_j)> >= y_j rho + gamma - xi_j         (labeled)

and the convex dual that is solved here (with ``y_i = +1`` for unlabeled samples)::

    max_alpha  -1/2 sum_ij alpha_i alpha_j y_i y_j k(x_i, x_j)
    s.t.       0 <= alpha_i <= eta_u (unlabeled) or eta_l (labeled),
               sum_i y_i alpha_i = 1,
               sum_{j labeled} alpha_j >= kappa.

``kappa`` weighs the margin ``gamma`` of the labeled samples; without labeled samples its constraint
is dropped and SSAD is the one-class SVM with ``nu = 1 / (eta_u n)``. The reference code builds its
solver with ``kappa`` left at its default whatever it is given; here ``kappa``, ``eta_u`` and ``eta_l``
all act. The QP is solved by CVXOPT's interior-point ``qp``. The score is ``rho - <w, phi(x)>`` (higher
= more anomalous; ``rho`` from the free unlabeled support vectors), computed from the stored support
vectors and coefficients, so a loaded model scores exactly like the fitted one.

The RBF ``gamma`` is chosen from {2^-7, ..., 2^2} by AUROC on the validation split (``selection``:
``cv`` cross-validates over the labeled training samples, ``paper_test_holdout`` is the reference
code's leaky choice on a tenth of the test set; :mod:`sadkit.plugins.shallow.selection`); ties go to
the higher AUPRC, then to the smaller ``gamma``.
Without a validation split holding normals and anomalies, ``gamma = 1 / (n_features * Var(X))``.

The dual needs the ``n x n`` kernel matrix in memory, several times over, and time cubic in ``n``:
a training set whose QP would not fit in the available memory is refused with an error that says how
to subsample (``max_samples``, a seeded subsample that keeps every labeled sample).
"""

from __future__ import annotations

import os
import warnings
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
    squared_distances,
    subsample,
    to_numpy,
)
from .selection import check_selection, select_model

GAMMA_GRID = tuple(2.0**k for k in range(-7, 3))
#: float64 matrices of n x n the solve holds at once (distances, kernel, CVXOPT's P and its KKT factor)
QP_MATRICES = 5
#: above this many samples a fit takes minutes per kernel width: warn
SLOW_SAMPLES = 5000
#: dual variables below this are not support vectors
SV_TOLERANCE = 1e-9


def available_memory_bytes() -> int:
    """Memory the system can still give this process (``MemAvailable``; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 1024**3


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1024**3:.1f} GiB" if n_bytes >= 1024**3 else f"{n_bytes / 1024**2:.1f} MiB"


def qp_memory_bytes(n: int) -> int:
    """Estimated peak memory of the dual QP on ``n`` samples."""
    return QP_MATRICES * 8 * int(n) ** 2


def solve_dual(K: np.ndarray, semi_y: np.ndarray, kappa: float, eta_u: float, eta_l: float) -> tuple[np.ndarray, str]:
    """Solve SSAD's dual for the kernel matrix ``K``; return ``alpha`` and CVXOPT's status.

    Raises:
        InvalidInputError: the constraints admit no solution (e.g. ``kappa`` above what the labeled
            samples' bounds allow).
    """
    from cvxopt import matrix, solvers, sparse, spmatrix

    n = len(semi_y)
    y = np.where(semi_y == -1, -1.0, 1.0)
    labeled = (semi_y != 0).astype(np.float64)
    upper = np.where(semi_y == 0, float(eta_u), float(eta_l))
    P = matrix(K * np.outer(y, y))
    q = matrix(0.0, (n, 1))
    eye = spmatrix(1.0, range(n), range(n))
    blocks, bounds = [eye, -eye], [upper, np.zeros(n)]
    if labeled.any():
        blocks.append(matrix(-labeled, (1, n)))
        bounds.append(np.array([-float(kappa)]))
    G = sparse(blocks)
    h = matrix(np.concatenate(bounds))
    A = matrix(y, (1, n))
    b = matrix(1.0)
    try:
        solution = solvers.qp(P, q, G, h, A, b, options={"show_progress": False})
    except (ValueError, ArithmeticError) as err:
        raise InvalidInputError(f"SSAD: the dual QP cannot be solved ({err}); check kappa, eta_u and eta_l") from err
    status = solution["status"]
    if status in ("primal infeasible", "dual infeasible"):
        raise InvalidInputError(
            f"SSAD: the dual QP is {status}: kappa={kappa}, eta_u={eta_u} and eta_l={eta_l} admit no solution"
            f" with {int(labeled.sum())} labeled of {n} samples; lower kappa or raise eta_l"
        )
    return np.asarray(solution["x"], dtype=np.float64).reshape(-1), status


class SSAD(FeatureDetector):
    """Kernel SSAD (Görnitz et al. 2013) with a Gaussian kernel, on raw or autoencoder features.

    Args:
        kappa: weight of the margin of the labeled samples (reference: 1).
        eta_u: bound of the dual variables of unlabeled samples, the C of their slacks (reference: 1).
        eta_l: the same for labeled samples (reference: 1).
        gamma: RBF kernel ``exp(-gamma ||x - x'||^2)``; None chooses it on the validation split from
            {2^-7, ..., 2^2}.
        max_samples: solve on a seeded subsample of this many training samples that keeps every
            labeled sample (None: all, if the QP fits in memory).
        selection: ``validation`` (default), ``cv`` or ``paper_test_holdout`` (leaky; see
            :mod:`sadkit.plugins.shallow.selection`).
        features, net_name, net_params, ae_run_id, ae_tracking_uri, ae_*: as
            :class:`sadkit.plugins.shallow.ocsvm.OCSVM` (``features="ae"`` is the paper's hybrid SSAD).
        device: where the autoencoder trains.
        seed: drives the subsample (and the autoencoder); None draws one.
    """

    fast_params = dict(FAST_AE)

    def __init__(
        self,
        kappa: float = 1.0,
        eta_u: float = 1.0,
        eta_l: float = 1.0,
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
        self.kappa = kappa
        self.eta_u = eta_u
        self.eta_l = eta_l
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
        """The RBF width, and kappa, eta_u, eta_l around the reference's 1, 1, 1.

        The ranges keep every sampled point feasible whenever there is a labeled sample and more than
        100 unlabeled ones: ``kappa <= 1 <= eta_l`` (so ``kappa <= eta_l * n_labeled``) and
        ``eta_u * n_unlabeled >= 2 >= 1 + kappa`` (the unlabeled bounds can carry the equality
        constraint). Wider ranges would make many trials fail on the dual's infeasibility.
        """
        return {
            "gamma": trial.suggest_float("gamma", 2.0**-7, 2.0**2, log=True),
            "kappa": trial.suggest_float("kappa", 0.1, 1.0, log=True),
            "eta_u": trial.suggest_float("eta_u", 0.02, 10.0, log=True),
            "eta_l": trial.suggest_float("eta_l", 1.0, 10.0, log=True),
        }

    def _validate_params(self) -> None:
        super()._validate_params()
        self._reject_invalid(
            {
                "kappa": float(self.kappa) >= 0,
                "eta_u": float(self.eta_u) > 0,
                "eta_l": float(self.eta_l) > 0,
                "gamma": self.gamma is None or float(self.gamma) > 0,
            },
            "kappa >= 0; eta_u, eta_l and gamma > 0",
        )
        check_max_samples(self.max_samples)
        check_selection("SSAD", self.selection)

    def _fit_features(self, Z, semi_y, *, eval_set, seed) -> None:
        idx = subsample(semi_y, self.max_samples, np.random.default_rng(seed))
        Z, semi_y = Z[idx], semi_y[idx]
        n = len(Z)
        need, have = qp_memory_bytes(n), available_memory_bytes()
        if need > have:
            fits = int(np.sqrt(have / (QP_MATRICES * 8)))
            raise InvalidInputError(
                f"SSAD on {n} training samples needs about {_size(need)} for its kernel matrix and QP, but"
                f" only {_size(have)} of memory are available; subsample with"
                f" max_samples=N (N <= {fits} fits; a seeded subsample that keeps every labeled sample)"
            )
        if n > SLOW_SAMPLES:
            warnings.warn(
                f"SSAD on {n} samples: the QP takes time cubic in the samples (minutes per kernel width or"
                f" more); max_samples={SLOW_SAMPLES} subsamples",
                UserWarning,
                stacklevel=2,
            )
        kappa, eta_u, eta_l = float(self.kappa), float(self.eta_u), float(self.eta_l)
        n_labeled = int((semi_y != 0).sum())
        if n_labeled and kappa > eta_l * n_labeled:
            raise InvalidInputError(
                f"SSAD: kappa={kappa} exceeds what the {n_labeled} labeled samples can carry (eta_l * n_labeled ="
                f" {eta_l * n_labeled}); lower kappa or raise eta_l"
            )
        D = squared_distances(Z, Z)

        def fit(candidate: dict[str, float], rows: np.ndarray | None = None) -> dict[str, Any]:
            gamma = candidate["gamma"]
            rows = np.arange(n) if rows is None else rows
            K = np.exp(-gamma * D[np.ix_(rows, rows)])
            alpha, status = solve_dual(K, semi_y[rows], kappa, eta_u, eta_l)
            return _model_from_dual(K, Z[rows], semi_y[rows], alpha, gamma, eta_u, status)

        gammas = [float(self.gamma)] if self.gamma is not None else list(GAMMA_GRID)
        self.selection_: list[dict[str, Any]] = []
        found = select_model(
            self.selection, [{"gamma": g} for g in gammas], fit, _ssad_scores, eval_set=eval_set, Z=Z,
            semi_y=semi_y, seed=seed, owner="SSAD",
        )  # fmt: skip
        if found is not None:
            chosen, model, self.selection_, how = found
        else:
            chosen = {"gamma": gammas[0] if self.gamma is not None else gamma_scale(Z)}
            model = fit(chosen)
            how = "given" if self.gamma is not None else "default"
        if model["status"] != "optimal":
            warnings.warn(
                f"SSAD: CVXOPT stopped with status {model['status']!r}; the solution may be inaccurate",
                UserWarning,
                stacklevel=2,
            )
        self.model_ = model
        self.selected_ = {"gamma": chosen["gamma"], "selection": how, "n_fit": n}

    def _score_features(self, Z: np.ndarray) -> np.ndarray:
        return _ssad_scores(self.model_, Z)

    @property
    def alpha_sum_labeled_(self) -> float:
        """``sum_{j labeled} alpha_j`` of the solution (at least ``kappa`` when labels exist)."""
        return float(self.model_["alpha_labeled"])

    def _get_model_state(self) -> dict[str, Any]:
        return dict(self.model_)

    def _set_model_state(self, state: dict[str, Any]) -> None:
        self.model_ = {
            "support": to_numpy(state["support"]),
            "coef": to_numpy(state["coef"]),
            "rho": float(state["rho"]),
            "gamma": float(state["gamma"]),
            "alpha_labeled": float(state["alpha_labeled"]),
            "status": str(state["status"]),
        }


def _model_from_dual(
    K: np.ndarray, Z: np.ndarray, semi_y: np.ndarray, alpha: np.ndarray, gamma: float, eta_u: float, status: str
) -> dict[str, Any]:
    """Support vectors, their coefficients ``alpha_i y_i`` and the offset ``rho``."""
    y = np.where(semi_y == -1, -1.0, 1.0)
    sv = np.flatnonzero(alpha > SV_TOLERANCE)
    coef = alpha[sv] * y[sv]
    margin = K[:, sv] @ coef  # <w, phi(x_i)> for every training sample
    unlabeled_sv = sv[semi_y[sv] == 0]
    free = unlabeled_sv[alpha[unlabeled_sv] < eta_u * (1 - 1e-6)]
    if len(free):  # 0 < alpha_i < eta_u: the constraint is tight, <w, phi(x_i)> = rho
        rho = float(np.mean(margin[free]))
    elif len(unlabeled_sv):
        rho = float(np.max(margin[unlabeled_sv]))
    else:
        rho = float(np.min(margin)) if len(margin) else 0.0
    return {
        "support": np.ascontiguousarray(Z[sv]),
        "coef": coef,
        "rho": rho,
        "gamma": float(gamma),
        "alpha_labeled": float(alpha[semi_y != 0].sum()),
        "status": status,
    }


def _ssad_scores(model: dict[str, Any], Z: np.ndarray) -> np.ndarray:
    """``rho - <w, phi(z)>``: positive outside the learned region."""
    return model["rho"] - rbf_expansion(Z, model["support"], model["coef"], model["gamma"])
