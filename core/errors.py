"""Exceptions raised by sadkit. Every message says what went wrong and what to do about it."""

from __future__ import annotations


class SadkitError(Exception):
    """Base class of every error sadkit raises on purpose."""


class InvalidInputError(SadkitError, ValueError):
    """Data or parameters that a detector, dataset or network cannot accept."""


class PluginNotFoundError(SadkitError, LookupError):
    """A plugin name that no installed distribution registers."""


class PluginLoadError(SadkitError, ImportError):
    """A registered plugin whose entry point fails to import."""


class DuplicatePluginError(SadkitError):
    """Two entry points claim the same name in one group."""


class DataError(SadkitError):
    """A data file that is missing, corrupt or cannot be downloaded."""


class DeviceError(SadkitError):
    """A requested compute device that is not available."""


class NotFittedError(SadkitError, AttributeError):
    """A detector used before `fit`."""


class SignalNotAvailableError(SadkitError):
    """A detector without a per-sample signal (``Detector.signal``) where one is needed."""


class SpecError(SadkitError):
    """An experiment specification with a missing or unknown key."""


class PluginWarning(UserWarning):
    """A registered plugin that fails to load (reported, never skipped silently)."""
