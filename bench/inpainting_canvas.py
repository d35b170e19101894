"""Inpainting canvas under fast strokes.

    python -m bench.inpainting_canvas [--checkpoint PATH]

Mouse-move events, one every --interval-ms (default 8 ms: a 125 Hz mouse), each --jump pixels
from the last (default 1.5: a fast pen crosses the 28-pixel canvas in ~150 ms), in back-to-back
strokes along the rows of the bottom half, alternately drawing and erasing (so that every stroke
changes the drawing and live fits keep coming), sent to the inpainting panel's canvas with the
top half hidden. Per move event it measures
    move_ms              the canvas's mouseMoveEvent (stroke rasterisation, the live signal and,
                         in live mode, submitting a new fit when the throttle lets one through)
    paint_ms             the canvas's paintEvent
    move_to_painted_ms   from sending the event until the event loop has painted the canvas
    event_loop_stall_ms  the longest single pass of the event loop before the event (paints of
                         the result views, queued reports): what delays the next event
    behind_at_end_ms     how far the strokes had fallen behind their schedule at the last event
                         (Qt compresses a real mouse's moves when the loop is behind, so this
                         backlog is a worst case)
twice: with "fit as I draw" off (the canvas alone) and on (a fit of q restarts every 100 ms of a
stroke and at its end, in the panel's TaskRunner thread, and its live reports are drawn).
Also the panel's whole background task for one digit (fit, numbers, importance resampling), timed
directly. Prints JSON. The model: --checkpoint, by default the shipped 32-D model (as bench.inpainting finds it).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from bench.common import BenchContext, add_model_argument, make_hub, median_ms, percentiles, qt_app, show

_summary = percentiles  # p50, p95, max in milliseconds, three decimals


def _send(widget, kind, pos: QPointF, buttons):
    button = Qt.MouseButton.LeftButton if kind != QMouseEvent.Type.MouseMove else Qt.MouseButton.NoButton
    ev = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def strokes(app, panel, n_events: int, interval_s: float, jump: float, live: bool) -> dict:
    """n_events mouse moves in back-to-back strokes, one per pass along a row of the bottom half,
    alternately drawing and erasing (so that every stroke changes the drawing)."""
    canvas = panel.canvas
    panel.live.setChecked(live)
    panel.canvas.clear()
    panel.auto_centre.setChecked(False)
    panel.apply_preset("top_half")
    # passes along rows 16..25, left to right and back; each pass is one stroke
    passes, r, c, dc = [[]], 18.0, 2.0, jump
    for _ in range(n_events):
        passes[-1].append(canvas.pos_of_pixel(r, c))
        c += dc
        if not 2.0 <= c <= 25.0:
            dc = -dc
            c += 2 * dc
            r = 16.0 + (r - 15.0) % 10.0
            passes.append([])
    fits_before = panel.fits_submitted
    move, paint, painted, stall = [], [], [], []
    held = Qt.MouseButton.LeftButton
    t_start = time.perf_counter()
    i = 0
    for k, pts in enumerate(passes):
        if len(pts) < 2:
            continue
        canvas.set_mode("draw" if k % 2 == 0 else "erase")
        for j, p in enumerate(pts):
            due = t_start + i * interval_s
            i += 1
            longest = 0.0
            while True:  # the event loop runs until the next mouse event is due
                t = time.perf_counter()
                if t >= due:
                    break
                app.processEvents()
                longest = max(longest, time.perf_counter() - t)
            if j == 0:
                _send(canvas, QMouseEvent.Type.MouseButtonPress, p, held)
                continue
            stall.append(1000 * longest)
            n_painted = canvas.painted
            t0 = time.perf_counter()
            _send(canvas, QMouseEvent.Type.MouseMove, p, held)
            move.append(1000 * (time.perf_counter() - t0))
            while canvas.painted == n_painted and time.perf_counter() - t0 < 1.0:  # the event loop paints it
                app.processEvents()
            painted.append(1000 * (time.perf_counter() - t0))
            paint.append(canvas.last_paint_ms)
        _send(canvas, QMouseEvent.Type.MouseButtonRelease, pts[-1], Qt.MouseButton.NoButton)
    behind = time.perf_counter() - (t_start + (i - 1) * interval_s)
    t_end = time.perf_counter()
    # let the last fit finish, so the next run starts quiet
    deadline = time.perf_counter() + 30
    while panel.runner.is_busy() and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.005)
    canvas.set_mode("draw")
    return {
        "fit_as_i_draw": live,
        "move_events": len(move),
        "strokes": len(passes),
        "seconds": round(t_end - t_start, 2),
        "fits_submitted": panel.fits_submitted - fits_before,
        "move_ms": _summary(move),
        "paint_ms": _summary(paint),
        "move_to_painted_ms": _summary(painted),
        "event_loop_stall_ms": _summary(stall),
        "behind_at_end_ms": round(1000 * behind, 1),
    }


def panel_task_ms(model, data, repeats: int = 7) -> dict:
    """Median wall / CPU ms of the panel's whole task for one test digit (top half hidden): the
    encoder's guess and its completion, the 200-step fit with live reports every 10 steps, two
    256-sample ELBO estimates, importance resampling with k = 2000 (no latent grid: 32-D)."""
    from lvm_studio.core import masks
    from lvm_studio.core.images import SIDE
    from lvm_studio.core.inpainting_task import fit_task, panel_config

    x = data.binarized("test")[0].reshape(SIDE, SIDE).numpy()
    cfg = panel_config()  # the panel's
    out = {}
    for name, k in (("without_importance", 0), ("with_importance_k2000", 2000)):
        wall, cpu = median_ms(
            lambda k=k: fit_task(BenchContext(), model, x, masks.top_half(), cfg, k, True, 0), repeats
        )
        out[name] = {"wall_ms": round(wall, 1), "cpu_ms": round(cpu, 1)}
    return out


def main(argv=None) -> int:
    from bench.inpainting import find_model
    from lvm_studio.core.data import load_mnist
    from lvm_studio.ui.inpainting.inpainting_panel import InpaintingPanel
    from lvm_studio.workers.tasks import shutdown_all

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(p, "--checkpoint", latent_dim=32)
    p.add_argument("--events", type=int, default=400)
    p.add_argument("--interval-ms", type=float, default=8.0)
    p.add_argument("--jump", type=float, default=1.5)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before measuring")
    p.add_argument("--size", type=int, default=560, help="canvas side in screen pixels")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    app = qt_app()
    data = load_mnist()
    model, desc = find_model(data, a.checkpoint)
    panel = show(InpaintingPanel(make_hub(model, data=data, name=desc)), (1280, 760))
    panel.canvas.setFixedSize(a.size, a.size)
    for _ in range(20):
        app.processEvents()
    strokes(app, panel, 50, a.interval_ms / 1000, a.jump, live=True)  # warm-up
    out = {
        "model": desc,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "panel_task": panel_task_ms(model, data),
        "canvas_px": a.size,
        "interval_ms": a.interval_ms,
        "jump_px": a.jump,
        "runs": [strokes(app, panel, a.events, a.interval_ms / 1000, a.jump, live=live) for live in (False, True)],
    }
    shutdown_all(5.0)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
