"""What the benchmarks and screenshot scripts share: the model to use, the offscreen app, waiting on
the event loop, screenshots, and timing summaries.

Every script runs from the repository root as a module, `python -m bench.NAME` (the project is
installed editable; `bench` is found because `-m` puts the current folder on the path).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


# --- the model ---------------------------------------------------------------------------------


def pretrained_path(latent_dim: int) -> Path | None:
    """The shipped model with this latent size (pretrained/manifest.json), or None when it is missing."""
    from lvm_studio.core.pretrained import model_entries, pretrained_dir

    for entry in model_entries():
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
