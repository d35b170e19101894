"""MNIST loading, validation and binarization.

The archive holds x_train (N, 28, 28) uint8, y_train (N,) uint8, x_test, y_test. A dataset made by
`lvm-studio data import` (core/dataset_import.py) has the same keys, square images of any side from
MIN_SIDE to MAX_SIDE, and optionally `label_names` (K,) str and `labelled` () bool (False: no labels).
Training uses dynamic binarization (a fresh x ~ Bernoulli(pixel/255) per batch);
evaluation uses one fixed-seed binarization of the test and validation sets so that
every evaluation sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lvm_studio.core.array_files import ArrayFileError, array_keys, load_arrays
from lvm_studio.core.shipped import shipped_dir

MNIST_FILE = "mnist.npz"
IMAGE_SHAPE = (28, 28)
N_PIXELS = 28 * 28
MIN_SIDE, MAX_SIDE = 8, 64  # image sides a dataset may have (the MLP's input is side²)
N_VALIDATION = 5000  # held out of the training set for validation (at most a tenth of a smaller set)
TEST_BINARIZATION_SEED = 1234
REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL_KEYS = ("label_names", "labelled")  # written by core/dataset_import.py
# the arrays of one data file together; MNIST itself is 52 MiB
MAX_DATA_BYTES = 2**31


class DataError(ValueError):
    """A data file that cannot be used, with a message naming what is wrong."""


def default_data_path() -> Path:
    """The MNIST copy shipped with the project: resources/mnist.npz in the repository,
    lvm_studio/_resources/mnist.npz inside an installed wheel (core/shipped.py)."""
    return shipped_dir("resources") / MNIST_FILE


@dataclass(frozen=True)
class MNIST:
    """uint8 images (N, side, side) and labels (N,); MNIST: 28 × 28, split 55,000 / 5,000 / 10,000.

    label_names: what label i means (an imported dataset's subfolder names; () for MNIST's digits);
    labelled: False for a dataset without labels (its y are all 0 and nothing colours by them).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""
    label_names: tuple[str, ...] = ()
    labelled: bool = True

    @property
    def side(self) -> int:
        """The images' side in pixels (28 for MNIST)."""
        return int(self.x_train.shape[1])

    @property
    def n_pixels(self) -> int:
        """Pixels per image, the VAE's x_dim: side²."""
        return self.side * self.side

    def label_name(self, label: int) -> str:
        return self.label_names[label] if 0 <= label < len(self.label_names) else str(label)

    def describe(self) -> str:
        """One line for a status bar or a log: size, counts, labels."""
        n = len(self.x_train) + len(self.x_val) + len(self.x_test)
        if not self.labelled:
            labels = "no labels"
        else:
            labels = f"{len(self.label_names) or len(np.unique(self.y_train))} labels"
        return f"{self.side}×{self.side}, {n:,} images ({len(self.x_test):,} test), {labels}"

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def float_images(self, name: str, device: torch.device | str = "cpu") -> torch.Tensor:
        """Grey levels in [0, 1], flattened: (N, side²) float32 ((N, 784) for MNIST)."""
        x, _ = self.split(name)
        return to_float_tensor(x, device)

    def binarized(
        self, name: str, seed: int = TEST_BINARIZATION_SEED, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """One fixed binarization of a split, (N, 784) float32 in {0, 1}; the same for a given seed."""
        g = torch.Generator().manual_seed(seed)
        probs = self.float_images(name)  # (N, 784)
        return torch.bernoulli(probs, generator=g).to(device)


def to_float_tensor(x_uint8: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(x_uint8)).reshape(len(x_uint8), -1)  # (N, 784)
    return x.to(device=device, dtype=torch.float32) / 255.0


def binarize(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarization: x ~ Bernoulli(probs), a fresh draw on each call."""
    return torch.bernoulli(probs, generator=generator)


def _check_array(arrays: dict, key: str, ndim: int, path: str) -> np.ndarray:
    a = arrays[key]
    if a.dtype != np.uint8:
        raise DataError(
            f"{path}: '{key}' has dtype {a.dtype}, expected uint8 pixel values 0..255"
            if key.startswith("x")
            else f"{path}: '{key}' has dtype {a.dtype}, expected uint8 labels"
        )
    if a.ndim != ndim:
        want = "(N, 28, 28)" if ndim == 3 else "(N,)"
        raise DataError(f"{path}: '{key}' has shape {a.shape}, expected {want}")
    if ndim == 3 and (a.shape[1] != a.shape[2] or not MIN_SIDE <= a.shape[1] <= MAX_SIDE):
        raise DataError(
            f"{path}: '{key}' has images of shape {a.shape[1:]}, expected 28x28 (or square, "
            f"{MIN_SIDE} to {MAX_SIDE} pixels a side: `lvm-studio data import` converts other images)"
        )
    return a


def _optional_labels(arrays: dict, name: str) -> tuple[tuple[str, ...], bool]:
    """An imported dataset's label_names and labelled flag; MNIST has neither: ((), True)."""
    names: tuple[str, ...] = ()
    if "label_names" in arrays:
        a = arrays["label_names"]
        if a.ndim != 1 or a.dtype.kind != "U":
            raise DataError(f"{name}: 'label_names' must be a 1-D array of strings, got {a.dtype} {a.shape}")
        names = tuple(str(v) for v in a)
    labelled = bool(arrays["labelled"]) if "labelled" in arrays and arrays["labelled"].size == 1 else True
    return names, labelled


def load_mnist(path: str | Path | None = None, n_validation: int | None = None) -> MNIST:
    """Load and validate an MNIST-style .npz; any problem raises DataError with one clear message.

    n_validation: training images held out for validation; None: N_VALIDATION for an MNIST file, a
    tenth of the training images (at most N_VALIDATION) for a dataset written by core/dataset_import.py."""
    path = Path(path) if path is not None else default_data_path()
    name = str(path)
    if not path.is_file():
        raise DataError(f"{name}: no such data file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # every .npz is a zip archive; a plain .npy or anything else is not MNIST
        raise DataError(
            f"{name}: not a readable .npz archive (expected a zip of .npy arrays with keys {', '.join(REQUIRED_KEYS)})"
        )
    try:  # every header's claimed size is checked against the file before anything is allocated
        arrays = load_arrays(path, allow_keys=(*REQUIRED_KEYS, *OPTIONAL_KEYS), max_bytes=MAX_DATA_BYTES)
    except ArrayFileError as e:
        raise DataError(str(e)) from None
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DataError(
            f"{name}: missing key(s) {', '.join(missing)}; an MNIST file needs "
            f"{', '.join(REQUIRED_KEYS)} (found: {', '.join(array_keys(path)) or 'none'})"
        )
    label_names, labelled = _optional_labels(arrays, name)
    x_train = _check_array(arrays, "x_train", 3, name)
    y_train = _check_array(arrays, "y_train", 1, name)
    x_test = _check_array(arrays, "x_test", 3, name)
    y_test = _check_array(arrays, "y_test", 1, name)
    for xs, ys, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(xs) != len(ys):
            raise DataError(f"{name}: {len(xs)} {split} images but {len(ys)} {split} labels")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{name}: training images are {x_train.shape[1:]} but test images {x_test.shape[1:]}")
    n_labels = max(10, len(label_names))
    for ys, key in ((y_train, "y_train"), (y_test, "y_test")):
        if len(ys) and ys.max() >= n_labels:
            known = f"the {len(label_names)} label_names" if label_names else "MNIST labels are digits 0..9"
            raise DataError(f"{name}: '{key}' has label {int(ys.max())}; {known}")
    if n_validation is None:  # MNIST's 5,000; a dataset from `data import` (it has 'labelled') a tenth
        imported = "labelled" in arrays
        n_validation = min(N_VALIDATION, max(1, len(x_train) // 10)) if imported else N_VALIDATION
    if len(x_train) <= n_validation:
        raise DataError(
            f"{name}: only {len(x_train)} training images; need more than the {n_validation} held out for validation"
        )
    if len(x_test) == 0:
        raise DataError(f"{name}: the test set is empty")
    n_fit = len(x_train) - n_validation
    return MNIST(
        x_train=x_train[:n_fit],
        y_train=y_train[:n_fit],
        x_val=x_train[n_fit:],
        y_val=y_train[n_fit:],
        x_test=x_test,
        y_test=y_test,
        source=name,
        label_names=label_names,
        labelled=labelled,
    )


def check_fits(x_dim: int, data: MNIST) -> None:
    """DataError unless a model with input size x_dim can take the dataset's images."""
    if x_dim != data.n_pixels:
        side = int(round(x_dim**0.5))
        raise DataError(
            f"the model takes {side}×{side} images ({x_dim} pixels) but the dataset's are "
            f"{data.side}×{data.side}: train a new model on it, or open a dataset of the model's size"
        )
