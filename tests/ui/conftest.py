"""GUI test fixtures: Qt offscreen, small data, tiny models, and checks that no test leaves anything behind.

Every test in tests/ui ends with (autouse fixtures, after pytest-qt has closed the widgets given to
qtbot.addWidget and the deferred deletions have run):
  * no training thread ('lvm-training') still alive: a leak there is a bug, so it fails the test;
  * tasks.shutdown_all(), then no 'lvm-' thread at all;
  * no QTimer started by the test still active, each reported with the stack of its `start` call
    (QTimer.singleShot(ms, slot) has no instance to ask, so it is not tracked);
  * no top-level widget left visible, each reported with its class and the stack of its `show` call;
  * no exception escaped a Qt slot or virtual method (pytest-qt's sys.excepthook, checked to be in
    place) or a Python thread (threading.excepthook: pytest alone only warns).
"""

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
import sysconfig
import threading
import time
import traceback
import weakref

import pytest
import torch

from lvm_studio.core.data import MNIST
from lvm_studio.core.training import TrainConfig
from lvm_studio.core.vae import VAE, VAEConfig

THREAD_GRACE_S = 2.0
STACK_LINES = 6  # frames of a start/show stack shown in a failure: enough to name the caller in the panel

TINY = VAEConfig(latent_dim=2, hidden=(32,))


def _lvm_threads(prefix: str = "lvm-"):
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def _join_all(threads, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


@pytest.fixture(autouse=True)
def _no_lvm_threads_left(_nothing_left_running):
    # depends on the timer and window check, so that check is torn down after this one: threads stop first
    yield
    from lvm_studio.workers import tasks, training_worker

    # widgets were closed by pytest-qt before this runs; a training thread must be gone by now
    leaked = _join_all(_lvm_threads(training_worker.THREAD_NAME), THREAD_GRACE_S)
    training_worker.shutdown_all(THREAD_GRACE_S)  # do not let a leak spill into the next test
    tasks.shutdown_all(THREAD_GRACE_S)
    others = _join_all(_lvm_threads(), THREAD_GRACE_S)
    assert not leaked, f"training thread(s) left running: {leaked}"
    assert not others, f"thread(s) left running: {others}"


# --- timers, windows and exceptions left behind ----------------------------------------------------


class _Recorder:
    """Weak references to the objects a patched method was called on, with the caller's stack."""

    def __init__(self):
        self._seen: dict[int, tuple[weakref.ref, traceback.StackSummary]] = {}

    def record(self, obj):
        # skip this frame and the wrapper's; a fresh entry per call, so a restart reports the last start
        self._seen[id(obj)] = (weakref.ref(obj), traceback.extract_stack()[:-2])

    def alive(self):
        import shiboken6

        for ref, stack in list(self._seen.values()):
            obj = ref()
            if obj is not None and shiboken6.isValid(obj):
                yield obj, stack


_LIBRARY_PREFIXES = ("<", sysconfig.get_paths()["stdlib"])


def _where(stack: traceback.StackSummary) -> str:
    """The call's origin, innermost last: the last STACK_LINES frames of this project and its tests,
    then the library frame that made the call when a library (pyqtgraph, Qt) did."""
    frames = list(stack)
    ours = [f for f in frames if not f.filename.startswith(_LIBRARY_PREFIXES) and "site-packages" not in f.filename]
    shown = ours[-STACK_LINES:]
    if frames and (not shown or frames[-1] is not shown[-1]):
        shown.append(frames[-1])
    return "".join(traceback.format_list(shown))


def _record_calls(monkeypatch, cls, name: str, takes_int: bool) -> _Recorder:
    """Patch cls.name to record its callers. A signal connected to the patched method hands it all its
    arguments, where Qt would pick the overload that fits: pass on only what the original takes
    (QTimer.start(msec) an int, QWidget.show() nothing), so the code under test behaves the same."""
    recorder = _Recorder()
    original = getattr(cls, name)

    def wrapper(self, *args):
        recorder.record(self)
        if takes_int and args and isinstance(args[0], int) and not isinstance(args[0], bool):
            return original(self, args[0])
        return original(self)

    monkeypatch.setattr(cls, name, wrapper)
    return recorder


_FROZEN: list[bool] = []


def _flush_events():
    """Let closed widgets go: posted events, then the deferred deletions pytest-qt's deleteLater asked for."""
    from PySide6.QtCore import QCoreApplication, QEvent

    app = QCoreApplication.instance()
    if app is None:
        return
    gc.collect()  # a panel that only a reference cycle keeps alive is gone, with its timers
    for _ in range(2):
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture(autouse=True)
def _nothing_left_running(monkeypatch):
    """Fail a test that leaves an active QTimer, a visible top-level widget or an uncaught exception."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QWidget

    if not _FROZEN:  # once, before the first test: imports and session data are never garbage, so
        gc.collect()  # the collections after each test need not scan them (0.8 s -> milliseconds)
        gc.freeze()
        _FROZEN.append(True)
    timers = _record_calls(monkeypatch, QTimer, "start", takes_int=True)
    shown = _record_calls(monkeypatch, QWidget, "show", takes_int=False)
    thread_errors: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    # pytest-qt fails the test on what reaches sys.excepthook (PySide prints a slot's exception
    # through it); a test that turned the capture off would silently pass, so insist on it
    hook = getattr(sys.excepthook, "func", sys.excepthook)
    assert getattr(hook, "__module__", "") == "pytestqt.exceptions", (
        "pytest-qt's exception capture is off: exceptions in Qt slots would not fail the test"
    )
    yield
    _flush_events()
    problems = []
    for timer, stack in timers.alive():
        if timer.isActive():
            kind = "single-shot" if timer.isSingleShot() else "repeating"
            owner = timer.parent()
            owner = f", parent {type(owner).__name__}" if owner is not None else ", no parent"
            problems.append(f"QTimer still active ({kind}, {timer.interval()} ms{owner}), started at:\n{_where(stack)}")
            timer.stop()  # do not let it fire in the next test
    for widget, stack in shown.alive():
        if widget.isWindow() and widget.isVisible():
            problems.append(f"top-level {type(widget).__name__} still visible, shown at:\n{_where(stack)}")
            widget.close()
    from PySide6.QtWidgets import QApplication

    recorded = {id(w) for w, _ in shown.alive()}
    for widget in QApplication.topLevelWidgets():
        if widget.isVisible() and id(widget) not in recorded:  # shown from C++ (a dialog's exec)
            problems.append(f"top-level {type(widget).__name__} still visible ({widget.windowTitle()!r})")
            widget.close()
    for args in thread_errors:
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        problems.append(f"exception in thread {args.thread.name if args.thread else '?'}:\n{text}")
    _flush_events()
    if problems:
        pytest.fail("left behind by this test:\n" + "\n".join(problems), pytrace=False)


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


@pytest.fixture
def add_panel(qtbot):
    """Add a panel to qtbot and keep it alive until every TaskRunner has stopped: a background
    result may still arrive for it, and must find it alive."""
    from lvm_studio.workers import tasks

    kept = []

    def add(widget):
        qtbot.addWidget(widget)
        kept.append(widget)
        return widget

    yield add
    assert tasks.shutdown_all(10.0)
    kept.clear()
