"""What the shallow baselines share: raw or autoencoder features (the paper's *hybrid* variants), kernels, selection.

With ``features="raw"`` a shallow detector (OC-SVM, Isolation Forest, KDE, SSAD) runs on the flattened
input. With ``features="ae"`` it runs on the encoder output of an autoencoder, as the paper's hybrid
baselines do. The autoencoder comes from one of two places:

* trained in the same fit (``ae_run_id`` unset), by the very code and settings Deep SAD pretrains
  with (:func:`sadkit.plugins.deepsad.autoencoder.pretrain_autoencoder`, the ``ae_*`` parameters,
  the network ``net_name`` that the experiment runner fills in from the dataset). With the same seed
  and settings it is the autoencoder a Deep SAD run pretrains, weight for weight;
* loaded from an earlier MLflow run (``ae_run_id``, and ``ae_tracking_uri`` if the run is not in the
  default store): the logged detector of a Deep SAD run (``pretrain=True``) or of another hybrid run.

The autoencoder's weights are part of the saved detector, so a loaded hybrid scores the same without
the original run, and another hybrid can load its autoencoder from this run in turn.

This module also holds what the kernel baselines share: squared distances, the RBF kernel expansion
that scores a fitted kernel model from stored arrays (so a saved and loaded model scores bit for bit
the same), seeded subsampling and the checks of integer parameters; their model selection is
:mod:`sadkit.plugins.shallow.selection`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sadkit import Callback, InvalidInputError, SadkitError, TorchDetector, create_network, load_detector
from sadkit.data import to_semi_y
from sadkit.torch_detector import PretrainedAutoencoder
from sadkit.training import as_tensor, predict, seed_everything

from ..deepsad.autoencoder import build_autoencoder, pretrain_autoencoder
from .selection import select_on_validation, usable_eval_set  # noqa: F401  (re-exported, where they lived)

FEATURES = ("raw", "ae")
#: rows of a distance block computed at once (bounds the memory of scoring to ~64 MiB per block)
_BLOCK_ENTRIES = 1 << 23
#: parameters that keep the conformance checks quick (the autoencoder ones matter with features=ae)
FAST_AE = {"ae_n_epochs": 2, "ae_lr_milestones": (1,), "device": "cpu"}


# ------------------------------------------------------------------------------------- parameters
def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int, or :class:`InvalidInputError` unless it is an integer >= ``minimum``."""
    try:
        number = int(value)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}") from err
    if number < minimum or number != value:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def check_max_samples(value: Any) -> int | None:
    """A subsample size: None (all samples) or an integer >= 2."""
    return None if value is None else positive_int("max_samples", value, 2)


# ------------------------------------------------------------------------------------------ kernels
def squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``||a_i - b_j||^2`` for every row pair, in float64, clipped at 0."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    d = np.einsum("ij,ij->i", A, A)[:, None] + np.einsum("ij,ij->i", B, B)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d, 0.0, out=d)


def row_blocks(n_rows: int, n_cols: int) -> list[slice]:
    """Slices of ``range(n_rows)`` such that a block times ``n_cols`` stays near 8M entries."""
    step = max(1, _BLOCK_ENTRIES // max(n_cols, 1))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def rbf_expansion(Z: np.ndarray, support: np.ndarray, coef: np.ndarray, gamma: float) -> np.ndarray:
    """``sum_i coef_i * exp(-gamma * ||support_i - z||^2)`` for every row ``z`` of ``Z`` (blockwise)."""
    Z = np.asarray(Z, dtype=np.float64)
    out = np.empty(len(Z), dtype=np.float64)
    for block in row_blocks(len(Z), len(support)):
        out[block] = np.exp(-gamma * squared_distances(Z[block], support)) @ coef
    return out


def gamma_scale(Z: np.ndarray) -> float:
    """scikit-learn's ``gamma="scale"``: ``1 / (n_features * Var(Z))`` (1 when the variance is 0)."""
    var = float(np.var(Z)) * Z.shape[1]
    return 1.0 / var if var > 0 else 1.0


def subsample(semi_y: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``max_samples`` samples: every labeled one first, then unlabeled at random."""
    n = len(semi_y)
    if max_samples is None or n <= int(max_samples):
        return np.arange(n)
    max_samples = int(max_samples)
    labeled = np.flatnonzero(semi_y != 0)
    unlabeled = np.flatnonzero(semi_y == 0)
    if len(labeled) >= max_samples:
        return np.sort(rng.choice(labeled, max_samples, replace=False))
    extra = rng.choice(unlabeled, max_samples - len(labeled), replace=False)
    return np.sort(np.concatenate([labeled, extra]))


# ------------------------------------------------------------------------------ the base class
class FeatureDetector(TorchDetector):
    """A shallow detector on raw features or on autoencoder features.

    Subclasses list these parameters in their ``__init__`` (scikit-learn reads them from there):
    ``features``, ``net_name``, ``net_params``, ``ae_run_id``, ``ae_tracking_uri``, ``ae_n_epochs``,
    ``ae_lr``, ``ae_lr_milestones``, ``ae_batch_size``, ``ae_weight_decay``, ``device``, ``seed``;
    and implement ``_fit_features``, ``_score_features``, ``_get_model_state`` and
    ``_set_model_state`` on float64 feature matrices. A subclass that checks parameters of its own
    extends ``_validate_params`` (calling this one first).

    Attributes:
        ae_state_: the state dict of the autoencoder (trained or loaded; CPU tensors), or None with
            ``features="raw"``; :meth:`pretrained_autoencoder` returns it with what rebuilds it.
        ae_net_: ``{"name", "params", "input_shape"}`` of that autoencoder's network, or None.
        pretrain_losses_: mean loss of every autoencoder epoch (empty when none was trained here).
        selected_: hyperparameters chosen while fitting (see :meth:`selected_params`).
        timings_: ``{"pretrain": s, "train": s}``: the autoencoder, then the shallow model.
        train_losses_: always empty (the shallow model trains no network).
        seed_: as :class:`~sadkit.TorchDetector`.
    """

    features: str
    net_name: str | None
    net_params: dict[str, Any] | None
    ae_run_id: str | None
    ae_tracking_uri: str | None
    ae_n_epochs: int
    ae_lr: float
    ae_lr_milestones: Sequence[int]
    ae_batch_size: int
    ae_weight_decay: float
    device: str
    seed: int | None

    def ignored_params(self) -> list[str]:
        """With raw features no autoencoder is trained or loaded: its parameters (and the device) do nothing."""
        if self.features != "raw":
            return []
        return ["net_name", "net_params", "ae_run_id", "ae_tracking_uri", "ae_n_epochs", "ae_lr", "ae_lr_milestones",
                "ae_batch_size", "ae_weight_decay", "device"]  # fmt: skip

    # ------------------------------------------------------------------ for subclasses
    def _fit_features(
        self, Z: np.ndarray, semi_y: np.ndarray, *, eval_set: tuple[np.ndarray, np.ndarray] | None, seed: int
    ) -> None:
        raise NotImplementedError

    def _score_features(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _get_model_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_model_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ fitting
    def _fit(self, X: np.ndarray, y: np.ndarray, *, eval_set, callbacks: list[Callback]) -> None:
        semi_y = to_semi_y(y)  # the paper's codes: +1 labeled normal, -1 labeled anomaly, 0 unlabeled
        seed = self._resolve_seed()
        self.seed_ = seed
        self.timings_ = {"pretrain": 0.0, "train": 0.0}
        self.selected_: dict[str, Any] = {}
        self.ae_state_: dict[str, torch.Tensor] | None = None
        self.ae_net_: dict[str, Any] | None = None
        self.pretrain_losses_: list[float] = []
        self.train_losses_: list[float] = []
        self._encoder = None
        if self.features == "ae":
            start = time.perf_counter()
            if self.ae_run_id:
                self._load_autoencoder(tuple(X.shape[1:]))
            else:
                self._train_autoencoder(X, seed, callbacks)
            self.timings_["pretrain"] = time.perf_counter() - start
        start = time.perf_counter()
        Z = self._transform(X)
        eval_Z = None
        if eval_set is not None and len(eval_set[0]):
            eval_Z = (self._transform(eval_set[0]), np.asarray(eval_set[1]))
        self._fit_features(Z, semi_y, eval_set=eval_Z, seed=seed)
        self.timings_["train"] = time.perf_counter() - start

    def _validate_params(self) -> None:
        if self.features not in FEATURES:
            raise InvalidInputError(
                f"{type(self).__name__}: features must be 'raw' or 'ae' (autoencoder features), got {self.features!r}"
            )
        if self.features == "raw" and self.ae_run_id:
            raise InvalidInputError(
                f"{type(self).__name__}: ae_run_id={self.ae_run_id!r} is only used with features='ae'; set"
                " features=ae to run on that autoencoder's features, or drop ae_run_id"
            )
        if self.features == "ae" and not self.ae_run_id and int(self.ae_n_epochs) < 1:
            raise InvalidInputError(
                f"{type(self).__name__}: features='ae' needs an autoencoder: train one (ae_n_epochs >= 1, got"
                f" {self.ae_n_epochs}) or load one from an earlier run with ae_run_id=RUN_ID"
            )

    def _train_autoencoder(self, X: np.ndarray, seed: int, callbacks: list[Callback]) -> None:
        name = self._network_name()
        input_shape = tuple(X.shape[1:])
        device = self._training_device()
        generator = seed_everything(seed)
        X_t = as_tensor(X, device)
        # Deep SAD builds its network before the autoencoder; building it here too keeps the random
        # stream in step, so with the same seed and settings this is the autoencoder Deep SAD pretrains.
        try:
            network = create_network(name, input_shape, **(self.net_params or {}))
        except SadkitError as err:
            raise InvalidInputError(
                f"{type(self).__name__}: features='ae' but no autoencoder can be built from network {name!r}"
                f" for samples of shape {input_shape}: {err}"
            ) from err
        ae, self.pretrain_losses_ = pretrain_autoencoder(
            X_t,
            name,
            self._schedule("ae_"),
            generator=generator,
            net_params=self.net_params,
            callbacks=callbacks,
            network=network,
        )
        self.ae_state_ = {k: v.detach().cpu().clone() for k, v in ae.state_dict().items()}
        self.ae_net_ = {"name": name, "params": dict(self.net_params or {}), "input_shape": list(input_shape)}

    def _load_autoencoder(self, input_shape: tuple[int, ...]) -> None:
        from sadkit.tracking import download_detector  # mlflow is imported only when a run is needed

        run_id = str(self.ae_run_id)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                source = load_detector(download_detector(run_id, tmp, self.ae_tracking_uri))
        except SadkitError as err:
            raise InvalidInputError(
                f"{type(self).__name__}: cannot load the autoencoder of run {run_id}: {err}"
            ) from err
        autoencoder = source.pretrained_autoencoder() if isinstance(source, TorchDetector) else None
        if autoencoder is None:
            raise InvalidInputError(
                f"{type(self).__name__}: MLflow run {run_id} holds a {type(source).__name__} without a pretrained"
                " autoencoder; use the run of a Deep SAD fit with pretrain=True and ae_n_epochs >= 1, or of a"
                " detector fitted with features=ae"
            )
        if autoencoder.input_shape != tuple(input_shape):
            raise InvalidInputError(
                f"{type(self).__name__}: the autoencoder of run {run_id} was trained on samples of shape"
                f" {autoencoder.input_shape}, but this data has samples of shape {tuple(input_shape)}"
            )
        self.ae_state_ = {k: v.detach().cpu().clone() for k, v in autoencoder.state.items()}
        self.ae_net_ = {
            "name": autoencoder.net_name,
            "params": dict(autoencoder.net_params),
            "input_shape": list(input_shape),
        }

    def pretrained_autoencoder(self) -> PretrainedAutoencoder | None:
        """The autoencoder whose encoder gives the features (None with ``features="raw"``)."""
        self._check_fitted()
        if not self.ae_state_ or self.ae_net_ is None:
            return None
        return PretrainedAutoencoder(
            self.ae_net_["name"],
            dict(self.ae_net_["params"]),
            tuple(int(d) for d in self.ae_net_["input_shape"]),
            self.ae_state_,
        )

    # ------------------------------------------------------------------ features
    def _encoder_module(self) -> torch.nn.Module:
        if self._encoder is None:
            assert self.ae_net_ is not None and self.ae_state_ is not None
            ae = build_autoencoder(self.ae_net_["name"], tuple(self.ae_net_["input_shape"]), self.ae_net_["params"])
            ae.load_state_dict(self.ae_state_, strict=True)
            self._encoder = ae.encoder.cpu().eval()
        return self._encoder

    def _transform(self, X: np.ndarray) -> np.ndarray:
        """The features the shallow model sees: float32 values held as float64 (exact either way)."""
        if self.features == "raw":
            return np.asarray(X, dtype=np.float32).reshape(len(X), -1).astype(np.float64)
        encoder = self._encoder_module()
        with torch.no_grad():
            Z = predict(encoder, as_tensor(X, torch.device("cpu")), fixed=True)
        return Z.reshape(len(Z), -1).numpy().astype(np.float64)

    def embed(self, X: Any) -> np.ndarray:
        """The features the detector works on (the flattened input, or the encoder's output)."""

        self._check_fitted()
        return self._transform(self._model_input(X))

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._score_features(self._transform(X))

    def selected_params(self) -> dict[str, Any]:
        return dict(getattr(self, "selected_", {}) or {})

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {
            "model": self._get_model_state(),
            "ae": self.ae_state_,
            "ae_net": self.ae_net_,
            "pretrain_losses": list(self.pretrain_losses_),
            "timings": dict(self.timings_),
            "selected": dict(self.selected_),
            "seed": self.seed_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._encoder = None
        self.train_losses_ = []
        self.ae_state_ = state["ae"]
        self.ae_net_ = state["ae_net"]
        self.pretrain_losses_ = list(state["pretrain_losses"])
        self.timings_ = dict(state["timings"])
        self.selected_ = dict(state["selected"])
        self.seed_ = state["seed"]
        self._set_model_state(state["model"])


def to_numpy(value: Any) -> np.ndarray:
    """A saved array back as numpy (``torch.load`` returns tensors)."""
    if isinstance(value, torch.Tensor):
        return value.numpy()
    return np.asarray(value)
