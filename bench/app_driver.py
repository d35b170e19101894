"""The real app, started as `lvm-studio` starts it, driven from inside its own event loop.

    python -m bench.app_driver train [--seconds 60] [--warmup 5] [--fits 10] [--objective iwae --k 5 ...]
    python -m bench.app_driver idle [--seconds 60] [--fits 10]
    python -m bench.app_driver startup

Each mode is one fresh process that prints one JSON line; bench.app_smoke, bench.startup and
bench.memory run them (alone they are handy for a single look). The app starts through
`lvm_studio.cli.main([])`, the console script's own path (thread policy, start-up order, the
default model, the default window layout), offscreen when there is no display, with a fresh
settings folder (XDG_CONFIG_HOME / XDG_DATA_HOME in a temporary folder: the default layout, and
the user's own settings left alone). The scenario runs on the GUI thread in nested event loops
(`QEventLoop.exec`, never a sleep), so the window keeps working exactly as it does for a user.

    train    start training (CPU) with the given settings; after --warmup seconds, measure for
             --seconds: the Trainer's images/s, the process's CPU, the GUI thread's own CPU time
             (first half) and the event-loop gaps of a 10 ms timer (second half: the timer itself
             costs the GUI thread about 2 % of a core, so it stays out of the CPU figure); then,
             still training, --fits 200-step inpainting fits through the inpainting panel's
             TaskRunner (wall time submit -> result).
    idle     no training and no input: the process's CPU over --seconds once start-up has settled,
             then --fits inpainting fits with no training.
    startup  wall-clock times (time.time(), for the parent to subtract its launch time from) of:
             the first window shown, the main window shown, its first paint, and drawn and usable
             (the start-up model adopted, no loading state, painted after that, the loop responsive).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

T_PROCESS = time.time()  # as early as this module runs: the interpreter and `-m` are already paid
READY_TIMEOUT_S = 180.0  # the longest a start-up may take before the run gives up


def _prepare_environment(tmp: str) -> None:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["XDG_CONFIG_HOME"] = os.path.join(tmp, "config")  # QSettings: a first launch's layout
    os.environ["XDG_DATA_HOME"] = os.path.join(tmp, "data")


def main_window():
    from PySide6.QtWidgets import QApplication, QMainWindow

    for w in QApplication.topLevelWidgets():
        if isinstance(w, QMainWindow) and hasattr(w, "hub") and hasattr(w, "controller"):
            return w
    return None


def window_ready(w, every_panel: bool = True) -> bool:
    """Visible, no loading state (if the window has one), the start-up model adopted, and its panels
    built: every one (a scenario drives panels behind tabs too), or with every_panel=False those on
    screen (what "usable" waits for: the staged start-up builds the others once the user is idle)."""
    if w is None or not w.isVisible():
        return False
    for name in ("is_loading", "loading"):
        v = getattr(w, name, None)
        if callable(v):
            v = v()
        if v:
            return False
    pending = w.pending_on_screen() if not every_panel else getattr(w, "pending_panels", 0)
    if pending:  # the staged start-up (ui/startup.py) is still building panels
        return False
    from lvm_studio.core.pretrained import default_checkpoint_path

    return getattr(w.hub, "path", None) is not None or default_checkpoint_path() is None


def drive(scenario, tmp: str | None = None) -> dict:
    """Start the app (lvm_studio.cli.main) and run scenario(window) -> dict once its window is ready;
    then close it without questions and return the scenario's dict (with 'app_exit_code')."""
    tmp_dir = None
    if tmp is None:
        tmp_dir = tempfile.TemporaryDirectory(prefix="lvm-bench-app-")
        tmp = tmp_dir.name
    _prepare_environment(tmp)
    from lvm_studio.core import threads

    threads.configure_process()  # what cli.main does first, before torch loads
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    out: dict = {}
    poll = QTimer()
    poll.setInterval(20)

    t0 = time.perf_counter()

    def begin():
        w = main_window()
        if not window_ready(w):
            if time.perf_counter() - t0 > READY_TIMEOUT_S:  # a start-up that failed or hangs ends the run
                poll.stop()
                out["error"] = f"no ready main window after {READY_TIMEOUT_S:.0f} s"
                if w is not None:
                    w.ask_before_closing = False
                    w.close()
                app.exit(1)
            return
        poll.stop()
        try:
            out.update(scenario(w))
        except Exception as e:  # reported, and the app still closes
            import traceback

            out["error"] = f"{type(e).__name__}: {e}"
            out["traceback"] = traceback.format_exc(limit=8)
        w.ask_before_closing = False
        w.controller.stop_and_wait(5.0)
        w.close()
        app.quit()

    poll.timeout.connect(begin)
    poll.start()
    from lvm_studio import cli

    rc = cli.main([])
    out["app_exit_code"] = rc
    if tmp_dir is not None:
        tmp_dir.cleanup()
    return out


# --- pieces of the scenarios -----------------------------------------------------------------------


def inpainting_panel(w):
    dock = getattr(w, "docks", {}).get("inpainting")
    if dock is not None:
        return dock.widget()
    from lvm_studio.ui.inpainting.inpainting_panel import InpaintingPanel

    return w.findChild(InpaintingPanel)


def inpainting_fits(w, n: int, steps: int = 200, single_start: bool = False) -> dict:
    """n 200-step fits as the app runs them: the inpainting panel's own request_fit (its TaskRunner,
    its settings: importance resampling and all) on test digit i with the top half hidden.

    Timed per fit, on the GUI thread: fit_started -> the fit's last Adam step reported (fit_ms),
    fit_started -> fit_shown, the fit's outcome on screen (shown_ms: completions, ELBOs, the starts;
    what the goal times), and fit_started -> fit_finished, its importance samples shown too
    (total_ms). Every fit that runs to the end counts, also the ones the panel starts itself (while
    training it refits when the weights move); a fit
    superseded by a newer one is not a sample (the newer one is timed from its own start).
    single_start: with the panel's "several starts" off (issue 16's multi-start fit costs about 2x one)."""
    from bench.common import percentiles, run_loop_until

    panel = inpainting_panel(w)
    if panel is None or n <= 0:
        return {"n": 0, "note": "no inpainting panel" if n > 0 else ""}
    runner = panel.runner
    panel.steps.setValue(steps)
    starts_box = getattr(panel.fit_controls, "several_starts", None)
    several_before = starts_box.isChecked() if starts_box is not None else False
    if starts_box is not None:
        starts_box.setChecked(not single_start)
    state: dict = {"t0": None, "t_steps": None, "t_shown": None}
    total_ms: list[float] = []
    fit_ms: list[float] = []
    shown_ms: list[float] = []

    def on_started():
        state.update(t0=time.perf_counter(), t_steps=None, t_shown=None)

    def on_shown():
        if state["t0"] is not None and state["t_shown"] is None:
            state["t_shown"] = time.perf_counter()

    def on_progress(task_id, fraction, payload):
        if fraction >= 1.0 and state["t0"] is not None and state["t_steps"] is None:
            state["t_steps"] = time.perf_counter()

    def on_finished():
        if state["t0"] is None:
            return
        now = time.perf_counter()
        total_ms.append(1e3 * (now - state["t0"]))
        shown_ms.append(1e3 * ((state["t_shown"] or now) - state["t0"]))
        if state["t_steps"] is not None:
            fit_ms.append(1e3 * (state["t_steps"] - state["t0"]))
        state["t0"] = None

    panel.fit_started.connect(on_started)
    panel.fit_shown.connect(on_shown)
    runner.progressed.connect(on_progress)
    panel.fit_finished.connect(on_finished)
    try:
        for i in range(4 * n):
            if len(total_ms) >= n:
                break
            run_loop_until(lambda: not runner.is_busy(), 120, poll_ms=1, what="the panel's fit")
            before = len(total_ms)
            panel.load_test_digit(i)
            panel.apply_preset("top_half")
            panel.request_fit()
            # the times are stamped in the slots above; this wait only starts the next fit, and polls
            # rarely: a 1 ms poll is a GUI-thread callback every millisecond, competing with the fit's
            # thread for the GIL (it made the fits about 10 % slower), which no user's app has
            run_loop_until(lambda before=before: len(total_ms) > before, 120, poll_ms=25, what="an inpainting fit")
    finally:
        panel.fit_started.disconnect(on_started)
        panel.fit_shown.disconnect(on_shown)
        runner.progressed.disconnect(on_progress)
        panel.fit_finished.disconnect(on_finished)
        if starts_box is not None:
            starts_box.setChecked(several_before)
    total_ms, fit_ms, shown_ms = total_ms[:n], fit_ms[:n], shown_ms[:n]
    return {
        "steps": steps,
        "several_starts": bool(starts_box is not None and not single_start),
        "importance_k": panel.fit_controls.importance_k_or_zero(),
        "fits_submitted": panel.fits_submitted,
        "shown_ms": percentiles(shown_ms, suffix="_ms", digits=1, count=True) if shown_ms else {"n": 0},
        "total_ms": percentiles(total_ms, suffix="_ms", digits=1, count=True) if total_ms else {"n": 0},
        "fit_ms": percentiles(fit_ms, suffix="_ms", digits=1, count=True) if fit_ms else {"n": 0},
        "ms": [round(v, 1) for v in shown_ms],
        "total_ms_each": [round(v, 1) for v in total_ms],
        "fit_only_ms": [round(v, 1) for v in fit_ms],
    }


def rates_summary(rates: list[float], by_steps: float) -> dict:
    """images/s: the median of the Trainer's records in the window (each over log_every steps, so
    one with an evaluation in it is an outlier), or steps x batch / wall when fewer than 3 records
    fell in the window (a starved trainer); by_steps (evaluations and snapshots included) always."""
    median = statistics.median(rates) if len(rates) >= 3 else None
    return {
        "images_per_s": round(median if median is not None else by_steps, 1),
        "images_per_s_from": "records" if median is not None else "steps",
        "images_per_s_by_steps": round(by_steps, 1),
    }


def train_overrides(args) -> dict:
    """TrainConfig fields given on the command line (None: the app's own setting)."""
    names = ("objective", "k", "batch_size", "eval_every", "eval_k", "eval_n")
    over = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    over["eval_iw_ks"] = ()  # the extra IW-k bounds are a display choice; neither side computes them
    return over


# --- the scenarios ---------------------------------------------------------------------------------


def train_scenario(w, args) -> dict:
    from bench.common import (
        CpuClock,
        GapMeter,
        native_thread_ids,
        run_loop_for,
        run_loop_until,
        thread_cpu_s,
        thread_policy,
    )
    from lvm_studio.workers import training_worker

    panel, c = w.training_panel, w.controller
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    overrides = train_overrides(args)
    config = panel.train_config(start_epoch=w.hub.epoch, **overrides).to_dict()
    records: list[tuple[float, float]] = []
    started: list[str] = []
    failures: list[str] = []
    c.step_recorded.connect(lambda r: records.append((time.perf_counter(), r.images_per_s)))
    c.started.connect(started.append)
    c.failed.connect(failures.append)
    if not w.start_training(**overrides):
        return {"error": "training did not start"}
    run_loop_until(lambda: started or failures, 120, what="training start")
    if failures:
        return {"error": failures[0]}
    run_loop_for(args.warmup)
    tids = native_thread_ids(training_worker.THREAD_NAME)
    train_cpu0 = thread_cpu_s(tids[0]) if tids else None
    # the GUI thread's CPU over the first half, the stalls over the second: the 10 ms gap meter is not
    # free (measured: about 2 % of the GUI thread's core by itself), so it must not count in the first
    t_a, step_a = time.perf_counter(), w.hub.step
    clock = CpuClock().start()
    run_loop_for(args.seconds / 2)
    cpu = clock.read()
    meter, clock_meter = GapMeter(10).start(), CpuClock().start()
    run_loop_for(args.seconds / 2)
    cpu_with_meter = clock_meter.read()
    meter.stop()
    t_b, step_b = time.perf_counter(), w.hub.step
    train_cpu1 = thread_cpu_s(tids[0]) if tids else None
    rates = [r for t, r in records if t_a <= t <= t_b]
    fits = inpainting_fits(w, args.fits, single_start=args.single_start)
    stopped = c.stop_and_wait(5.0)
    return {
        "mode": "app",
        **rates_summary(rates, (step_b - step_a) * config["batch_size"] / (t_b - t_a)),
        "records": len(rates),
        "seconds": round(t_b - t_a, 2),
        "gui_thread_cpu_percent": cpu["thread_cpu_percent"],  # first half, no gap meter
        "gui_thread_cpu_percent_with_gap_meter": cpu_with_meter["thread_cpu_percent"],  # second half
        "process_cpu_percent": cpu["process_cpu_percent"],
        "training_thread_cpu_percent": round(100 * (train_cpu1 - train_cpu0) / (t_b - t_a), 1)
        if train_cpu0 is not None and train_cpu1 is not None
        else None,
        "stalls": meter.summary(),
        "inpainting_while_training": fits,
        "device": started[0] if started else "",  # the worker's words, with its torch threads
        "config": config,
        "model": w.hub.name,
        "threads": thread_policy(),
        "stopped_cleanly": bool(stopped),
        "errors_shown": list(getattr(w, "errors", []))[-3:],
    }


def idle_scenario(w, args) -> dict:
    from bench.common import CpuClock, run_loop_for, thread_policy

    run_loop_for(args.settle)  # whatever start-up left to do after the window was ready
    clock = CpuClock().start()
    per_second, t_end = [], time.perf_counter() + args.seconds
    while (left := t_end - time.perf_counter()) > 0:  # a per-second series: start-up leftovers show as a decay
        c0, t0 = time.process_time(), time.perf_counter()
        run_loop_for(min(1.0, left))
        per_second.append(round(100 * (time.process_time() - c0) / max(1e-9, time.perf_counter() - t0), 2))
    cpu = clock.read()
    fits = inpainting_fits(w, args.fits, single_start=args.single_start)
    return {
        "mode": "idle",
        "seconds": cpu["wall_s"],
        "settle_s": args.settle,
        "process_cpu_percent": cpu["process_cpu_percent"],
        "gui_thread_cpu_percent": cpu["thread_cpu_percent"],
        "process_cpu_percent_per_second": per_second,
        "inpainting_no_training": fits,
        "threads": thread_policy(),
    }


def startup_marks(settle_s: float = 0.0) -> dict:
    """Install an application-wide event filter that stamps the start-up milestones, then run the app.

    settle_s > 0: after usable, keep the window open this long with a 10 ms gap meter: `settled` is
    the end of the last event-loop stall over 50 ms (what start-up still does after usable), and
    `after_usable` the stalls' summary."""
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    tmp = tempfile.TemporaryDirectory(prefix="lvm-bench-startup-")
    _prepare_environment(tmp.name)
    from lvm_studio.core import threads

    threads.configure_process()
    t_app0 = time.time()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from bench.common import GapMeter

    marks: dict[str, float] = {"process": T_PROCESS, "qapplication": t_app0}
    after: dict = {}
    show, paint = QEvent.Type.Show, QEvent.Type.Paint

    class Stamps(QObject):
        paints_after_ready = 0

        def eventFilter(self, obj, event):
            t = event.type()
            if t == show and "first_window_shown" not in marks and isinstance(obj, QWidget) and obj.isWindow():
                marks["first_window_shown"] = time.time()
            elif t == paint:
                marks.setdefault("first_paint", time.time())
                if "ready" in marks:
                    marks.setdefault("painted_after_ready", time.time())
            return False

    stamps = Stamps()
    app.installEventFilter(stamps)
    poll = QTimer()
    poll.setInterval(5)

    t0 = time.perf_counter()

    def check():
        w = main_window()
        if time.perf_counter() - t0 > READY_TIMEOUT_S:
            marks["timed_out"] = time.time()
            poll.stop()
            app.exit(1)
            return
        if w is not None and w.isVisible():
            marks.setdefault("main_window_shown", time.time())
        if "ready" not in marks and window_ready(w, every_panel=False):
            marks["ready"] = time.time()
            w.update()  # nothing new to draw is fine: a ready window that was painted before counts then
            QTimer.singleShot(1000, lambda: marks.setdefault("painted_after_ready", marks["ready"]))
        if "painted_after_ready" in marks and "usable" not in marks:
            marks["usable"] = time.time()  # this tick ran: the loop answers
            app.removeEventFilter(stamps)
            poll.stop()
            if settle_s > 0:  # and then: how long the loop stays stalled by what start-up does after usable
                meter = GapMeter().start()
                QTimer.singleShot(int(1000 * settle_s), lambda: settled(w, meter))
            else:
                finish(w)

    def settled(w, meter):
        meter.stop()
        after["stalls"] = meter.summary()
        t, last = 0.0, 0.0
        for gap in meter.gaps:  # the end of the last gap over 50 ms, in seconds after usable
            t += gap
            if gap > 0.050:
                last = t
        marks["settled"] = marks["usable"] + last
        finish(w)

    def finish(w):
        w.ask_before_closing = False
        w.close()
        app.quit()

    poll.timeout.connect(check)
    poll.start()
    from lvm_studio import cli

    rc = cli.main([])
    tmp.cleanup()
    return {"mode": "startup", "marks": marks, "after_usable": after, "app_exit_code": rc}


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objective", choices=["elbo", "iwae"], help="default: the model's own setting in the app")
    p.add_argument("--k", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--eval-every", dest="eval_every", type=int)
    p.add_argument("--eval-k", dest="eval_k", type=int)
    p.add_argument("--eval-n", dest="eval_n", type=int)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train", help="train in the app: throughput, GUI CPU, stalls, inpainting fits")
    t.add_argument("--seconds", type=float, default=60.0)
    t.add_argument("--warmup", type=float, default=5.0)
    t.add_argument("--fits", type=int, default=10)
    t.add_argument("--single-start", action="store_true", help="inpainting fits with 'several starts' off")
    _add_train_options(t)
    i = sub.add_parser("idle", help="an idle window's CPU, then inpainting fits with no training")
    i.add_argument("--seconds", type=float, default=60.0)
    i.add_argument("--settle", type=float, default=10.0, help="seconds after the window is ready, before measuring")
    i.add_argument("--fits", type=int, default=10)
    i.add_argument("--single-start", action="store_true", help="inpainting fits with 'several starts' off")
    s = sub.add_parser("startup", help="start-up milestones (wall-clock stamps)")
    s.add_argument("--settle", type=float, default=0.0, help="seconds to keep measuring stalls after usable")
    args = p.parse_args(argv)
    if args.mode == "startup":
        result = startup_marks(args.settle)
    elif args.mode == "train":
        result = drive(lambda w: train_scenario(w, args))
    else:
        result = drive(lambda w: idle_scenario(w, args))
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    raise SystemExit(main())
