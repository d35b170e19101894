"""The EM playground's plot of the points: coloured by responsibilities, with the components and p(x|θ).

Each point is painted Σ_k γ_nk colour_k, so uncertain points look mixed (brushes from a BrushPalette:
at most 4,096, never one new QBrush per point); each fitted component is drawn as its 1σ and 2σ
ellipses with its weight π_k and a + at its mean; the generating components of "mixture you set up"
as dashed 2σ ellipses; p(x|θ) as contours one nat apart or a heat map. Hovering a point shows its γ.
Everything drawn is read from the EMPlayground (core.em_playground); the view holds no model state.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel

from lvm_studio.core.colours import mix_colours
from lvm_studio.core.em_playground import CUSTOM, EMPlayground
from lvm_studio.core.gaussian import ellipse_points
from lvm_studio.core.latent_views import nearest_point as nearest_screen_point
from lvm_studio.ui.widgets.axes import plain_axes
from lvm_studio.ui.widgets.hover import point_under_mouse
from lvm_studio.ui.widgets.style import HIGHLIGHT, BrushPalette, component_colours

K_MAX = 12  # components the playground offers (ellipse items are made once for all of them)
UNASSIGNED = np.array([204, 204, 204], dtype=np.uint8)  # before the first E-step: no responsibilities yet
HOVER_PX = 8.0
DENSITY_GRID = 110  # cells per side of the density picture
DENSITY_THROTTLE_MS = 40  # at most one density picture per 40 ms while running
CONTOUR_PEN = (230, 230, 230, 150)
TRUE_PEN = (235, 235, 235, 170)  # the generating components, dashed
POINT_OUTLINE = (20, 20, 20, 200)
HOVER_STYLE = "background: rgba(20,20,20,225); color: white; border: 1px solid gray; padding: 3px;"


class PassiveScatter(pg.ScatterPlotItem):
    """A scatter that never takes a click: pyqtgraph offers clicks to every item near the mouse that
    has a mouseClickEvent, and a ScatterPlotItem accepts one over its spots, which would keep clicks on
    points and means from the ViewBox (adding, erasing, placing)."""

    def mouseClickEvent(self, ev):
        ev.ignore()


class PlaygroundViewBox(pg.ViewBox):
    """A ViewBox whose left clicks and drags become editing events in the editing modes
    ('add', 'erase', 'place'); in 'inspect' it pans and zooms as usual."""

    clicked = Signal(float, float)  # view coordinates
    dragged = Signal(float, float, str)  # view coordinates, 'start' | 'move' | 'finish'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.edit_mode = "add"

    def mouseClickEvent(self, ev):
        if self.edit_mode != "inspect" and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.clicked.emit(p.x(), p.y())
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):
        if self.edit_mode in ("add", "erase") and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.isStart():  # the drag is recognised a few pixels after the press: begin where it was pressed
                p0 = self.mapSceneToView(ev.buttonDownScenePos())
                self.dragged.emit(p0.x(), p0.y(), "start")
            p = self.mapSceneToView(ev.scenePos())
            self.dragged.emit(p.x(), p.y(), "finish" if ev.isFinish() else "move")
            return
        super().mouseDragEvent(ev, axis)


def subscript(n: int) -> str:
    return str(n).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


class EMPointsView(pg.PlotWidget):
    """The points, the fitted and generating components, and the density, drawn from ``model``.

    ``vb`` (a PlaygroundViewBox) turns clicks and drags into editing signals; ``refresh(event)``
    redraws after a model event; show_ellipses, show_true and density_mode choose what is drawn.
    """

    def __init__(self, model: EMPlayground, parent=None):
        vb = PlaygroundViewBox()
        super().__init__(parent, viewBox=vb)
        plain_axes(self)
        self.vb = vb
        self.model = model
        self.show_ellipses = True
        self.show_true = True
        self.density_mode = "none"  # 'none' | 'contours' | 'heat'
        self.component_colours = component_colours(K_MAX)
        self.palette_brushes = BrushPalette()
        self._colours = np.zeros((0, 3), dtype=np.uint8)
        self._hover_index = -1
        self._hover_pinned = False  # shown by show_hover(i), not by the mouse
        self.setAspectLocked(True)
        self.showGrid(x=True, y=True, alpha=0.12)
        self.setMinimumSize(320, 260)  # with the F plot and the caption, under 580 px: a 1,280 × 720 window
        self.setLabel("bottom", "x₁")
        self.setLabel("left", "x₂")
        self._build_density()
        self._build_points()
        self._build_ellipses()
        self._build_markers()
        self._build_hover()
        self._density_timer = QTimer(self)
        self._density_timer.setSingleShot(True)
        self._density_timer.setInterval(DENSITY_THROTTLE_MS)
        self._density_timer.timeout.connect(self.update_density)
        self.vb.sigRangeChanged.connect(self._on_range_changed)
        self.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)

    # --- items -----------------------------------------------------------------------------------
    def _add(self, item, z: float):
        item.setZValue(z)
        self.addItem(item)
        return item

    def _build_density(self) -> None:
        self.density_image = pg.ImageItem(axisOrder="row-major")
        self.density_image.setOpacity(0.75)
        self.density_image.setLookupTable(pg.colormap.get("inferno").getLookupTable(0.0, 1.0, 256))
        self.density_image.setVisible(False)
        self._add(self.density_image, -20)
        self.contours = self._add(pg.PlotDataItem(pen=pg.mkPen(CONTOUR_PEN, width=1), connect="finite"), -15)

    def _build_points(self) -> None:
        dashed = pg.mkPen(TRUE_PEN, width=1.2, style=Qt.PenStyle.DashLine)
        self.true_curves = self._add(pg.PlotDataItem(pen=dashed, connect="finite"), -5)
        # the component "Sample one" just drew from
        self.true_pick = self._add(pg.PlotDataItem(pen=pg.mkPen(HIGHLIGHT, width=2.5)), -4)
        self.scatter = self._add(PassiveScatter(size=8, pen=pg.mkPen(POINT_OUTLINE, width=0.8)), 0)

    def _build_ellipses(self) -> None:
        self.ellipses: list[tuple[pg.PlotDataItem, pg.PlotDataItem, pg.TextItem]] = []
        for k in range(K_MAX):
            light = pg.mkColor(tuple(int(v) for v in self.component_colours[k])).lighter(135)  # shows over its points
            one = pg.PlotDataItem(pen=pg.mkPen(light, width=2.6))
            two = pg.PlotDataItem(pen=pg.mkPen(light, width=1.6, style=Qt.PenStyle.DashLine))
            text = pg.TextItem("", color=light, anchor=(0.5, 1.15), fill=pg.mkBrush(0, 0, 0, 160))
            for item in (one, two, text):
                self._add(item, 10)
            self.ellipses.append((one, two, text))

    def _build_markers(self) -> None:
        self.mean_markers = self._add(PassiveScatter(size=15, symbol="+", pen=pg.mkPen("w", width=1.5)), 11)
        self.placed_markers = self._add(PassiveScatter(size=16, symbol="star", pen=pg.mkPen("w", width=1.2)), 12)
        self.hover_ring = self._add(PassiveScatter(size=16, pen=pg.mkPen("w", width=2), brush=None), 20)

    def _build_hover(self) -> None:
        self.hover_label = QLabel(self)
        self.hover_label.setStyleSheet(HOVER_STYLE)
        self.hover_label.setTextFormat(Qt.TextFormat.RichText)
        self.hover_label.hide()

    # --- drawing ---------------------------------------------------------------------------------
    def refresh(self, event: str = "") -> None:
        """Redraw after a model event (core.em_playground.EVENTS); '' redraws everything."""
        if event == "points":
            self.clear_hover()
        self.update_scatter()
        self.update_components()
        self.update_placed_markers()
        if event not in ("E", "M"):
            self.update_true_components()
        if self.density_mode != "none" and not self._density_timer.isActive():
            self._density_timer.start()  # throttled while running

    def update_scatter(self) -> None:
        x = self.model.x
        n = x.shape[0]
        q = self.model.session.responsibilities()
        if q is not None and q.shape[0] == n:
            self._colours = mix_colours(q, self.component_colours[: q.shape[1]])  # Σ_k γ_nk colour_k
        else:
            self._colours = np.tile(UNASSIGNED, (n, 1))
        if n == 0:
            self.scatter.setData([], [])
            return
        self.scatter.setData(x=x[:, 0], y=x[:, 1], brush=self.palette_brushes.brushes(self._colours))

    def update_components(self, *_):
        s = self.model.session
        k_used = s.gmm.n_components if self.show_ellipses and s.ready else 0
        if k_used:
            params = s.gmm.get_parameters()
            weights = params.weights.numpy()  # (K,)
            means = params.means.numpy()  # (K, 2)
            covs = params.covariance_matrices().numpy()  # (K, 2, 2)
        for k, (one, two, text) in enumerate(self.ellipses):
            if k < k_used:
                e1 = ellipse_points(means[k], covs[k], 1.0, 72)
                e2 = ellipse_points(means[k], covs[k], 2.0, 96)
                one.setData(e1[:, 0], e1[:, 1])
                two.setData(e2[:, 0], e2[:, 1])
                text.setText(f"π{subscript(k + 1)} = {weights[k]:.2f}")
                text.setPos(float(e1[:, 0].mean()), float(e1[:, 1].max()))
            for item in (one, two, text):
                item.setVisible(k < k_used)
        if k_used:
            self.mean_markers.setData(
                x=means[:, 0],
                y=means[:, 1],
                brush=[pg.mkBrush(*self.component_colours[k]) for k in range(k_used)],
                pen=[pg.mkPen(*self.component_colours[k], width=2.5) for k in range(k_used)],
            )
        else:
            self.mean_markers.setData([], [])

    def update_placed_markers(self) -> None:
        m = self.model
        if m.config.init == "given" and m.placed_means:
            pts = np.array(m.placed_means)  # (k, 2)
            brushes = [pg.mkBrush(*self.component_colours[k]) for k in range(len(pts))]
            self.placed_markers.setData(x=pts[:, 0], y=pts[:, 1], brush=brushes)
        else:
            self.placed_markers.setData([], [])

    def update_true_components(self, *_):
        if self.model.point_set != CUSTOM or not self.show_true:
            self.true_curves.setData([], [])
            self.true_pick.setData([], [])
            return
        _, means, covs = self.model.mixture.arrays()
        xs, ys = [], []
        for k in range(means.shape[0]):
            e = ellipse_points(means[k], covs[k], 2.0, 72)
            xs += [e[:, 0], [np.nan]]
            ys += [e[:, 1], [np.nan]]
        self.true_curves.setData(np.concatenate(xs), np.concatenate(ys))

    def show_sample(self, z: int, x) -> None:
        """Mark a point just drawn by the generative process and the component it came from."""
        _, means, covs = self.model.mixture.arrays()
        e = ellipse_points(means[z], covs[z], 2.0, 72)
        self.true_pick.setData(e[:, 0], e[:, 1])
        self.hover_ring.setData([x[0]], [x[1]])

    def clear_sample(self) -> None:
        self.true_pick.setData([], [])

    def fit_view(self) -> None:
        """The points with a margin, or [−6, 6]² when there are none."""
        x = self.model.x
        if x.shape[0] == 0:
            self.vb.setRange(xRange=(-6, 6), yRange=(-6, 6), padding=0)
            return
        lo, hi = x.min(0), x.max(0)
        half = 0.65 * max(float((hi - lo).max()), 2.0)
        c = (lo + hi) / 2
        self.vb.setRange(xRange=(c[0] - half, c[0] + half), yRange=(c[1] - half, c[1] + half), padding=0)

    # --- what is painted (for the tests) ---------------------------------------------------------
    def colours(self) -> np.ndarray:
        """The points' current colours, (N, 3) uint8."""
        return self._colours.copy()

    def point_brush_colours(self) -> np.ndarray:
        """The colours of the brushes the scatter actually paints with, (N, 3) uint8."""
        brushes = self.scatter.data["brush"] if len(self.scatter.data) else []
        return np.array(
            [[b.color().red(), b.color().green(), b.color().blue()] for b in brushes], dtype=np.uint8
        ).reshape(-1, 3)

    # --- density ---------------------------------------------------------------------------------
    def set_density_mode(self, mode: str) -> None:
        self.density_mode = mode
        self.update_density()

    def _on_range_changed(self, *_):
        if self.density_mode != "none" and not self._density_timer.isActive():
            self._density_timer.start()
        if self._hover_index >= 0:  # the mouse's hover goes; one asked for by show_hover follows its point
            pinned = self._hover_pinned
            self._show_hover(self._hover_index if pinned else -1, None)
            self._hover_pinned = pinned

    def update_density(self) -> None:
        mode = self.density_mode
        if mode == "none" or not self.model.session.ready:
            self.density_image.setVisible(False)
            self.contours.setData([], [])
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        n = DENSITY_GRID
        xx, yy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))  # (n, n): rows are y
        log_p = self.model.session.log_density(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(n, n)
        if mode == "heat":
            self.contours.setData([], [])
            p = np.exp(log_p - log_p.max())  # p(x) relative to its largest value in view
            self.density_image.setImage(p, levels=(0.0, 1.0), autoLevels=False)
            dx, dy = (x1 - x0) / (n - 1), (y1 - y0) / (n - 1)
            self.density_image.setRect(x0 - dx / 2, y0 - dy / 2, (x1 - x0) + dx, (y1 - y0) + dy)
            self.density_image.setVisible(True)
            return
        self.density_image.setVisible(False)
        top = float(log_p.max())
        xs, ys = [], []
        for level in top - np.array([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5]):  # one nat apart
            for line in pg.functions.isocurve(log_p, float(level), connected=True):
                a = np.asarray(line, dtype=np.float64)  # (m, 2) in (row, col) index coordinates
                if a.shape[0] < 2:
                    continue
                xs += [x0 + a[:, 1] * (x1 - x0) / (n - 1), [np.nan]]
                ys += [y0 + a[:, 0] * (y1 - y0) / (n - 1), [np.nan]]
        if xs:
            self.contours.setData(np.concatenate(xs), np.concatenate(ys))
        else:
            self.contours.setData([], [])

    # --- pixels and hover ------------------------------------------------------------------------
    def pixel_size(self) -> tuple[float, float]:
        """View units per screen pixel (x, y); a guess from the range before the first layout."""
        pw, ph = self.vb.viewPixelSize()
        if not (pw > 0 and ph > 0 and math.isfinite(pw) and math.isfinite(ph)):
            (x0, x1), (y0, y1) = self.vb.viewRange()
            pw = ph = max(x1 - x0, y1 - y0) / 400.0
        return pw, ph

    def nearest_point(self, x: float, y: float, max_px: float = HOVER_PX) -> int:
        """Index of the point nearest to (x, y) within max_px screen pixels, or −1."""
        if self.model.x.shape[0] == 0:
            return -1
        pw, ph = self.pixel_size()
        return nearest_screen_point(self.model.x, x, y, pw, ph, max_px)

    def hover_text(self, i: int) -> str:
        """What hovering point i shows: its γ vector (rich text)."""
        m = self.model
        x = m.x[i]
        q = m.session.responsibilities()
        head = f"point {i}: ({x[0]:+.2f}, {x[1]:+.2f})"
        if m.true_labels is not None and i < len(m.true_labels):
            head += f", drawn from component {int(m.true_labels[i]) + 1}"
        if q is not None and q.shape[0] == m.n_points:
            gamma, what = q[i], "γ (last E-step)"
        elif m.session.ready:
            gamma, what = m.session.posterior(x[None])[0], "p(z|x, θ) now (no E-step yet)"
        else:
            return head
        parts = []
        for k, g in enumerate(gamma):
            c = tuple(int(v) for v in self.component_colours[k])
            parts.append(f"<span style='color:rgb{c}'>■</span> {k + 1}: {g:.3f}")
        return f"{head}<br>{what}:<br>" + "<br>".join(parts)

    def clear_hover(self) -> None:
        self._hover_index = -1
        self._hover_pinned = False
        self.hover_label.hide()
        self.hover_ring.setData([], [])

    def show_hover(self, i: int) -> None:
        """Show point i's γ as if the mouse were over it (until the mouse moves or the points change)."""
        self._show_hover(i, None)
        self._hover_pinned = i >= 0

    def _on_scene_mouse_moved(self, pos) -> None:
        self._show_hover(point_under_mouse(self.vb, pos, self.nearest_point), pos)  # pos unused when −1

    def _show_hover(self, i: int, scene_pos) -> None:
        self._hover_index = i
        self._hover_pinned = False
        if i < 0:
            self.hover_label.hide()
            return
        x = self.model.x[i]
        self.hover_ring.setData([x[0]], [x[1]])
        self.hover_label.setText(self.hover_text(i))
        self.hover_label.adjustSize()
        if scene_pos is None:
            scene_pos = self.vb.mapViewToScene(QPointF(float(x[0]), float(x[1])))
        pt = self.mapFromScene(scene_pos)
        px, py = pt.x() + 14, pt.y() - self.hover_label.height() - 6
        if px + self.hover_label.width() > self.width():
            px = pt.x() - self.hover_label.width() - 14
        self.hover_label.move(int(max(0, px)), int(max(0, py)))
        self.hover_label.show()
        self.hover_label.raise_()
