"""Live curves: the training ELBO, the validation ELBO beside the importance-sampled log p(x),
and the reconstruction and KL terms, against epochs.

The panel reads only `hub.history`. New records are picked up by a redraw timer (about 15 Hz)
that appends them to growable numpy buffers and updates the existing curve items in place with
setData; the arrival of records and the redraw rate are independent (DESIGN.md §2), and a redraw
with nothing new costs two integer comparisons.

The gap between log p̂(x) (IWAE-k) and the ELBO is shaded: log p(x) − ELBO = KL(q(z|x) ‖ p(z|x))
for each x (Kingma & Welling 2014, eq. 1), so the shaded band is the average KL to the true
posterior, up to the estimator's own gap at finite k (Burda et al. 2016, Thm 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Slot
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QCheckBox, QGraphicsItem, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from lvm_studio.ui.widgets import style

REDRAW_INTERVAL_MS = 66  # ≈ 15 Hz
SMOOTHING = 0.9  # EMA weight of the past in the smoothed training curves (one record = log_every steps)
FOLLOW_SKIP = 0.1  # "follow" y-ranges leave out the first 10 % of the epochs: the first steps
# (ELBO ≈ −540 nats) would squash the part worth reading


class _Series:
    """Growable x/y buffers. Views of the filled part stay valid: values are only ever appended."""

    __slots__ = ("x", "y", "n")

    def __init__(self, capacity: int = 256):
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            self.x = np.concatenate([self.x, np.empty(len(self.x))])
            self.y = np.concatenate([self.y, np.empty(len(self.y))])
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1

    def clear(self) -> None:
        self.n = 0

    @property
    def xs(self) -> np.ndarray:
        return self.x[: self.n]

    @property
    def ys(self) -> np.ndarray:
        return self.y[: self.n]


class _Ema:
    """Exponential moving average with the start-up bias removed (Kingma & Ba 2015, §3)."""

    __slots__ = ("a", "m", "t")

    def __init__(self, a: float = SMOOTHING):
        self.a, self.m, self.t = a, 0.0, 0

    def update(self, y: float) -> float:
        self.t += 1
        self.m = self.a * self.m + (1.0 - self.a) * y
        return self.m / (1.0 - self.a**self.t)

    def reset(self) -> None:
        self.m, self.t = 0.0, 0


def _pen(color, width: float = 1.6, style_=Qt.PenStyle.SolidLine):
    return pg.mkPen(color=color, width=width, style=style_)


class CurvesPanel(QWidget):
    def __init__(self, hub, parent: QWidget | None = None):
        super().__init__(parent)
        self.hub = hub
        self._history = None  # the History object the buffers were built from
        self._n_train = 0  # records of it already in the buffers
        self._n_evals = 0
        self._train_changed = self._evals_changed = False  # new data since the last redraw
        self._dirty = False
        self.evals_plotted = 0  # log p(x) evaluations on screen after the last redraw
        self.redraws = 0

        # buffers: training records (every log_every steps) and evaluations
        self._train_raw = _Series(1024)
        self._train_smooth = _Series(1024)
        self._recon_smooth = _Series(1024)
        self._kl_smooth = _Series(1024)
        self._steps = _Series(1024)  # x: epoch, y: step (for the hover read-out)
        self._val_elbo = _Series()
        self._log_px = _Series()
        self._val_recon = _Series()
        self._val_kl = _Series()
        self._iw: dict[int, _Series] = {}
        self._eval_k = 0
        self._legend_k = 0
        self._ema = (_Ema(), _Ema(), _Ema())

        # --- plots (created once) --------------------------------------------------------
        self.view = pg.GraphicsLayoutWidget()
        self.bounds_plot = self.view.addPlot(row=0, col=0)
        self.terms_plot = self.view.addPlot(row=1, col=0)
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
        self.bounds_plot.setTitle("Bounds on log p(x)", size="10pt")
        self.bounds_plot.setLabel("left", "nats per image")
        self.bounds_plot.getAxis("right").setStyle(showValues=False)

        legend = self.bounds_plot.addLegend(offset=(-8, -8), labelTextSize="8pt")
        legend.setBrush(pg.mkBrush(22, 24, 29, 200))
        c = style.COLORS
        self.train_raw_curve = self.bounds_plot.plot(pen=_pen(c["train_elbo"], 1.0), name="train ELBO")
        # dense curves get 1-pixel pens: a wider pen takes the raster engine's slow stroker,
        # doubling the cost of a repaint (measured 22 vs 10 ms per new record, offscreen)
        self.train_smooth_curve = self.bounds_plot.plot(
            pen=_pen(c["train_elbo_smooth"], 1.0), name="train ELBO (smoothed)"
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
        # the gap's value, in a corner the rising curves leave free (pixel coordinates of the view)
        self.gap_label = pg.TextItem("", color=c["log_px"], anchor=(0.0, 0.0))
        self.gap_label.setParentItem(self.bounds_plot.vb)
        self.gap_label.setPos(6, 4)
        self._iw_curves: dict[int, pg.PlotDataItem] = {}
        self._bounds_legend = legend

        # reconstruction on the left axis, KL on the right one (a second, x-linked ViewBox)
        t = self.terms_plot
        # no legend here: each axis label wears its curves' colour; solid = train, dashed = validation
        self.terms_plot.setTitle("ELBO terms  ·  solid: train (smoothed)  ·  dashed: validation", size="10pt")
        t.setLabel("left", "reconstruction E_q[log p(x|z)]  (nats)", color=c["recon"])
        t.setLabel("right", "KL(q(z|x) ‖ p(z))  (nats)", color=c["kl"])
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
        self.kl_curve.setDownsampling(auto=True, method="peak")

        # hover: a vertical line in both plots and a read-out beside the cursor
        self._hover_lines = []
        for p in (self.bounds_plot, self.terms_plot):
            line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#aab1bd", width=1, style=Qt.PenStyle.DotLine))
            line.setVisible(False)
            p.addItem(line, ignoreBounds=True)
            self._hover_lines.append(line)
        self._hover_text = {
            p: pg.TextItem("", anchor=(0, 0), fill=pg.mkBrush(22, 24, 29, 225), border=pg.mkPen("#3a3f4a"))
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
        self._set_item_caching(True)
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
        controls = QHBoxLayout()
        controls.setContentsMargins(4, 0, 4, 0)
        controls.addWidget(self.show_raw)
        controls.addWidget(self.show_iw)
        controls.addWidget(self.follow)
        controls.addStretch(1)
        controls.addWidget(self.summary)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.view, 1)

        hub.history_changed.connect(self._on_history_changed)
        hub.model_changed.connect(self._on_model_changed)
        self._on_model_changed()
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._on_redraw_timer)
        self._timer.start()
        self._on_history_changed()

    def sizeHint(self) -> QSize:
        return QSize(640, 560)

    # --- data -------------------------------------------------------------------------
    def _reset(self) -> None:
        for s in (
            self._train_raw,
            self._train_smooth,
            self._recon_smooth,
            self._kl_smooth,
            self._steps,
            self._val_elbo,
            self._log_px,
            self._val_recon,
            self._val_kl,
            *self._iw.values(),
        ):
            s.clear()
        for e in self._ema:
            e.reset()
        self._n_train = self._n_evals = 0
        self._train_changed = self._evals_changed = True
        self._eval_k = 0
        self._history = self.hub.history
        self._dirty = True

    def _pull(self) -> bool:
        """Append the records that arrived since the last call; True if any did."""
        h = self.hub.history
        if h is not self._history:
            self._reset()
        new = False
        train = h.train
        if len(train) > self._n_train:
            ema_elbo, ema_recon, ema_kl = self._ema
            for r in train[self._n_train :]:
                e = r.epoch
                self._train_raw.append(e, r.elbo)
                self._train_smooth.append(e, ema_elbo.update(r.elbo))
                self._recon_smooth.append(e, ema_recon.update(r.recon))
                self._kl_smooth.append(e, ema_kl.update(r.kl))
                self._steps.append(e, r.step)
            self._n_train = len(train)
            self._train_changed = new = True
        evals = h.evals
        if len(evals) > self._n_evals:
            for r in evals[self._n_evals :]:
                self._val_elbo.append(r.epoch, r.elbo)
                self._log_px.append(r.epoch, r.log_px)
                self._val_recon.append(r.epoch, r.recon)
                self._val_kl.append(r.epoch, r.kl)
                self._eval_k = r.k
                for k, bound in r.iw_bounds:
                    series = self._iw.get(k)
                    if series is None:
                        series = self._iw[k] = _Series()
                    series.append(r.epoch, bound)
            self._n_evals = len(evals)
            self._evals_changed = new = True
        return new

    # --- drawing ----------------------------------------------------------------------
    @Slot()
    def _on_redraw_timer(self) -> None:
        if self._pull() or self._dirty:
            self.redraw()

    def redraw(self) -> None:
        """Push the buffers into the existing items (called by the timer; tests may call it)."""
        self._pull()
        self._dirty = False
        self.redraws += 1
        # only the curves whose data changed: a training record must not rebuild the evaluation
        # curves' symbols, nor the shading (measured: half the cost of a redraw)
        if self._train_changed:
            self._train_changed = False
            s = self._train_raw
            self.train_raw_curve.setData(s.xs, s.ys)
            self.train_smooth_curve.setData(self._train_smooth.xs, self._train_smooth.ys)
            self.recon_curve.setData(self._recon_smooth.xs, self._recon_smooth.ys)
            self.kl_curve.setData(self._kl_smooth.xs, self._kl_smooth.ys)
        if self._evals_changed:
            self._evals_changed = False
            self.val_elbo_curve.setData(self._val_elbo.xs, self._val_elbo.ys)
            self.log_px_curve.setData(self._log_px.xs, self._log_px.ys)
            self.val_recon_curve.setData(self._val_recon.xs, self._val_recon.ys)
            self.val_kl_curve.setData(self._val_kl.xs, self._val_kl.ys)
            for k in sorted(self._iw):
                curve = self._iw_curve(k)
                curve.setData(self._iw[k].xs, self._iw[k].ys)
            for k, curve in self._iw_curves.items():
                if k not in self._iw or self._iw[k].n == 0:
                    curve.setData([], [])
        self.evals_plotted = self._log_px.n
        if self._eval_k != self._legend_k:
            self._legend_k = self._eval_k
            label = self._bounds_legend.getLabel(self.log_px_curve)
            if label is not None:
                label.setText(f"val log p(x), IWAE-{self._eval_k}" if self._eval_k else "val log p(x), IWAE-k")
        self._update_gap_label()
        self._update_summary()
        if self.follow.isChecked():
            self._follow_y()

    def _follow_y(self) -> None:
        """Ranges over the whole run, y leaving out the first FOLLOW_SKIP of the epochs.

        Both are rounded outwards to steps of about a tenth of the span, so they change only now
        and then: a changed range makes every axis regenerate its ticks, the dearest part of a paint.
        """
        series = [self._train_smooth, self._val_elbo, self._log_px]
        if self.show_raw.isChecked():
            series.append(self._train_raw)
        if self.show_iw.isChecked():
            series.extend(self._iw.values())
        xs = [s.xs for s in series if s.n]
        if not xs:
            return
        x0 = min(float(x[0]) for x in xs)
        x1 = max(float(x[-1]) for x in xs)
        x_from = x0 + FOLLOW_SKIP * (x1 - x0)
        step = _nice_step(max(x1 - x0, 1e-3) / 10)
        x_lo, x_hi = np.floor(x0 / step) * step, np.ceil((x1 + 0.25 * step) / step) * step
        for p in (self.bounds_plot, self.terms_plot):
            if p.vb.viewRange()[0] != [x_lo, x_hi]:
                p.vb.setXRange(x_lo, x_hi, padding=0)
        for vb, group in (
            (self.bounds_plot.vb, series),
            (self.terms_plot.vb, (self._recon_smooth, self._val_recon)),
            (self._kl_vb, (self._kl_smooth, self._val_kl)),
        ):
            y_range = _range_after(group, x_from)
            if y_range is not None:
                lo, hi = y_range
                step = _nice_step(max(hi - lo, 1e-3) / 10)
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

    def _update_gap_label(self) -> None:
        if self._log_px.n == 0:
            self.gap_label.setText("")
            return
        lo, hi = self._val_elbo.ys[-1], self._log_px.ys[-1]
        self.gap_label.setText(
            f"shaded: log p(x) − ELBO ≈ KL(q‖p(z|x)) on average\n"
            f"latest: {hi - lo:.2f} nats at epoch {self._log_px.xs[-1]:.2f}"
        )

    def _update_summary(self) -> None:
        parts = []
        if self._train_smooth.n:
            parts.append(f"train ELBO {self._train_smooth.ys[-1]:.2f}")
        if self._log_px.n:
            parts.append(
                f"val ELBO {self._val_elbo.ys[-1]:.2f}   log p(x) ≈ {self._log_px.ys[-1]:.2f} "
                f"(IWAE-{self._eval_k})   gap {self._log_px.ys[-1] - self._val_elbo.ys[-1]:.2f} nats"
            )
        self.summary.setText("   ".join(parts))

    # --- hover ------------------------------------------------------------------------
    def _on_mouse_moved(self, event) -> None:
        pos = event[0]
        shown = False
        for p, text in self._hover_text.items():
            if p.sceneBoundingRect().contains(pos) and (self._train_raw.n or self._log_px.n):
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

    @staticmethod
    def _nearest(series: _Series, x: float) -> int:
        if series.n == 0:
            return -1
        xs = series.xs
        i = int(np.searchsorted(xs, x))
        if i >= series.n:
            return series.n - 1
        if i > 0 and abs(xs[i - 1] - x) <= abs(xs[i] - x):
            return i - 1
        return i

    def hover_html(self, x: float, bounds: bool = True) -> str:
        """The values nearest epoch x, as the hover read-out shows them."""
        c = style.COLORS
        rows = []
        i = self._nearest(self._train_raw, x)
        if i >= 0:
            rows.append(f"<b>epoch {self._train_raw.xs[i]:.2f}</b> &nbsp;step {int(self._steps.ys[i])}")
            if bounds:
                rows.append(
                    f"<span style='color:{c['train_elbo_smooth']}'>train ELBO {self._train_raw.ys[i]:.2f}"
                    f" (smoothed {self._train_smooth.ys[i]:.2f})</span>"
                )
            else:
                rows.append(
                    f"<span style='color:{c['recon']}'>train recon {self._recon_smooth.ys[i]:.2f}</span>"
                    f" &nbsp;<span style='color:{c['kl']}'>KL {self._kl_smooth.ys[i]:.2f}</span>"
                )
        j = self._nearest(self._log_px, x)
        if j >= 0:
            rows.append(f"<i>evaluation at epoch {self._log_px.xs[j]:.2f}</i>")
            if bounds:
                elbo, log_px = self._val_elbo.ys[j], self._log_px.ys[j]
                rows.append(f"<span style='color:{c['val_elbo']}'>val ELBO {elbo:.2f}</span>")
                rows.append(f"<span style='color:{c['log_px']}'>log p(x) ≈ {log_px:.2f} (IWAE-{self._eval_k})</span>")
                rows.append(f"gap ≈ KL(q‖p(z|x)) {log_px - elbo:.2f}")
                for k in sorted(self._iw):
                    s = self._iw[k]
                    jj = self._nearest(s, x)
                    if jj >= 0:
                        rows.append(f"IW-{k} {s.ys[jj]:.2f}")
            else:
                rows.append(
                    f"<span style='color:{c['recon']}'>val recon {self._val_recon.ys[j]:.2f}</span>"
                    f" &nbsp;<span style='color:{c['kl']}'>val KL {self._val_kl.ys[j]:.2f}</span>"
                )
        return f"<div style='color:{style.FOREGROUND}; font-size:8pt'>" + "<br>".join(rows) + "</div>"

    def _set_item_caching(self, on: bool) -> None:
        mode = QGraphicsItem.CacheMode.DeviceCoordinateCache if on else QGraphicsItem.CacheMode.NoCache
        for item in self._cached_items:
            item.setCacheMode(mode)

    # --- export -----------------------------------------------------------------------
    def _scene_rect(self) -> QRectF:
        return self.view.ci.sceneBoundingRect()

    def export_png(self, path: str | Path, scale: float = 2.0) -> Path:
        """Both plots, rendered at `scale` times their size on screen."""
        path = Path(path)
        self.redraw()
        src = self._scene_rect()
        image = QImage(max(1, int(src.width() * scale)), max(1, int(src.height() * scale)), QImage.Format.Format_ARGB32)
        image.fill(QColor(style.PLOT_BACKGROUND))
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._set_item_caching(False)  # drawn afresh at the export's scale, not scaled-up pixmaps
        try:
            self.view.scene().render(painter, QRectF(image.rect()), src)
        finally:
            painter.end()
            self._set_item_caching(True)
        if not image.save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return path

    def export_svg(self, path: str | Path) -> Path:
        """Vector output through QSvgGenerator (pyqtgraph 0.14's SVGExporter fails with Qt 6.11+)."""
        path = Path(path)
        self.redraw()
        src = self._scene_rect()
        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(QSize(int(src.width()), int(src.height())))
        generator.setViewBox(QRectF(0, 0, src.width(), src.height()))
        generator.setTitle("LVM Studio training curves")
        generator.setDescription(f"{self.hub.name}: ELBO, log p(x) estimate, reconstruction and KL (nats per image)")
        painter = QPainter()
        if not painter.begin(generator):
            raise OSError(f"could not write {path}")
        painter.fillRect(QRectF(0, 0, src.width(), src.height()), QColor(style.PLOT_BACKGROUND))
        self._set_item_caching(False)  # cached items would land in the SVG as bitmaps
        try:
            self.view.scene().render(painter, QRectF(0, 0, src.width(), src.height()), src)
        finally:
            painter.end()
            self._set_item_caching(True)
        if not path.is_file():
            raise OSError(f"could not write {path}")
        return path

    def export_csv(self, path: str | Path) -> Path:
        """The whole history: one row per training record and per evaluation."""
        path = Path(path)
        path.write_text(self.hub.history.to_csv(), encoding="utf-8")
        return path

    # --- slots ------------------------------------------------------------------------
    @Slot()
    def _on_history_changed(self) -> None:
        self.follow.setChecked(True)
        self._reset()
        self.redraw()

    @Slot()
    def _on_model_changed(self) -> None:
        likelihood = self.hub.config.likelihood
        kind = "binarized pixels, Bernoulli" if likelihood == "bernoulli" else "grey levels, Gaussian"
        self.bounds_plot.setLabel("left", f"nats per image ({kind})")

    @Slot()
    def _on_terms_resized(self) -> None:
        self._kl_vb.setGeometry(self.terms_plot.vb.sceneBoundingRect())
        self._kl_vb.linkedViewChanged(self.terms_plot.vb, self._kl_vb.XAxis)

    @Slot(bool)
    def _on_follow_toggled(self, on: bool) -> None:
        if on:
            self._follow_y()

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
        self.gap_label.setVisible(visible)


def _nice_step(v: float) -> float:
    """The smallest of 1, 2, 5 × 10^n not below v."""
    e = 10.0 ** np.floor(np.log10(v))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * e >= v:
            return m * e
    return 10.0 * e


def _range_after(group, x_from: float):
    """(min, max) of the y values at x ≥ x_from over several series, or None if there are none."""
    lo, hi = np.inf, -np.inf
    for s in group:
        if s.n == 0:
            continue
        i = min(int(np.searchsorted(s.xs, x_from)), s.n - 1)
        ys = s.ys[i:]
        lo, hi = min(lo, float(ys.min())), max(hi, float(ys.max()))
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None
