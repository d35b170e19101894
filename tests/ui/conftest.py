"""GUI test fixtures: Qt offscreen, small data, tiny models, and a check that no test leaves a thread.

Every test in tests/ui ends with:
  * no training thread ('lvm-training') still alive: a leak there is a bug, so it fails the test;
  * tasks.shutdown_all(), then no 'lvm-' thread at all.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time

import pytest
import torch

from lvm_studio.core.data import MNIST
from lvm_studio.core.training import TrainConfig
from lvm_studio.core.vae import VAE, VAEConfig

THREAD_GRACE_S = 2.0

TINY = VAEConfig(latent_dim=2, hidden=(32,))


def _lvm_threads(prefix: str = "lvm-"):
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def _join_all(threads, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


@pytest.fixture(autouse=True)
def _no_lvm_threads_left():
    yield
    from lvm_studio.workers import tasks, training_worker

    # widgets were closed by pytest-qt before this runs; a training thread must be gone by now
    leaked = _join_all(_lvm_threads(training_worker.THREAD_NAME), THREAD_GRACE_S)
    training_worker.shutdown_all(THREAD_GRACE_S)  # do not let a leak spill into the next test
    tasks.shutdown_all(THREAD_GRACE_S)
    others = _join_all(_lvm_threads(), THREAD_GRACE_S)
    assert not leaked, f"training thread(s) left running: {leaked}"
    assert not others, f"thread(s) left running: {others}"


@pytest.fixture(scope="session")
def small_mnist(mnist):
    """2,000 training, 200 validation and 200 test digits: an epoch of a tiny model takes a blink."""
    return MNIST(
        mnist.x_train[:2000],
        mnist.y_train[:2000],
        mnist.x_val[:200],
        mnist.y_val[:200],
        mnist.x_test[:200],
        mnist.y_test[:200],
        source="first digits of the shipped MNIST",
    )


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return VAE(TINY)


@pytest.fixture
def tiny_config():
    """A run that would last long (many epochs) with frequent records, snapshots and small evaluations."""

    def make(**overrides):
        values = dict(
            epochs=1000,
            batch_size=32,
            lr=1e-3,
            log_every=2,
            eval_every=0,
            eval_k=5,
            eval_n=50,
            snapshot_interval_s=0.05,
            eval_max_rows=512,
        )
        values.update(overrides)
        return TrainConfig(**values)

    return make


@pytest.fixture
def hub(qapp, small_mnist, tiny_model):
    from lvm_studio.ui.state.model_hub import ModelHub

    h = ModelHub(data=small_mnist)
    h.set_model(tiny_model, name="tiny VAE")
    return h


@pytest.fixture
def settings(qapp, tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, hub, settings):
    """A main window on the tiny hub, with no other panels and no questions asked on close."""
    from lvm_studio.ui.main_window import MainWindow

    def make(panel_specs=(), hub_=None, settings_=None):
        w = MainWindow(hub_ or hub, settings=settings_ or settings, panel_specs=panel_specs)
        w.ask_before_closing = False
        qtbot.addWidget(w)
        p = w.training_panel
        # tiny, quick runs
        p.batch_size.setValue(32)
        p.eval_k.setValue(5)
        p.eval_n.setValue(50)
        p.epochs.setValue(1000)
        p.device.setCurrentIndex(p.device.findData("cpu"))
        return w

    return make


@pytest.fixture
def window(make_window):
    return make_window()
