"""sadkit: semi-supervised anomaly detection, Deep SAD and its baselines as plugins.

The public API: the data, network and detector contracts, the registry helpers and the errors.
Importing ``sadkit`` is light: the errors are loaded at once, everything else on first use (PEP 562
module ``__getattr__``), so ``import sadkit`` imports neither torch, scikit-learn, mlflow, optuna nor
matplotlib, and nothing here ever imports a plugin.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    DataError,
    DeviceError,
    DuplicatePluginError,
    InvalidInputError,
    PluginLoadError,
    PluginNotFoundError,
    SadkitError,
    SignalNotAvailableError,
    SpecError,
)

if TYPE_CHECKING:
    from .callbacks import Callback, CallbackList
    from .data import ANOMALY, NORMAL, UNLABELED, Dataset, Split
    from .detector import Detector, load_detector
    from .errors import NotFittedError
    from .metrics import auprc, auroc
    from .network import AutoEncoder, Network
    from .registry import create_dataset, create_detector, create_network, list_plugins
    from .torch_detector import TorchDetector

#: public name -> the submodule that defines it, imported when the name is first used
_LAZY = {
    "Callback": "callbacks",
    "CallbackList": "callbacks",
    "ANOMALY": "data",
    "NORMAL": "data",
    "UNLABELED": "data",
    "Dataset": "data",
    "Split": "data",
    "Detector": "detector",
    "load_detector": "detector",
    "auprc": "metrics",
    "auroc": "metrics",
    "AutoEncoder": "network",
    "Network": "network",
    "create_dataset": "registry",
    "create_detector": "registry",
    "create_network": "registry",
    "list_plugins": "registry",
    "NotFittedError": "errors",  # scikit-learn's NotFittedError too, so made on first use
    "TorchDetector": "torch_detector",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("sadkit")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            value = "0.0.0"
    elif not name.startswith("_"):  # a submodule (sadkit.training, ...), as if imported by ``from sadkit import``
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
