"""Saving and loading fitted detectors: JSON and tensors, and no code run from the files.

A saved detector is a folder:

* ``detector.json``: the format version, the detector's registered name (its entry point in
  ``sadkit.detectors``) with the distribution and version that registered it, its parameters, the input
  shape and feature names, and the decision rule (``threshold_`` and the quantiles of the training scores);
* ``state.pt``: the learned state, written with ``torch.save`` from tensors, numbers, strings, lists and
  dicts only, and read with ``torch.load(weights_only=True)``;
* ``preprocessing.json`` when the model takes raw rows (see :mod:`sadkit.preprocessing`).

Loading resolves the class through the plugin registry by the registered name. It never imports a module
path read from a file: a tampered ``detector.json`` can name another *registered* detector at most. A file
that is missing, truncated, not JSON or lacks a key is a :class:`~sadkit.errors.SadkitError` naming it.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import SadkitError
from .preprocessing import Preprocessor
from .serialize import to_json, to_saveable

if TYPE_CHECKING:
    from .detector import Detector

PARAMS_FILE = "detector.json"
STATE_FILE = "state.pt"
#: 2: the registered name instead of a module path, feature names, the decision rule; 1 read as well
FORMAT_VERSION = 2

#: format-1 files name classes by module path; some classes have moved since: old path -> new path
_MOVED_CLASSES = {
    "sadkit.plugins.shallow:OCSVM": "sadkit.plugins.shallow.ocsvm:OCSVM",
    "sadkit.plugins.shallow:IsolationForest": "sadkit.plugins.shallow.iforest:IsolationForest",
    "sadkit.plugins.shallow:KDE": "sadkit.plugins.shallow.kde:KDE",
    "sadkit.plugins.ssad:SSAD": "sadkit.plugins.shallow.ssad:SSAD",
    "sadkit.plugins.supervised:Supervised": "sadkit.plugins.shallow.supervised:Supervised",
}


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def save(detector: Detector, path: str | os.PathLike) -> Path:
    """Write the fitted ``detector`` to the folder ``path`` (see the module docstring)."""
    import torch

    from .registry import entry_point_name

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    registered = entry_point_name("detectors", class_path(type(detector)))
    name, distribution, version = registered if registered else (None, None, None)
    meta = {
        "format": FORMAT_VERSION,
        "detector": name,
        "distribution": distribution,
        "version": version,
        "class": class_path(type(detector)),
        "params": to_json(detector.get_params(deep=False)),
        "input_shape": list(detector.input_shape_),
        "n_features_in": int(detector.n_features_in_),
        "feature_names_in": to_json(getattr(detector, "feature_names_in_", None)),
        "decision": to_json(detector._decision_state()),
    }
    (path / PARAMS_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    torch.save(to_saveable(detector._get_state()), path / STATE_FILE)
    preprocessing = path / "preprocessing.json"
    if detector.preprocessor_ is not None:
        detector.preprocessor_.save(path)
    elif preprocessing.exists():
        preprocessing.unlink()
    return path


def _read_meta(path: Path) -> dict[str, Any]:
    file = path / PARAMS_FILE
    if not file.is_file():
        raise SadkitError(f"{path} holds no saved detector ({PARAMS_FILE} is missing)")
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise SadkitError(f"{file} is not a readable detector description ({type(err).__name__}: {err})") from err
    if not isinstance(meta, Mapping):
        raise SadkitError(f"{file} is not a detector description (expected a JSON object)")
    version = meta.get("format")
    if version not in (1, FORMAT_VERSION):
        raise SadkitError(
            f"{file} has format version {version!r}; this sadkit reads versions 1 and {FORMAT_VERSION}"
            + (" (it was saved by a newer sadkit: upgrade)" if isinstance(version, int) and version > 2 else "")
        )
    missing = [k for k in ("params", "input_shape", "class") if k not in meta]
    if missing:
        raise SadkitError(f"{file} (format {version}) lacks the key(s) {', '.join(missing)}")
    return dict(meta)


def _resolve(meta: Mapping[str, Any], file: Path, expected: type) -> type:
    """The class of a saved detector: by registered name, never by importing a path from the file."""
    from .detector import Detector
    from .registry import entry_point_name, get

    name = meta.get("detector")
    if meta["format"] == 1:  # format 1 saved a module path: find the plugin registered under it
        found = entry_point_name("detectors", _MOVED_CLASSES.get(str(meta["class"]), str(meta["class"])))
        name = found[0] if found else None
    if name is None:
        if expected is not Detector and class_path(expected) == meta["class"]:
            return expected  # the caller named the class itself: trusted code, not the file
        raise SadkitError(
            f"{file} holds a {meta['class']} (format {meta['format']}), which is not a registered detector; load it"
            f" with that class's own load() or register it under the sadkit.detectors entry points"
        )
    cls = get("detectors", str(name))
    if not (isinstance(cls, type) and issubclass(cls, expected)):
        raise SadkitError(f"{file} holds a {name!r} detector, not a {expected.__name__}")
    return cls


def _read_state(file: Path) -> Any:
    import torch

    if not file.is_file():
        raise SadkitError(f"{file} is missing: the saved detector has no learned state")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise SadkitError(f"{file} is not a readable state file (truncated or tampered?): {err}") from err


def load(path: str | os.PathLike, expected: type | None = None) -> Detector:
    """Read a detector written by :func:`save` (or by sadkit's format 1).

    Args:
        expected: the class the caller wants (``DeepSAD.load(path)``); the saved one must be it or a
            subclass. Default: any detector.

    Raises:
        SadkitError: the folder does not hold an intact saved detector (the message names the file), or
            it holds an unregistered or unexpected class.
    """
    from .detector import Detector

    expected = expected or Detector
    path = Path(path)
    meta = _read_meta(path)
    file = path / PARAMS_FILE
    cls = _resolve(meta, file, expected)
    params = meta["params"]
    if not isinstance(params, Mapping):
        raise SadkitError(f"{file}: 'params' must be a JSON object")
    try:
        detector = cls(**params)
    except TypeError as err:
        raise SadkitError(f"{file}: the parameters do not fit {cls.__name__} ({err})") from err
    state = _read_state(path / STATE_FILE)
    try:
        detector.input_shape_ = tuple(int(d) for d in meta["input_shape"])
        detector._set_state(state)
        detector._set_decision_state(meta.get("decision"), meta)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise SadkitError(
            f"{path / STATE_FILE} and {file} do not hold a complete {cls.__name__} ({type(err).__name__}: {err})"
        ) from err
    vars(detector).setdefault("timings_", {})
    detector.preprocessor_ = Preprocessor.load(path)
    if detector.preprocessor_ is not None:
        detector.n_features_in_ = detector.preprocessor_.n_features_in_
        if detector.preprocessor_.feature_names_in_ is not None:
            detector.feature_names_in_ = np.asarray(detector.preprocessor_.feature_names_in_, dtype=object)
    return detector
