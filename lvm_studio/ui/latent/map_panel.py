"""Latent map: the encoded test set (μ of q(z|x)) as a scatter, with a decoded manifold behind it.

For a 2-D latent the axes are z1 and z2; for more dimensions a projection: two chosen latent
dimensions, or two principal components of the codes (core.clustering.pca, in torch). Points are
coloured by digit label, by a fitted mixture's posterior p(c|z) published on the hub
(hub.cluster_posterior: the colour mixes the component colours by responsibility), or, for a
mixture-prior model, by the model's own q(c|x) = p(c | z = μ(x)) (core.mixture_prior; chosen
by default when such a model opens).

Speed: 10,000 points are rasterised by PointCloudItem (map_view.py; the maths in
core.latent_views) into one image per view (numpy splats of small discs, in a fixed random order
so no class is always on top), so recolouring costs one array product and one splat instead of
10,000 QBrush objects; the image is cached until the view, the points or the colours change.
Clicking or dragging the target on the map decodes that point (and moves the shared current z);
hovering a point shows its test digit.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from lvm_studio.core import latent_views as V
from lvm_studio.core.clustering import match_clusters
from lvm_studio.core.colours import mix_colours
from lvm_studio.core.images import image_side
from lvm_studio.core.latent_tasks import decode_grid_task, decode_image, encode_codes_task
from lvm_studio.core.mixture_prior import responsibilities_at
from lvm_studio.ui.latent.map_controls import MapControls
from lvm_studio.ui.latent.map_view import LegendCache, PointCloudItem
from lvm_studio.ui.visibility import on_screen
from lvm_studio.ui.widgets.axes import plain_axes
from lvm_studio.ui.widgets.digit_image import grey_qimage
from lvm_studio.ui.widgets.hover import point_under_mouse
from lvm_studio.ui.widgets.snapshots import SnapshotGate
from lvm_studio.ui.widgets.style import (
    HIGHLIGHT,
    LABEL_COLOURS,
    LEGEND_BACKGROUND,
    cluster_colours,
    component_colours,
)
from lvm_studio.workers.tasks import TaskRunner

REENCODE_S = 2.0  # while training: re-encode the test set at most this often
MANIFOLD_TILES = 18  # decoded digits per side of the manifold image
HOVER_PIXELS = 6.0  # hovering finds a point within this many screen pixels
# colours of this panel only (ui/widgets/style.py's palette has no entry for them)
ONE_COLOUR = (86, 180, 233)  # the points when coloured neither by label nor by mixture
LEGEND_TEXT = (230, 230, 230)


class LatentMapPanel(QWidget):
    codes_updated = Signal()  # the test set was (re-)encoded and the points moved
    recoloured = Signal()
    manifold_updated = Signal()
    point_decoded = Signal()  # the target moved and its decoded image is shown

    SOURCE = "map"
    SNAPSHOT_INTERVAL_S = REENCODE_S  # the fastest rate of new training weights this panel can use

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.cursor = hub.cursor
        self.stats_service = hub.latent_stats
        self.stats_service.add_consumer(self)  # new weights are used only while a consumer is shown
        self.codes: np.ndarray | None = None  # (N, latent) μ of q(z|x)
        self.projection = None  # clustering.PCA of the codes (None for a 1-D latent)
        self._codes_version = -1
        self._labels: np.ndarray | None = None
        self._hover_index = -1
        # the latent size the axes, the projection and the codes were made for: on model_changed
        # the cursor moves to the new size before this panel has rebuilt them (issue 11, item 11)
        self._dim = -1
        self._model_generation = 0  # counts model changes: a manifold of an older model is dropped
        self._manifold_generation = 0

        self.runner = TaskRunner("latent-map", self)
        self.runner.finished.connect(self._on_codes_finished)
        self.runner.progressed.connect(self._on_codes_progress)
        self.runner.failed.connect(self._on_codes_failed)
        self.manifold_runner = TaskRunner("latent-manifold", self)
        self.manifold_runner.finished.connect(self._on_manifold_finished)

        # --- the plot
        self.plot = pg.PlotWidget()
        plain_axes(self.plot)
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
            pen=pg.mkPen(HIGHLIGHT, width=2),  # the draggable target
            label="drag me",
            labelOpts={"color": HIGHLIGHT, "offset": (10, -10)},
        )
        self.target.setZValue(30)
        self.plot.addItem(self.target)
        self._legends = LegendCache(self.vb, LEGEND_TEXT, pg.mkBrush(*LEGEND_BACKGROUND))
        self.hover_preview = QLabel(self.plot)
        self.hover_preview.setStyleSheet(
            "background: rgba(20,20,20,220); color: white; border: 1px solid gray;padding: 2px;"
        )
        self.hover_preview.hide()

        # --- controls (map_controls.py); the panel keeps names for them
        self.controls = MapControls(self._on_fit_clicked)
        c = self.controls
        self.mode, self.axis_x, self.axis_y, self.colour_by = c.mode, c.axis_x, c.axis_y, c.colour_by
        self.manifold_box, self.size_spin, self.status = c.manifold_box, c.size_spin, c.status
        self.decoded, self.decoded_caption = c.decoded, c.decoded_caption
        self.hover_image, self.hover_caption = c.hover_image, c.hover_caption
        lay = QHBoxLayout(self)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.controls)

        # --- timers
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
        # until the user pans or zooms, the view follows the codes: a model learning spreads them out
        self._view_moved_by_hand = False
        self.vb.sigRangeChangedManually.connect(self._on_view_moved_by_hand)
        self.target.sigPositionChanged.connect(self._on_target_moved)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_clicked)
        self.plot.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        hub.model_changed.connect(self._on_model_changed)
        hub.data_changed.connect(self._on_model_changed)  # another test set: re-encode and relabel
        self.snapshots = SnapshotGate(self, hub, self._on_new_weights, REENCODE_S)
        hub.cluster_posterior_changed.connect(self._on_cluster_posterior_changed)
        self.cursor.moved.connect(self._on_cursor_moved)
        self.stats_service.stats_changed.connect(self._on_stats_changed)
        self._on_size_changed(self.size_spin.value())
        self._on_model_changed()

    # --- axes ------------------------------------------------------------------------------------
    def _fill_modes(self) -> None:
        self.controls.fill_modes(self.hub.latent_dim)
        self._fill_axes()

    def _fill_axes(self) -> None:
        self.controls.fill_axes(self.hub.latent_dim, self.stats_service.stats, self.projection)

    def set_axes(self, mode: str, a: int, b: int) -> None:
        """Show mode 'dims' (latent dimensions a, b) or 'pca' (components a, b)."""
        self.mode.setCurrentIndex(self.mode.findData(mode))
        self.axis_x.setCurrentIndex(self.axis_x.findData(int(a)))
        self.axis_y.setCurrentIndex(self.axis_y.findData(int(b)))
        self._update_points()

    def axis_names(self) -> tuple[str, str]:
        return self.controls.axis_names()

    def _pca_shown(self) -> bool:
        return self.mode.currentData() == "pca" and self.projection is not None

    def _current_plane(self) -> V.ViewPlane | None:
        """The plane the view shows: view point (u, v) is z = origin + u e_a + v e_b."""
        a, b = self.axis_x.currentData(), self.axis_y.currentData()
        if a is None or b is None or self._dim != self.hub.latent_dim:
            return None
        z = self.cursor.z
        return V.pca_plane(z, self.projection, a, b) if self._pca_shown() else V.dims_plane(z, a, b)

    def project(self, z: np.ndarray) -> np.ndarray:
        """Codes (N, latent) -> view coordinates (N, 2) for the chosen axes."""
        a, b = self.axis_x.currentData(), self.axis_y.currentData()
        return V.project_codes(z, a, b, self.projection if self._pca_shown() else None)

    def view_to_z(self, u: float, v: float) -> np.ndarray:
        return self._current_plane().to_z(u, v)

    # --- codes -----------------------------------------------------------------------------------
    def request_encode(self) -> None:
        try:
            x = self.hub.eval_x("test")
            labelled = self.hub.data.labelled  # a dataset without labels is coloured in one colour
            self._labels = np.asarray(self.hub.labels("test")).astype(np.int64) if labelled else None
        except Exception as e:
            self.status.setText(f"No test data: {e}")
            return
        self._pending_version = self.hub.version
        self._encode_step = self.hub.step
        self.runner.submit(encode_codes_task, self.hub.model, x)

    def _on_codes_progress(self, task_id: int, fraction: float, payload) -> None:
        if self.codes is None:
            self.status.setText(f"Encoding the test set … {100 * fraction:.0f} %")

    def _on_codes_failed(self, task_id: int, message: str) -> None:
        self.status.setText(f"Could not encode the test set: {message.splitlines()[0]}")

    def _on_codes_finished(self, task_id: int, result) -> None:
        codes, proj = result.codes, result.projection
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
        self._update_points(fit=first or not self._view_moved_by_hand)
        self.recolour()
        n = codes.shape[0]
        self.status.setText(
            f"{n:,} test {'digit' if self._digits() else 'image'}s: μ of q(z|x) with the weights of step "
            f"{self._encode_step}." + (f" PCA of {codes.shape[1]}-D codes." if codes.shape[1] > 2 else "")
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

        prior = getattr(self.hub.model, "mixture", None)
        if mode == "prior" and prior is not None and self.codes.shape[1] == self.hub.latent_dim:
            resp = responsibilities_at(self.hub.model, self.codes)  # (N, K) p(c | z = μ(x)): one small E-step
            labels = self._labels if self._labels is not None and len(self._labels) == len(resp) else None
            mapping = match_clusters(labels, resp.argmax(1)) if labels is not None else {}
            colours = cluster_colours(resp.shape[1], mapping)
            rgb = mix_colours(resp, colours, rounding="truncate")  # (N, 3) mixed by q(c|x)
            entries = [
                (tuple(int(v) for v in colours[k]), f"c{k + 1}" + (f"→{mapping[k]}" if k in mapping else ""))
                for k in range(resp.shape[1])
            ]
            tip = (
                "The model's own q(c|x) = p(c | z = μ(x)); each component has the colour of the digit it is matched to"
            )
        elif mode == "mixture" and self._mixture_ok():
            resp, colours, desc = self.hub.cluster_posterior
            rgb = mix_colours(resp, colours, rounding="truncate")  # (N, 3) mixed by p(c|z)
            entries = [(tuple(int(v) for v in colours[k]), f"c{k + 1}") for k in range(colours.shape[0])]
            tip = desc
        elif mode == "label" and self._labels is not None and len(self._labels) == self.codes.shape[0]:
            # an imported dataset may have more than MNIST's ten labels (and names for them), or none
            names = list(self.hub.data.label_names) or [str(k) for k in range(10)]
            palette = LABEL_COLOURS if len(names) <= len(LABEL_COLOURS) else component_colours(len(names))
            rgb = palette[self._labels]
            entries = [(tuple(int(v) for v in palette[k]), name) for k, name in enumerate(names)]
        else:
            rgb = np.full((self.codes.shape[0], 3), ONE_COLOUR, dtype=np.uint8)
        self.cloud.set_colours(rgb)
        self._legends.show(entries).setToolTip(tip)
        self.recoloured.emit()

    @property
    def legend(self) -> pg.LegendItem:
        """The legend shown now (one per set of entries, see map_view.LegendCache)."""
        return self._legends.current

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
        item = self.colour_by.model().item(self.colour_by.findData("prior"))
        if item is not None:
            item.setEnabled(getattr(self.hub.model, "mixture", None) is not None)
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
        plane = self._current_plane()
        if plane is None:
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        z = V.manifold_codes(plane, (x0, x1), (y0, y1), MANIFOLD_TILES)  # (n, n, latent), top row first
        self._manifold_rect = QRectF(x0, y0, x1 - x0, y1 - y0)
        self._manifold_generation = self._model_generation
        self.manifold_runner.submit(decode_grid_task, self.hub.model, z)

    def _on_manifold_finished(self, task_id: int, images) -> None:
        if self._manifold_generation != self._model_generation:
            return  # decoded by a model that has since been replaced
        self.manifold.setImage(V.tile_manifold(images), levels=(0, 1), autoLevels=False)
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
        self.decoded.set_image(decode_image(self.hub.model, z))
        a, b = self.axis_names()
        self.decoded_caption.setText(f"{a} = {pos.x():+.2f}, {b} = {pos.y():+.2f}")
        self.cursor.set_z(z, self.SOURCE)
        self.point_decoded.emit()
        return z

    def _move_target_to_cursor(self) -> None:
        if self.axis_x.currentData() is None or self._dim != self.hub.latent_dim:
            return
        z = self.cursor.z
        uv = self.project(z[None].astype(np.float64))[0]
        self.target.blockSignals(True)
        self.target.setPos(float(uv[0]), float(uv[1]))
        self.target.blockSignals(False)
        self.decoded.set_image(decode_image(self.hub.model, z))

    def _on_cursor_moved(self, source: str) -> None:
        if source == self.SOURCE or self.cursor.z.size != self.hub.latent_dim or self._dim != self.hub.latent_dim:
            return  # our own move, or a new model that _on_model_changed has not yet caught up with
        self._move_target_to_cursor()
        if self.hub.latent_dim > 2 and self.manifold_box.isChecked() and on_screen(self):
            self._manifold_timer.start()  # the plane through z moved

    # --- hover -----------------------------------------------------------------------------------
    def nearest_point(self, u: float, v: float, max_pixels: float = HOVER_PIXELS) -> int:
        """Index of the point nearest to view point (u, v) within max_pixels on screen, or −1."""
        pw, ph = self.vb.viewPixelSize()
        return V.nearest_point(self.cloud.points(), u, v, pw, ph, max_pixels)

    def _on_scene_mouse_moved(self, pos) -> None:
        self._show_hover(point_under_mouse(self.vb, pos, self.nearest_point), pos)  # pos unused when −1

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
        side = image_side(x.numel())  # SIDE for MNIST, an imported dataset's side otherwise
        noun = "digit" if self._digits() else "image"
        caption = f"test {noun} {i}" + (
            f", label {self.hub.data.label_name(int(self._labels[i]))}" if self._labels is not None else ""
        )
        self.hover_image.set_image(x.reshape(side, side))
        self.hover_caption.setText(caption)
        self.hover_preview.setPixmap(QPixmap.fromImage(grey_qimage(x.reshape(side, side)).scaled(2 * side, 2 * side)))
        self.hover_preview.setToolTip(caption)
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
    def _digits(self) -> bool:
        """MNIST's digits, or an imported dataset (it has label names, or no labels)."""
        data = self.hub.data
        return not data.label_names and data.labelled

    def _on_model_changed(self) -> None:
        try:
            self.controls.name_images(self._digits(), self.hub.data.labelled)
        except Exception:  # no data: the default names stay
            pass
        self.codes, self.projection = None, None
        self._view_moved_by_hand = False
        self._dim = self.hub.latent_dim
        self._model_generation += 1
        self.cloud.set_points(np.zeros((0, 2)))
        self.manifold.setVisible(False)
        self._fill_modes()
        self._on_cluster_posterior_changed()
        # a mixture-prior model is shown by its own clusters; another model leaves that colouring
        has_prior = getattr(self.hub.model, "mixture", None) is not None
        if has_prior or self.colour_mode() == "prior":
            self.colour_by.setCurrentIndex(self.colour_by.findData("prior" if has_prior else "label"))
        self.request_encode()

    def _on_new_weights(self) -> None:
        # while training: re-encode at most every REENCODE_S and only while shown (it costs CPU
        # that training could use); a hidden map catches up once when shown (SnapshotGate)
        self.request_encode()
        if self.manifold_box.isChecked():
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

    def hideEvent(self, event) -> None:
        # a hidden map (its window closed) decodes no manifold; it asks again when shown
        self._manifold_timer.stop()
        super().hideEvent(event)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.manifold_box.isChecked():
            self._manifold_timer.start()

    def _on_range_changed(self, *_):
        if self.manifold_box.isChecked():
            self._manifold_timer.start()

    def _on_view_moved_by_hand(self, *_) -> None:
        self._view_moved_by_hand = True

    def _on_fit_clicked(self) -> None:
        self._view_moved_by_hand = False  # Fit view: follow the codes again
        xy = self.cloud.points()
        if xy.shape[0] == 0:
            return
        x_range, y_range = V.fit_range(xy)
        self.vb.setRange(xRange=x_range, yRange=y_range, padding=0)
