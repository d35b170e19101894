"""Screenshots of the inpainting panel with trained models, for docs/inpainting*.png.

    QT_QPA_PLATFORM=offscreen python -m bench.inpainting_screenshots --model runs/vae32.pt --model2 runs/vae2.pt

model: the default 32-D VAE (a half-drawn digit, drawn by simulated mouse strokes, and a test digit);
model2: a 2-D latent model (the latent plane with p(z|x_o) and q).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QEvent, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from lvm_studio.ui.widgets import style
from lvm_studio.workers.tasks import shutdown_all

SIZE = (1280, 760)


def settle(app, seconds=0.3):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.01)


def wait_fit(app, panel, action, timeout=120.0):
    done = []
    panel.fit_finished.connect(lambda: done.append(1))
    action()
    t0 = time.monotonic()
    while not done:
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the fit did not finish")
    settle(app)


def draw(panel, path, steps_per_segment=6):
    """One stroke through the (row, col) points, with several mouse events per segment."""
    c = panel.canvas
    pts = []
    for (r0, c0), (r1, c1) in zip(path[:-1], path[1:]):
        for i in range(steps_per_segment):
            t = i / steps_per_segment
            pts.append((r0 + t * (r1 - r0), c0 + t * (c1 - c0)))
    pts.append(path[-1])
    q = [c.pos_of_pixel(r, col).toPoint() for r, col in pts]
    QTest.mousePress(c, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, q[0])
    for p in q[1:]:
        QTest.mouseMove(c, p)
    QTest.mouseRelease(c, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, q[-1])
    QApplication.sendEvent(c, QEvent(QEvent.Type.Leave))  # no brush outline left in the picture


def panel_for(path):
    from lvm_studio.core.checkpoint import load_checkpoint, model_from_checkpoint
    from lvm_studio.ui.inpainting.inpainting_panel import InpaintingPanel
    from lvm_studio.ui.state.model_hub import ModelHub

    ckpt = load_checkpoint(path)
    hub = ModelHub()
    hub.set_model(model_from_checkpoint(ckpt), name=ckpt.get("name"), step=ckpt.get("step", 0))
    panel = InpaintingPanel(hub)
    panel.resize(*SIZE)
    return panel


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--model2", required=True)
    p.add_argument("--out", default="docs")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(exist_ok=True)
    app = QApplication.instance() or QApplication([])
    style.apply(app)

    panel = panel_for(a.model)
    panel.show()
    settle(app, 1.0)
    # a half-drawn digit: the top half hidden, the lower half of a "2" drawn by hand
    panel.canvas.clear()
    panel.apply_preset("top_half")
    panel.brush_size.setValue(1.1)
    draw(panel, [(13.5, 17.5), (17.0, 15.0), (20.0, 11.5), (22.5, 9.0), (23.5, 8.5)])
    wait_fit(app, panel, lambda: draw(panel, [(23.5, 8.5), (23.5, 13.0), (23.0, 18.0), (22.0, 21.0)]))
    panel.grab().save(str(out / "inpainting.png"))
    print("wrote", out / "inpainting.png")

    # a test digit with a box in the middle hidden
    panel.load_test_digit(18)
    wait_fit(app, panel, lambda: panel.apply_preset("centre_box"))
    panel.grab().save(str(out / "inpainting-test-digit.png"))
    print("wrote", out / "inpainting-test-digit.png")
    panel.close()

    panel2 = panel_for(a.model2)
    panel2.show()
    settle(app, 0.5)
    panel2.load_test_digit(4)
    wait_fit(app, panel2, lambda: panel2.apply_preset("top_half"))
    panel2.grab().save(str(out / "inpainting-2d.png"))
    print("wrote", out / "inpainting-2d.png")
    panel2.close()
    shutdown_all(5.0)


if __name__ == "__main__":
    main()
