"""Exceptions raised by sadkit. Every message says what went wrong and what to do about it."""

from __future__ import annotations


class SadkitError(Exception):
    """Base class of every error sadkit raises on purpose."""


class InvalidInputError(SadkitError, ValueError):
    """Data or parameters that a detector, dataset or network cannot accept."""


class InvalidTypeError(InvalidInputError, TypeError):
    """Data or parameters of a type that cannot be used (e.g. objects where numbers are needed)."""


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


def __getattr__(name: str) -> type:
    """``NotFittedError`` is made on first use: it subclasses scikit-learn's, whose import is not cheap."""
    if name == "NotFittedError":
        from sklearn.exceptions import NotFittedError as SklearnNotFittedError

        class NotFittedError(SadkitError, SklearnNotFittedError):
            """A detector used before ``fit`` (scikit-learn's ``NotFittedError`` too, so its checks know it)."""

        NotFittedError.__module__ = __name__
        globals()["NotFittedError"] = NotFittedError
        return NotFittedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SignalNotAvailableError(SadkitError):
    """A detector without a per-sample signal (``Detector.signal``) where one is needed."""


class SpecError(SadkitError):
    """An experiment specification with a missing or unknown key."""


class SadkitWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it as one line)."""


class PluginWarning(SadkitWarning):
    """A registered plugin that fails to load (reported, never skipped silently)."""
