"""Latent map: the encoded test set (μ of q(z|x)) as a scatter, with a decoded manifold behind it.

For a 2-D latent the axes are z1 and z2; for more dimensions a projection: two chosen latent
dimensions, or two principal components of the codes (core.clustering.pca, in torch). Points are
coloured by digit label, or by a fitted mixture's posterior p(c|z) published on the hub
(hub.cluster_posterior: the colour mixes the component colours by responsibility).

Speed: 10,000 points are rasterised by PointCloudItem into one image per view (numpy splats of
small discs, in a fixed random order so no class is always on top), so recolouring costs one
array product and one splat instead of 10,000 QBrush objects; the image is cached until the
view, the points or the colours change. Clicking or dragging the target on the map decodes that
point (and moves the shared current z); hovering a point shows its test digit.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from lvm_studio.core.latent import encode_loc_scale, pca
from lvm_studio.ui.widgets.controls import button, dimension_label
from lvm_studio.ui.widgets.digit_image import DigitImage, grey_qimage
from lvm_studio.ui.widgets.style import LABEL_COLOURS
from lvm_studio.workers.tasks import TaskRunner

REENCODE_S = 2.0  # while training: re-encode the test set at most this often
MANIFOLD_TILES = 18  # decoded digits per side of the manifold image


def _disc_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = dx**2 + dy**2 <= radius**2 + 1e-9
    return dy[keep].astype(np.int64), dx[keep].astype(np.int64)


class PointCloudItem(pg.GraphicsObject):
    """Many points drawn as one rasterised image: filled discs with a darker rim.

    Colours are (N, 3) uint8. The raster is redone only when the view transform, the size, the
    points or the colours change; `rasterised` and `painted` count both (for benchmarks).
    """

    def __init__(self, radius: float = 2.6, seed: int = 0):
        super().__init__()
        self.radius = radius
        self._xy = np.zeros((0, 2))
        self._fill = np.zeros(0, dtype=np.uint32)
        self._rim = np.zeros(0, dtype=np.uint32)
        self._order = np.zeros(0, dtype=np.int64)
        self._seed = seed
        self._version = 0  # points, radius or colours changed
        self._geo_version = 0  # points or radius changed
        self._geo_key = None
        self._geo = None  # (pixel index (M,), source (M,)): which pixel each disc element covers, and its colour
        self._cache_key = None
        self._cache_img: QImage | None = None
        self._buf = None
        self._bounds = QRectF()
        self.rasterised = 0
        self.painted = 0

    # --- data --------------------------------------------------------------------------
    def set_points(self, xy: np.ndarray) -> None:
        xy = np.asarray(xy, dtype=np.float64)
        if xy.shape[0] != self._xy.shape[0]:
            self._order = np.random.default_rng(self._seed).permutation(xy.shape[0])
            if self._fill.shape[0] != xy.shape[0]:
                self.set_colours(np.full((xy.shape[0], 3), 200, dtype=np.uint8), update=False)
        self._xy = xy
        self.prepareGeometryChange()
        if xy.shape[0]:
            lo, hi = xy.min(0), xy.max(0)
            self._bounds = QRectF(lo[0], lo[1], max(hi[0] - lo[0], 1e-9), max(hi[1] - lo[1], 1e-9))
        else:
            self._bounds = QRectF()
        self._version += 1
        self._geo_version += 1
        self.informViewBoundsChanged()
        self.update()

    def set_colours(self, rgb: np.ndarray, update: bool = True) -> None:
        rgb = np.asarray(rgb, dtype=np.uint32)
        self._fill = np.uint32(0xFF000000) | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
        dark = (rgb * 0.55).astype(np.uint32)
        self._rim = np.uint32(0xFF000000) | (dark[:, 0] << 16) | (dark[:, 1] << 8) | dark[:, 2]
        self._version += 1
        if update:
            self.update()

    def set_radius(self, radius: float) -> None:
        self.radius = float(radius)
        self._version += 1
        self._geo_version += 1
        self.update()

    def points(self) -> np.ndarray:
        return self._xy

    def colours(self) -> np.ndarray:
        """(N, 3) uint8 fill colours."""
        f = self._fill
        return np.stack([(f >> 16) & 255, (f >> 8) & 255, f & 255], 1).astype(np.uint8)

    # --- QGraphicsItem -------------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        return QRectF(self._bounds)

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        if self._xy.shape[0] == 0:
            return (None, None)
        return (float(self._xy[:, ax].min()), float(self._xy[:, ax].max()))

    def pixelPadding(self) -> float:
        return self.radius + 1

    def viewRangeChanged(self):
        self.update()

    def paint(self, p: QPainter, *args) -> None:
        vb = self.getViewBox()
        if vb is None or self._xy.shape[0] == 0:
            return
        tr = p.transform()  # item (view) coordinates -> device pixels
        dev = tr.mapRect(vb.viewRect()).toAlignedRect().intersected(p.viewport())
        if dev.isEmpty():
            return
        dpr = p.device().devicePixelRatioF() if p.device() is not None else 1.0
        key = (
            round(tr.m11(), 9),
            round(tr.m22(), 9),
            round(tr.m21(), 9),
            round(tr.m12(), 9),
            round(tr.dx(), 4),
            round(tr.dy(), 4),
            dev.x(),
            dev.y(),
            dev.width(),
            dev.height(),
            dpr,
            self._version,
        )
        if key != self._cache_key:
            self._cache_img = self._rasterise(tr, dev, dpr)
            self._cache_key = key
        p.save()
        p.resetTransform()
        p.drawImage(QPointF(dev.x(), dev.y()), self._cache_img)
        p.restore()
        self.painted += 1

    def _rasterise(self, tr, dev, dpr: float) -> QImage:
        W, H = int(round(dev.width() * dpr)), int(round(dev.height() * dpr))
        geo_key = (
            round(tr.m11(), 9),
            round(tr.m22(), 9),
            round(tr.m21(), 9),
            round(tr.m12(), 9),
            round(tr.dx(), 4),
            round(tr.dy(), 4),
            dev.x(),
            dev.y(),
            W,
            H,
            dpr,
            self._geo_version,
        )
        if geo_key != self._geo_key:  # the view or the points moved: recompute which pixels each disc covers
            self._geo = self._geometry(tr, dev, dpr, W, H)
            self._geo_key = geo_key
        pix, src = self._geo
        if self._buf is None or self._buf.size != W * H:
            self._buf = np.zeros(W * H, dtype=np.uint32)
        else:
            self._buf.fill(0)
        palette = np.stack([self._rim, self._fill], 1).reshape(-1)  # (2N,): rim, fill of each point
        self._buf[pix] = palette[src]  # numpy assigns in order: the last write wins
        img = QImage(self._buf.data, W, H, 4 * W, QImage.Format.Format_ARGB32).copy()
        img.setDevicePixelRatio(dpr)
        self.rasterised += 1
        return img

    def _geometry(self, tr, dev, dpr: float, W: int, H: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel indices covered by each point's rim disc then fill disc, point after point in the
        fixed random order, and for each the index of its colour in the (rim, fill) palette."""
        order = self._order
        x, y = self._xy[order, 0], self._xy[order, 1]
        px = ((tr.m11() * x + tr.m21() * y + tr.dx()) - dev.x()) * dpr  # (N,) device pixels
        py = ((tr.m12() * x + tr.m22() * y + tr.dy()) - dev.y()) * dpr
        ix, iy = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
        r = self.radius * dpr
        pad = int(np.ceil(r)) + 2
        vis = (ix > -pad) & (ix < W + pad) & (iy > -pad) & (iy < H + pad)
        ix, iy, pts = ix[vis], iy[vis], order[vis]
        rdy, rdx = _disc_offsets(r + 1.0)
        fdy, fdx = _disc_offsets(r)
        dy = np.concatenate([rdy, fdy])
        dx = np.concatenate([rdx, fdx])
        is_fill = np.concatenate([np.zeros(len(rdy), np.int64), np.ones(len(fdy), np.int64)])
        X = ix[:, None] + dx[None, :]  # (n, offsets)
        Y = iy[:, None] + dy[None, :]
        ok = (X >= 0) & (X < W) & (Y >= 0) & (Y < H)
        src = 2 * pts[:, None] + is_fill[None, :]
        return (Y * W + X)[ok], src[ok]


def _encode_task(ctx, model, x):
    z_loc, _ = encode_loc_scale(model, x, 2000, should_stop=ctx.cancelled, progress=lambda f: ctx.report(0.9 * f))
    ctx.check()
    proj = pca(z_loc, min(z_loc.shape[1], 10)) if z_loc.shape[1] > 1 else None
    return z_loc.numpy().astype(np.float64), proj


def _manifold_task(ctx, model, z_grid):
    with torch.no_grad():
        return model.decode_mean(z_grid).numpy()  # (rows, cols, 784)


class LatentMapPanel(QWidget):
    codes_updated = Signal()  # the test set was (re-)encoded and the points moved
    recoloured = Signal()
    manifold_updated = Signal()
    point_decoded = Signal()  # the target moved and its decoded image is shown

    SOURCE = "map"

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.cursor = hub.cursor
        self.stats_service = hub.latent_stats
        self.codes: np.ndarray | None = None  # (N, latent) μ of q(z|x)
        self.projection = None  # clustering.PCA of the codes (None for a 1-D latent)
        self._codes_version = -1
        self._labels: np.ndarray | None = None
        self._hover_index = -1
        self._plane = None  # (origin (latent,), e_a (latent,), e_b (latent,)): view (u, v) -> z

        self.runner = TaskRunner("latent-map", self)
        self.runner.finished.connect(self._on_codes_finished)
        self.runner.progressed.connect(self._on_codes_progress)
        self.manifold_runner = TaskRunner("latent-manifold", self)
        self.manifold_runner.finished.connect(self._on_manifold_finished)

        # --- the plot
        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(360, 360)
        self.plot.setAspectLocked(True)
        # no grid: grid lines across the view cost more to paint than the 10,000 points
        self.vb = self.plot.getViewBox()
        self.manifold = pg.ImageItem(axisOrder="row-major")
        self.manifold.setZValue(-10)
        self.manifold.setOpacity(0.6)
        self.plot.addItem(self.manifold)
        self.cloud = PointCloudItem()
        self.plot.addItem(self.cloud)
        self.hover_ring = pg.ScatterPlotItem(size=14, pen=pg.mkPen("w", width=2), brush=None)
        self.hover_ring.setZValue(20)
        self.plot.addItem(self.hover_ring)
        self.target = pg.TargetItem(
            pos=(0, 0),
            size=16,
            pen=pg.mkPen((255, 215, 0), width=2),
            label="drag me",
            labelOpts={"color": (255, 215, 0), "offset": (10, -10)},
        )
        self.target.setZValue(30)
        self.plot.addItem(self.target)
        self._legends: dict[tuple, pg.LegendItem] = {}  # one per set of entries, built once (building costs ~30 ms)
        self._legend_key = None
        self.legend = self._legend_for(())
        self.hover_preview = QLabel(self.plot)
        self.hover_preview.setStyleSheet(
            "background: rgba(20,20,20,220); color: white; border: 1px solid gray;padding: 2px;"
        )
        self.hover_preview.hide()

        # --- controls
        self.mode = QComboBox()
        self.mode.setToolTip("Show two latent dimensions, or the codes' first principal components")
        self.axis_x = QComboBox()
        self.axis_y = QComboBox()
        self.colour_by = QComboBox()
        self.colour_by.addItem("digit label", "label")
        self.colour_by.addItem("mixture p(c|z)", "mixture")
        self.colour_by.addItem("one colour", "none")
        self.colour_by.setToolTip(
            "Colour points by their true label, or by the responsibilities of a mixture "
            "fitted to the codes (Digit clusters panel)"
        )
        self.manifold_box = QCheckBox("decoded digits behind the points")
        self.manifold_box.setChecked(True)
        self.manifold_box.setToolTip(
            "Decode a grid of points over the visible area (for more than two dimensions: "
            "the plane through the current z spanned by the two axes)"
        )
        self.size_spin = QSpinBox()
        self.size_spin.setRange(1, 8)
        self.size_spin.setValue(2)
        self.size_spin.setToolTip("Point radius in pixels")
        fit = button("Fit view", "Zoom to all points", self._on_fit_clicked)
        self.decoded = DigitImage(min_side=112, hint_side=168)
        self.decoded.setToolTip("p(x|z) at the target")
        self.decoded_caption = QLabel("Click or drag on the map")
        self.decoded_caption.setWordWrap(True)
        self.hover_image = DigitImage(min_side=84, hint_side=112)
        self.hover_caption = QLabel("Hover over a point")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: gray;")

        form = QFormLayout()
        form.addRow("Show", self.mode)
        form.addRow("x axis", self.axis_x)
        form.addRow("y axis", self.axis_y)
        form.addRow("Colour by", self.colour_by)
        size_row = QHBoxLayout()
        size_row.addWidget(self.size_spin)
        size_row.addStretch(1)
        size_row.addWidget(fit)
        form.addRow("Point size", size_row)
        side = QVBoxLayout()
        side.addLayout(form)
        side.addWidget(self.manifold_box)
        side.addWidget(QLabel("<b>Decoded at the target</b>"))
        side.addWidget(self.decoded, 2)
        side.addWidget(self.decoded_caption)
        side.addWidget(QLabel("<b>Test digit under the mouse</b>"))
        side.addWidget(self.hover_image, 1)
        side.addWidget(self.hover_caption)
        side.addStretch(1)
        side.addWidget(self.status)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setMaximumWidth(300)
        lay = QHBoxLayout(self)
        lay.addWidget(self.plot, 1)
        lay.addWidget(side_w)

        # --- timers
        self._encode_timer = QTimer(self)
        self._encode_timer.setSingleShot(True)
        self._encode_timer.timeout.connect(self.request_encode)
        self._manifold_timer = QTimer(self)
        self._manifold_timer.setSingleShot(True)
        self._manifold_timer.setInterval(120)
        self._manifold_timer.timeout.connect(self.request_manifold)

        self.mode.currentIndexChanged.connect(self._on_mode_changed)
        self.axis_x.currentIndexChanged.connect(self._on_axes_changed)
        self.axis_y.currentIndexChanged.connect(self._on_axes_changed)
        self.colour_by.currentIndexChanged.connect(self._on_colour_by_changed)
        self.manifold_box.toggled.connect(self._on_manifold_toggled)
        self.size_spin.valueChanged.connect(self._on_size_changed)
        self.vb.sigRangeChanged.connect(self._on_range_changed)
        self.target.sigPositionChanged.connect(self._on_target_moved)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_clicked)
        self.plot.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        hub.model_changed.connect(self._on_model_changed)
        hub.weights_updated.connect(self._on_weights_updated)
        hub.cluster_posterior_changed.connect(self._on_cluster_posterior_changed)
        self.cursor.moved.connect(self._on_cursor_moved)
        self.stats_service.stats_changed.connect(self._on_stats_changed)
        self._on_size_changed(self.size_spin.value())
        self._on_model_changed()

    # --- axes ------------------------------------------------------------------------------------
    def _fill_modes(self) -> None:
        d = self.hub.latent_dim
        self.mode.blockSignals(True)
        self.mode.clear()
        self.mode.addItem("latent dimensions", "dims")
        if d > 1:
            self.mode.addItem("PCA of the codes", "pca")
        self.mode.setCurrentIndex(self.mode.findData("pca" if d > 2 else "dims"))
        self.mode.blockSignals(False)
        self._fill_axes()

    def _fill_axes(self) -> None:
        d = self.hub.latent_dim
        stats = self.stats_service.stats
        for box in (self.axis_x, self.axis_y):
            box.blockSignals(True)
            box.clear()
        if self.mode.currentData() == "pca" and self.projection is not None:
            for i in range(self.projection.n_components):
                ratio = float(self.projection.explained_variance_ratio[i])
                for box in (self.axis_x, self.axis_y):
                    box.addItem(f"PC{i + 1}  ({100 * ratio:.0f} % of variance)", i)
        elif self.mode.currentData() == "pca":
            for box in (self.axis_x, self.axis_y):
                box.addItem("PC1", 0)
                box.addItem("PC2", 1)
        else:
            order = stats.order.tolist() if stats is not None and stats.mean_kl.numel() == d else list(range(d))
            for i in order:
                for box in (self.axis_x, self.axis_y):
                    box.addItem(dimension_label(i, stats), i)
        self.axis_x.setCurrentIndex(0)
        self.axis_y.setCurrentIndex(min(1, self.axis_y.count() - 1))
        for box in (self.axis_x, self.axis_y):
            box.blockSignals(False)

    def set_axes(self, mode: str, a: int, b: int) -> None:
        """Show mode 'dims' (latent dimensions a, b) or 'pca' (components a, b)."""
        self.mode.setCurrentIndex(self.mode.findData(mode))
        self.axis_x.setCurrentIndex(self.axis_x.findData(int(a)))
        self.axis_y.setCurrentIndex(self.axis_y.findData(int(b)))
        self._update_points()

    def axis_names(self) -> tuple[str, str]:
        a, b = self.axis_x.currentData(), self.axis_y.currentData()
        if self.mode.currentData() == "pca":
            return f"PC{a + 1}", f"PC{b + 1}"
        return f"z{a + 1}", f"z{b + 1}"

    def _current_plane(self):
        """(origin, e_a, e_b): the view point (u, v) is z = origin + u e_a + v e_b."""
        d = self.hub.latent_dim
        a, b = self.axis_x.currentData(), self.axis_y.currentData()
        if a is None or b is None:
            return None
        z = self.cursor.z.astype(np.float64)
        if self.mode.currentData() == "pca" and self.projection is not None:
            comps = self.projection.components.numpy().astype(np.float64)
            mean = self.projection.mean.numpy().astype(np.float64)
            e_a, e_b = comps[a], comps[b]
            rel = z - mean
            origin = z - e_a * (rel @ e_a) - e_b * (rel @ e_b)
        else:
            e_a, e_b = np.eye(d)[a], np.eye(d)[b]
            origin = z.copy()
            origin[a] = 0.0
            if b != a:
                origin[b] = 0.0
        return origin, e_a, e_b

    def project(self, z: np.ndarray) -> np.ndarray:
        """Codes (N, latent) -> view coordinates (N, 2) for the chosen axes."""
        a, b = self.axis_x.currentData(), self.axis_y.currentData()
        if self.mode.currentData() == "pca" and self.projection is not None:
            c = self.projection.transform(torch.as_tensor(z)).numpy()
            return np.stack([c[:, a], c[:, b]], 1)
        return np.stack([z[:, a], z[:, b]], 1)

    def view_to_z(self, u: float, v: float) -> np.ndarray:
        origin, e_a, e_b = self._current_plane()
        return (origin + u * e_a + v * e_b).astype(np.float32)

    # --- codes -----------------------------------------------------------------------------------
    def request_encode(self) -> None:
        try:
            x = self.hub.eval_x("test")
            self._labels = np.asarray(self.hub.labels("test")).astype(np.int64)
        except Exception as e:
            self.status.setText(f"No test data: {e}")
            return
        self._encode_timer.stop()
        self._pending_version = self.hub.version
        self._encode_step = self.hub.step
        self.runner.submit(_encode_task, self.hub.model, x)

    def _on_codes_progress(self, task_id: int, fraction: float, payload) -> None:
        if self.codes is None:
            self.status.setText(f"Encoding the test set … {100 * fraction:.0f} %")

    def _on_codes_finished(self, task_id: int, result) -> None:
        codes, proj = result
        if codes.shape[1] != self.hub.latent_dim:
            return
        first = self.codes is None
        self.codes, self.projection = codes, proj
        self._codes_version = self._pending_version
        if self.mode.currentData() == "pca":  # explained variances changed: relabel, keep the choice
            keep = self.axis_x.currentData(), self.axis_y.currentData()
            self._fill_axes()
            self.axis_x.setCurrentIndex(max(0, self.axis_x.findData(keep[0])))
            self.axis_y.setCurrentIndex(max(0, self.axis_y.findData(keep[1])))
        self._update_points(fit=first)
        self.recolour()
        n = codes.shape[0]
        self.status.setText(
            f"{n:,} test digits: μ of q(z|x) with the weights of step {self._encode_step}."
            + (f" PCA of {codes.shape[1]}-D codes." if codes.shape[1] > 2 else "")
        )
        self.codes_updated.emit()

    def _update_points(self, fit: bool = False) -> None:
        if self.codes is None or self.axis_x.currentData() is None:
            return
        xy = self.project(self.codes)
        self.cloud.set_points(xy)
        names = self.axis_names()
        self.plot.setLabel("bottom", names[0])
        self.plot.setLabel("left", names[1])
        self._move_target_to_cursor()
        if fit:
            self._on_fit_clicked()
        self._manifold_timer.start()

    # --- colours ---------------------------------------------------------------------------------
    def colour_mode(self) -> str:
        return self.colour_by.currentData()

    def set_colour_mode(self, mode: str) -> None:
        i = self.colour_by.findData(mode)
        if self.colour_by.currentIndex() == i:
            self.recolour()
        else:
            self.colour_by.setCurrentIndex(i)

    def _mixture_ok(self) -> bool:
        cp = self.hub.cluster_posterior
        return cp is not None and self.codes is not None and cp[0].shape[0] == self.codes.shape[0]

    def recolour(self) -> None:
        if self.codes is None:
            return
        mode = self.colour_mode()
        entries, tip = [], ""

        if mode == "mixture" and self._mixture_ok():
            resp, colours, desc = self.hub.cluster_posterior
            rgb = np.clip(resp @ colours.astype(np.float32), 0, 255).astype(np.uint8)  # (N, 3) mixed by p(c|z)
            entries = [(tuple(int(v) for v in colours[k]), f"c{k + 1}") for k in range(colours.shape[0])]
            tip = desc
        elif mode == "label" and self._labels is not None and len(self._labels) == self.codes.shape[0]:
            rgb = LABEL_COLOURS[self._labels]
            entries = [(tuple(int(v) for v in LABEL_COLOURS[k]), str(k)) for k in range(10)]
        else:
            rgb = np.full((self.codes.shape[0], 3), (86, 180, 233), dtype=np.uint8)
        self.cloud.set_colours(rgb)
        self._set_legend(entries)
        self.legend.setToolTip(tip)
        self.recoloured.emit()

    def _legend_for(self, key: tuple) -> pg.LegendItem:
        legend = self._legends.get(key)
        if legend is None:
            legend = pg.LegendItem(offset=(-8, 8), labelTextColor=(230, 230, 230), brush=pg.mkBrush(0, 0, 0, 150))
            legend.setParentItem(self.vb)
            legend.samples = []  # keep the sample items alive with their legend
            for colour, name in key[:20]:
                item = pg.ScatterPlotItem(size=9, pen=pg.mkPen(QColor(*colour).darker(180)), brush=pg.mkBrush(*colour))
                legend.samples.append(item)
                legend.addItem(item, name)
            legend.setVisible(False)
            self._legends[key] = legend
        return legend

    def _set_legend(self, entries) -> None:
        key = tuple(entries)
        if key == self._legend_key:
            return
        self._legend_key = key
        self.legend.setVisible(False)
        self.legend = self._legend_for(key)
        self.legend.setVisible(bool(entries))

    def _on_colour_by_changed(self, *_):
        if self.colour_mode() == "mixture" and not self._mixture_ok():
            self.status.setText(
                "No mixture fitted to this model's codes yet: fit one in the Digit clusters panel. Showing one colour."
            )
        self.recolour()

    def _on_cluster_posterior_changed(self) -> None:
        i = self.colour_by.findData("mixture")
        item = self.colour_by.model().item(i)
        if item is not None:
            item.setEnabled(self._mixture_ok() or self.hub.cluster_posterior is not None)
        if self.colour_mode() == "mixture":
            self.recolour()

    # --- the manifold ---------------------------------------------------------------------------
    def request_manifold(self) -> None:
        self._manifold_timer.stop()
        if not self.manifold_box.isChecked() or self.axis_x.currentData() is None:
            self.manifold.setVisible(False)
            return
        if self.axis_x.currentData() == self.axis_y.currentData() and self.mode.currentData() == "dims":
            self.manifold.setVisible(False)
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        n = MANIFOLD_TILES
        u = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n  # tile centres, left to right
        v = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n  # top to bottom
        origin, e_a, e_b = self._current_plane()
        z = origin[None, None] + u[None, :, None] * e_a + v[:, None, None] * e_b  # (n, n, latent)
        self._manifold_rect = QRectF(x0, y0, x1 - x0, y1 - y0)
        self.manifold_runner.submit(_manifold_task, self.hub.model, torch.as_tensor(z, dtype=torch.float32))

    def _on_manifold_finished(self, task_id: int, images) -> None:
        n = images.shape[0]
        tiles = images.reshape(n, n, 28, 28).transpose(0, 2, 1, 3).reshape(n * 28, n * 28)  # picture, top row first
        self.manifold.setImage(np.ascontiguousarray(np.flipud(tiles)), levels=(0, 1), autoLevels=False)
        self.manifold.setRect(self._manifold_rect)
        self.manifold.setVisible(True)
        self.manifold_updated.emit()

    def _on_manifold_toggled(self, on: bool) -> None:
        if on:
            self.request_manifold()
        else:
            self.manifold.setVisible(False)

    # --- the target: click or drag to decode ------------------------------------------------------
    def _on_scene_clicked(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.isAccepted():
            return
        pos = ev.scenePos()
        if not self.vb.sceneBoundingRect().contains(pos):
            return
        p = self.vb.mapSceneToView(pos)
        self.target.setPos(p)  # emits sigPositionChanged -> decode
        ev.accept()

    def decode_at(self, u: float, v: float) -> np.ndarray:
        """Move the target to view point (u, v), decode it and make it the current z."""
        self.target.blockSignals(True)
        self.target.setPos(u, v)
        self.target.blockSignals(False)
        return self._decode_target()

    def _on_target_moved(self, *_):
        self._decode_target()

    def _decode_target(self) -> np.ndarray:
        if self._current_plane() is None:
            return np.zeros(self.hub.latent_dim, dtype=np.float32)
        pos = self.target.pos()
        z = self.view_to_z(pos.x(), pos.y())
        with torch.no_grad():
            x = self.hub.model.decode_mean(torch.from_numpy(z)[None])[0]
        self.decoded.set_image(x.reshape(28, 28))
        a, b = self.axis_names()
        self.decoded_caption.setText(f"{a} = {pos.x():+.2f}, {b} = {pos.y():+.2f}")
        self.cursor.set_z(z, self.SOURCE)
        self.point_decoded.emit()
        return z

    def _move_target_to_cursor(self) -> None:
        if self.axis_x.currentData() is None:
            return
        uv = self.project(self.cursor.z[None].astype(np.float64))[0]
        self.target.blockSignals(True)
        self.target.setPos(float(uv[0]), float(uv[1]))
        self.target.blockSignals(False)
        with torch.no_grad():
            x = self.hub.model.decode_mean(torch.from_numpy(self.cursor.z)[None])[0]
        self.decoded.set_image(x.reshape(28, 28))

    def _on_cursor_moved(self, source: str) -> None:
        if source == self.SOURCE or self.cursor.z.size != self.hub.latent_dim:
            return
        self._move_target_to_cursor()
        if self.hub.latent_dim > 2 and self.manifold_box.isChecked() and self.isVisible():
            self._manifold_timer.start()  # the plane through z moved

    # --- hover -----------------------------------------------------------------------------------
    def nearest_point(self, u: float, v: float, max_pixels: float = 6.0) -> int:
        """Index of the point nearest to view point (u, v) within max_pixels on screen, or −1."""
        xy = self.cloud.points()
        if xy.shape[0] == 0:
            return -1
        pw, ph = self.vb.viewPixelSize()
        d2 = ((xy[:, 0] - u) / pw) ** 2 + ((xy[:, 1] - v) / ph) ** 2
        i = int(np.argmin(d2))
        return i if d2[i] <= max_pixels**2 else -1

    def _on_scene_mouse_moved(self, pos) -> None:
        if not self.vb.sceneBoundingRect().contains(pos):
            self._show_hover(-1, None)
            return
        p = self.vb.mapSceneToView(pos)
        self._show_hover(self.nearest_point(p.x(), p.y()), pos)

    def _show_hover(self, i: int, scene_pos) -> None:
        if i == self._hover_index:
            if i >= 0 and scene_pos is not None:
                self._place_hover_preview(scene_pos)
            return
        self._hover_index = i
        if i < 0:
            self.hover_ring.setData([], [])
            self.hover_preview.hide()
            return
        xy = self.cloud.points()[i]
        self.hover_ring.setData([xy[0]], [xy[1]])
        x = self.hub.eval_x("test")[i]
        label = int(self._labels[i]) if self._labels is not None else -1
        self.hover_image.set_image(x.reshape(28, 28))
        self.hover_caption.setText(f"test digit {i}, label {label}")
        self.hover_preview.setPixmap(QPixmap.fromImage(grey_qimage(x.reshape(28, 28)).scaled(56, 56)))
        self.hover_preview.setToolTip(f"test digit {i}, label {label}")
        self.hover_preview.adjustSize()
        if scene_pos is not None:
            self._place_hover_preview(scene_pos)
        self.hover_preview.show()

    def _place_hover_preview(self, scene_pos) -> None:
        pt = self.plot.mapFromScene(scene_pos)
        x, y = pt.x() + 14, pt.y() - self.hover_preview.height() - 6
        if x + self.hover_preview.width() > self.plot.width():
            x = pt.x() - self.hover_preview.width() - 14
        self.hover_preview.move(int(x), int(max(0, y)))

    # --- events ----------------------------------------------------------------------------------
    def _on_model_changed(self) -> None:
        self.codes, self.projection = None, None
        self.cloud.set_points(np.zeros((0, 2)))
        self.manifold.setVisible(False)
        self._fill_modes()
        self._on_cluster_posterior_changed()
        self.request_encode()

    def _on_weights_updated(self, step: int) -> None:
        # while training: re-encode at most every REENCODE_S, and only while shown (it costs CPU
        # that training could use); a hidden map catches up when it is shown
        if not self.isVisible():
            self._stale = True
            return
        if not self._encode_timer.isActive():
            self._encode_timer.start(int(REENCODE_S * 1000))
        if self.manifold_box.isChecked():
            self._manifold_timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if getattr(self, "_stale", False):
            self._stale = False
            self.request_encode()
            self._manifold_timer.start()

    def _on_stats_changed(self) -> None:
        if self.mode.currentData() == "dims":
            keep = self.axis_x.currentData(), self.axis_y.currentData()
            self._fill_axes()
            if self.stats_service.stats is not None and keep[0] is not None:
                self.axis_x.setCurrentIndex(max(0, self.axis_x.findData(keep[0])))
                self.axis_y.setCurrentIndex(max(0, self.axis_y.findData(keep[1])))

    def _on_mode_changed(self, *_):
        self._fill_axes()
        self._update_points(fit=True)

    def _on_axes_changed(self, *_):
        self._update_points(fit=True)

    def _on_size_changed(self, r: int) -> None:
        self.cloud.set_radius(r + 0.6)

    def _on_range_changed(self, *_):
        if self.manifold_box.isChecked():
            self._manifold_timer.start()

    def _on_fit_clicked(self) -> None:
        xy = self.cloud.points()
        if xy.shape[0] == 0:
            return
        lo, hi = np.percentile(xy, 0.2, axis=0), np.percentile(xy, 99.8, axis=0)
        pad = 0.05 * (hi - lo).max()
        self.vb.setRange(
            xRange=(float(lo[0] - pad), float(hi[0] + pad)), yRange=(float(lo[1] - pad), float(hi[1] + pad)), padding=0
        )
