"""An active layer on any detector's per-sample signal (after Pimentel et al., arXiv 1805.09411).

Pimentel et al. turn an unsupervised deep anomaly detector into an active one with a small layer on top
of the detector's per-sample signal, trained on the labels an expert gives for the samples it queries.
Here that layer is a detector of its own, ``active``, wrapping any registered detector (``base``) that
offers :meth:`sadkit.Detector.signal`::

    logit(x) = a * t(s(x)) + w . t(f(x)) + b        p(anomaly | x) = sigmoid(logit(x))

with ``s`` the base detector's score, ``f`` its signal vector (ESAD: per-input reconstruction errors and
the squared second code; Deep SAD / Deep SVDD: the squared distance to the center per dimension; both
are the terms whose sum is the score), ``t`` the monotone ``sign(v) log(1 + |v|)`` followed by
standardisation with the training set's mean and deviation (distances are heavy-tailed). The layer
starts as the base detector: ``a = 1``, ``w = 0`` and ``b`` such that ``p = 0.5`` at the ``1 - prior``
quantile of the training scores, so before any label the ranking is the base detector's. It is fitted
by maximum a posteriori logistic regression on the labeled samples (labeled anomalies ``semi_y = -1``
are class 1, labeled normals ``+1`` class 0, classes weighted to balance), with a Gaussian prior of
precision ``l2`` pulling ``(a, w, b)`` back to that start: a convex problem with box constraints,
solved to convergence with L-BFGS-B in float64, so the same labels give the same layer.

Labels must not make the layer worse (issue 17). The samples an active loop queries are chosen *by the
score* (``top``: the highest; ``uncertain``: those near the boundary), so among the labeled samples the
score hardly separates anomalies from the hard normals queried with them: fitted freely, the layer
halves the score's weight ``a`` (range restriction) and learns signal weights ``w`` that tell the
queried anomalies from the queried normals *within the tail*, which reorder the bulk of the data; the
test AUROC of Deep SVDD on thyroid fell from 83.4 to 78.6 in 40 queries. Hence the defaults:

* ``score_weight="fixed"``: ``a`` stays 1 (the labels, chosen by the score, cannot tell how far to trust it);
* ``signal_weights="nonnegative"``: ``w >= 0``, so a larger term of the score never makes a sample less
  anomalous (the layer stays monotone in every term it re-weighs);
* ``refit_base="auto"``: the labels reach the network beneath, the sadkit counterpart of the paper's
  joint training of layer and network. A base that learns from labels (Deep SAD, ESAD; ``uses_labels``)
  is refitted with them on every update (``True``). A base whose fit ignores labels but that can be
  fine-tuned (Deep SVDD: ``fine_tune``) is fitted once and, on every update, a copy of it is fine-tuned
  on all the labels so far for ``fine_tune_epochs`` under Deep SAD's objective, once a labeled anomaly
  is among them (``"fine_tune"``). A base that can do neither is fitted once (``False``), and its layer
  can only re-weigh the score's terms, never ranking worse than the base.

``score_weight="free"``, ``signal_weights="free"``, ``refit_base=False`` restore the first layer.
``warm_start=True`` (what the active loop uses) keeps an already fitted base detector when ``fit`` is
called again on data of the same shape without a refit, and refits only the layer.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from sadkit import Callback, Detector, InvalidInputError, create_detector
from sadkit.data import to_semi_y
from sadkit.errors import SignalNotAvailableError
from sadkit.registry import get

#: the layer's constrained parameters and their values (the first is the default)
CHOICES = {"score_weight": ("fixed", "free"), "signal_weights": ("nonnegative", "free")}


def signed_log(v: np.ndarray) -> np.ndarray:
    """``sign(v) * log(1 + |v|)``: monotone, tames heavy tails, defined for every real."""
    return np.sign(v) * np.log1p(np.abs(v))


class ActiveDetector(Detector):
    """A logistic layer on a base detector's score and signal, fitted on labeled samples.

    Args:
        base: registered name of the base detector (must offer a per-sample signal).
        base_params: parameters of the base detector.
        l2: precision of the Gaussian prior that pulls the layer back to the base detector.
        prior: expected share of anomalies; sets the initial decision boundary (p = 0.5) at the
            ``1 - prior`` quantile of the training scores.
        refit_base: how the base detector learns from the labels on every ``fit``: ``True`` refits it,
            ``"fine_tune"`` fine-tunes (a copy of) the base fitted first, ``False`` keeps it as fitted
            once (with ``warm_start``); ``"auto"``: refit a base that learns from labels, else fine-tune
            one that can be, else keep.
        fine_tune_epochs: epochs of each fine-tuning.
        score_weight: ``fixed`` (``a`` stays 1) or ``free`` (fitted like the other weights).
        signal_weights: ``nonnegative`` (``w >= 0``: monotone in every term of the score) or ``free``.
        warm_start: keep a fitted base detector across ``fit`` calls on data of the same shape.
        max_iter: L-BFGS iterations of the layer fit.
        net_name, seed, device: passed to the base detector when it takes them and ``base_params`` does
            not set them (so ``sadkit run active DATASET`` gives the base the dataset's network and the seed).
    """

    fast_params = {"base_params": {"n_epochs": 2, "lr_milestones": [1], "device": "cpu"}}

    def __init__(
        self,
        base: str = "esad",
        base_params: dict[str, Any] | None = None,
        l2: float = 100.0,
        prior: float = 0.05,
        refit_base: bool | str = "auto",
        fine_tune_epochs: int = 100,
        warm_start: bool = False,
        max_iter: int = 200,
        score_weight: str = "fixed",
        signal_weights: str = "nonnegative",
        net_name: str | None = None,
        seed: int | None = 0,
        device: str = "auto",
        contamination: float = 0.1,
        threshold: str | float | None = None,
    ) -> None:
        self.base = base
        self.base_params = base_params
        self.l2 = l2
        self.prior = prior
        self.refit_base = refit_base
        self.fine_tune_epochs = fine_tune_epochs
        self.warm_start = warm_start
        self.max_iter = max_iter
        self.score_weight = score_weight
        self.signal_weights = signal_weights
        self.net_name = net_name
        self.seed = seed
        self.device = device
        self.contamination = contamination
        self.threshold = threshold

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "l2": trial.suggest_float("l2", 1e-2, 1e2, log=True),
            "prior": trial.suggest_float("prior", 0.005, 0.3, log=True),
        }

    # ------------------------------------------------------------------ fitting
    def _validate_params(self) -> None:
        if not (self.l2 > 0):
            raise InvalidInputError(f"active: l2 must be > 0 (the prior's precision), got {self.l2!r}")
        if not (0 < self.prior < 1):
            raise InvalidInputError(f"active: prior must be in (0, 1) (an expected anomaly share), got {self.prior!r}")
        if int(self.max_iter) < 1:
            raise InvalidInputError(f"active: max_iter must be >= 1, got {self.max_iter!r}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise InvalidInputError(
                    f"active: {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        if self.refit_base not in (True, False, "auto", "fine_tune"):
            raise InvalidInputError(
                f"active: refit_base must be true, false, fine_tune or auto, got {self.refit_base!r}"
            )
        if int(self.fine_tune_epochs) < 0:
            raise InvalidInputError(f"active: fine_tune_epochs must be >= 0, got {self.fine_tune_epochs!r}")
        base_cls = get("detectors", self.base)
        if base_cls is type(self):
            raise InvalidInputError("active: the base detector cannot be 'active' itself; name a detector such as esad")
        if self.refit_base == "fine_tune" and not _can_fine_tune(base_cls):
            raise InvalidInputError(f"active: {self.base!r} cannot be fine-tuned; use refit_base=true or false")
        if not base_cls.has_signal():
            raise SignalNotAvailableError(
                f"active: detector {self.base!r} has no per-sample signal to put the active layer on (it"
                " implements neither _signal nor transform); use esad, deepsad or deepsvdd"
            )

    def _update(self) -> str:
        """How every ``fit`` brings the labels to the base: ``refit``, ``fine_tune`` or ``keep``."""
        if self.refit_base == "auto":
            base_cls = get("detectors", self.base)
            if base_cls.uses_labels:
                return "refit"
            return "fine_tune" if _can_fine_tune(base_cls) else "keep"
        return "fine_tune" if self.refit_base == "fine_tune" else ("refit" if self.refit_base else "keep")

    def _base_params(self) -> dict[str, Any]:
        params = dict(self.base_params or {})
        accepted = get("detectors", self.base)._get_param_names()
        for name in ("net_name", "seed", "device"):
            value = getattr(self, name)
            if name in accepted and params.get(name) is None and value is not None:
                params[name] = value
        return params

    def _fit(self, X: np.ndarray, y: np.ndarray, *, eval_set, callbacks: list[Callback]) -> None:
        semi_y = to_semi_y(y)  # the paper's codes: +1 labeled normal, -1 labeled anomaly, 0 unlabeled
        started = time.perf_counter()
        update = self._update()
        reuse = (
            self.warm_start
            and update != "refit"
            and getattr(self, "fitted_base_", None) is not None
            and getattr(self, "base_input_shape_", None) == tuple(X.shape[1:])
            and getattr(self, "base_n_", None) == len(X)
            and getattr(self, "train_inputs_", None) is not None
        )
        if not reuse:
            base = create_detector(self.base, **self._base_params())
            base.fit(X, semi_y=semi_y, eval_set=eval_set, callbacks=callbacks)
            self.fitted_base_ = base  # what every fine-tuning starts from
            self.base_input_shape_ = tuple(X.shape[1:])
            self.base_n_ = len(X)
        labeled = semi_y != 0
        # without a labeled anomaly the objective holds nothing new (a labeled normal weighs as an unlabeled one)
        tuned = update == "fine_tune" and bool((semi_y == -1).any()) and int(self.fine_tune_epochs) > 0
        if tuned:
            base = copy.deepcopy(self.fitted_base_)  # from the same start: the same labels give the same layer
            base.fine_tune(X, semi_y=semi_y, n_epochs=int(self.fine_tune_epochs), callbacks=callbacks)
            self.base_ = base
        else:
            self.base_ = self.fitted_base_
        if not reuse or update == "fine_tune":
            # standardisation statistics of the training set under the base as it now is
            raw = self._raw_inputs(X)
            self.mean_ = raw.mean(axis=0)
            self.scale_ = np.where(raw.std(axis=0) > 1e-12, raw.std(axis=0), 1.0)
            self.train_inputs_ = (raw - self.mean_) / self.scale_
        inputs = self.train_inputs_
        start = np.zeros(inputs.shape[1], dtype=np.float64)
        start[0] = 1.0
        bias0 = -float(np.quantile(inputs[:, 0], 1.0 - float(self.prior)))
        targets = (semi_y[labeled] == -1).astype(np.float64)
        self.coef_, self.bias_ = self._fit_layer(inputs[labeled], targets, start, bias0)
        self.n_labeled_ = int(labeled.sum())
        self.timings_ = {
            "pretrain": 0.0 if reuse else float(self.base_.timings_.get("pretrain", 0.0)),
            "train": time.perf_counter() - started,
        }

    def _fit_layer(self, Z: np.ndarray, t: np.ndarray, start: np.ndarray, bias0: float) -> tuple[np.ndarray, float]:
        """MAP logistic regression with a Gaussian prior centred on ``(start, bias0)``, within the bounds."""
        from scipy.optimize import minimize

        self.n_iter_ = 0
        if len(t) == 0:
            return start.copy(), bias0
        n_pos, n_neg = float(t.sum()), float(len(t) - t.sum())
        one_class = n_pos == 0 or n_neg == 0
        weights = np.full(len(t), 1.0 / len(t)) if one_class else np.where(t == 1, 0.5 / n_pos, 0.5 / n_neg)
        theta0 = np.append(start, bias0)
        # Labels of one class only say where the boundary lies, not which direction separates the classes:
        # then only the bias moves (the ranking stays the base detector's).
        bounds = [(float(v), float(v)) for v in start] + [(None, None)]
        if not one_class:
            bounds[0] = (1.0, 1.0) if self.score_weight == "fixed" else (None, None)
            signal = (0.0, None) if self.signal_weights == "nonnegative" else (None, None)
            bounds[1:-1] = [signal] * (len(start) - 1)
        precision = float(self.l2) / len(t)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            logits = Z @ theta[:-1] + theta[-1]
            loss = float(np.sum(weights * (np.logaddexp(0.0, logits) - t * logits)))
            residual = weights * (0.5 * (1.0 + np.tanh(0.5 * logits)) - t)  # d loss / d logit
            grad = np.append(Z.T @ residual, residual.sum())
            diff = theta - theta0
            return loss + 0.5 * precision * float(diff @ diff), grad + precision * diff

        result = minimize(
            objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": int(self.max_iter), "gtol": 1e-10, "ftol": 1e-15},
        )  # fmt: skip
        self.n_iter_ = int(result.nit)  # scikit-learn's name for the iterations run
        return result.x[:-1].copy(), float(result.x[-1])

    # ------------------------------------------------------------------ scoring
    def _raw_inputs(self, X: np.ndarray) -> np.ndarray:
        """The base's score and signal through ``signed_log``, before standardisation."""
        return np.column_stack([signed_log(self.base_.decision_function(X)), signed_log(self.base_.signal(X))])

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        return (self._raw_inputs(X) - self.mean_) / self.scale_

    def _score(self, X: np.ndarray) -> np.ndarray:
        """The layer's logit: higher means more anomalous; ``sigmoid(score)`` is p(anomaly)."""
        return self._inputs(X) @ self.coef_ + self.bias_

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, 2)``: probabilities of normal and anomaly (scikit-learn's column order)."""
        p = 1.0 / (1.0 + np.exp(-np.clip(self.decision_function(X), -500, 500)))
        return np.column_stack([1.0 - p, p])

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {
            "base_state": self.base_._get_state(),
            "base_input_shape": list(self.base_.input_shape_),
            "base_n": self.base_n_,
            "mean": self.mean_,
            "scale": self.scale_,
            "coef": self.coef_,
            "bias": self.bias_,
            "n_labeled": self.n_labeled_,
            "timings": dict(self.timings_),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        base = create_detector(self.base, **self._base_params())
        base.input_shape_ = tuple(int(d) for d in state["base_input_shape"])
        base._set_state(state["base_state"])
        self.base_ = base
        self.base_input_shape_ = base.input_shape_
        self.base_n_ = int(state["base_n"])
        self.mean_ = _array(state["mean"])
        self.scale_ = _array(state["scale"])
        self.coef_ = _array(state["coef"])
        self.bias_ = float(state["bias"])
        self.n_labeled_ = int(state["n_labeled"])
        self.timings_ = dict(state["timings"])


def _can_fine_tune(detector_cls: type) -> bool:
    """Whether the detector offers ``fine_tune(X, semi_y=..., n_epochs=...)`` (Deep SAD, Deep SVDD)."""
    return callable(getattr(detector_cls, "fine_tune", None))


def _array(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
