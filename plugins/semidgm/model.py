"""The networks of the semi-supervised deep generative model (Kingma, Rezende, Mohamed and Welling 2014).

* M1: a variational autoencoder ``q(z1|x) p(x|z1)``.
* M2: a generative model with the class as a second latent variable, ``p(x|y,z) p(y) p(z)``, with
  an inference network ``q(z|x,y)`` and a classifier ``q(y|x)``.
* M1+M2: M2 on the latent ``z1`` of a trained, frozen M1 (it still reconstructs ``x``).

Layer sizes follow the reference code: encoder and decoder are ReLU MLPs (the decoder mirrors the
hidden sizes and ends in a sigmoid), the classifier has one ReLU layer of the first hidden size, and
every linear layer starts from Xavier-normal weights and zero biases. Two differences: the
log-variance of ``q(z|.)`` is a plain linear output (the reference passes it through a softplus, which
forces every posterior variance to be at least 1, the prior's), and the KL term is the closed form
rather than a one-sample estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

N_CLASSES = 2  #: 0 = normal, 1 = anomaly
_EPS = 1e-8


def _mlp(sizes: Sequence[int]) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))


def _xavier(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class GaussianEncoder(nn.Module):
    """``q(z|input) = N(mu, diag(exp(log_var)))`` by a ReLU MLP."""

    def __init__(self, in_dim: int, hidden: Sequence[int], z_dim: int) -> None:
        super().__init__()
        self.hidden = _mlp([in_dim, *hidden])
        self.mu = nn.Linear(hidden[-1], z_dim)
        self.log_var = nn.Linear(hidden[-1], z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        for layer in self.hidden:
            x = F.relu(layer(x))
        mu, log_var = self.mu(x), self.log_var(x)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        return z, mu, log_var


class Decoder(nn.Module):
    """``p(x|input)``: Bernoulli means from a ReLU MLP ending in a sigmoid."""

    def __init__(self, in_dim: int, hidden: Sequence[int], x_dim: int) -> None:
        super().__init__()
        self.hidden = _mlp([in_dim, *hidden])
        self.reconstruction = nn.Linear(hidden[-1], x_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            z = F.relu(layer(z))
        return torch.sigmoid(self.reconstruction(z))


def log_bernoulli(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``log p(x)`` summed over features (the reference's negative binary cross-entropy)."""
    return torch.sum(x * torch.log(mean + _EPS) + (1 - x) * torch.log(1 - mean + _EPS), dim=-1)


def kl_standard_normal(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(log_var)) || N(0, I))`` summed over dimensions."""
    return 0.5 * torch.sum(mu.pow(2) + log_var.exp() - 1.0 - log_var, dim=-1)


class VAE(nn.Module):
    """M1: ``x -> z1 -> x``."""

    def __init__(self, x_dim: int, hidden: Sequence[int], z_dim: int) -> None:
        super().__init__()
        self.z_dim = int(z_dim)
        self.encoder = GaussianEncoder(x_dim, hidden, z_dim)
        self.decoder = Decoder(z_dim, list(reversed(hidden)), x_dim)
        _xavier(self)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """The evidence lower bound of every sample."""
        z, mu, log_var = self.encoder(x)
        return log_bernoulli(x, self.decoder(z)) - kl_standard_normal(mu, log_var)


class M2(nn.Module):
    """M2, optionally on the frozen latent of an M1 (``features``): M1+M2."""

    def __init__(self, x_dim: int, hidden: Sequence[int], z_dim: int, features: VAE | None = None) -> None:
        super().__init__()
        in_dim = features.z_dim if features is not None else x_dim
        self.encoder = GaussianEncoder(in_dim + N_CLASSES, hidden, z_dim)
        self.decoder = Decoder(z_dim + N_CLASSES, list(reversed(hidden)), x_dim)
        self.classifier = nn.Sequential(nn.Linear(in_dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], N_CLASSES))
        _xavier(self)
        self.features = features

    def freeze_features(self) -> None:
        """Stop training M1 (after its own training): M2 learns on its latent, M1 stays as it is."""
        if self.features is not None:
            self.features.eval()
            for p in self.features.parameters():
                p.requires_grad_(False)

    def _inputs(self, x: torch.Tensor, sample: bool) -> torch.Tensor:
        if self.features is None:
            return x
        z1, mu, _ = self.features.encoder(x)
        return z1 if sample else mu

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``q(y|x)`` (M1+M2 classifies the mean of ``q(z1|x)``, as the reference)."""
        return self.classifier(self._inputs(x, sample=False))

    def elbo_per_class(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x|y,z) + log p(y) - KL(q(z|x,y) || p(z))`` for each class: shape ``(n, 2)``."""
        inputs = self._inputs(x, sample=True)
        out = []
        for c in range(N_CLASSES):
            y = torch.zeros(len(x), N_CLASSES, device=x.device, dtype=x.dtype)
            y[:, c] = 1.0
            z, mu, log_var = self.encoder(torch.cat([inputs, y], dim=1))
            reconstruction = self.decoder(torch.cat([z, y], dim=1))
            out.append(log_bernoulli(x, reconstruction) - math.log(N_CLASSES) - kl_standard_normal(mu, log_var))
        return torch.stack(out, dim=1)
