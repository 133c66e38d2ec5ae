"""ODDS (Outlier Detection DataSets) tables, as in Deep SAD's classic AD benchmark experiments.

Files live at ``<root>/odds/<name>.mat``. The 22 known files are downloaded on first use from fixed
commits of the ``yzhao062/pyod`` repository (which carries the ODDS files) and checked against their
SHA-256; a file already there is checked too, so a truncated or wrong copy is an error rather than a
silent change of the benchmark. Any other name loads the user's own ``<root>/odds/<name>.mat``
(holding ``X`` and ``y``, 1 = anomaly), unchecked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sadkit.defaults import step_budget_defaults
from sadkit.download import download, verify_file
from sadkit.errors import DataError, InvalidInputError

from ._tabular import TabularDataset, check_binary_params

_PYOD_HEAD = "34f7996effac700a5166d882d5e94c6e6078fae3"
_PYOD_2018 = "ef6d5e8dc828615f498286c1d6a22cbd02fd4cd2"  # thyroid & co. were removed after it
_RAW_URL = "https://raw.githubusercontent.com/yzhao062/pyod/{commit}/notebooks/data/{name}.mat"


class OddsFile(NamedTuple):
    """A known ODDS file: its SHA-256 and the ``yzhao062/pyod`` commit it is fetched from."""

    sha256: str
    commit: str


#: name -> (sha256, pyod commit); path in the repository: notebooks/data/<name>.mat
KNOWN_FILES: dict[str, OddsFile] = {
    "annthyroid": OddsFile("17a1012d005f2179eca3b87c0028eb5ca807794b359c33fa1f8ca5ac846c514f", _PYOD_2018),
    "arrhythmia": OddsFile("e4d47e499591ae31e5d7f0cd983367092353eac240f48e14c9b36457edb3460d", _PYOD_HEAD),
    "breastw": OddsFile("a2e3f7c7f61ddde87c4373f0c0539de996227b9659c70b3c227948ebf0c6062b", _PYOD_2018),
    "cardio": OddsFile("5e568b6a73711012c481fa6cc984ab9c68e9a4fa44d6aeb3b43efa381c3f695b", _PYOD_HEAD),
    "glass": OddsFile("2c506e6e1e2ca1e82a905d10a90773151ff812c4bd969c71a12db5b2bb6e7921", _PYOD_HEAD),
    "ionosphere": OddsFile("8ac5dfa6f47db4acdfe10615489b7f7dd015d79d5b381ce641e72baca3cfefb0", _PYOD_HEAD),
    "letter": OddsFile("f4a229b0e2a6b0c9157ce27fa760bcbac0f948cd690b2f5d51c120e5450f2195", _PYOD_HEAD),
    "lympho": OddsFile("031b907ecb50347720b08b38f8139d05635adeca9335a064d89d5569c27a5834", _PYOD_HEAD),
    "mammography": OddsFile("271ebb568314a856666d3504b4882e21b0ea6e1ba9e648ad256d572a36df597e", _PYOD_2018),
    "mnist": OddsFile("9479e221f236684c09f3e11c7ad124725d34ecd301b9450425e8b113368413a6", _PYOD_HEAD),
    "musk": OddsFile("50bbf414caceb66cfe6f6b1eb7c1ff7c6eb1e6d87173f7bb597ba55cd3dc5493", _PYOD_HEAD),
    "optdigits": OddsFile("30c664cd6f3740a173277a27cd1028d471b06f0835a9902c9712749cec58c1c4", _PYOD_HEAD),
    "pendigits": OddsFile("7bc32ac83b3d583443acea8b1342a54aaa59eaedb9996af405322f473f3c22bc", _PYOD_HEAD),
    "pima": OddsFile("b6a5be8d548b9293d6958beceb1c77055591714d25d40d957eba87808456468f", _PYOD_HEAD),
    "satellite": OddsFile("6feac3112b9c14e1c3e60afc437f2f3d29dc1000119c9f950c628078778d6aa0", _PYOD_HEAD),
    "satimage-2": OddsFile("95c37a07cea2cb201f6900d14f521510e10b6b2f0074c06ac46d3157440ec67b", _PYOD_HEAD),
    "shuttle": OddsFile("b6e396c92354d5dcf5036901e36dc58e2913f2d1a5e138c35a2bedf9c69db899", _PYOD_HEAD),
    "smtp": OddsFile("5b6d13dd23e8c5e4235081ea58b606df216a2b9b86e7f5403cde26f62dafc0d8", _PYOD_2018),
    "thyroid": OddsFile("49155d7861b977e90808faf68343ff67a67f63090c2744d514dbb67ac68e7e33", _PYOD_2018),
    "vertebral": OddsFile("84b50b055f118f54b5c976650ccd284ab7c1adee822f8b3eb517c7e2c890d15e", _PYOD_HEAD),
    "vowels": OddsFile("51d5397bad1ceeda22b7cd44fd58125c5d603c9c2edb53aa59933330e259ac7b", _PYOD_HEAD),
    "wbc": OddsFile("afe6b26953cc196b9a480318c903e0edef22529c2f61bd02082438c6e70630a7", _PYOD_HEAD),
}

#: the networks of the Deep SAD paper's six ODDS datasets; every other table uses ``mlp``
PAPER_NETWORKS: dict[str, str] = {
    "arrhythmia": "arrhythmia_mlp",
    "cardio": "cardio_mlp",
    "satellite": "satellite_mlp",
    "satimage-2": "satimage-2_mlp",
    "shuttle": "shuttle_mlp",
    "thyroid": "thyroid_mlp",
}


def source_url(name: str, base_url: str | None = None) -> str:
    """Where the known file ``name`` is downloaded from (``<base_url>/<name>.mat`` if given)."""
    if base_url is not None:
        return f"{base_url.rstrip('/')}/{name}.mat"
    return _RAW_URL.format(commit=KNOWN_FILES[name].commit, name=name)


def read_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``X`` and ``y`` from a MATLAB file: v4/v5 with scipy, v7.3 (HDF5) with h5py.

    Raises:
        DataError: the file cannot be read or lacks ``X`` or ``y``.
    """
    import h5py
    import scipy.io
    import scipy.sparse

    path = Path(path)

    def from_hdf5() -> dict[str, np.ndarray]:
        with h5py.File(path, "r") as f:
            # MATLAB stores arrays column-major: h5py sees them transposed
            return {key: np.array(f[key]).T for key in ("X", "y") if key in f}

    try:
        if h5py.is_hdf5(path):
            data = from_hdf5()
        else:
            try:
                data = scipy.io.loadmat(path, variable_names=("X", "y"))
            except NotImplementedError:  # v7.3 that h5py did not recognise as such
                data = from_hdf5()
    except (OSError, ValueError, TypeError, scipy.io.matlab.MatReadError) as err:
        raise DataError(
            f"cannot read {path} as a MATLAB file ({type(err).__name__}: {err}); replace it with an intact copy"
        ) from err
    missing = [key for key in ("X", "y") if key not in data]
    if missing:
        raise DataError(
            f"{path} lacks the variable(s) {', '.join(missing)}; an ODDS file holds X (samples x"
            " features) and y (1 = anomaly, 0 = normal)"
        )
    X, y = data["X"], data["y"]
    if scipy.sparse.issparse(X):
        X = X.toarray()
    if scipy.sparse.issparse(y):
        y = y.toarray()
    return X, y


class ODDS(TabularDataset):
    """An ODDS table (class 0 normal, class 1 anomaly) under Deep SAD's protocol.

    One stratified 60/40 train/test split of all samples; the semi-supervised training set (and the
    validation split) is sampled from the 60%; features are standardized and then min-max scaled
    with statistics of the training split only. The test split is the whole 40%.

    Args:
        name: the table, e.g. ``"cardio"``, ``"satimage-2"``, ``"smtp"`` (see :data:`KNOWN_FILES`),
            or the name of your own ``<root>/odds/<name>.mat``.
        url: base URL to download known files from (``<url>/<name>.mat``) instead of the official
            raw GitHub URL; the SHA-256 is checked either way.
        root: data folder; files live in ``<root>/odds``. Default ``$SADKIT_DATA`` or the user cache.
        normal_class: must be 0.
        known_outlier_class: must be 1 (or None when ``n_known_outlier_classes`` is 0).
        n_known_outlier_classes: 1 (labeled anomalies exist) or 0.
        ratio_known_normal: fraction of labeled normals in the training set.
        ratio_known_outlier: fraction of labeled anomalies in the training set (gamma_l).
        ratio_pollution: fraction of anomalies among the unlabeled training samples (gamma_p).
        val_fraction: part of the sampled training set held out for validation.
        seed: drives the split and the sampling.

    Raises:
        InvalidInputError: a bad name or class parameter (at construction); NaN/inf features or a
            ratio the table cannot satisfy (at :meth:`load`).
        DataError: the file is missing and cannot be downloaded, or is corrupt (at :meth:`load`).
    """

    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        root: str | os.PathLike | None = None,
        normal_class: int = 0,
        known_outlier_class: int | None = 1,
        n_known_outlier_classes: int = 1,
        ratio_known_normal: float = 0.0,
        ratio_known_outlier: float = 0.0,
        ratio_pollution: float = 0.0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(
            root=root,
            normal_class=normal_class,
            known_outlier_class=known_outlier_class,
            n_known_outlier_classes=n_known_outlier_classes,
            ratio_known_normal=ratio_known_normal,
            ratio_known_outlier=ratio_known_outlier,
            ratio_pollution=ratio_pollution,
            val_fraction=val_fraction,
            seed=seed,
        )
        if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\"):
            raise InvalidInputError(
                f"name must be the name of an ODDS table such as 'cardio' (no folder, no extension), got {name!r}"
            )
        self.name = name
        self.url = url
        check_binary_params(self, f"ODDS {name!r}")

    @property
    def path(self) -> Path:
        """Where the file lives: ``<root>/odds/<name>.mat``."""
        return self.root / "odds" / f"{self.name}.mat"

    def detector_defaults(self, n_train: int) -> dict[str, Any]:
        """The paper's settings for its six tables; a budget of optimiser steps for every other one."""
        return {} if self.name in PAPER_NETWORKS else step_budget_defaults(n_train)

    @property
    def source(self) -> str:
        return str(self.path)

    @property
    def network(self) -> str:
        """The paper's network for its six ODDS tables, ``mlp`` for any other."""
        return PAPER_NETWORKS.get(self.name, self.default_network)

    def fetch(self) -> Path:
        """Make sure the file is present and intact (downloading a known one); return its path.

        Raises:
            DataError: a known file that is corrupt or cannot be downloaded, or an unknown name
                without a file.
        """
        path = self.path
        known = KNOWN_FILES.get(self.name)
        if known is None:
            if path.is_file():
                return path
            raise DataError(
                f"{self.name!r} is not a known ODDS table and {path} does not exist. Known tables:"
                f" {', '.join(sorted(KNOWN_FILES))}. To use your own table, save X (samples x"
                f" features) and y (1 = anomaly, 0 = normal) to {path}."
            )
        if path.is_file():
            verify_file(path, known.sha256)
            return path
        return download(source_url(self.name, self.url), path, known.sha256)

    def _read(self) -> tuple[np.ndarray, np.ndarray, str]:
        path = self.fetch()
        X, y = read_mat(path)
        return X, y, str(path)
