"""Screenshots of the "Missing pixels as latents" panel (issue 15): docs/pixel-latents*.png.

    python -m bench.screenshots.pixel_latents [--made CKPT] [--out DIR]

pixel-latents-painted.png   the mixture, top half hidden, φ painted by simulated brush strokes, its numbers
pixel-latents-choices.png   the lecture's three choices φ = 0.5, φ = 1 and the optimised φ, side by side (MADE)
pixel-latents-sweep.png     naive vs importance estimates of log p(x_o) as k grows (the mixture: exact line)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from bench.common import DOCS, make_hub, qt_app, screenshot, settle, wait_until
from lvm_studio.workers.tasks import shutdown_all

SIZE = (1280, 720)
DIGIT = 0  # a 7: the top half is its bar


def stroke(canvas, points, value: float) -> None:
    """A φ brush stroke through (row, col) points, several mouse events per segment."""
    canvas.set_value(value)
    pts = []
    for (r0, c0), (r1, c1) in zip(points[:-1], points[1:]):
        pts += [(r0 + t * (r1 - r0), c0 + t * (c1 - c0)) for t in np.linspace(0, 1, 8, endpoint=False)]
    pts.append(points[-1])

    def pos(r, c):
        t = canvas.target_rect()
        cell = t.width() / 28
        return QPoint(int(t.x() + (c + 0.5) * cell), int(t.y() + (r + 0.5) * cell))

    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos(*pts[0]))
    for p in pts[1:]:
        QTest.mouseMove(canvas, pos(*p))
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos(*pts[-1]))
    QApplication.sendEvent(canvas, QEvent(QEvent.Type.Leave))


def wait(panel, signal_name: str, action, timeout_s: float = 300.0) -> None:
    done = []
    getattr(panel, signal_name).connect(lambda *_: done.append(1))
    action()
    wait_until(lambda: done, timeout_s, poll_s=0.01, what=signal_name)


def ready(panel) -> None:
    wait_until(lambda: panel.reference is not None and panel.numbers is not None, 300, 0.01, "the numbers")
    settle(0.5)


def choices_sheet(columns, side: int = 300):
    """One column per choice: its title, the canvas (φ as a heat map), samples of q and the numbers."""
    from PySide6.QtGui import QFont, QPixmap

    col_w = max(side, max(c[3].width() for c in columns)) + 16
    columns = [(t, c, s.scaledToWidth(side, Qt.TransformationMode.FastTransformation), n) for t, c, s, n in columns]
    strip_h = max(c[2].height() for c in columns)
    num_h = max(c[3].height() for c in columns)
    h = 34 + side + 8 + strip_h + 8 + num_h + 10
    sheet = QPixmap(col_w * len(columns), h)
    sheet.fill(QColor(32, 34, 38))
    p = QPainter(sheet)
    font = QFont(p.font())
    font.setPointSize(13)
    font.setBold(True)
    for i, (title, canvas, strip, numbers) in enumerate(columns):
        x0 = i * col_w + 8
        p.setFont(font)
        p.setPen(QColor(235, 235, 235))
        p.drawText(x0, 24, title)
        p.drawPixmap(x0, 34, canvas.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio))
        p.drawPixmap(x0, 34 + side + 8, strip)
        p.drawPixmap(x0, 34 + side + 8 + strip_h + 8, numbers)
    p.end()
    return sheet


def make_panel(hub):
    from lvm_studio.ui.inpainting.pixel_latents_panel import PixelLatentsPanel

    panel = PixelLatentsPanel(hub)
    panel.resize(*SIZE)
    return panel


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--made", help="a MADE checkpoint (default: the shipped one)")
    p.add_argument("--out", default=str(DOCS))
    a = p.parse_args(argv)
    out = Path(a.out)
    qt_app()
    from bench.common import pretrained_path
    from lvm_studio.core.checkpoint import load_checkpoint
    from lvm_studio.core.made_training import made_from_checkpoint
    from lvm_studio.core.pretrained import made_checkpoint_path

    hub = make_hub(pretrained_path(32))
    made_path = a.made or made_checkpoint_path()
    made = made_from_checkpoint(load_checkpoint(made_path))

    # 1. the mixture with a painted φ: the bar and the stem of a 7
    panel = make_panel(hub)
    panel.show()
    wait(panel, "joint_ready", panel.start)
    panel.set_digit(DIGIT)
    ready(panel)
    panel.set_phi_preset("zeros")
    settle(0.3)
    stroke(panel.canvas, [(6.5, 6), (6.5, 21)], 0.9)
    stroke(panel.canvas, [(7.5, 20), (13.5, 17)], 0.8)
    wait_until(lambda: panel.numbers is not None, 60, 0.01)
    settle(1.5)
    screenshot(panel, out / "pixel-latents-painted.png")

    # 3. naive vs importance on the mixture (exact log p(x_o) as the line), q = exact marginals
    panel.set_phi_preset("marginals")
    settle(1.0)
    wait(panel, "sweep_finished", lambda: panel.run_estimates(100_000, 3))
    settle(0.5)
    screenshot(panel, out / "pixel-latents-sweep.png")
    panel.close()

    # 2. the lecture's three choices with the MADE: φ = 0.5, φ = 1, optimised (one panel, three grabs)
    panel = make_panel(hub)
    panel.show()
    panel.use_joint("made", made)
    panel.set_digit(DIGIT)
    ready(panel)
    columns = []
    for name, title in (("half", "φ = 0.5"), ("ones", "φ = 1"), ("optimised", "optimised φ")):
        if name == "optimised":
            panel.set_phi_preset("half")
            wait(panel, "optimise_finished", lambda: panel.set_phi_preset("optimised"))
        else:
            panel.set_phi_preset(name)
        panel.numbers = None
        wait_until(lambda: panel.numbers is not None, 120, 0.01)
        settle(0.8)
        canvas = panel.canvas.grab(panel.canvas.target_rect().toRect().adjusted(-1, -1, 1, 1))
        strip = panel.strips.q_view.grab(panel.strips.q_view.target_rect().toRect())
        columns.append((title, canvas, strip, panel.numbers_label.grab()))
    sheet = choices_sheet(columns)
    sheet.save(str(out / "pixel-latents-choices.png"), "PNG")
    print("wrote", out / "pixel-latents-choices.png")
    panel.close()
    shutdown_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
