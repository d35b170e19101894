"""The posterior view's plot: p(z|x) as a heat map, q(z|x)'s 1σ and 2σ ellipses, the encoder's and
the optimised q, importance samples sized by weight, and handles to drag q's centre and σs.

It only draws: the heat image, its levels and extent come from core.latent_views.heat_image.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from lvm_studio.core.gaussian import ellipse_points
from lvm_studio.core.latent_views import HeatImage
from lvm_studio.ui.widgets.axes import plain_axes

ELLIPSE_POINTS = 96
# colours of this view only (ui/widgets/style.py's palette has no entry for them)
Q_COLOUR = (255, 255, 255)
ENCODER_COLOUR = (200, 200, 200)
OPTIMISED_COLOUR = (255, 80, 200)
SAMPLE_PEN = (60, 30, 0, 160)
SAMPLE_BRUSH = (255, 140, 0, 150)
LEGEND_TEXT = (235, 235, 235)
LEGEND_BACKGROUND = (0, 0, 0, 160)
MESSAGE_COLOUR = (230, 230, 230)


class PosteriorPlot(pg.PlotWidget):
    """The z1–z2 plane of a 2-D latent with the posterior view's items (attributes named as drawn)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        plain_axes(self)
        self.setMinimumSize(320, 320)
        self.setAspectLocked(True)
        self.setLabel("bottom", "z1")
        self.setLabel("left", "z2")
        self.heat = pg.ImageItem(axisOrder="col-major")  # heat[i, j] is z = (z1[i], z2[j])
        self.heat.setColorMap(pg.colormap.get("viridis"))
        self.heat.setZValue(-10)
        self.addItem(self.heat)
        self.legend = self.addLegend(offset=(-8, 8), labelTextColor=LEGEND_TEXT, brush=pg.mkBrush(*LEGEND_BACKGROUND))
        self.q1 = self.plot(pen=pg.mkPen(Q_COLOUR, width=2), name="q(z|x): 1σ")
        self.q2 = self.plot(pen=pg.mkPen(Q_COLOUR, width=1.5, style=Qt.PenStyle.DashLine), name="q(z|x): 2σ")
        self.enc_curve = self.plot(
            pen=pg.mkPen(ENCODER_COLOUR, width=1, style=Qt.PenStyle.DotLine), name="encoder's q, 1σ"
        )
        self.opt_curve = self.plot(pen=pg.mkPen(OPTIMISED_COLOUR, width=2), name="optimised φ*, 1σ")
        self.samples = pg.ScatterPlotItem(
            pen=pg.mkPen(*SAMPLE_PEN), brush=pg.mkBrush(*SAMPLE_BRUSH), name="z ~ q, area ∝ weight w̃"
        )
        self.samples.setZValue(5)
        self.addItem(self.samples)
        for curve in (self.q1, self.q2, self.enc_curve, self.opt_curve):
            curve.setZValue(10)
        self.centre = pg.TargetItem(pos=(0, 0), size=14, pen=pg.mkPen(Q_COLOUR, width=2), symbol="o")
        self.handle1 = pg.TargetItem(pos=(1, 0), size=10, pen=pg.mkPen(Q_COLOUR), symbol="s")
        self.handle2 = pg.TargetItem(pos=(0, 1), size=10, pen=pg.mkPen(Q_COLOUR), symbol="s")
        for h, tip in ((self.centre, "drag: move μ"), (self.handle1, "drag: σ1"), (self.handle2, "drag: σ2")):
            h.setZValue(30)
            h.setToolTip(tip)
            self.addItem(h)
        self.message = pg.TextItem("", color=MESSAGE_COLOUR, anchor=(0.5, 0.5))
        self.addItem(self.message)

    def items_for_q(self) -> tuple:
        """Everything that exists only for a 2-D latent."""
        return (
            self.heat,
            self.q1,
            self.q2,
            self.enc_curve,
            self.opt_curve,
            self.samples,
            self.centre,
            self.handle1,
            self.handle2,
        )

    def show_heat(self, heat: HeatImage) -> None:
        self.heat.setImage(heat.image, levels=heat.levels, autoLevels=False)
        self.heat.setRect(*heat.rect)

    def fit_to(self, rect: tuple[float, float, float, float]) -> None:
        """Zoom onto (x0, y0, width, height), with a small margin."""
        x0, y0, w, h = rect
        self.getViewBox().setRange(xRange=(x0, x0 + w), yRange=(y0, y0 + h), padding=0.02)

    @staticmethod
    def set_ellipse(item, loc, scale, n_sigma: float) -> None:
        """The n_sigma contour of N(loc, diag scale²)."""
        pts = ellipse_points(loc, np.diag(np.asarray(scale) ** 2), n_sigma, ELLIPSE_POINTS)
        item.setData(pts[:, 0], pts[:, 1])

    def show_q(self, loc: np.ndarray, scale: np.ndarray) -> None:
        """q's ellipses and the handles: the centre at μ, the σ handles at μ + σ1 e1 and μ + σ2 e2."""
        self.set_ellipse(self.q1, loc, scale, 1.0)
        self.set_ellipse(self.q2, loc, scale, 2.0)
        for h, pos in (
            (self.centre, loc),
            (self.handle1, loc + [scale[0], 0]),
            (self.handle2, loc + [0, scale[1]]),
        ):
            h.blockSignals(True)
            h.setPos(float(pos[0]), float(pos[1]))
            h.blockSignals(False)

    def show_message(self, text: str) -> None:
        """Only a message (this latent has no posterior view)."""
        self.message.setText(text)
        self.message.setPos(0, 0)
        self.getViewBox().setRange(xRange=(-1, 1), yRange=(-1, 1))
