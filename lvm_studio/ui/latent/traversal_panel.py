"""Traversals: a grid of decoded digits that varies one or two latent dimensions while the others
stay at the current z (the sliders' z), and an interpolation strip between two test digits,
linear or spherical (slerp; White 2016). Both export as PNG.

Decoding a grid is at most 15 × 15 = 225 decoder rows: a change of a setting or of the cursor
is decoded on the GUI thread at once, rate-limited, and only while the panel is visible. New
training weights are decoded on TaskRunners (the GUI thread only shows the result), at most every
SNAPSHOT_INTERVAL_S, and a hidden panel catches up once when shown (ui/widgets/snapshots.py).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core.latent_tasks import interpolation_strip, traversal_images
from lvm_studio.ui.visibility import on_screen, screen_change
from lvm_studio.ui.widgets.controls import TestDigitPicker, button, dimension_label
from lvm_studio.ui.widgets.digit_image import DigitImage, save_grey_png
from lvm_studio.ui.widgets.snapshots import SnapshotGate
from lvm_studio.workers.tasks import TaskRunner

CURSOR_REFRESH_MS = 60  # follow the sliders at most ~16 times a second
GAP_FILL = 0.25  # grey between tiles


def _grid_task(ctx, model, z, dims, r, n):
    """Background decode of a grid for new training weights (core.latent_tasks.traversal_images)."""
    return traversal_images(model, z, dims, r, n, fill=GAP_FILL), (z, dims, r, n)


def _strip_task(ctx, model, xa, xb, n, method):
    """Background decode of the strip for new training weights (core.latent_tasks.interpolation_strip)."""
    return interpolation_strip(model, xa, xb, n, method, fill=GAP_FILL, spacer=8)


class TraversalPanel(QWidget):
    grid_updated = Signal()
    strip_updated = Signal()

    SNAPSHOT_INTERVAL_S = 1.0  # the fastest rate of new training weights this panel can use

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.cursor = hub.cursor
        self.stats_service = hub.latent_stats
        self.stats_service.add_consumer(self)  # new weights are used only while a consumer is shown
        self.grid_array: np.ndarray | None = None
        self.strip_array: np.ndarray | None = None
        self.grid_codes = None  # torch (rows, n, latent): the codes of the grid shown
        self._grid_stale = False  # a cursor move or new statistics arrived while hidden

        # --- grid controls
        self.dim_a = QComboBox()
        self.dim_a.setToolTip("Dimension varied along the columns (sorted by average KL)")
        self.dim_b = QComboBox()
        self.dim_b.setToolTip("Dimension varied along the rows, or none for a single row")
        self.range_spin = QDoubleSpinBox()
        self.range_spin.setRange(0.25, 4.0)
        self.range_spin.setSingleStep(0.25)
        self.range_spin.setValue(3.0)
        self.range_spin.setPrefix("± ")
        self.range_spin.setSuffix(" σ")
        self.range_spin.setToolTip("Values from −r to +r prior standard deviations")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(3, 15)
        self.steps_spin.setValue(9)
        self.steps_spin.setToolTip("Number of values per varied dimension")
        self.grid_image = DigitImage(min_side=240, hint_side=420)
        self.grid_caption = QLabel()
        self.grid_caption.setWordWrap(True)
        self.grid_caption.setStyleSheet("color: gray;")
        zero_button = button(
            "Centre at z = 0",
            "Hold the other dimensions at the prior mean instead of the current z",
            self._on_zero_clicked,
        )
        export_grid = button(
            "Export grid PNG…", "Save the grid as a PNG image (4 × 4 pixels per pixel)", self._on_export_grid_clicked
        )
        # two rows, so each dimension box keeps the width of its longest entry
        # ("z12  (KL 0.00, inactive)") in a narrow dock instead of being cut to "z1 ("
        for box in (self.dim_a, self.dim_b):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            box.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)
        controls = QGridLayout()
        controls.addWidget(QLabel("Columns vary"), 0, 0)
        controls.addWidget(self.dim_a, 0, 1)
        controls.addWidget(QLabel("over"), 0, 2)
        controls.addWidget(self.range_spin, 0, 3)
        controls.addWidget(QLabel("rows vary"), 1, 0)
        controls.addWidget(self.dim_b, 1, 1)
        controls.addWidget(QLabel("in"), 1, 2)
        steps = QHBoxLayout()
        steps.addWidget(self.steps_spin)
        steps.addWidget(QLabel("steps"))
        controls.addLayout(steps, 1, 3)
        controls.setColumnStretch(4, 1)
        grid_box = QGroupBox("Traversal around the current z")
        gl = QVBoxLayout(grid_box)
        gl.addLayout(controls)
        gl.addWidget(self.grid_image, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.grid_caption, 1)
        bottom.addWidget(zero_button)
        bottom.addWidget(export_grid)
        gl.addLayout(bottom)

        # --- interpolation controls
        self.pick_a = TestDigitPicker(hub, label="from", seed=1)
        self.pick_b = TestDigitPicker(hub, label="to", seed=2)
        self.pick_a.set_index(3, emit=False)
        self.pick_b.set_index(2, emit=False)
        self.method = QComboBox()
        self.method.addItem("linear", "linear")
        self.method.addItem("spherical (slerp)", "spherical")
        self.method.setToolTip(
            "Straight line between the two codes, or a great-circle arc (keeps the norm "
            "typical of the prior; White 2016)"
        )
        self.strip_steps = QSpinBox()
        self.strip_steps.setRange(3, 20)
        self.strip_steps.setValue(10)
        self.strip_image = DigitImage(min_side=60, hint_side=120)
        self.strip_image.setMinimumHeight(70)
        export_strip = button(
            "Export strip PNG…", "Save the interpolation strip as a PNG image", self._on_export_strip_clicked
        )
        strip_box = QGroupBox("Interpolation between two test digits (μ of q(z|x)); the originals at the ends")
        sl = QGridLayout(strip_box)
        sl.addWidget(self.pick_a, 0, 0)
        sl.addWidget(self.pick_b, 0, 1)
        row = QHBoxLayout()
        row.addWidget(self.method)
        row.addWidget(self.strip_steps)
        row.addWidget(QLabel("steps"))
        row.addStretch(1)
        row.addWidget(export_strip)
        sl.addLayout(row, 1, 0, 1, 2)
        sl.addWidget(self.strip_image, 2, 0, 1, 2)

        lay = QVBoxLayout(self)
        lay.addWidget(grid_box, 3)
        lay.addWidget(strip_box, 1)

        self._grid_timer = QTimer(self)
        self._grid_timer.setSingleShot(True)
        self._grid_timer.timeout.connect(self.update_grid)
        self._strip_timer = QTimer(self)
        self._strip_timer.setSingleShot(True)
        self._strip_timer.timeout.connect(self.update_strip)
        # new weights: decoded off the GUI thread; a change the user makes meanwhile cancels them
        self.grid_runner = TaskRunner("traversal-grid", self)
        self.grid_runner.finished.connect(self._on_grid_decoded)
        self.strip_runner = TaskRunner("traversal-strip", self)
        self.strip_runner.finished.connect(self._on_strip_decoded)

        for sig in (
            self.dim_a.currentIndexChanged,
            self.dim_b.currentIndexChanged,
            self.range_spin.valueChanged,
            self.steps_spin.valueChanged,
        ):
            sig.connect(self._on_grid_setting_changed)
        for sig in (
            self.pick_a.picked,
            self.pick_b.picked,
            self.method.currentIndexChanged,
            self.strip_steps.valueChanged,
        ):
            sig.connect(self._on_strip_setting_changed)
        hub.model_changed.connect(self._on_model_changed)
        hub.data_changed.connect(self._on_model_changed)  # another dataset: as for a new model
        self.snapshots = SnapshotGate(self, hub, self._on_new_weights, self.SNAPSHOT_INTERVAL_S)
        self.cursor.moved.connect(self._on_cursor_moved)
        self.stats_service.stats_changed.connect(self._on_stats_changed)
        self._fill_dimension_boxes()
        self.update_grid()
        self.update_strip()

    # --- choices ---------------------------------------------------------------------------------
    def _fill_dimension_boxes(self) -> None:
        stats = self.stats_service.stats
        n = self.hub.latent_dim
        order = stats.order.tolist() if stats is not None and stats.mean_kl.numel() == n else list(range(n))
        keep_a, keep_b = self.dim_a.currentData(), self.dim_b.currentData()
        for box in (self.dim_a, self.dim_b):
            box.blockSignals(True)
            box.clear()
        self.dim_b.addItem("— (one row)", -1)
        for d in order:
            self.dim_a.addItem(dimension_label(d, stats), d)
            self.dim_b.addItem(dimension_label(d, stats), d)
        ia = self.dim_a.findData(keep_a) if keep_a is not None and keep_a < n else 0
        self.dim_a.setCurrentIndex(max(ia, 0))
        ib = self.dim_b.findData(keep_b) if keep_b is not None and keep_b < n else -1
        if ib < 0:  # default: the two most informative dimensions (or one row for a 1-D latent)
            ib = 2 if n > 1 else 0
        self.dim_b.setCurrentIndex(ib)
        for box in (self.dim_a, self.dim_b):
            box.blockSignals(False)

    def set_dims(self, a: int, b: int | None = None) -> None:
        self.dim_a.setCurrentIndex(self.dim_a.findData(int(a)))
        self.dim_b.setCurrentIndex(self.dim_b.findData(-1 if b is None else int(b)))
        self.update_grid()

    def dims(self) -> tuple[int, ...]:
        a, b = self.dim_a.currentData(), self.dim_b.currentData()
        return (a,) if b is None or b < 0 or b == a else (a, b)

    # --- computing -------------------------------------------------------------------------------
    def update_grid(self) -> None:
        self._grid_timer.stop()
        self.grid_runner.cancel()  # decoded now, for the current weights and settings
        if self.dim_a.count() == 0:
            return
        r, n = self.range_spin.value(), self.steps_spin.value()
        dims = self.dims()
        grid = traversal_images(self.hub.model, self.cursor.z, dims, r, n, fill=GAP_FILL)
        self._show_grid(grid, self.cursor.z, dims, r, n)

    def _show_grid(self, grid, z, dims, r, n) -> None:
        self.grid_codes = grid.codes
        self.grid_array = grid.tiles
        self.grid_image.set_image(self.grid_array)
        names = [f"z{d + 1}" for d in dims]
        text = f"Columns: {names[0]} from −{r:g} to +{r:g}"
        if len(dims) == 2:
            text += f"; rows: {names[1]} from +{r:g} (top) to −{r:g}"
        held = "0" if not np.any(z) else "the current z (sliders)"
        self.grid_caption.setText(text + f". Other dimensions held at {held}.")
        self.grid_updated.emit()

    def update_strip(self) -> None:
        self._strip_timer.stop()
        self.strip_runner.cancel()  # decoded now, for the current weights and settings
        try:
            xa, xb = self.pick_a.x(), self.pick_b.x()  # (1, N_PIXELS)
        except Exception:
            return
        # originals | decoded path | original, with a wider gap around the path
        self._show_strip(
            interpolation_strip(
                self.hub.model, xa, xb, self.strip_steps.value(), self.method.currentData(), fill=GAP_FILL, spacer=8
            )
        )

    def _show_strip(self, strip: np.ndarray) -> None:
        self.strip_array = strip
        self.strip_image.set_image(self.strip_array)
        self.strip_updated.emit()

    def _decode_new_weights(self) -> None:
        """Both pictures for the hub's new weights, decoded on the runners (same inputs as update_*)."""
        if self.dim_a.count() > 0:
            z = np.array(self.cursor.z, dtype=np.float32, copy=True)
            r, n = self.range_spin.value(), self.steps_spin.value()
            self.grid_runner.submit(_grid_task, self.hub.model, z, self.dims(), r, n)
        try:
            xa, xb = self.pick_a.x(), self.pick_b.x()  # (1, N_PIXELS)
        except Exception:
            return
        self.strip_runner.submit(
            _strip_task, self.hub.model, xa, xb, self.strip_steps.value(), self.method.currentData()
        )

    def _on_grid_decoded(self, task_id: int, result) -> None:
        grid, (z, dims, r, n) = result
        self._show_grid(grid, z, dims, r, n)

    def _on_strip_decoded(self, task_id: int, strip: np.ndarray) -> None:
        self._show_strip(strip)

    # --- events ----------------------------------------------------------------------------------
    def _on_grid_setting_changed(self, *_):
        self._grid_timer.start(0)

    def _on_strip_setting_changed(self, *_):
        self._strip_timer.start(0)

    def _on_cursor_moved(self, source: str) -> None:
        if self.hub.latent_dim != self.cursor.z.size:
            return
        self._refresh_grid_soon(CURSOR_REFRESH_MS)

    def _refresh_grid_soon(self, delay_ms: int) -> None:
        """A new grid within delay_ms if the panel is shown; else one when it is shown again."""
        if not on_screen(self):
            self._grid_stale = True
        elif not self._grid_timer.isActive():
            self._grid_timer.start(delay_ms)

    def event(self, event) -> bool:
        if screen_change(event):  # shown, or its tab chosen
            if self._grid_stale and not self.snapshots.stale:  # stale weights: the gate redraws both
                self._grid_timer.start(0)  # cursor moves and new statistics are skipped while hidden
            self._grid_stale = False
        return super().event(event)

    def _on_new_weights(self) -> None:
        """New training weights while shown (SnapshotGate: at most every SNAPSHOT_INTERVAL_S)."""
        self._grid_stale = False
        if self._grid_timer.isActive() or self._strip_timer.isActive():
            # a setting changed as well: decode everything now, on this thread
            self._grid_timer.start(0)
            self._strip_timer.start(0)
        else:
            self._decode_new_weights()

    def _on_model_changed(self) -> None:
        self._fill_dimension_boxes()
        self.update_grid()
        self.update_strip()

    def _on_stats_changed(self) -> None:
        self._fill_dimension_boxes()
        self._refresh_grid_soon(0)

    def _on_zero_clicked(self) -> None:
        self.cursor.set_z(np.zeros(self.hub.latent_dim, dtype=np.float32), "traversal")
        self.update_grid()

    # --- export ----------------------------------------------------------------------------------
    def export_grid(self, path: str, scale: int = 4) -> bool:
        return self.grid_array is not None and save_grey_png(path, self.grid_array, scale)

    def export_strip(self, path: str, scale: int = 4) -> bool:
        return self.strip_array is not None and save_grey_png(path, self.strip_array, scale)

    def _ask_path(self, name: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Export PNG", name, "PNG images (*.png)")
        if path and not path.lower().endswith(".png"):
            path += ".png"
        return path

    def _on_export_grid_clicked(self) -> None:
        path = self._ask_path("traversal.png")
        if path:
            self.export_grid(path)

    def _on_export_strip_clicked(self) -> None:
        path = self._ask_path("interpolation.png")
        if path:
            self.export_strip(path)
