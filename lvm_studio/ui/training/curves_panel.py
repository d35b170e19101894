"""Live curves: the training ELBO, the validation ELBO beside the importance-sampled log p(x),
and the reconstruction and KL terms, against epochs; for a mixture prior also the test
clustering accuracy and NMI (ui/training/cluster_curves.py).

The panel reads only `hub.history`. Each `hub.record_added` starts a short single-shot timer
(at most about 15 Hz) if none is pending; when it fires, the records that arrived meanwhile are
appended to growable numpy buffers and the existing curve items are updated in place with
setData. Records may arrive faster than that; the redraw rate does not follow them
(docs/architecture.md, the data flow while training), and with no new record nothing runs.

The gap between log p̂(x) (IWAE-k) and the ELBO is shaded: log p(x) − ELBO = KL(q(z|x) ‖ p(z|x))
for each x (Kingma & Welling 2014, eq. 1), so the shaded band is the average KL to the true
posterior, up to the estimator's own gap at finite k (Burda et al. 2016, Thm 1).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, QSizeF, Qt, QTimer, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from lvm_studio.ui.training import curves_export, curves_hover
from lvm_studio.ui.training.cluster_curves import ClusterCurves
from lvm_studio.ui.training.curve_buffers import SMOOTHING, CurveBuffers, nice_step, range_after
from lvm_studio.ui.visibility import on_screen, screen_change
from lvm_studio.ui.widgets import style
from lvm_studio.ui.widgets.axes import plain_axes

__all__ = ["FOLLOW_SKIP", "REDRAW_INTERVAL_MS", "SMOOTHING", "CurvesPanel"]

REDRAW_INTERVAL_MS = 66  # ≈ 15 Hz at most
# while records stream in, a redraw at most every RECORD_REDRAW_GAP_S: one costs about 10 ms of the
# GUI thread (issue 12 asks for ≤ 5 % of a core while training), and curves over hundreds of epochs
# move too little in half a second to see the difference
RECORD_REDRAW_GAP_S = 0.5
FOLLOW_SKIP = 0.1  # "follow" y-ranges leave out the first 10 % of the epochs: the first steps
# (ELBO ≈ −540 nats) would squash the part worth reading
MIN_X_SPAN = 0.05  # epochs: the shortest x-axis, for the first records of a run
EXPORT_SIZE = QSizeF(800, 600)  # logical pixels of an exported figure (PNG: times its scale)
PEAK_SAMPLES_PER_PIXEL = 1.0  # a decimated curve: one min–max pair per pixel column


def _translucent(colour: str, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c


def _pen(color, width: float = 1.6, style_=Qt.PenStyle.SolidLine):
    return pg.mkPen(color=color, width=width, style=style_)


def _decimated(curve: pg.PlotDataItem) -> None:
    """Draw `curve` min–max decimated to the visible epochs: one (max, min) pair per pixel column.

    A redraw then costs about the same at epoch 1 and at epoch 500 (50,000 records): pyqtgraph's
    'peak' downsampling keeps each column's extremes, so the envelope looks the same, and
    clip-to-view leaves out what is off-screen. The data keep every point (hover, CSV).
    """
    curve.setDownsampling(auto=True, method="peak")
    curve.setClipToView(True)
    if "autoDownsampleFactor" in curve.opts:  # samples per pixel column; pyqtgraph's default 5
        curve.opts["autoDownsampleFactor"] = PEAK_SAMPLES_PER_PIXEL


class CurvesPanel(QWidget):
    def __init__(self, hub, parent: QWidget | None = None):
        super().__init__(parent)
        self.hub = hub
        self._dirty = False
        self.evals_plotted = 0  # log p(x) evaluations on screen after the last redraw
        self.redraws = 0
        self.buffers = CurveBuffers()  # every curve's points
        self._legend_k = 0

        # --- plots (created once) --------------------------------------------------------
        self.view = pg.GraphicsLayoutWidget()
        self.bounds_plot = self.view.addPlot(row=0, col=0)
        self.terms_plot = self.view.addPlot(row=2, col=0)  # row 1: the bounds' legend
        self.view.ci.layout.setRowStretchFactor(0, 3)
        self.view.ci.layout.setRowStretchFactor(1, 2)
        self.terms_plot.setXLink(self.bounds_plot)
        for p in (self.bounds_plot, self.terms_plot):
            # equal axis widths on both sides, so the x-linked plots line up epoch for epoch
            p.showAxis("right")
            p.getAxis("left").setWidth(64)
            p.getAxis("right").setWidth(56)
            p.showGrid(x=True, y=True, alpha=0.15)
            for name in ("left", "bottom", "right"):
                # major ticks and grid lines only: the axes draw the grid, and with minor levels
                # a repaint cost ~3x as much (53 vs 18 ms per new record, measured offscreen)
                p.getAxis(name).setStyle(maxTickLevel=0)
            p.setLabel("bottom", "epoch")
            p.setAutoVisible(y=True)
            p.setDownsampling(auto=True, mode="peak")
            p.setClipToView(True)
            plain_axes(p)  # "epoch", never "epoch (x0.001)"
        self.bounds_plot.setTitle("Bounds on log p(x)", size="10pt")
        self.bounds_plot.setLabel("left", "nats")
        self.bounds_plot.getAxis("right").setStyle(showValues=False)

        # the legend in its own row under the plot, two entries a row: inside the view box it
        # covered the curves of a narrow dock. PlotItem.plot(name=...) still adds to it.
        legend = pg.LegendItem(offset=None, labelTextSize="8pt", colCount=2, verSpacing=-6)
        self.view.addItem(legend, row=1, col=0)
        for row, stretch in ((0, 3), (1, 0), (2, 2)):  # the legend takes only the height it needs
            self.view.ci.layout.setRowStretchFactor(row, stretch)
        self.bounds_plot.legend = legend
        legend.setBrush(pg.mkBrush(_translucent(style.PLOT_BACKGROUND, 200)))
        c = style.COLORS
        self.train_raw_curve = self.bounds_plot.plot(pen=_pen(c["train_elbo"], 1.0), name="train ELBO")
        # dense curves get 1-pixel pens: a wider pen takes the raster engine's slow stroker,
        # doubling the cost of a repaint (measured 22 vs 10 ms per new record, offscreen)
        self.train_smooth_curve = self.bounds_plot.plot(
            pen=_pen(c["train_elbo_smooth"], 1.0), name="train ELBO, smoothed"
        )
        self.val_elbo_curve = self.bounds_plot.plot(
            pen=_pen(c["val_elbo"], 2.0),
            symbol="o",
            symbolSize=5,
            symbolBrush=c["val_elbo"],
            symbolPen=None,
            name="val ELBO",
        )
        self.log_px_curve = self.bounds_plot.plot(
            pen=_pen(c["log_px"], 2.0),
            symbol="s",
            symbolSize=5,
            symbolBrush=c["log_px"],
            symbolPen=None,
            name="val log p(x), IWAE-k",
        )
        for curve in (self.val_elbo_curve, self.log_px_curve):
            curve.setDownsampling(auto=False)  # a few points each; keep every one
        self.gap_fill = pg.FillBetweenItem(self.val_elbo_curve, self.log_px_curve, brush=pg.mkBrush(c["gap"]))
        self.bounds_plot.addItem(self.gap_fill)
        # a legend entry for the shading: clicking it hides the shading
        self._gap_key = pg.PlotDataItem([], [], pen=None, fillLevel=0, fillBrush=pg.mkBrush(c["gap"]))
        self._gap_key.visibleChanged.connect(self._on_gap_key_toggled)
        legend.addItem(self._gap_key, "gap ≈ KL(q‖p(z|x)), average")
        # the gap's latest value is in the summary line above the plots: a text inside the view
        # overlapped the curves in the narrow left column, and a longer title widened the plot
        self._iw_curves: dict[int, pg.PlotDataItem] = {}
        self._bounds_legend = legend

        # reconstruction on the left axis, KL on the right one (a second, x-linked ViewBox)
        t = self.terms_plot
        # no legend here: each axis label wears its curves' colour; solid = train, dashed = validation
        self.terms_plot.setTitle("ELBO terms, nats: solid train, dashed val", size="10pt")
        t.setLabel("left", "E_q[log p(x|z)]", color=c["recon"])
        t.setLabel("right", "KL(q ‖ p(z))", color=c["kl"])
        self._kl_vb = pg.ViewBox()
        self.view.scene().addItem(self._kl_vb)
        t.getAxis("right").linkToView(self._kl_vb)
        self._kl_vb.setXLink(t)
        t.vb.sigResized.connect(self._on_terms_resized)
        self.recon_curve = t.plot(pen=_pen(c["recon"], 1.0))
        self.val_recon_curve = t.plot(
            pen=_pen(c["recon"], 1.2, Qt.PenStyle.DashLine),
            symbol="o",
            symbolSize=5,
            symbolBrush=c["recon"],
            symbolPen=None,
        )
        self.kl_curve = pg.PlotDataItem(pen=_pen(c["kl"], 1.0))
        self.val_kl_curve = pg.PlotDataItem(
            pen=_pen(c["kl"], 1.2, Qt.PenStyle.DashLine), symbol="o", symbolSize=5, symbolBrush=c["kl"], symbolPen=None
        )
        for curve in (self.kl_curve, self.val_kl_curve):
            curve.setClipToView(True)
            self._kl_vb.addItem(curve)
        for curve in (self.train_raw_curve, self.train_smooth_curve, self.recon_curve, self.kl_curve):
            _decimated(curve)

        # hover: a vertical line in both plots and a read-out beside the cursor
        self._hover_lines = []
        for p in (self.bounds_plot, self.terms_plot):
            line = pg.InfiniteLine(
                angle=90, movable=False, pen=pg.mkPen(style.MUTED, width=1, style=Qt.PenStyle.DotLine)
            )
            line.setVisible(False)
            p.addItem(line, ignoreBounds=True)
            self._hover_lines.append(line)
        self._hover_text = {
            p: pg.TextItem(
                "",
                anchor=(0, 0),
                fill=pg.mkBrush(_translucent(style.PLOT_BACKGROUND, 225)),
                border=pg.mkPen(style.BORDER),
            )
            for p in (self.bounds_plot, self.terms_plot)
        }
        for p, item in self._hover_text.items():
            item.setVisible(False)
            item.setZValue(100)
            p.addItem(item, ignoreBounds=True)
        # items that change only with a new range are painted from a pixmap cache: the axes (which
        # also draw the grid across the plot) and the legend; a new record then repaints curves only
        self._cached_items = [
            p.getAxis(name) for p in (self.bounds_plot, self.terms_plot) for name in ("left", "bottom", "right")
        ] + [legend]
        curves_export.set_item_caching(self._cached_items, True)
        self.clusters = ClusterCurves(self.view, self.bounds_plot)  # shown only for a mixture prior
        self._mouse_proxy = pg.SignalProxy(self.view.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)

        # --- controls --------------------------------------------------------------------
        self.show_raw = QCheckBox("raw train ELBO")
        self.show_raw.setChecked(True)
        self.show_raw.toggled.connect(self.train_raw_curve.setVisible)
        self.show_raw.toggled.connect(self._on_follow_toggled_again)
        self.show_iw = QCheckBox("IW-k bounds")
        self.show_iw.setChecked(True)
        self.show_iw.setToolTip("The IWAE bound at several k from each evaluation (enable them in Training)")
        self.show_iw.toggled.connect(self._on_show_iw_toggled)
        self.follow = QCheckBox("follow")
        self.follow.setChecked(True)
        self.follow.setToolTip(
            "Keep the axes on the whole run, leaving out the first steps' large values; "
            "zooming or panning by hand turns this off"
        )
        self.follow.toggled.connect(self._on_follow_toggled)
        for vb in (self.bounds_plot.vb, self.terms_plot.vb, self._kl_vb):
            vb.sigRangeChangedManually.connect(self._on_range_changed_manually)
        self.summary = QLabel("")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # the numbers on their own line, wrapping: they never widen the window
        self.summary.setWordWrap(True)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setContentsMargins(4, 0, 4, 0)
        controls = QHBoxLayout()
        controls.setContentsMargins(4, 0, 4, 0)
        controls.addWidget(self.show_raw)
        controls.addWidget(self.show_iw)
        controls.addWidget(self.follow)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.summary)
        layout.addWidget(self.view, 1)

        self._redrawing = True  # False once stop_redrawing() was called
        self._last_redraw_t = -math.inf
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._on_redraw_timer)
        hub.history_changed.connect(self._on_history_changed)
        hub.record_added.connect(self._on_record_added)
        hub.model_changed.connect(self._on_model_changed)
        self._on_model_changed()
        self._on_history_changed()

    def sizeHint(self) -> QSize:
        return QSize(640, 560)

    def stop_redrawing(self) -> None:
        """No more redraws on new records (the window is closing); redraw() still works."""
        self._redrawing = False
        self._timer.stop()

    # --- data -------------------------------------------------------------------------
    def _reset(self) -> None:
        self.buffers.reset(self.hub.history)
        self._dirty = True

    def _pull(self) -> bool:
        """Append the records that arrived since the last call; True if any did."""
        return self.buffers.pull(self.hub.history)

    # --- drawing ----------------------------------------------------------------------
    @Slot()
    def _on_redraw_timer(self) -> None:
        if self._pull() or self._dirty:
            self.redraw()

    def redraw(self) -> None:
        """Push the buffers into the existing items (called by the timer; tests may call it)."""
        b = self.buffers
        self._pull()
        self._dirty = False
        self.redraws += 1
        self._last_redraw_t = time.monotonic()
        # only the curves whose data changed: a training record must not rebuild the evaluation
        # curves' symbols, nor the shading (measured: half the cost of a redraw)
        if b.train_changed:
            b.train_changed = False
            # following the whole run: the buffers' min–max envelopes (at most 4 x ENVELOPE_BUCKETS
            # points however long the run); zoomed in by hand: every point, clipped to the view
            decimate = self.follow.isChecked()
            for curve, series in (
                (self.train_raw_curve, b.train_raw),
                (self.train_smooth_curve, b.train_smooth),
                (self.recon_curve, b.recon_smooth),
                (self.kl_curve, b.kl_smooth),
            ):
                curve.setData(*series.drawn(decimate))
        if b.evals_changed:
            b.evals_changed = False
            self.val_elbo_curve.setData(b.val_elbo.xs, b.val_elbo.ys)
            self.log_px_curve.setData(b.log_px.xs, b.log_px.ys)
            self.val_recon_curve.setData(b.val_recon.xs, b.val_recon.ys)
            self.val_kl_curve.setData(b.val_kl.xs, b.val_kl.ys)
            for k in sorted(b.iw):
                curve = self._iw_curve(k)
                curve.setData(b.iw[k].xs, b.iw[k].ys)
            for k, curve in self._iw_curves.items():
                if k not in b.iw or b.iw[k].n == 0:
                    curve.setData([], [])
            self.clusters.update(self.hub.history.evals)
        self.evals_plotted = b.log_px.n
        if b.eval_k != self._legend_k:
            self._legend_k = b.eval_k
            label = self._bounds_legend.getLabel(self.log_px_curve)
            if label is not None:
                label.setText(f"val log p(x), IWAE-{b.eval_k}" if b.eval_k else "val log p(x), IWAE-k")
        self._update_summary()
        if self.follow.isChecked():
            self._follow_y()

    def _follow_y(self) -> None:
        """Ranges over the whole run, y leaving out the first FOLLOW_SKIP of the epochs.

        Both are rounded outwards to steps of about a tenth of the span, so they change only now
        and then: a changed range makes every axis regenerate its ticks, the dearest part of a paint.
        """
        b = self.buffers
        series = [b.train_smooth, b.val_elbo, b.log_px]
        if self.show_raw.isChecked():
            series.append(b.train_raw)
        if self.show_iw.isChecked():
            series.extend(b.iw.values())
        xs = [s.xs for s in series if s.n]
        if not xs:
            return
        x0 = min(float(x[0]) for x in xs)
        x1 = max(float(x[-1]) for x in xs)
        x_from = x0 + FOLLOW_SKIP * (x1 - x0)
        # at least MIN_X_SPAN epochs: the first records of a run get an axis with a few round ticks
        step = nice_step(max(x1 - x0, MIN_X_SPAN) / 10)
        x_lo = np.floor(x0 / step) * step
        x_hi = max(np.ceil((x1 + 0.25 * step) / step) * step, x_lo + MIN_X_SPAN)
        for p in (self.bounds_plot, self.terms_plot):
            if p.vb.viewRange()[0] != [x_lo, x_hi]:
                p.vb.setXRange(x_lo, x_hi, padding=0)
        for vb, group in (
            (self.bounds_plot.vb, series),
            (self.terms_plot.vb, (b.recon_smooth, b.val_recon)),
            (self._kl_vb, (b.kl_smooth, b.val_kl)),
        ):
            y_range = range_after(group, x_from)
            if y_range is not None:
                lo, hi = y_range
                step = nice_step(max(hi - lo, 1e-3) / 10)
                y_lo, y_hi = np.floor(lo / step - 0.5) * step, np.ceil(hi / step + 0.5) * step
                if vb.viewRange()[1] != [y_lo, y_hi]:
                    vb.setYRange(y_lo, y_hi, padding=0)

    def _iw_curve(self, k: int) -> pg.PlotDataItem:
        curve = self._iw_curves.get(k)
        if curve is None:
            shades = style.COLORS["iw"]
            color = shades[min(len(self._iw_curves), len(shades) - 1)]
            curve = self.bounds_plot.plot(
                pen=_pen(color, 1.2, Qt.PenStyle.DashLine),
                symbol="t",
                symbolSize=6,
                symbolBrush=color,
                symbolPen=None,
                name=f"IW-{k} bound",
            )
            curve.setDownsampling(auto=False)
            curve.setVisible(self.show_iw.isChecked())
            self._iw_curves[k] = curve
        return curve

    def _update_summary(self) -> None:
        b = self.buffers
        parts = []
        if b.train_smooth.n:
            parts.append(f"train ELBO {b.train_smooth.ys[-1]:.2f}")
        if b.log_px.n:
            parts.append(
                f"val ELBO {b.val_elbo.ys[-1]:.2f}   log p(x) ≈ {b.log_px.ys[-1]:.2f} "
                f"(IWAE-{b.eval_k})   gap (shaded) {b.log_px.ys[-1] - b.val_elbo.ys[-1]:.2f} nats"
            )
        if self.clusters.latest is not None:
            parts.append(self.clusters.summary())
        self.summary.setText("   ".join(parts))

    # --- hover ------------------------------------------------------------------------
    def _on_mouse_moved(self, event) -> None:
        b = self.buffers
        pos = event[0]
        shown = False
        for p, text in self._hover_text.items():
            if p.sceneBoundingRect().contains(pos) and (b.train_raw.n or b.log_px.n):
                vb = p.vb
                point = vb.mapSceneToView(pos)
                x = point.x()
                text.setHtml(self.hover_html(x, p is self.bounds_plot))
                (x0, x1), (y0, y1) = vb.viewRange()
                right_half = x > 0.5 * (x0 + x1)
                text.setAnchor((1.0, 0.0) if right_half else (0.0, 0.0))
                text.setPos(x, y1)
                text.setVisible(True)
                shown = True
                for line in self._hover_lines:
                    line.setPos(x)
                    line.setVisible(True)
            else:
                text.setVisible(False)
        if not shown:
            for line in self._hover_lines:
                line.setVisible(False)

    def hover_html(self, x: float, bounds: bool = True) -> str:
        """The values nearest epoch x, as the hover read-out shows them."""
        return curves_hover.hover_html(self.buffers, x, bounds)

    # --- export -----------------------------------------------------------------------
    def export_png(self, path: str | Path, scale: float = 2.0) -> Path:
        """Both plots laid out at EXPORT_SIZE and rendered at `scale` device pixels per logical one:
        1,600 × 1,200 pixels by default, with text as large against the plots as on an 800-pixel panel,
        however wide the dock is on screen."""
        self.redraw()
        with curves_export.laid_out_at(self.view.ci, EXPORT_SIZE) as source:
            return curves_export.save_png(self.view.scene(), source, path, self._cached_items, scale)

    def export_svg(self, path: str | Path) -> Path:
        """Both plots as vectors at EXPORT_SIZE (QSvgGenerator: pyqtgraph 0.14's SVGExporter fails
        with Qt 6.11+)."""
        self.redraw()
        with curves_export.laid_out_at(self.view.ci, EXPORT_SIZE) as source:
            return curves_export.save_svg(
                self.view.scene(),
                source,
                path,
                self._cached_items,
                title="LVM Studio training curves",
                description=f"{self.hub.name}: ELBO, log p(x) estimate, reconstruction and KL (nats per image)",
            )

    def export_csv(self, path: str | Path) -> Path:
        """The whole history: one row per training record and per evaluation."""
        return curves_export.save_csv(self.hub.history, path)

    # --- slots ------------------------------------------------------------------------
    @Slot(object)
    def _on_record_added(self, record) -> None:
        if not on_screen(self):
            self._dirty = True  # a hidden panel draws nothing; showing it redraws once
        elif self._redrawing and not self._timer.isActive():
            # the records that arrive meanwhile join this redraw
            gap_ms = 1000 * (RECORD_REDRAW_GAP_S - (time.monotonic() - self._last_redraw_t))
            self._timer.start(max(REDRAW_INTERVAL_MS, int(gap_ms)))

    @Slot()
    def _on_history_changed(self) -> None:
        self.follow.setChecked(True)
        self._reset()
        if on_screen(self):
            self.redraw()

    def event(self, event) -> bool:
        # shown, or its tab chosen: one redraw for everything that arrived while hidden
        if screen_change(event) and self._dirty and self._redrawing and not self._timer.isActive():
            self._timer.start(0)
        return super().event(event)

    @Slot()
    def _on_model_changed(self) -> None:
        likelihood = self.hub.config.likelihood
        kind = "binarized pixels, Bernoulli" if likelihood == "bernoulli" else "grey levels, Gaussian"
        # the axis label short (a plot's labels set its minimum width, and the dock may be narrow);
        # the whole description on hover
        self.bounds_plot.setLabel("left", f"nats ({likelihood})")
        self.view.setToolTip(f"nats per image, {kind}")

    @Slot()
    def _on_terms_resized(self) -> None:
        self._kl_vb.setGeometry(self.terms_plot.vb.sceneBoundingRect())
        self._kl_vb.linkedViewChanged(self.terms_plot.vb, self._kl_vb.XAxis)

    @Slot(bool)
    def _on_follow_toggled(self, on: bool) -> None:
        self.buffers.train_changed = True  # envelopes while following, every point when zoomed
        self._dirty = True
        if on:
            self._follow_y()
        if on_screen(self) and self._redrawing and not self._timer.isActive():
            self._timer.start(0)

    @Slot()
    def _on_follow_toggled_again(self, *_) -> None:
        if self.follow.isChecked():
            self._follow_y()

    @Slot()
    def _on_range_changed_manually(self, *_) -> None:
        self.follow.setChecked(False)  # the user zoomed or panned: leave the view where they put it

    @Slot(bool)
    def _on_show_iw_toggled(self, on: bool) -> None:
        for curve in self._iw_curves.values():
            curve.setVisible(on)
        self._on_follow_toggled_again()

    @Slot()
    def _on_gap_key_toggled(self) -> None:
        visible = self._gap_key.isVisible()
        self.gap_fill.setVisible(visible)
