"""A fast start: a light loading window first (PySide6 only), then torch, the data, the main window
and its panels, one step per pass of the event loop, so something is on screen within about a
second and the loading state stays drawn while the rest arrives (issue 11, item 8).

    loader shown  →  torch  →  MNIST  →  main window (training, curves) shown, loader closed
                  →  the startup model  →  the panels on screen  →  usable
                  →  the panels behind tabs, then the warm-up, each while the user is idle  →  ready

After usable, nothing long runs on the GUI thread while the user is using it: a panel behind a tab
(0.3-0.6 s to build, quiet) is built after IDLE_S without input, at once when its tab is shown, or
after MAX_WAIT_S in any case. Measured before: each panel a 200-770 ms stall, and the warm-up, which
imported torch._dynamo for torch.optim's first step, a 3-7 s freeze just after usable (core.adam
does without torch.optim; the warm-up is now a few milliseconds). A warm-up on a thread of its own
was tried and dropped: the GIL made every panel built meanwhile several times slower.

Nothing here imports torch or the panels at module level: ui/app.py imports this module before
the first paint.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

REPORT_ENV = "LVM_STUDIO_STARTUP_REPORT"  # "1": print the start-up times as one JSON line; "quit": and exit
IDLE_S = 0.4  # after usable, a panel behind a tab is built only once the user has been idle this long
WAIT_MS = 100  # how often a waiting start-up looks again
MAX_WAIT_S = 20.0  # … or once this long has passed since usable (a user who never pauses)
FIRST_PAINT_WAIT_S = 1.0  # the longest the loading window waits to be painted before torch's import blocks
_INPUT = {
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseButtonRelease,
    QEvent.Type.MouseMove,
    QEvent.Type.Wheel,
    QEvent.Type.KeyPress,
    QEvent.Type.KeyRelease,
}


class LoadingWindow(QWidget):
    """The first window: the app's name, what is loading, and a progress bar."""

    def __init__(self):
        super().__init__()
        self.setWindowTitle("LVM Studio — loading…")
        self.setObjectName("LoadingWindow")
        self.first_paint_at: float | None = None  # time.time() of the first paint
        title = QLabel("LVM Studio")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 2.2)
        font.setBold(True)
        title.setFont(font)
        self.status = QLabel("Starting…")
        self.bar = QProgressBar(minimum=0, maximum=100, value=0)
        self.bar.setTextVisible(False)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        for w in (title, self.status, self.bar):
            layout.addWidget(w, 0, Qt.AlignmentFlag.AlignHCenter)
        self.bar.setFixedWidth(360)
        layout.addStretch(2)

    def set_status(self, text: str, percent: int) -> None:
        self.status.setText(text)
        self.bar.setValue(percent)
        self.repaint()  # now: the next step blocks the event loop for a while

    def paintEvent(self, event):
        if self.first_paint_at is None:
            self.first_paint_at = time.time()
        super().paintEvent(event)


def initial_geometry():
    """Most of the primary screen's free area, centred (the main window's first-launch size)."""
    screen = QGuiApplication.primaryScreen()
    if screen is None:
        return None
    free = screen.availableGeometry()
    rect = free.adjusted(0, 0, 0, 0)
    rect.setSize(free.size() * 0.92)
    rect.moveCenter(free.center())
    return rect


class InputClock(QObject):
    """An application-wide event filter that remembers when the user last gave input."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.last = 0.0  # time.monotonic() of the latest mouse or key event

    def eventFilter(self, obj, event):
        if event.type() in _INPUT:
            self.last = time.monotonic()
        return False

    def idle_for(self) -> float:
        return time.monotonic() - self.last


class Startup(QObject):
    """Runs the loading steps; `ready` carries the main window (or None when start-up failed)."""

    ready = Signal(object)

    def __init__(self, app, args, smoke: bool, launched_at: float, settings=None):
        super().__init__()
        self.app = app
        self.args = args
        self.smoke = smoke
        self.launched_at = launched_at
        self.settings = settings
        self.window = None
        self.exit_code = 0
        self.times: dict[str, float] = {}
        from lvm_studio.ui.widgets import palette  # the dark look without pyqtgraph (style.py imports it)

        palette.apply_qt(app)
        self.loader = LoadingWindow()
        rect = initial_geometry()
        if rect is not None:
            self.loader.setGeometry(rect)
        self._steps = self._load()
        self.input = InputClock(self)

    def start(self) -> None:
        self.loader.show()
        QTimer.singleShot(0, self._tick)

    def _tick(self) -> None:
        try:
            label = next(self._steps, None)
            more = label is not None
            if more and label not in ("panel", "wait", "poll"):
                self.times[f"{label}_done_s"] = time.time() - self.launched_at  # each step's end, for the report
        except Exception as e:  # a broken install: say so in the window, not only on the terminal
            import traceback

            traceback.print_exc()
            self._fail(f"LVM Studio could not start:\n{type(e).__name__}: {e}", 1)
            return
        if more:
            QTimer.singleShot({"wait": WAIT_MS, "poll": 5}.get(label, 0), self._tick)

    def _fail(self, message: str, code: int) -> None:
        from PySide6.QtWidgets import QMessageBox

        print(f"lvm-studio: error: {message}", file=sys.stderr)
        self.exit_code = code
        if not self.smoke:
            QMessageBox.critical(self.loader, "LVM Studio", message)
        self.loader.close()
        self.app.exit(code)

    def _load(self):
        self.loader.set_status("Loading PyTorch…", 5)
        yield "shown"
        # on a real X server the window manager maps the window first, and only then can it paint:
        # seen on Xvfb + openbox, the loader stayed unpainted through torch's import (8 s under load)
        deadline = time.monotonic() + FIRST_PAINT_WAIT_S
        while self.loader.first_paint_at is None and time.monotonic() < deadline:
            yield "poll"
        import torch  # noqa: F401  (the long import, timed here)

        from lvm_studio.core import threads

        threads.use("gui")
        self.loader.set_status("Loading the MNIST digits…", 35)
        yield "torch"
        from lvm_studio.core.data import DataError, load_mnist

        try:
            data = load_mnist(getattr(self.args, "data", None))
        except DataError as e:
            self._fail(f"The MNIST data could not be loaded:\n{e}", 2)
            return
        self.loader.set_status("Building the window…", 50)
        yield "data"
        from lvm_studio.ui.main_window import MainWindow
        from lvm_studio.ui.state.model_hub import ModelHub
        from lvm_studio.ui.thread_settings import apply_saved
        from lvm_studio.ui.widgets import style

        style.apply_plots()  # the widgets' half is on since the loading window; the plots' before any plot
        hub = ModelHub(data=data, data_path=getattr(self.args, "data", None))
        window = MainWindow(hub, settings=self.settings, load_panels=False)
        apply_saved(window.settings)
        self.window = window
        self.loader.set_status("Opening the model…", 65)
        yield "window"
        window.open_startup_model(getattr(self.args, "checkpoint", None))
        if self.smoke:  # the same window on every machine: the default layout at its default size
            from lvm_studio.ui.main_window import DEFAULT_SIZE

            window.resize(DEFAULT_SIZE)
        elif window.has_saved_layout():
            window.restore_geometry(window.settings.value("layout/geometry"))
        else:
            window.setGeometry(self.loader.geometry())
            window.fit_to_screen()
        window.statusBar().showMessage("Loading the panels…")
        window.show()
        self.loader.close()
        self.times["main_window_shown_s"] = time.time() - self.launched_at
        yield "model"
        # the panels on screen first: the window is usable once they are built; the rest follow
        while True:
            if "usable_s" not in self.times and not window.pending_on_screen():
                window.statusBar().showMessage(f"Ready: {hub.name}", 5000)
                window.repaint()  # drawn, every panel on screen in place
                self.times["usable_s"] = time.time() - self.launched_at
                self.input.last = time.monotonic()  # a window that just appeared is about to be used
                self.app.installEventFilter(self.input)
            if not window.pending_panels:
                break
            if "usable_s" in self.times and not window.pending_on_screen() and not self._may_build():
                yield "wait"  # the user is at work: a panel behind a tab can wait
                continue
            t0 = time.perf_counter()
            key = window.load_next_panel()
            self.times[f"panel_{key}_s"] = time.perf_counter() - t0  # its import and construction
            yield "panel"
        while not self._may_build():
            yield "wait"
        from lvm_studio.workers import training_worker

        t0 = time.perf_counter()
        training_worker.warm_up()
        self.times["warm_up_s"] = time.perf_counter() - t0
        self.times["panels_done_s"] = time.time() - self.launched_at
        self.app.removeEventFilter(self.input)
        self._report()
        self.ready.emit(window)
        # everything built so far lives as long as the app: out of the collector's reach, so a
        # collection while training runs walks only new objects (measured: 70-170 ms pauses
        # otherwise). No collect() first: a full collection here is a 100-300 ms stall of its own.
        gc.freeze()

    def _may_build(self) -> bool:
        """Build a hidden panel now? In smoke runs always (no user); else after IDLE_S without input,
        or once MAX_WAIT_S have passed since usable (a user who never pauses still gets every panel)."""
        waited = time.time() - self.launched_at - self.times["usable_s"]
        return self.smoke or self.input.idle_for() >= IDLE_S or waited >= MAX_WAIT_S

    def _report(self) -> None:
        mode = os.environ.get(REPORT_ENV, "")
        if not mode:
            return
        shown = self.loader.first_paint_at
        # seconds from run_app's start; the *_at stamps (time.time()) let a caller measure from its launch
        report = {
            "shown_s": round(shown - self.launched_at, 3) if shown else None,
            **{k: round(v, 3) for k, v in self.times.items()},
            "shown_at": shown,
            "usable_at": self.launched_at + self.times["usable_s"],
        }
        print(json.dumps(report), flush=True)
        if mode == "quit":
            self.window.ask_before_closing = False
            QTimer.singleShot(0, self.window.close)
            QTimer.singleShot(0, self.app.quit)
