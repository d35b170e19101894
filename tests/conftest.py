"""Shared fixtures. Qt runs offscreen in every test: set before anything imports Qt."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch

from lvm_studio.core.data import default_data_path, load_mnist

# Tests use tiny models; on a small shared machine torch's extra intra-op threads only spin
# against other processes (measured: 10x slower under load). One thread is the fast choice.
torch.set_num_threads(1)

BATCH_SIZE = 32
BATCH_SEED = 7


@pytest.fixture(scope="session")
def mnist():
    """The shipped MNIST copy, loaded and validated once per test session."""
    return load_mnist()


@pytest.fixture(scope="session")
def mnist_subset(tmp_path_factory):
    """mnist_subset(n_train, n_test): the path of an MNIST-style .npz holding the first n_train
    training and n_test test digits of the shipped copy, written once per size per session."""
    written: dict[tuple[int, int], object] = {}

    def subset(n_train: int, n_test: int):
        if (n_train, n_test) not in written:
            path = tmp_path_factory.mktemp("data") / f"mnist-{n_train}-{n_test}.npz"
            with np.load(default_data_path()) as f:
                np.savez(
                    path,
                    x_train=f["x_train"][:n_train],
                    y_train=f["y_train"][:n_train],
                    x_test=f["x_test"][:n_test],
                    y_test=f["y_test"][:n_test],
                )
            written[n_train, n_test] = path
        return written[n_train, n_test]

    return subset


@pytest.fixture(scope="session")
def _binarized_batch(mnist):
    x = mnist.float_images("test")[:BATCH_SIZE]  # (32, 784)
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(BATCH_SEED))


@pytest.fixture
def binarized_batch(_binarized_batch):
    """32 test digits binarized with a fixed seed, (32, 784) float32 in {0, 1}; a fresh copy per test."""
    return _binarized_batch.clone()
