"""Autoencoder pretraining as Deep SAD does it, shared by Deep SAD and the hybrid baselines.

The autoencoder is the network plugin's own (``create_network(name, shape, autoencoder=True)``), its
encoder is exactly the network Deep SAD trains, and it is trained on the whole training set (labels
ignored) to minimise the summed squared reconstruction error with Adam and a MultiStepLR schedule.
Deep SAD uses the encoder to initialise its network; the hybrid baselines (``features=ae``) run a
shallow detector on the encoder's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sadkit import AutoEncoder, Callback, InvalidInputError, SadkitError, create_network
from sadkit.network import check_encoder_is_network
from sadkit.torch_detector import DEFAULT_NETWORK
from sadkit.training import Schedule, train_network


def reconstruction_loss(ae: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the summed squared reconstruction error (as the reference)."""
    rec = ae(x)
    return torch.sum((rec - x) ** 2, dim=tuple(range(1, rec.dim()))).mean()


def build_autoencoder(
    net_name: str | None, input_shape: tuple[int, ...], net_params: dict[str, Any] | None = None
) -> AutoEncoder:
    """The autoencoder of network plugin ``net_name`` (``mlp`` when None) for samples of ``input_shape``.

    Raises:
        InvalidInputError: the network is unknown, does not fit the input shape or has no autoencoder.
    """
    name = net_name or DEFAULT_NETWORK
    try:
        ae = create_network(name, tuple(input_shape), autoencoder=True, **(net_params or {}))
    except SadkitError as err:
        raise InvalidInputError(
            f"no autoencoder can be built from network {name!r} for samples of shape {tuple(input_shape)}: {err}"
        ) from err
    if not isinstance(ae, AutoEncoder):
        raise InvalidInputError(
            f"network {name!r} returned a {type(ae).__name__} for autoencoder=True, not a sadkit AutoEncoder;"
            " choose a network plugin with an autoencoder (e.g. net_name=mlp)"
        )
    return ae


def pretrain_autoencoder(
    X: torch.Tensor,
    net_name: str | None,
    schedule: Schedule,
    *,
    generator: torch.Generator,
    net_params: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    phase: str = "pretrain",
    network: torch.nn.Module | None = None,
) -> tuple[AutoEncoder, list[float]]:
    """Build the autoencoder of ``net_name`` on ``X``'s device and train it on ``X`` (labels unused).

    Args:
        X: the training set, one tensor already on the training device.
        schedule: the optimisation settings (Deep SAD's ``ae_*`` parameters).
        generator: drives the batch order (the same generator Deep SAD then uses for training).
        network: the network the encoder must be (checked before any training, see
            :func:`sadkit.network.check_encoder_is_network`).

    Returns:
        The trained autoencoder (in eval mode) and the mean loss of every epoch.
    """
    ae = build_autoencoder(net_name, tuple(X.shape[1:]), net_params).to(X.device)
    if network is not None:
        check_encoder_is_network(network, ae, net_name or DEFAULT_NETWORK)
    losses = train_network(
        ae, reconstruction_loss, [X], schedule, phase=phase, generator=generator, callbacks=callbacks
    )
    return ae.eval(), losses

