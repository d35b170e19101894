"""`lvm-studio`: the application, and its `--smoke SECONDS` self-test.

Start-up (ui/startup.py): a check that a display and Qt's platform plugin are there
(ui/preflight.py: one line with the fix and exit 2 when not), then a light loading window shown
before torch is imported, then the main window, filled in as its panels load. An exception that
escapes a slot is logged and shown in the window (MainWindow.report_exception), never only on
the terminal.

Smoke mode opens the full window with the default model, trains on the CPU for SECONDS while a
10 ms QTimer on the GUI thread measures the event loop's largest stall, optionally saves a
screenshot, stops cleanly and prints one JSON line:
    steps, images_per_s, evals, max_event_loop_stall_ms, and a few more figures.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SMOKE_EVAL_K = 50  # importance samples per evaluation in smoke mode: an evaluation takes well under a second
SMOKE_EVAL_N = 100
START_TIMEOUT_S = 60.0  # smoke mode gives up when training has not started after this long

log = logging.getLogger(__name__)


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def install_excepthook(window_of):
    """sys.excepthook for the app: a slot's exception goes to the window (logged, status bar, one
    dialog per distinct error); before the window exists, or for Ctrl+C, to the previous hook."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        window = window_of()
        if window is None or issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        try:
            window.report_exception(exc_type, exc, tb)
        except Exception:  # the reporter itself failed: the terminal at least
            previous(exc_type, exc, tb)

    sys.excepthook = hook
    return hook


def run_app(args) -> int:
    launched_at = time.time()
    smoke_tour = bool(getattr(args, "smoke_tour", False))
    smoke = getattr(args, "smoke", None) is not None or smoke_tour
    if smoke and not _has_display() and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # CI: no display, still the full window

    from lvm_studio.ui import preflight

    trouble = preflight.problem()
    if trouble:
        print(f"lvm-studio: error: {trouble}", file=sys.stderr)
        return 2

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from lvm_studio.ui.startup import Startup

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LVM Studio")
    app.setOrganizationName("LVM Studio")

    settings_dir = None
    settings = None
    if smoke:  # a fresh default layout, and the user's saved one left alone
        settings_dir = tempfile.TemporaryDirectory(prefix="lvm-smoke-")
        settings = QSettings(str(Path(settings_dir.name) / "layout.ini"), QSettings.Format.IniFormat)
    startup = Startup(app, args, smoke, launched_at, settings)
    runners = []

    def on_ready(window):
        if window is not None and not smoke:
            from PySide6.QtCore import QTimer

            QTimer.singleShot(0, window.offer_recovery)  # a crashed session's autosave, once the window shows
        if smoke:
            window.autosave_enabled = False  # a self-test leaves the user's data folder alone
        if smoke_tour:  # the lecture tour, every step revealed (ui/lecture/smoke.py)
            from lvm_studio.ui.lecture.smoke import TourSmoke

            window.ask_before_closing = False
            runner = TourSmoke(window)
            runner.schedule()
            runners.append(runner)
        elif smoke:
            window.ask_before_closing = False
            runner = SmokeRun(window, float(args.smoke), getattr(args, "screenshot", None))
            runner.schedule()
            runners.append(runner)

    startup.ready.connect(on_ready)
    install_excepthook(lambda: startup.window)
    startup.start()
    try:
        rc = app.exec()
    finally:
        for name in ("lvm_studio.workers.training_worker", "lvm_studio.workers.tasks"):
            module = sys.modules.get(name)  # loaded after the first paint, if start-up got that far
            if module is not None:
                module.shutdown_all(2.0)
        if settings_dir is not None:
            settings_dir.cleanup()
    if startup.exit_code:
        return startup.exit_code
    if runners:
        return runners[0].exit_code
    if smoke:
        return 1  # the window never became ready
    return rc


class StallMeter:
    """The largest gap between ticks of a 10 ms timer on the GUI thread (allocation-free ticks)."""

    def __init__(self, interval_ms: int = 10):
        from PySide6.QtCore import Qt, QTimer

        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_tick)
        self._last = 0.0
        self.max_gap = 0.0
        self.ticks = 0
        self.gaps_over_20ms = 0
        self.gaps_over_50ms = 0
        self.long_gaps: list[tuple[float, float]] = []  # (seconds since start, gap in ms) over 50 ms
        self._t0 = 0.0

    def start(self):
        self._last = self._t0 = time.perf_counter()
        self._timer.start()

    def stop(self):
        self._timer.stop()

    def _on_tick(self):
        now = time.perf_counter()
        gap = now - self._last
        self._last = now
        self.ticks += 1
        if gap > self.max_gap:
            self.max_gap = gap
        if gap > 0.020:
            self.gaps_over_20ms += 1
            if gap > 0.050:
                self.gaps_over_50ms += 1
                if len(self.long_gaps) < 20:
                    self.long_gaps.append((round(now - self._t0, 2), round(1000 * gap, 1)))


class _GcTimer:
    """Durations of garbage collections while the smoke run trains (a diagnostic)."""

    def __init__(self):
        self.max_s = 0.0
        self.count = 0
        self._t0 = 0.0

    def __call__(self, phase, info):
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.count += 1
            self.max_s = max(self.max_s, time.perf_counter() - self._t0)


class SmokeRun:
    """Train for `seconds` on the CPU with the window open, then report and quit."""

    def __init__(self, window, seconds: float, screenshot: str | None = None):
        self.window = window
        self.seconds = max(0.5, seconds)
        self.screenshot = screenshot
        self.exit_code = 1
        self.rates: list[float] = []
        self.error: str | None = None
        self.meter = StallMeter(10)
        self.gc_timer = _GcTimer()
        self._t0 = 0.0
        self._start_step = 0
        self._start_evals = 0
        self._t_started = 0.0
        self._eval_pending = False
        self._finished = False
        self._seconds_up = False

    def schedule(self):
        from PySide6.QtCore import QTimer

        self._waited = 0
        QTimer.singleShot(0, self._when_shown)

    def _when_shown(self):
        """Start once the window is on screen and painted: a user presses Start on a window they
        see; its first paint (~100 ms: fonts, style, every panel) belongs to start-up, not to training."""
        from PySide6.QtCore import QTimer

        handle = self.window.windowHandle()
        if (handle is None or not handle.isExposed()) and self._waited < 40:
            self._waited += 1
            QTimer.singleShot(50, self._when_shown)
            return
        self.window.grab()  # every widget painted once
        QTimer.singleShot(100, self.start)

    def start(self):
        from PySide6.QtCore import QTimer

        w = self.window
        panel = w.training_panel
        panel.device.setCurrentIndex(panel.device.findData("cpu"))
        if not w.hub.history.evals:  # else keep the model's own settings: its curve stays one series
            panel.eval_k.setValue(SMOKE_EVAL_K)
            panel.eval_n.setValue(SMOKE_EVAL_N)
        c = w.controller
        c.step_recorded.connect(self._on_step_recorded)
        c.started.connect(self._on_started)
        c.failed.connect(self._on_failed)
        self._start_step = w.hub.step
        w.curves_panel.redraw()
        self._start_evals = w.curves_panel.evals_plotted
        gc.callbacks.append(self.gc_timer)
        self._t0 = time.perf_counter()
        self._cpu0 = time.thread_time()  # this (GUI) thread's CPU time
        self.meter.start()
        if not w.start_training():
            self._on_failed("training did not start")
        # short runs still need evaluations: ask for one every few seconds (the Trainer runs it between steps)
        self._eval_timer = QTimer()
        self._eval_timer.setInterval(int(1000 * min(3.0, max(1.0, self.seconds / 4))))
        self._eval_timer.timeout.connect(self._on_eval_timer)
        c.evaluated.connect(self._on_evaluated)
        self._eval_timer.start()
        w.training_panel.add_message(
            f"smoke run: {self.seconds:g} s, an evaluation every {self._eval_timer.interval() / 1000:g} s"
        )
        # SECONDS of training, counted from when the thread has built its Trainer (seconds on a
        # busy machine); the stall meter runs from the click on. A start that never comes ends it too.
        QTimer.singleShot(int(1000 * (self.seconds + START_TIMEOUT_S)), self.finish)

    def _on_started(self, device_text: str):
        from PySide6.QtCore import QTimer

        self._t_started = time.perf_counter()
        QTimer.singleShot(int(1000 * self.seconds), self._on_seconds_up)
        self._on_eval_timer()  # a first point at once: CI runs only a few seconds

    def _on_seconds_up(self):
        # a run ends with at least one training record: on a loaded machine the first evaluation
        # alone can take the SECONDS (the timer set in start() still ends a run that never steps)
        self._seconds_up = True
        if self.rates:
            self.finish()

    def _on_eval_timer(self):
        if not self._eval_pending:  # never queue evaluations faster than they run
            self._eval_pending = True
            self.window.controller.request_eval()

    def _on_evaluated(self, record):
        self._eval_pending = False

    def _on_step_recorded(self, record):
        self.rates.append(record.images_per_s)
        if self._seconds_up:
            self.finish()

    def _on_failed(self, message: str):
        self.error = message

    def finish(self):
        from PySide6.QtWidgets import QApplication

        if self._finished:
            return
        self._finished = True
        w = self.window
        self.meter.stop()
        self._eval_timer.stop()
        t_stop = time.perf_counter()
        gui_cpu = time.thread_time()
        elapsed = t_stop - self._t0
        if gc.callbacks and self.gc_timer in gc.callbacks:
            gc.callbacks.remove(self.gc_timer)
        shot = None
        if self.screenshot:
            w.curves_panel.redraw()
            shot = str(w.save_screenshot(self.screenshot))
        batch_size = w.training_panel.batch_size.value()
        stopped = w.controller.stop_and_wait(2.0)
        w.curves_panel.redraw()
        steps = w.hub.step - self._start_step
        if len(self.rates) >= 2:
            # the first window includes start-up; the median ignores windows an evaluation fell into
            images_per_s = statistics.median(self.rates[1:])
        else:  # too slow a machine for two records: the average since the thread started
            images_per_s = steps * batch_size / max(1e-9, t_stop - (self._t_started or self._t0))
        result = {
            "steps": steps,
            "images_per_s": round(images_per_s, 1),
            "evals": w.curves_panel.evals_plotted - self._start_evals,
            "max_event_loop_stall_ms": round(1000 * self.meter.max_gap, 2),
            "stalls_over_20ms": self.meter.gaps_over_20ms,
            "stalls_over_50ms": self.meter.gaps_over_50ms,
            "stalls_over_50ms_at": self.meter.long_gaps,  # (seconds after the click on Start, ms)
            "timer_ticks": self.meter.ticks,
            "seconds": round(elapsed, 2),  # from the click on Start to the end of the run
            "training_seconds": round(t_stop - self._t_started, 2) if self._t_started else 0.0,
            "batch_size": batch_size,
            "device": w.training_device,
            "model": w.hub.name,
            "gc_collections": self.gc_timer.count,
            "gc_max_ms": round(1000 * self.gc_timer.max_s, 2),
            "gui_thread_cpu_fraction": round((gui_cpu - self._cpu0) / max(1e-9, elapsed), 3),
            "stopped_cleanly": bool(stopped),
            "screenshot": shot,
        }
        if self.error:
            result["error"] = self.error
        print(json.dumps(result), flush=True)
        self.exit_code = 0 if stopped and not self.error and result["steps"] > 0 else 1
        w.close()
        QApplication.instance().quit()
