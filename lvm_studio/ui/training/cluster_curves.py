"""The clustering curves of a mixture-prior model: test accuracy and NMI of q(c | x) against epochs.

A third plot under the curves panel's bounds and terms, x-linked to them, present only while the
history holds clustering figures (EvalRecord.cluster_acc, written by the Trainer for a mixture
prior). The labels only score the clustering; they never train (core/mixture_training.py).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from lvm_studio.ui.widgets import style
from lvm_studio.ui.widgets.axes import plain_axes

ROW = 3  # under the bounds (0), their legend (1) and the ELBO terms (2)


class ClusterCurves:
    """Owns the accuracy/NMI plot of a GraphicsLayoutWidget; `update(evals)` redraws it."""

    def __init__(self, view: pg.GraphicsLayoutWidget, x_link: pg.PlotItem):
        self.view = view
        self.plot = pg.PlotItem()
        self.plot.setXLink(x_link)
        self.plot.setTitle("Test clustering by q(c|x): labels only score", size="10pt")
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "score")
        self.plot.showAxis("right")
        self.plot.getAxis("left").setWidth(64)
        self.plot.getAxis("right").setWidth(56)
        self.plot.getAxis("right").setStyle(showValues=False)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setYRange(0.0, 1.0, padding=0.02)
        self.plot.setMouseEnabled(y=False)
        plain_axes(self.plot)
        self.plot.addLegend(offset=(-4, -4), labelTextSize="8pt")
        c = style.COLORS
        self.accuracy_curve = self.plot.plot(
            pen=pg.mkPen(c["log_px"], width=2.0),
            symbol="o",
            symbolSize=5,
            symbolBrush=c["log_px"],
            symbolPen=None,
            name="accuracy (Hungarian)",
        )
        self.nmi_curve = self.plot.plot(
            pen=pg.mkPen(c["val_elbo"], width=2.0),
            symbol="s",
            symbolSize=5,
            symbolBrush=c["val_elbo"],
            symbolPen=None,
            name="NMI",
        )
        self.shown = False
        self.latest: tuple[float, float, float] | None = None  # epoch, accuracy, NMI

    def update(self, evals) -> None:
        """Draw the evaluations that carry clustering figures; show the plot only if there are any."""
        points = [(e.epoch, e.cluster_acc, e.cluster_nmi) for e in evals if e.cluster_acc is not None]
        self._show(bool(points))
        if not points:
            self.latest = None
            self.accuracy_curve.setData([], [])
            self.nmi_curve.setData([], [])
            return
        a = np.asarray(points, dtype=float)  # (n, 3)
        self.accuracy_curve.setData(a[:, 0], a[:, 1])
        self.nmi_curve.setData(a[:, 0], a[:, 2])
        self.latest = tuple(float(v) for v in a[-1])

    def summary(self) -> str:
        if self.latest is None:
            return ""
        _, acc, nmi = self.latest
        return f"test clustering: accuracy {acc:.3f}   NMI {nmi:.3f}"

    def _show(self, on: bool) -> None:
        if on == self.shown:
            return
        self.shown = on
        if on:
            self.view.addItem(self.plot, row=ROW, col=0)
            self.view.ci.layout.setRowStretchFactor(ROW, 2)
        else:
            self.view.removeItem(self.plot)
