"""The EM playground's free-energy plot: F(q, θ) after every half-step beside the log-likelihood ℓ(θ).

The legend sits to the right of the axes (never over the first iterations, where F rises fastest)
and the explanation is a caption under the plots (FREE_ENERGY_CAPTION), so the short x-axis label
has the plot's bottom edge to itself.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from lvm_studio.core.em_session import HalfStep
from lvm_studio.ui.widgets.axes import plain_axes
from lvm_studio.ui.widgets.style import COLORS, FOREGROUND, LEGEND_BACKGROUND, MUTED

F_COLOUR = COLORS["train_elbo_smooth"]  # F(q, θ) is an ELBO: the ELBO's colour
E_COLOUR = COLORS["log_px"]  # after an E-step F equals the log-likelihood: its colour
M_COLOUR = COLORS["val_elbo"]

FREE_ENERGY_CAPTION = (
    "<b>F(q, θ)</b> = (1/N) Σ<sub>n</sub> Σ<sub>k</sub> q<sub>nk</sub> [log π<sub>k</sub>"
    "N(x<sub>n</sub>; μ<sub>k</sub>, Σ<sub>k</sub>) − log q<sub>nk</sub>] = log-likelihood − KL(q ‖ p(z|x, θ)), "
    "nats per point (Neal &amp; Hinton 1998). "
    f"The <span style='color:{E_COLOUR}'>E-step</span> of iteration t (plotted at t − ½) sets q = p(z|x, θ): "
    "the KL vanishes and F equals the log-likelihood. "
    f"Its <span style='color:{M_COLOUR}'>M-step</span> (at t) maximises F over θ with q fixed; the dashed "
    "log-likelihood of the new θ lies above F by the KL that the next E-step removes. Both half-steps raise F, so "
    "the log-likelihood never falls."
)


class FreeEnergyPlot(pg.GraphicsLayoutWidget):
    """F(q, θ) per half-step (E-steps at t − ½, M-steps at t) and ℓ(θ) per iteration, legend beside."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(130)
        self.plot_item = self.addPlot(row=0, col=0)
        plain_axes(self.plot_item)
        self.plot_item.setLabel("bottom", "EM iteration t")
        self.plot_item.setLabel("left", "nats per point")
        self.plot_item.showGrid(x=True, y=True, alpha=0.15)
        self._build_curves()
        self._build_legend()
        self.setToolTip(FREE_ENERGY_CAPTION)

    def _build_curves(self) -> None:
        self.f_curve = self.plot_item.plot(pen=pg.mkPen(F_COLOUR, width=2))
        self.ll_curve = self.plot_item.plot(
            pen=pg.mkPen(FOREGROUND, width=1.2, style=Qt.PenStyle.DashLine),
            symbol="d",
            symbolSize=6,
            symbolBrush=FOREGROUND,
            symbolPen=None,
        )
        self.e_markers = pg.ScatterPlotItem(size=8, symbol="o", brush=pg.mkBrush(E_COLOUR), pen=None)
        self.m_markers = pg.ScatterPlotItem(size=8, symbol="s", brush=pg.mkBrush(M_COLOUR), pen=None)
        self.plot_item.addItem(self.e_markers)
        self.plot_item.addItem(self.m_markers)

    def _build_legend(self) -> None:
        # its own column of the layout, right of the axes: it can hide no point of the curves
        self.legend = pg.LegendItem(labelTextColor=FOREGROUND, brush=pg.mkBrush(*LEGEND_BACKGROUND), verSpacing=-4)
        self.addItem(self.legend, row=0, col=1)
        for item, name in (
            (self.f_curve, "F(q, θ)"),
            (self.ll_curve, "log-likelihood ℓ(θ)"),
            (self.e_markers, "after an E-step"),
            (self.m_markers, "after an M-step"),
        ):
            self.legend.addItem(item, name)

    def show_trace(self, trace: list[HalfStep]) -> None:
        """F after each half-step, its E and M markers, and ℓ after θ_0 and each M-step."""
        steps = [s for s in trace if s.kind in ("E", "M")]
        self.f_curve.setData([s.x for s in steps], [s.free_energy for s in steps])
        es = [s for s in steps if s.kind == "E"]
        ms = [s for s in steps if s.kind == "M"]
        self.e_markers.setData([s.x for s in es], [s.free_energy for s in es])
        self.m_markers.setData([s.x for s in ms], [s.free_energy for s in ms])
        lls = [s for s in trace if s.kind in ("init", "M")]
        self.ll_curve.setData([s.x for s in lls], [s.log_likelihood for s in lls])


def free_energy_caption() -> QLabel:
    """The explanation of F, as a word-wrapped label to place under the plots."""
    caption = QLabel(FREE_ENERGY_CAPTION)
    caption.setWordWrap(True)
    caption.setTextFormat(Qt.TextFormat.RichText)
    caption.setStyleSheet(f"color: {MUTED};")
    return caption
