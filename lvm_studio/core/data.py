"""MNIST loading, validation and binarization.

The archive holds x_train (N, 28, 28) uint8, y_train (N,) uint8, x_test, y_test.
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
N_VALIDATION = 5000
TEST_BINARIZATION_SEED = 1234
REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
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
    """uint8 images (N, 28, 28) and labels (N,), split 55,000 / 5,000 / 10,000."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def float_images(self, name: str, device: torch.device | str = "cpu") -> torch.Tensor:
        """Grey levels in [0, 1], flattened: (N, 784) float32."""
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
    if ndim == 3 and a.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: '{key}' has images of shape {a.shape[1:]}, expected 28x28")
    return a


def load_mnist(path: str | Path | None = None, n_validation: int = N_VALIDATION) -> MNIST:
    """Load and validate an MNIST-style .npz; any problem raises DataError with one clear message."""
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
        arrays = load_arrays(path, allow_keys=REQUIRED_KEYS, max_bytes=MAX_DATA_BYTES)
    except ArrayFileError as e:
        raise DataError(str(e)) from None
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DataError(
            f"{name}: missing key(s) {', '.join(missing)}; an MNIST file needs "
            f"{', '.join(REQUIRED_KEYS)} (found: {', '.join(array_keys(path)) or 'none'})"
        )
    x_train = _check_array(arrays, "x_train", 3, name)
    y_train = _check_array(arrays, "y_train", 1, name)
    x_test = _check_array(arrays, "x_test", 3, name)
    y_test = _check_array(arrays, "y_test", 1, name)
    for xs, ys, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(xs) != len(ys):
            raise DataError(f"{name}: {len(xs)} {split} images but {len(ys)} {split} labels")
    for ys, key in ((y_train, "y_train"), (y_test, "y_test")):
        if len(ys) and ys.max() > 9:
            raise DataError(f"{name}: '{key}' has label {int(ys.max())}; MNIST labels are digits 0..9")
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
    )
