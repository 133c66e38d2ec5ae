"""ESAD (Huang et al., "ESAD: End-to-end Deep Semi-supervised Anomaly Detection", arXiv 2012.04905).

An encoder-decoder-encoder network trained end to end (no pretraining phase)::

    z = E(x)        x_hat = D(z)        z_hat = E'(x_hat)

E and D are the registered network plugin's own autoencoder (``create_network(net_name, shape,
autoencoder=True)``: the ODDS MLPs, ``mlp``, the MNIST / Fashion-MNIST / CIFAR-10 LeNets), and E' is a
second copy of that plugin's encoder, or E itself (``shared_encoder=True``). Per sample, with
``rec = ||x - x_hat||^2`` (summed over the input), ``lat = ||z_hat||^2`` and ``cons = ||z_hat - z||^2``:

* unlabeled samples (semi_y = 0):        ``rec + lambda_latent * lat``
* labeled normals (semi_y = +1):   ``eta * (rec + lambda_latent * lat)``
* labeled anomalies (semi_y = -1): ``eta * (1 / (rec + eps) + lambda_latent / (lat + eps))``

plus ``lambda_consistency * cons`` for every sample; the loss is the batch mean. The first encoder
keeps the information needed to reconstruct x (the paper's mutual-information term), the second one
concentrates normal data near the origin (the paper's entropy term, bounded as in Deep SAD by the
spread around a center), and the consistency term ties the two codes together. Labeled anomalies are
pushed away in both terms: badly reconstructed and far from the origin. The anomaly score is
``rec + score_latent_weight * lat``.

Where the paper leaves details open, and what we chose:

* **Norms.** The paper derives the objective from a KL divergence and states the entropy term through
  the norm of the second code. We use *squared* Euclidean norms everywhere (reconstruction, latent,
  consistency): the latent term is then exactly Deep SAD's bound with the center at the origin, all
  three terms are on the same (squared) scale, and the gradient is smooth at 0.
* **Pushing anomalies away.** We use Deep SAD's inverse (``1 / (d + eps)``, ``eps = 1e-6``) for both
  the reconstruction and the latent term of labeled anomalies, weighted by ``eta`` like Deep SAD's
  labeled terms (``eta`` also weighs labeled normals, as in Deep SAD).
* **Consistency for anomalies.** The consistency term is a structural tie between the two encoders,
  so it applies to every sample, labeled anomalies included.
* **The second encoder's initialisation.** With ``shared_encoder=False`` (default, the paper's two
  encoders) E' is a separate module *initialised with E's initial weights*, so the consistency term
  starts near zero and the two encoders diverge only as far as the objective needs.
* **Gradients.** End to end: every term reaches every module (no stop-gradient), as "end-to-end"
  suggests; in particular the consistency term trains both E and E'.
* **Score weights.** ``score = rec + score_latent_weight * lat`` with ``score_latent_weight=1`` (the
  paper's sum of reconstruction error and latent norm, unweighted); set it to ``lambda_latent`` to
  score with the loss's own balance.
* **Center.** The origin: the networks are bias-free with BatchNorm without affine parameters (as in
  Deep SAD), which rules out the constant solution that would map everything to 0; the reconstruction
  term rules it out as well.
* **Optimisation.** The paper does not fix a schedule for the ODDS tables. We keep Deep SAD's (Adam,
  150 epochs with a x0.1 drop at epoch 50, weight decay 1e-6, batch 128) but with lr 1e-3 instead of
  1e-4: ESAD has no pretraining phase, so it gets half of Deep SAD's 300 epochs, and at 1e-4 its training
  loss is still falling steeply after 150 epochs (cardio, seed 0: 2.49 at 1e-4 against 0.37 at 1e-3).
  The choice was made on the training loss, not on test data.

The independent public implementation (the Julia package OutlierDetectionNetworks.jl, ``ESADDetector``;
issue 17 compared it, without copying) reads the paper differently in these places; each is an option
here, and ``benchmarks/esad_fidelity.py`` measures them (MNIST, class 0; see notes/issue17_fidelity.md):

* ``norm="euclidean"``: the plain norm ``||z_hat||`` and its inverse ``1 / ||z_hat||`` in the loss and
  the score (ours: squared);
* ``anomaly_reconstruction="keep"``: labeled anomalies are reconstructed like every sample (the Julia
  code reconstructs them towards ``noise(x)``, the identity by default); ours inverts their error;
* ``score_reconstruction="mean"``: the score's reconstruction error is the *mean* over the input, not
  the sum (on 784 pixels the plain norm of ``z_hat`` then dominates the score);
* ``shared_encoder=True``: the Julia chain is ``(encoder, decoder, encoder)``, one encoder used twice;
  the paper describes two encoders tied by the consistency term, our default;
* its consistency term is a mean over the code's dimensions (``lambda_consistency / rep_dim`` here),
  it has no ``eta`` and no ``eps``, and its defaults are Flux's Adam (lr 1e-3), batch 32, 1 epoch.

Trained with all three of the first options (two encoders), ESAD on MNIST class 0 (10 epochs) scores
47.7 against 98.4 with our defaults; the second code's norm alone then ranks the test set *below*
chance (44.7), so the defaults stay as they are.

The per-sample signal (:meth:`sadkit.Detector.signal`, for the active layer) is the vector of
per-input squared reconstruction errors followed by the per-dimension squares of ``z_hat``: the score
is a weighted sum of its entries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sadkit import AutoEncoder, Callback, InvalidInputError, SadkitError, TorchDetector, auroc, create_network
from sadkit.data import to_semi_y
from sadkit.training import as_tensor, predict, resolve_amp, seed_everything, train_network

from .model import EncoderDecoderEncoder

#: the options where the paper leaves a choice open (see the module docstring)
CHOICES = {
    "norm": ("squared", "euclidean"),
    "anomaly_reconstruction": ("inverse", "keep"),
    "score_reconstruction": ("sum", "mean"),
}


def _sum_but_batch(t: torch.Tensor) -> torch.Tensor:
    return torch.sum(t, dim=tuple(range(1, t.dim())))


def latent_distance(squared: torch.Tensor, norm: str) -> torch.Tensor:
    """``||z_hat||^2`` (``norm="squared"``) or ``||z_hat||`` (``"euclidean"``) from the squared norm."""
    if norm == "squared":
        return squared
    return torch.sqrt(squared + 1e-12)  # finite gradient at the origin


class ESAD(TorchDetector):
    """ESAD: encoder-decoder-encoder semi-supervised anomaly detection (see the module docstring).

    Args:
        net_name: network plugin with an autoencoder (``cardio_mlp``, ``mlp``, ``mnist_lenet``, ...);
            None means ``mlp`` (the experiment runner picks the dataset's network instead).
        net_params: keyword arguments of the network factory.
        shared_encoder: E' is E itself (True) or a second encoder of the same architecture (False).
        lambda_latent: weight of the latent-norm term ``||z_hat||^2`` (``1/||z_hat||^2`` for anomalies).
        lambda_consistency: weight of the consistency term ``||z_hat - z||^2``.
        eta: weight of the labeled samples' terms (as Deep SAD's eta).
        eps: added before inverting a labeled anomaly's distances.
        score_latent_weight: the score is ``||x - x_hat||^2 + score_latent_weight * ||z_hat||^2``.
        norm: ``squared`` (``||z_hat||^2``, default) or ``euclidean`` (``||z_hat||``) in the loss and score.
        anomaly_reconstruction: ``inverse`` (``1 / (rec + eps)`` for labeled anomalies, default) or
            ``keep`` (their reconstruction error is minimised like every sample's).
        score_reconstruction: ``sum`` (default) or ``mean`` of the squared errors over the input.
        lr, n_epochs, lr_milestones, batch_size, weight_decay, amsgrad: Adam; the learning rate is
            multiplied by 0.1 at each milestone epoch (stepped after the epoch).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: drives weight initialisation and batch order; None draws one.
        amp: None (float32) or ``"bf16"`` autocast for the training forward passes.

    Attributes:
        net_: the trained :class:`~sadkit.plugins.esad.model.EncoderDecoderEncoder`.
        timings_, train_losses_, seed_: as :class:`~sadkit.TorchDetector` (no pretraining phase).
    """

    fast_params = {"n_epochs": 3, "lr_milestones": (2,), "device": "cpu"}

    def __init__(
        self,
        net_name: str | None = None,
        net_params: dict[str, Any] | None = None,
        shared_encoder: bool = False,
        lambda_latent: float = 1.0,
        lambda_consistency: float = 1.0,
        eta: float = 1.0,
        eps: float = 1e-6,
        score_latent_weight: float = 1.0,
        norm: str = "squared",
        anomaly_reconstruction: str = "inverse",
        score_reconstruction: str = "sum",
        lr: float = 1e-3,
        n_epochs: int = 150,
        lr_milestones: Sequence[int] = (50,),
        batch_size: int = 128,
        weight_decay: float = 1e-6,
        amsgrad: bool = False,
        device: str = "auto",
        seed: int | None = 0,
        amp: str | None = None,
        contamination: float = 0.1,
        threshold: str | float | None = None,
    ) -> None:
        self.net_name = net_name
        self.net_params = net_params
        self.shared_encoder = shared_encoder
        self.lambda_latent = lambda_latent
        self.lambda_consistency = lambda_consistency
        self.eta = eta
        self.eps = eps
        self.score_latent_weight = score_latent_weight
        self.norm = norm
        self.anomaly_reconstruction = anomaly_reconstruction
        self.score_reconstruction = score_reconstruction
        self.lr = lr
        self.n_epochs = n_epochs
        self.lr_milestones = lr_milestones
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.amsgrad = amsgrad
        self.device = device
        self.seed = seed
        self.amp = amp
        self.contamination = contamination
        self.threshold = threshold

    # ------------------------------------------------------------------ search space
    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "lr": trial.suggest_float("lr", 1e-5, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-7, 1e-3, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
            "lambda_latent": trial.suggest_float("lambda_latent", 1e-2, 10.0, log=True),
            "lambda_consistency": trial.suggest_float("lambda_consistency", 1e-2, 10.0, log=True),
            "eta": trial.suggest_float("eta", 0.1, 10.0, log=True),
            "shared_encoder": trial.suggest_categorical("shared_encoder", [False, True]),
        }

    # ------------------------------------------------------------------ building
    def _validate_params(self) -> None:
        self._reject_invalid(
            {
                "lambda_latent": self.lambda_latent >= 0,
                "lambda_consistency": self.lambda_consistency >= 0,
                "eta": self.eta > 0,
                "eps": self.eps > 0,
                "score_latent_weight": self.score_latent_weight >= 0,
                "lr": self.lr > 0,
                "n_epochs": int(self.n_epochs) >= 0,
                "batch_size": int(self.batch_size) >= 2,
                "weight_decay": self.weight_decay >= 0,
            },
            "lr, eta and eps must be > 0; lambdas, weights and decay >= 0; epochs >= 0; batch_size >= 2",
        )
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise InvalidInputError(
                    f"ESAD: {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        if not isinstance(self.shared_encoder, (bool, np.bool_)):
            raise InvalidInputError(f"ESAD: shared_encoder must be true or false, got {self.shared_encoder!r}")

    def _build(self, input_shape: tuple[int, ...]) -> EncoderDecoderEncoder:
        name = self._network_name()
        params = dict(self.net_params or {})
        try:
            ae = create_network(name, tuple(input_shape), autoencoder=True, **params)
        except SadkitError as err:
            raise InvalidInputError(
                f"ESAD cannot build network {name!r} for samples of shape {tuple(input_shape)}: {err}"
            ) from err
        if not isinstance(ae, AutoEncoder):
            raise InvalidInputError(
                f"ESAD needs an autoencoder, but network {name!r} returned a {type(ae).__name__} for"
                " autoencoder=True; choose a network plugin with a decoder (e.g. net_name=mlp)"
            )
        second = None
        if not self.shared_encoder:
            second = create_network(name, tuple(input_shape), autoencoder=False, **params)
            second.load_state_dict(ae.encoder.state_dict(), strict=True)  # E' starts as E
        return EncoderDecoderEncoder(ae, second)

    # ------------------------------------------------------------------ fitting
    def _fit(self, X: np.ndarray, y: np.ndarray, *, eval_set, callbacks: list[Callback]) -> None:
        semi_y = to_semi_y(y)  # the paper's codes: +1 labeled normal, -1 labeled anomaly, 0 unlabeled
        amp = resolve_amp(self.amp)
        device = self._training_device()
        seed = self._resolve_seed()
        generator = seed_everything(seed)
        net = self._build(tuple(X.shape[1:])).to(device)
        X_t = as_tensor(X, device)
        semi_t = as_tensor(semi_y, device)
        lam_lat, lam_cons = float(self.lambda_latent), float(self.lambda_consistency)
        eta, eps = float(self.eta), float(self.eps)
        norm, invert_rec = str(self.norm), self.anomaly_reconstruction == "inverse"

        def esad_loss(model: nn.Module, x: torch.Tensor, semi: torch.Tensor) -> torch.Tensor:
            z, x_hat, z_hat = model(x)
            rec = _sum_but_batch((x_hat.float() - x) ** 2)
            lat = latent_distance(torch.sum(z_hat.float() ** 2, dim=1), norm)
            cons = torch.sum((z_hat.float() - z.float()) ** 2, dim=1)
            normal = rec + lam_lat * lat
            anomalous = (1.0 / (rec + eps) if invert_rec else rec) + lam_lat / (lat + eps)
            per_sample = torch.where(semi == -1, eta * anomalous, torch.where(semi == 1, eta * normal, normal))
            return (per_sample + lam_cons * cons).mean()

        evaluate = None
        if eval_set is not None and callbacks:
            X_val = np.asarray(eval_set[0], dtype=np.float32)
            y_val = np.asarray(eval_set[1])

            def evaluate() -> dict[str, float]:
                return {"val_auroc": auroc(y_val, self._components(net, X_val, device)[0])}

        start = time.perf_counter()
        self.train_losses_ = train_network(
            net,
            esad_loss,
            [X_t, semi_t],
            self._schedule(amsgrad=self.amsgrad, amp=amp),
            phase="train",
            generator=generator,
            callbacks=callbacks,
            evaluate=evaluate,
        )
        self.timings_ = {"pretrain": 0.0, "train": time.perf_counter() - start}
        self.net_ = net.eval()
        self.seed_ = seed

    # ------------------------------------------------------------------ scoring
    def _components(
        self, net: EncoderDecoderEncoder, X: np.ndarray, device: torch.device
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and signal vectors of ``X`` (eval mode)."""
        net = net.to(device).eval()
        weight = float(self.score_latent_weight)

        def parts(x: torch.Tensor) -> torch.Tensor:
            _, x_hat, z_hat = net(x)
            residual = ((x_hat - x) ** 2).reshape(len(x), -1)
            return torch.cat([residual, z_hat**2], dim=1)

        with torch.no_grad():
            signal = predict(parts, as_tensor(X, device), fixed=True)
        n_input = int(np.prod(X.shape[1:]))
        rec = signal[:, :n_input].sum(dim=1)
        if self.score_reconstruction == "mean":
            rec = rec / n_input
        scores = rec + weight * latent_distance(signal[:, n_input:].sum(dim=1), str(self.norm))
        return scores.cpu().numpy().astype(np.float64), signal.cpu().numpy()

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._components(self.net_, X, self._scoring_device())[0]

    def _signal(self, X: np.ndarray) -> np.ndarray:
        """Per-input squared reconstruction errors, then the squares of ``z_hat`` (one row per sample)."""
        return self._components(self.net_, X, self._scoring_device())[1]

    def score_parts(self, X: Any) -> dict[str, np.ndarray]:
        """The score's two terms: ``reconstruction`` ``||x - x_hat||^2`` and ``latent`` ``||z_hat||^2``."""
        signal = self.signal(X)
        n_input = int(np.prod(self.input_shape_))
        return {"reconstruction": signal[:, :n_input].sum(axis=1), "latent": signal[:, n_input:].sum(axis=1)}

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {
            "net": self.net_.state_dict(),
            "train_losses": list(self.train_losses_),
            "timings": dict(self.timings_),
            "seed": self.seed_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        net = self._build(self.input_shape_)
        net.load_state_dict(state["net"], strict=True)
        self.net_ = net.eval()
        self.train_losses_ = list(state["train_losses"])
        self.timings_ = dict(state["timings"])
        self.seed_ = state["seed"]
