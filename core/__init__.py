"""sadkit: semi-supervised anomaly detection, Deep SAD and its baselines as plugins.

The public API: the data, network and detector contracts, the registry helpers and the errors.
Nothing here imports a plugin, mlflow or optuna.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .callbacks import Callback, CallbackList
from .data import ANOMALY, NORMAL, UNLABELED, Dataset, Split
from .detector import Detector, load_detector
from .errors import (
    DataError,
    DeviceError,
    DuplicatePluginError,
    InvalidInputError,
    NotFittedError,
    PluginLoadError,
    PluginNotFoundError,
    SadkitError,
    SignalNotAvailableError,
    SpecError,
)
from .metrics import auprc, auroc
from .network import AutoEncoder, Network
from .registry import create_dataset, create_detector, create_network, list_plugins
from .torch_detector import TorchDetector

try:
    __version__ = version("sadkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ANOMALY",
    "NORMAL",
    "UNLABELED",
    "AutoEncoder",
    "Callback",
    "CallbackList",
    "DataError",
    "Dataset",
    "Detector",
    "DeviceError",
    "DuplicatePluginError",
    "InvalidInputError",
    "Network",
    "NotFittedError",
    "PluginLoadError",
    "PluginNotFoundError",
    "SadkitError",
    "SignalNotAvailableError",
    "Split",
    "SpecError",
    "TorchDetector",
    "auprc",
    "auroc",
    "create_dataset",
    "create_detector",
    "create_network",
    "list_plugins",
    "load_detector",
    "__version__",
]
