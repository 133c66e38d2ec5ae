"""Image benchmarks: MNIST, Fashion-MNIST and CIFAR-10, one class normal and the other nine anomalous.

The paper's one-vs-rest setup (Ruff et al. 2020, Section 4.2) with the shared sampling protocol of
:mod:`sadkit.data`: the training pool is the official training set; one class (``normal_class``) is
normal and the other nine are anomalies; ``n_known_outlier_classes`` of them (``known_outlier_class``,
or drawn by the seed) supply the labeled anomalies (``ratio_known_outlier``, gamma_l); the unlabeled
part is polluted with anomalies of all nine classes (``ratio_pollution``, gamma_p); the validation
split is carved from the sampled training set. The test split is the **whole official test set**
(label 0 for the normal class, 1 for every other), unlabeled.

Files are read in their official raw formats, in torchvision's folder layout under the data root
(so a folder torchvision already filled works as is, and this package does not depend on torchvision):

* ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (IDX files),
* ``<root>/FashionMNIST/raw/`` (the same four IDX file names),
* ``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (extracted from ``cifar-10-python.tar.gz``).

Missing files are downloaded from the official URLs (mirrors tried in turn) and every file, present
or downloaded, is checked against its official MD5 (the values torchvision uses), so a truncated or
wrong file is an error, never a silent change of the benchmark. CIFAR-10's batches are Python pickles:
they are read with an unpickler that can build nothing but numpy arrays and plain containers, so a
tampered file cannot run code.

Preprocessing happens once, on whole arrays, when the splits are built (never per sample per epoch):

* ``preprocessing="scale"`` (default): pixels / 255, in [0, 1], as the Deep SAD reference code
  (``transforms.ToTensor()``).
* ``preprocessing="gcn"``: the Deep SVDD paper's global contrast normalisation with the L1 norm
  (per image: subtract its mean, divide by its mean absolute deviation) followed by min-max scaling
  to [0, 1] with the minimum and maximum over the training samples not labeled anomalous. Deep SVDD
  hard-coded those per normal class (computed on that class's training images); here they are
  computed from the training split, which with no pollution and no labeled anomalies is exactly the
  normal class's training data, and which never uses ground-truth labels otherwise.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sadkit.data import ANOMALY, Dataset, Split, resolve_known_outlier_classes
from sadkit.download import extract_folder, fetch_file, mirror_urls, verify_file
from sadkit.errors import DataError, InvalidInputError
from sadkit.preprocessing import (
    ContrastNormalize,
    PixelScale,
    Preprocessor,
    Transform,
    global_contrast_normalization,
)

from ._formats import cached_read, read_cifar_batch, read_idx

N_CLASSES = 10
PREPROCESSING = ("scale", "gcn")


# ------------------------------------------------------------------------------------------ preprocessing


def scale_pixels(X: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1], bit for bit as ``transforms.ToTensor()`` (x / 255 in float32)."""
    return PixelScale().transform(X)


# ------------------------------------------------------------------------------------------ datasets


class ImageDataset(Dataset):
    """A 10-class image benchmark in the one-vs-rest setup (see the module docstring).

    Args:
        root: data folder (torchvision's layout inside); default ``$SADKIT_DATA`` or the user cache.
        normal_class: the normal class, 0-9; the other nine are anomalies.
        known_outlier_class: the class of the labeled anomalies (``n_known_outlier_classes`` must then
            be 1); None draws the known classes with the seed (as the paper's scenarios do).
        n_known_outlier_classes: how many anomaly classes supply labeled anomalies (0-9); more than
            one are drawn with the seed.
        ratio_known_normal: fraction of labeled normals in the training set.
        ratio_known_outlier: fraction of labeled anomalies in the training set (gamma_l).
        ratio_pollution: fraction of anomalies among the unlabeled training samples (gamma_p).
        val_fraction: part of the sampled training set held out for validation.
        seed: drives the choice of known classes and the sampling.
        preprocessing: ``"scale"`` (pixels / 255, the reference's default) or ``"gcn"`` (global
            contrast normalisation, L1, then min-max scaling with training statistics; Deep SVDD).
        url: base URL to download the files from instead of the official ones (MD5s are checked
            either way).
        download: download missing files; False makes a missing file an error.

    Raises:
        InvalidInputError: a class outside 0-9, a known anomaly class equal to the normal class or
            given with ``n_known_outlier_classes`` other than 1, more known anomaly classes than the nine
            that exist, an unknown preprocessing (at construction); a ratio the training set cannot
            satisfy (at :meth:`load`).
        DataError: a file that is corrupt, truncated or cannot be downloaded (at :meth:`load`).
    """

    #: display name (messages)
    title: ClassVar[str] = "images"
    #: class names, index = label
    classes: ClassVar[tuple[str, ...]] = tuple(str(i) for i in range(N_CLASSES))
    #: shape of one sample, channels first
    image_shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        normal_class: int = 0,
        known_outlier_class: int | None = None,
        n_known_outlier_classes: int = 1,
        ratio_known_normal: float = 0.0,
        ratio_known_outlier: float = 0.0,
        ratio_pollution: float = 0.0,
        val_fraction: float = 0.1,
        seed: int = 0,
        preprocessing: str = "scale",
        url: str | None = None,
        download: bool = True,
    ) -> None:
        for name, value in (("normal_class", normal_class), ("known_outlier_class", known_outlier_class)):
            if value is not None and not _is_int(value):
                raise InvalidInputError(f"{name} must be an integer class 0-9, got {value!r}")
        if not _is_int(n_known_outlier_classes):
            raise InvalidInputError(f"n_known_outlier_classes must be an integer 0-9, got {n_known_outlier_classes!r}")
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
        self.preprocessing = preprocessing
        self.url = url
        self.download = bool(download)
        self._check_params()

    def _check_params(self) -> None:
        names = ", ".join(f"{i} {c}" for i, c in enumerate(self.classes))
        if not 0 <= self.normal_class < N_CLASSES:
            raise InvalidInputError(
                f"normal_class must be one of the {self.title} classes 0-{N_CLASSES - 1} ({names});"
                f" got {self.normal_class}"
            )
        known = self.known_outlier_class
        if known is not None and not 0 <= known < N_CLASSES:
            raise InvalidInputError(
                f"known_outlier_class must be one of the {self.title} classes 0-{N_CLASSES - 1} ({names}),"
                f" or None to draw one with the seed; got {known}"
            )
        if known is not None and known == self.normal_class:
            raise InvalidInputError(
                f"known_outlier_class={known} is the normal class: labeled anomalies must come from another"
                " class; choose one of the other nine, or known_outlier_class=None to draw one with the seed"
            )
        if not 0 <= self.n_known_outlier_classes <= N_CLASSES - 1:
            raise InvalidInputError(
                f"n_known_outlier_classes must be between 0 and {N_CLASSES - 1} (the anomaly classes are the"
                f" {N_CLASSES - 1} classes other than normal_class={self.normal_class}); got"
                f" {self.n_known_outlier_classes}"
            )
        if known is not None and self.n_known_outlier_classes != 1:
            raise InvalidInputError(
                f"known_outlier_class={known} names one known anomaly class but n_known_outlier_classes="
                f"{self.n_known_outlier_classes}; set n_known_outlier_classes=1 to use that class, or"
                " known_outlier_class=None to draw the known classes with the seed"
            )
        if self.preprocessing not in PREPROCESSING:
            raise InvalidInputError(
                f"preprocessing must be one of {', '.join(PREPROCESSING)} ('scale': pixels / 255; 'gcn': global"
                f" contrast normalisation + min-max scaling), got {self.preprocessing!r}"
            )
        if self.seed < 0:
            raise InvalidInputError(f"seed must be a non-negative integer, got {self.seed}")

    @property
    def outlier_classes(self) -> list[int]:
        """The nine anomaly classes (every class but the normal one)."""
        return [c for c in range(N_CLASSES) if c != self.normal_class]

    @abstractmethod
    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Fetch (if needed), check and read the official files.

        Returns:
            ``(train images, train labels, test images, test labels)``; images uint8 ``(n, C, H, W)``,
            labels int64 class numbers 0-9.
        """

    def load(self) -> tuple[Split, Split, Split]:
        """Return ``(train, val, test)``: X float32 ``(n, C, H, W)``, y and semi_y int64."""
        X_train_all, labels_train, X_test_raw, labels_test = self.read()
        for what, labels in (("training", labels_train), ("test", labels_test)):
            bad = labels[(labels < 0) | (labels >= N_CLASSES)]
            if bad.size:
                raise DataError(
                    f"the {self.title} {what} labels hold classes outside 0-9: {np.unique(bad)[:5].tolist()};"
                    " the files are not the official ones"
                )
        rng = np.random.default_rng(self.seed)
        outliers = self.outlier_classes
        known = resolve_known_outlier_classes(outliers, self.known_outlier_class, self.n_known_outlier_classes, rng)
        self._known_outlier_classes = known
        # The sampler picks rows of its X: handing it positions gives back positions into the
        # official training set, so only the chosen images are converted to float.
        (train_idx, y_train, labels_train), (val_idx, y_val, labels_val) = self.semi_supervised_splits(
            np.arange(len(labels_train)), labels_train, [self.normal_class], outliers, known, rng
        )
        self._train_index, self._val_index = train_idx, val_idx
        steps: list[Transform] = [PixelScale()]
        if self.preprocessing == "gcn":
            # the min-max bounds come from the training images that are not labeled anomalies
            reference = global_contrast_normalization(scale_pixels(X_train_all[train_idx[labels_train != ANOMALY]]))
            low, high = (float(reference.min()), float(reference.max())) if reference.size else (0.0, 1.0)
            self._minmax = (low, high)
            steps = [PixelScale(), ContrastNormalize(low=low, high=high)]
        self._preprocessor = Preprocessor(steps, input_shape=self.image_shape, examples=X_train_all[train_idx[:5]])
        X_train, X_val, X_test = (
            self._preprocessor.transform(A) for A in (X_train_all[train_idx], X_train_all[val_idx], X_test_raw)
        )
        y_test = (labels_test != self.normal_class).astype(np.int64)
        as_int = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
        return (
            Split(X_train, as_int(y_train), labels=as_int(labels_train), ids=as_int(train_idx)),
            Split(X_val, as_int(y_val), labels=as_int(labels_val), ids=as_int(val_idx)),
            Split(X_test, y_test, ids=len(X_train_all) + np.arange(len(y_test))),  # after the training images' ids
        )

    @property
    def known_outlier_classes(self) -> list[int]:
        """The known anomaly classes the last :meth:`load` used (drawn ones included)."""
        if not hasattr(self, "_known_outlier_classes"):
            raise InvalidInputError("the known anomaly classes are chosen by load(); call it first")
        return list(self._known_outlier_classes)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class _IdxDataset(ImageDataset):
    """MNIST-like: four gzip IDX files in ``<root>/<folder>/raw``."""

    folder: ClassVar[str]
    mirrors: ClassVar[tuple[str, ...]]
    #: file name -> official MD5 of the .gz
    files: ClassVar[dict[str, str]]
    TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
    TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
    TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
    TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

    @property
    def raw_folder(self) -> Path:
        return self.root / self.folder / "raw"

    def fetch(self) -> dict[str, Path]:
        """Make sure the four files are present and intact (downloading missing ones); return their paths."""
        bases = (self.url,) if self.url else self.mirrors
        return {
            name: fetch_file(
                self.raw_folder / name, md5, mirror_urls(bases, name), algorithm="md5", download_missing=self.download
            )
            for name, md5 in self.files.items()
        }

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        paths = self.fetch()
        return cached_read(paths, self._parse)

    def _parse(self, paths: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        out = []
        for images_name, labels_name in ((self.TRAIN_IMAGES, self.TRAIN_LABELS), (self.TEST_IMAGES, self.TEST_LABELS)):
            images, labels = read_idx(paths[images_name]), read_idx(paths[labels_name])
            if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != self.image_shape[1:]:
                raise DataError(
                    f"{paths[images_name]} holds {images.dtype} {images.shape}, not uint8 images of"
                    f" {self.image_shape[1]}x{self.image_shape[2]}"
                )
            if labels.ndim != 1 or len(labels) != len(images):
                raise DataError(
                    f"{paths[labels_name]} holds {labels.shape} labels for {len(images)} images in {paths[images_name]}"
                )
            out += [images[:, None], labels.astype(np.int64)]
        return tuple(out)  # type: ignore[return-value]


class MNIST(_IdxDataset):
    """MNIST (LeCun et al. 1998): 28x28 grayscale digits, 60,000 training and 10,000 test images.

    Files: ``<root>/MNIST/raw/*-ubyte.gz``, downloaded from torchvision's mirror or LeCun's site when
    missing. Network by default: ``mnist_lenet``. See :class:`ImageDataset` for the parameters.
    """

    title = "MNIST"
    classes = tuple(str(i) for i in range(N_CLASSES))
    image_shape = (1, 28, 28)
    default_network = "mnist_lenet"
    folder = "MNIST"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist")
    files = {
        _IdxDataset.TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        _IdxDataset.TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
        _IdxDataset.TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
        _IdxDataset.TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
    }


class FashionMNIST(_IdxDataset):
    """Fashion-MNIST (Xiao et al. 2017): 28x28 grayscale clothing, 60,000 training and 10,000 test images.

    Files: ``<root>/FashionMNIST/raw/*-ubyte.gz``, downloaded from Zalando's official bucket when
    missing. Network by default: ``fmnist_lenet``. See :class:`ImageDataset` for the parameters.
    """

    title = "Fashion-MNIST"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    image_shape = (1, 28, 28)
    default_network = "fmnist_lenet"
    folder = "FashionMNIST"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",)
    files = {
        _IdxDataset.TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        _IdxDataset.TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
        _IdxDataset.TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
        _IdxDataset.TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
    }


class CIFAR10(ImageDataset):
    """CIFAR-10 (Krizhevsky 2009): 32x32 RGB images, 50,000 training and 10,000 test images.

    Files: ``<root>/cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``),
    extracted from ``cifar-10-python.tar.gz`` (downloaded from the official page when missing; kept
    beside the folder). Network by default: ``cifar10_lenet``. See :class:`ImageDataset` for the parameters.
    """

    title = "CIFAR-10"
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    image_shape = (3, 32, 32)
    default_network = "cifar10_lenet"
    folder = "cifar-10-batches-py"
    archive = "cifar-10-python.tar.gz"
    archive_md5 = "c58f30108f718f92721af3b95e74349a"
    base_url = "https://www.cs.toronto.edu/~kriz"
    #: batch file -> official MD5
    batches = {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    }

    @property
    def batch_folder(self) -> Path:
        return self.root / self.folder

    def fetch(self) -> dict[str, Path]:
        """Make sure the six batches are present and intact (downloading and extracting the archive
        when one is missing); return their paths."""
        paths = {name: self.batch_folder / name for name in self.batches}
        if not all(p.is_file() for p in paths.values()):
            archive = self.root / self.archive
            url = f"{(self.url or self.base_url).rstrip('/')}/{self.archive}"
            fetch_file(archive, self.archive_md5, [url], algorithm="md5", download_missing=self.download)
            extract_folder(archive, self.root, self.folder)
            missing = [name for name, p in paths.items() if not p.is_file()]
            if missing:
                raise DataError(f"{archive} lacks {', '.join(missing)}; it is not the CIFAR-10 python archive")
        for name, md5 in self.batches.items():
            verify_file(paths[name], md5, algorithm="md5")
        return paths

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        paths = self.fetch()
        return cached_read(paths, self._parse)

    def _parse(self, paths: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        train = [read_cifar_batch(paths[name]) for name in self.batches if name != "test_batch"]
        X_test, y_test = read_cifar_batch(paths["test_batch"])
        return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), X_test, y_test


__all__ = [
    "CIFAR10",
    "MNIST",
    "FashionMNIST",
    "ImageDataset",
    "global_contrast_normalization",
    "scale_pixels",
]
