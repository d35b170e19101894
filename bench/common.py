"""What the benchmarks and screenshot scripts share: the model to use, the offscreen app, waiting on
the event loop, screenshots, and timing summaries.

Every script runs from the repository root as a module, `python -m bench.NAME` (the project is
installed editable; `bench` is found because `-m` puts the current folder on the path).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


# --- the model ---------------------------------------------------------------------------------


def pretrained_path(latent_dim: int) -> Path | None:
    """The shipped model with this latent size (pretrained/manifest.json), or None when it is missing."""
    from lvm_studio.core.pretrained import pretrained_dir, vae_entries

    for entry in vae_entries():
        if entry["config"]["latent_dim"] == latent_dim:
            path = pretrained_dir() / entry["file"]
            if path.is_file():
                return path
    return None


def add_model_argument(parser: argparse.ArgumentParser, *flags: str, latent_dim: int = 32, help: str = "") -> None:
    """A checkpoint option (default flag --model) whose default is the shipped model of this latent size."""
    default = pretrained_path(latent_dim)
    parser.add_argument(
        *(flags or ("--model",)),
        default=str(default) if default else None,
        metavar="CKPT",
        help=f"{help + '; ' if help else ''}default: the shipped {latent_dim}-D model ({default or 'missing'})",
    )


def load_model(path: str | Path):
    """(model, checkpoint dict) of a checkpoint file."""
    from lvm_studio.core.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt), ckpt


def make_hub(model_or_path, data=None, name: str | None = None):
    """A ModelHub holding a model, given as a model or as a checkpoint path (its name and step kept)."""
    from lvm_studio.ui.state.model_hub import ModelHub

    hub = ModelHub(data=data)
    if isinstance(model_or_path, str | Path):
        model, ckpt = load_model(model_or_path)
        hub.set_model(model, name=name or ckpt.get("name"), step=ckpt.get("step", 0))
    else:
        hub.set_model(model_or_path, name=name)
    return hub


# --- Qt ----------------------------------------------------------------------------------------


def qt_app():
    """The QApplication, offscreen unless a platform is chosen, with the app's style applied once."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from lvm_studio.ui.widgets import style

    app = QApplication.instance()
    if app is None:
        app = QApplication([])
        style.apply(app)
    return app


def wait_until(cond: Callable[[], object], timeout_s: float = 120.0, poll_s: float = 0.001, what: str = "") -> None:
    """Run the event loop until cond() is true; TimeoutError after timeout_s."""
    app = qt_app()
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{what or 'condition'} not reached in {timeout_s:.0f} s")
        time.sleep(poll_s)


def show(widget, size: tuple[int, int], ready: Callable[[], object] | None = None, timeout_s: float = 120.0):
    """Resize and show a widget, then run the event loop until ready() (when given) is true."""
    widget.resize(*size)
    widget.show()
    if ready is not None:
        wait_until(ready, timeout_s, what=f"{type(widget).__name__} ready")
    return widget


def settle(seconds: float = 0.3) -> None:
    """Run the event loop for a while: layouts, queued results and repaints land."""
    app = qt_app()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.01)


def screenshot(widget, path: str | Path, settle_s: float = 0.3) -> Path:
    """Let the widget settle, then save its picture as PNG."""
    settle(settle_s)
    path = Path(path)
    if not widget.grab().save(str(path), "PNG"):
        raise OSError(f"could not write {path}")
    print("wrote", path)
    return path


# --- timing ------------------------------------------------------------------------------------


def percentiles(values, *, suffix: str = "", digits: int = 3, count: bool = False) -> dict:
    """p50, p95 and max of timings (keys suffixed, e.g. '_ms'), and n when count is set."""
    a = np.asarray(values, dtype=float)
    out = {"n": int(a.size)} if count else {}
    for key, v in (("p50", np.percentile(a, 50)), ("p95", np.percentile(a, 95)), ("max", a.max())):
        out[key + suffix] = round(float(v), digits)
    return out


def repeat_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall milliseconds of each of `repeats` calls of fn()."""
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ms.append(1e3 * (time.perf_counter() - t0))
    return ms


def median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time and median process CPU time of fn(), ms, after one warm-up call.

    On a shared machine the wall time includes waiting for a core; the CPU time (all threads of
    this process) is the work itself, and equals the wall time on an idle core with one thread.
    """
    fn()  # warm-up: allocator, kernels
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def machine() -> dict:
    import torch

    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


# --- running tasks and scripts -----------------------------------------------------------------


class BenchContext:
    """The workers.tasks context interface, for running a panel's task in this thread: never
    cancels; with a label, prints progress every tenth (describe(payload) adds a detail)."""

    def __init__(self, label: str | None = None, describe: Callable[[object], str] | None = None):
        self.label = label
        self.describe = describe
        self._last = -1.0

    def cancelled(self) -> bool:
        return False

    def check(self) -> None:
        pass

    def report(self, fraction: float, payload=None) -> None:
        if self.label is None:
            return
        if fraction - self._last >= 0.1 or fraction >= 1.0 and self._last < 1.0:
            self._last = fraction
            extra = self.describe(payload) if self.describe and payload else ""
            print(f"[{self.label}] {100 * fraction:5.1f} %{extra}", file=sys.stderr, flush=True)


def run_module(module: str, *args: str, timeout_s: float | None = None, env: dict | None = None, capture=True):
    """`python -m MODULE ARGS` in a fresh process from the repository root (where `bench` is found)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=capture,
        text=True,
        env=env,
        timeout=timeout_s,
    )


# --- the machine and this process ---------------------------------------------------------------


def thread_policy() -> dict:
    """torch intra-op threads per role of lvm_studio.core.threads, and the OpenMP wait policy in force."""
    from lvm_studio.core import threads

    policy = threads.current()
    return {
        **{role: policy.threads(role) for role in threads.ROLES},
        # what threads.configure_process() leaves in force (a value already exported is kept)
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", policy.wait_policy),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS", ""),
        "env": os.environ.get(threads.ENV, ""),
    }


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine_state() -> dict:
    """Cores, load average and thread policy: every figure is reported beside them."""
    from lvm_studio.core import threads

    return {
        "cpus": os.cpu_count(),
        "available_cores": threads.available_cores(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average": load_average(),
        "threads": thread_policy(),
    }


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def thread_cpu_s(native_id: int) -> float | None:
    """CPU seconds (user + system) of one thread of this process, from /proc (Linux), else None."""
    try:
        with open(f"/proc/self/task/{native_id}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14, 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None


def rss_mb() -> float:
    """Resident set size of this process, MB (/proc/self/statm; ru_maxrss elsewhere: the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CpuClock:
    """Wall time, this process's CPU time and the calling thread's CPU time since start()."""

    def start(self) -> CpuClock:
        self.wall0, self.process0, self.thread0 = time.perf_counter(), time.process_time(), time.thread_time()
        return self

    def read(self) -> dict:
        wall = time.perf_counter() - self.wall0
        return {
            "wall_s": round(wall, 3),
            "process_cpu_percent": round(100 * (time.process_time() - self.process0) / max(wall, 1e-9), 2),
            "thread_cpu_percent": round(100 * (time.thread_time() - self.thread0) / max(wall, 1e-9), 2),
        }


@contextlib.contextmanager
def competing_process(enabled: bool = True) -> Iterator[subprocess.Popen | None]:
    """`python -c "while True: pass"` for the duration of the block: one other busy process on the machine.

    Killed on leaving the block, at exit, and (Linux) by the kernel when this process dies."""
    if not enabled:
        yield None
        return

    def die_with_parent():
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    proc = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
    )
    import atexit

    atexit.register(_kill, proc)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SIGTERM runs the finally below
    try:
        yield proc
    finally:
        _kill(proc)
        signal.signal(signal.SIGTERM, previous)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


# --- the event loop, measured -------------------------------------------------------------------


class GapMeter:
    """Gaps between ticks of a 10 ms precise QTimer on the GUI thread, as ui/app.py's StallMeter
    measures them, all kept (a preallocated-growth array, no objects per tick) for percentiles."""

    def __init__(self, interval_ms: int = 10):
        from PySide6.QtCore import Qt, QTimer

        self.interval_ms = interval_ms
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_tick)
        self.gaps = array("d")
        self._last = 0.0
        self._t0 = 0.0
        self.long: list[tuple[float, float]] = []  # (seconds since start, ms) of the first gaps over 50 ms

    def start(self) -> GapMeter:
        self._last = self._t0 = time.perf_counter()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()

    def _on_tick(self):
        now = time.perf_counter()
        gap = now - self._last
        self._last = now
        self.gaps.append(gap)
        if gap > 0.050 and len(self.long) < 20:
            self.long.append((round(now - self._t0, 2), round(1e3 * gap, 1)))

    def summary(self) -> dict:
        a = 1e3 * np.asarray(self.gaps, dtype=float)
        if a.size == 0:
            return {"ticks": 0}
        return {
            "ticks": int(a.size),
            "over_50ms": int((a > 50).sum()),
            "over_20ms": int((a > 20).sum()),
            "max_ms": round(float(a.max()), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1),
            "p50_ms": round(float(np.percentile(a, 50)), 1),
            "over_50ms_at": self.long,  # (seconds after the start of the window, ms)
        }


def run_loop_for(seconds: float) -> None:
    """Run a nested Qt event loop for this long (no polling: the loop sleeps when nothing happens)."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    loop = QEventLoop()
    timer = QTimer()
    timer.setSingleShot(True)
    timer.setTimerType(Qt.TimerType.PreciseTimer)  # a coarse timer may end a window 5 % early
    timer.timeout.connect(loop.quit)
    timer.start(max(0, int(1000 * seconds)))
    loop.exec()


def run_loop_until(cond: Callable[[], object], timeout_s: float = 120.0, poll_ms: int = 20, what: str = "") -> float:
    """Run a nested event loop until cond() is true (checked every poll_ms); the seconds it took."""
    from PySide6.QtCore import QEventLoop, QTimer

    t0 = time.perf_counter()
    if cond():
        return 0.0
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(poll_ms)
    state = {"ok": False}

    def check():
        if cond():
            state["ok"] = True
            loop.quit()
        elif time.perf_counter() - t0 > timeout_s:
            loop.quit()

    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    if not state["ok"]:
        raise TimeoutError(f"{what or 'condition'} not reached in {timeout_s:.0f} s")
    return time.perf_counter() - t0


def native_thread_ids(name: str) -> list[int]:
    """Native ids of this process's live Python threads of that name (for thread_cpu_s)."""
    return [t.native_id for t in threading.enumerate() if t.name == name and t.native_id is not None]


def json_child(module: str, *args: str, timeout_s: float, env: dict | None = None) -> dict:
    """Run `python -m module args` in a fresh process and return the last JSON line of its stdout."""
    import json

    proc = run_module(module, *args, timeout_s=timeout_s, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2500:]}")
    return json.loads(lines[-1])
