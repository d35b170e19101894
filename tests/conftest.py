"""Shared fixtures. Qt runs offscreen in every test: set before anything imports Qt."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import torch

from lvm_studio.core.data import load_mnist

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
def _binarized_batch(mnist):
    x = mnist.float_images("test")[:BATCH_SIZE]  # (32, 784)
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(BATCH_SEED))


@pytest.fixture
def binarized_batch(_binarized_batch):
    """32 test digits binarized with a fixed seed, (32, 784) float32 in {0, 1}; a fresh copy per test."""
    return _binarized_batch.clone()
