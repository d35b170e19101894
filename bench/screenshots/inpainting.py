"""Screenshots of the inpainting panel with trained models: docs/inpainting*.png.

    python -m bench.screenshots.inpainting [--model runs/vae32.pt] [--model2 runs/vae2.pt] [--out DIR]

model: the default 32-D VAE (a half-drawn digit, drawn by simulated mouse strokes, and a test digit);
model2: a 2-D latent model (the latent plane with p(z|x_o) and q). Both default to the shipped models.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PySide6.QtCore import QEvent, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from bench.common import DOCS, add_model_argument, make_hub, qt_app, screenshot, settle, wait_until
from lvm_studio.workers.tasks import shutdown_all

SIZE = (1280, 760)


def wait_fit(panel, action, timeout_s=120.0):
    done = []
    panel.fit_finished.connect(lambda: done.append(1))
    action()
    wait_until(lambda: done, timeout_s, poll_s=0.01, what="the end of the fit")
    settle()


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
    from lvm_studio.ui.inpainting.inpainting_panel import InpaintingPanel

    panel = InpaintingPanel(make_hub(path))
    panel.resize(*SIZE)
    return panel


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(p, "--model", latent_dim=32)
    add_model_argument(p, "--model2", latent_dim=2)
    p.add_argument("--out", default=str(DOCS), help="folder for the PNG files (default: docs/)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    qt_app()

    panel = panel_for(a.model)
    panel.show()
    settle(1.0)
    # a half-drawn digit: the top half hidden, the lower half of a "2" drawn by hand
    panel.canvas.clear()
    panel.apply_preset("top_half")
    panel.brush_size.setValue(1.1)
    draw(panel, [(13.5, 17.5), (17.0, 15.0), (20.0, 11.5), (22.5, 9.0), (23.5, 8.5)])
    wait_fit(panel, lambda: draw(panel, [(23.5, 8.5), (23.5, 13.0), (23.0, 18.0), (22.0, 21.0)]))
    screenshot(panel, out / "inpainting.png", settle_s=0)

    # a test digit with a box in the middle hidden
    panel.load_test_digit(18)
    wait_fit(panel, lambda: panel.apply_preset("centre_box"))
    screenshot(panel, out / "inpainting-test-digit.png", settle_s=0)
    panel.close()

    panel2 = panel_for(a.model2)
    panel2.show()
    settle(0.5)
    panel2.load_test_digit(4)
    wait_fit(panel2, lambda: panel2.apply_preset("top_half"))
    screenshot(panel2, out / "inpainting-2d.png", settle_s=0)
    panel2.close()
    shutdown_all(5.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
