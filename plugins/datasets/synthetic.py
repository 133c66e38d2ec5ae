"""A small, fast, deterministic tabular dataset for demos and tests (no files, no download).

Normals are drawn from a standard Gaussian, anomalies from a wider Gaussian whose mean is shifted,
so any reasonable detector ranks most anomalies above most normals. The table is split, sampled and
scaled exactly like the ODDS tables (see :mod:`sadkit.plugins.datasets._tabular`).
"""

from __future__ import annotations

import os

import numpy as np

from sadkit.errors import InvalidInputError

from ._tabular import ANOMALY, NORMAL, TabularDataset, check_binary_params

#: mean shift (per feature) and standard deviation of the anomalies; normals are N(0, 1)
ANOMALY_SHIFT = 1.0
ANOMALY_SCALE = 2.0

#: spawn key of the stream that draws the table (the sampler uses ``default_rng(seed)``)
_DATA_STREAM = (2,)


class Synthetic(TabularDataset):
    """Gaussian normals (class 0) and shifted, wider Gaussian anomalies (class 1).

    Args:
        n_samples: rows of the whole table (before the 60/40 train/test split).
        n_features: columns.
        anomaly_fraction: fraction of anomalies in the table.
        root: unused (no files); accepted so every dataset takes the same parameters.
        normal_class: must be 0.
        known_outlier_class: must be 1 (or None when ``n_known_outlier_classes`` is 0).
        n_known_outlier_classes: 1 (labeled anomalies exist) or 0.
        ratio_known_normal: fraction of labeled normals in the training set.
        ratio_known_outlier: fraction of labeled anomalies in the training set (gamma_l).
        ratio_pollution: fraction of anomalies among the unlabeled training samples (gamma_p).
        val_fraction: part of the sampled training set held out for validation.
        seed: drives the table, the split and the sampling.
        image_shape: ``[C, H, W]`` to serve each sample as an image of that shape (``n_features`` becomes
            C * H * W): a quick image dataset for checks and demos. ``[1, 28, 28]`` uses the MNIST LeNet,
            ``[3, 32, 32]`` the CIFAR-10 LeNet, any other shape the ``mlp``.
    """

    #: networks of the image shapes the paper's LeNets take
    IMAGE_NETWORKS = {(1, 28, 28): "mnist_lenet", (3, 32, 32): "cifar10_lenet"}
    #: small enough that the conformance checks load it in a moment
    fast_params = {"n_samples": 600}

    def __init__(
        self,
        *,
        n_samples: int = 2000,
        n_features: int = 8,
        anomaly_fraction: float = 0.1,
        root: str | os.PathLike | None = None,
        normal_class: int = 0,
        known_outlier_class: int | None = 1,
        n_known_outlier_classes: int = 1,
        ratio_known_normal: float = 0.0,
        ratio_known_outlier: float = 0.05,
        ratio_pollution: float = 0.0,
        val_fraction: float = 0.1,
        seed: int = 0,
        image_shape: list[int] | tuple[int, ...] | None = None,
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
        self.n_samples = int(n_samples)
        self.image_shape = image_shape
        if image_shape is not None:
            shape = tuple(int(d) for d in image_shape) if isinstance(image_shape, (list, tuple)) else ()
            if len(shape) != 3 or min(shape) < 1:
                raise InvalidInputError(f"image_shape must be [channels, height, width], got {image_shape!r}")
            self.sample_shape = shape
            n_features = int(np.prod(shape))
        self.n_features = int(n_features)
        self.anomaly_fraction = float(anomaly_fraction)
        if self.n_features < 1:
            raise InvalidInputError(f"n_features must be >= 1, got {n_features}")
        if not 0.0 < self.anomaly_fraction < 1.0:
            raise InvalidInputError(f"anomaly_fraction must be in (0, 1), got {anomaly_fraction}")
        n_anomalies = self._n_anomalies()
        if n_anomalies < 2 or self.n_samples - n_anomalies < 2:
            raise InvalidInputError(
                f"n_samples={self.n_samples} with anomaly_fraction={self.anomaly_fraction} gives"
                f" {n_anomalies} anomalies and {self.n_samples - n_anomalies} normals; both need at"
                " least 2 (raise n_samples)"
            )
        check_binary_params(self, "the synthetic dataset")

    @property
    def network(self) -> str:
        """The LeNet of the paper for its image shapes, else ``mlp``."""
        return self.IMAGE_NETWORKS.get(self.sample_shape or (), self.default_network)

    def _n_anomalies(self) -> int:
        return int(round(self.anomaly_fraction * self.n_samples))

    def _read(self) -> tuple[np.ndarray, np.ndarray, str]:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=_DATA_STREAM))
        n_anomalies = self._n_anomalies()
        n_normal = self.n_samples - n_anomalies
        normals = rng.standard_normal((n_normal, self.n_features))
        anomalies = rng.normal(ANOMALY_SHIFT, ANOMALY_SCALE, size=(n_anomalies, self.n_features))
        X = np.concatenate([normals, anomalies])
        y = np.concatenate([np.full(n_normal, NORMAL), np.full(n_anomalies, ANOMALY)]).astype(np.int64)
        order = rng.permutation(self.n_samples)
        return X[order], y[order], "the synthetic dataset"
