"""Training callbacks: how a fit reports its progress to the outside (progress bars, MLflow, pruners).

A detector calls them; it never knows who listens. Every method is optional.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class Callback:
    """Receives the progress of a fit. Subclass and override what you need."""

    def on_phase_start(self, phase: str, n_epochs: int) -> None:
        """A training phase (e.g. ``pretrain`` or ``train``) starts with ``n_epochs`` epochs."""

    def on_epoch_end(self, phase: str, epoch: int, logs: Mapping[str, float]) -> None:
        """Epoch ``epoch`` (0-based) of ``phase`` ended; ``logs`` holds e.g. ``loss`` and ``val_auroc``."""

    def on_phase_end(self, phase: str) -> None:
        """The phase ended (normally or not)."""


class CallbackList(Callback):
    """Fans every event out to several callbacks, in order."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = [cb for cb in callbacks if cb is not None]

    def on_phase_start(self, phase: str, n_epochs: int) -> None:
        for cb in self.callbacks:
            cb.on_phase_start(phase, n_epochs)

    def on_epoch_end(self, phase: str, epoch: int, logs: Mapping[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(phase, epoch, logs)

    def on_phase_end(self, phase: str) -> None:
        for cb in self.callbacks:
            cb.on_phase_end(phase)

    def __bool__(self) -> bool:
        return bool(self.callbacks)
