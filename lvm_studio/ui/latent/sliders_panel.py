"""Latent sliders: one slider per dimension of z, decoded live into p(x|z).

Dimensions are listed by their average KL(q(z_d|x) ‖ p(z_d)) over the validation set, largest
first, so the units the model uses come first; a bar shows each KL and inactive units (average
KL ≤ 0.01 nats) are greyed. Sliders are in prior standard deviations (p(z) = N(0, I)), −4 to 4.

A slider change decodes one z on the GUI thread (well under a millisecond for the app's MLPs);
changes are coalesced by a zero-delay timer, so a storm of slider events costs one decode per
pass of the event loop. New training weights are decoded only while the panel is shown, at most
every SNAPSHOT_INTERVAL_S (ui/widgets/snapshots.py); a hidden panel catches up once when shown.
The KL statistics (5,000 validation digits) come from the hub's shared LatentStatsService,
computed off the GUI thread.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core.images import image_side
from lvm_studio.core.latent import ACTIVE_KL_THRESHOLD
from lvm_studio.core.latent_tasks import ImageSampler, decode_image, encode_one
from lvm_studio.ui.widgets.controls import KLBar, TestDigitPicker, button
from lvm_studio.ui.widgets.digit_image import DigitImage
from lvm_studio.ui.widgets.snapshots import SnapshotGate

SLIDER_STEPS_PER_SD = 100  # slider resolution: 0.01 prior standard deviations
SLIDER_RANGE_SD = 4.0


class _SliderRow(QWidget):
    """z_d: [name] [KL bar] [slider] [value]."""

    def __init__(self, dim: int, parent=None):
        super().__init__(parent)
        self.dim = dim
        self.name = QLabel(f"z{dim + 1}")
        self.name.setMinimumWidth(34)
        self.bar = KLBar()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        r = int(SLIDER_RANGE_SD * SLIDER_STEPS_PER_SD)
        self.slider.setRange(-r, r)
        self.slider.setSingleStep(5)
        self.slider.setPageStep(50)
        self.slider.setMinimumWidth(100)
        self.value = QLabel("+0.00")
        self.value.setMinimumWidth(40)
        self.value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 0, 2, 0)
        lay.addWidget(self.name)
        lay.addWidget(self.bar)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.value)

    def set_stats(self, kl: float, activity: float, max_kl: float, active: bool) -> None:
        self.bar.set_value(kl / max_kl if max_kl > 0 else 0.0, active)
        tip = (
            f"z{self.dim + 1}: average KL(q(z|x) ‖ p(z)) = {kl:.3f} nats over the validation set; "
            f"activity Cov_x(E_q[z]) = {activity:.3g}\n"
            + (
                "active"
                if active
                else f"inactive: KL ≤ {ACTIVE_KL_THRESHOLD} nats — the decoder ignores this "
                "dimension, so moving it barely changes the digit"
            )
        )
        for w in (self.name, self.bar, self.slider):
            w.setToolTip(tip)
        self.name.setText(f"z{self.dim + 1}" if active else f"z{self.dim + 1}°")
        self.name.setStyleSheet("" if active else "color: gray; font-style: italic;")

    def set_z(self, v: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(v * SLIDER_STEPS_PER_SD)))
        self.slider.blockSignals(False)
        self.value.setText(f"{v:+.2f}")


class LatentSlidersPanel(QWidget):
    """One slider per latent dimension, ordered by KL, decoded live into a large p(x|z) image."""

    image_updated = Signal()  # a new decoded image was set (the bench and tests wait on it)
    order_changed = Signal()  # the dimensions were re-sorted by new KL statistics

    SOURCE = "sliders"
    SNAPSHOT_INTERVAL_S = 0.5  # the fastest rate of new training weights this panel can use

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.cursor = hub.cursor
        self.stats_service = hub.latent_stats
        self.stats_service.add_consumer(self)  # new weights are used only while a consumer is shown
        self.stats = None
        self.rows: list[_SliderRow] = []
        self._sampler = ImageSampler(seed=0)  # x ~ p(x|z), repeatable
        self._prior_gen = np.random.default_rng(0)

        # decode on the next event-loop pass: coalesces slider storms
        self._decode_timer = QTimer(self)
        self._decode_timer.setSingleShot(True)
        self._decode_timer.setInterval(0)
        self._decode_timer.timeout.connect(self._on_decode_due)

        # left: the sliders
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.rows_box = QWidget()
        self.rows_layout = QVBoxLayout(self.rows_box)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.setSpacing(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.rows_box)
        scroll.setMinimumWidth(270)
        left = QVBoxLayout()
        legend = QLabel("dim   KL      value in prior σ (−4 … 4)")
        legend.setStyleSheet("color: gray;")
        left.addWidget(self.header)
        left.addWidget(legend)
        left.addWidget(scroll, 1)

        # right: the image and the buttons
        self.image = DigitImage(min_side=196, hint_side=336)
        self.image.setToolTip("p(x|z) for the z set by the sliders")
        self.mean_radio = QRadioButton("Bernoulli means")
        self.mean_radio.setToolTip("Show E[x|z]: each pixel's probability of being ink")
        self.sample_radio = QRadioButton("a sample x ~ p(x|z)")
        self.sample_radio.setToolTip("Show one random binary image drawn from p(x|z)")
        self.mean_radio.setChecked(True)
        self._mode = QButtonGroup(self)
        self._mode.addButton(self.mean_radio)
        self._mode.addButton(self.sample_radio)
        self._mode.buttonToggled.connect(self._on_mode_toggled)
        self.picker = TestDigitPicker(hub, label="")
        self.from_test_button = button(
            "Start from test digit",
            "Encode the chosen test digit and set the sliders to the mean μ of q(z|x)",
            self._on_from_test_clicked,
        )
        self.random_button = button("Random z ~ p(z)", "Draw z from the prior N(0, I)", self._on_random_clicked)
        self.reset_button = button("Reset", "Set every slider to 0 (the prior mean)", self._on_reset_clicked)
        self.status = QLabel()
        self.status.setStyleSheet("color: gray;")

        right = QVBoxLayout()
        right.addWidget(self.image, 1)
        modes = QHBoxLayout()
        modes.addWidget(self.mean_radio)
        modes.addWidget(self.sample_radio)
        modes.addStretch(1)
        right.addLayout(modes)
        buttons = QHBoxLayout()
        buttons.addWidget(self.from_test_button)
        buttons.addWidget(self.random_button)
        buttons.addWidget(self.reset_button)
        buttons.addStretch(1)
        right.addWidget(self.picker)
        right.addLayout(buttons)
        right.addWidget(self.status)

        lay = QHBoxLayout(self)
        lay.addLayout(left, 3)
        lay.addLayout(right, 4)

        hub.model_changed.connect(self._on_model_changed)
        self.snapshots = SnapshotGate(self, hub, self._schedule_decode, self.SNAPSHOT_INTERVAL_S)
        self.cursor.moved.connect(self._on_cursor_moved)
        self.stats_service.stats_changed.connect(self._on_stats_changed)
        self.stats_service.failed.connect(self._on_stats_failed)
        self._rebuild()

    # --- building ---------------------------------------------------------------------------
    def _rebuild(self) -> None:
        for row in self.rows:
            row.setParent(None)
            row.deleteLater()
        self.rows = []
        for d in range(self.hub.latent_dim):
            row = _SliderRow(d)
            row.slider.valueChanged.connect(lambda v, d=d: self._on_slider_changed(d, v))
            self.rows.append(row)
        self.stats = None
        self._layout_rows(list(range(self.hub.latent_dim)))
        self.header.setText(f"{self.hub.latent_dim} latent dimensions — sorting by KL on the validation set …")
        self._sync_sliders()
        self._schedule_decode()
        if self.stats_service.stats is not None:
            self._on_stats_changed()

    def _layout_rows(self, order: list[int]) -> None:
        while self.rows_layout.count():
            self.rows_layout.takeAt(0)
        for d in order:
            self.rows_layout.addWidget(self.rows[d])
        self.rows_layout.addStretch(1)

    def row_order(self) -> list[int]:
        """Dimensions in the order their rows are shown, top first."""
        out = []
        for i in range(self.rows_layout.count()):
            w = self.rows_layout.itemAt(i).widget()
            if isinstance(w, _SliderRow):
                out.append(w.dim)
        return out

    # --- z and the image ---------------------------------------------------------------------
    def z(self) -> np.ndarray:
        return self.cursor.z

    def set_z(self, z) -> None:
        self.cursor.set_z(z, self.SOURCE)
        self._sync_sliders()
        self._schedule_decode()

    def _sync_sliders(self) -> None:
        z = self.cursor.z
        for row in self.rows:
            row.set_z(float(z[row.dim]))

    def _schedule_decode(self) -> None:
        if not self._decode_timer.isActive():
            self._decode_timer.start()

    def decode_now(self) -> None:
        """Decode the current z and show it (on the GUI thread: one row through the decoder)."""
        self._decode_timer.stop()
        model, z = self.hub.model, self.cursor.z
        x = self._sampler(model, z) if self.sample_radio.isChecked() else decode_image(model, z)  # (N_PIXELS,)
        self.image.set_image(x.reshape(image_side(x.size), -1))  # SIDE × SIDE for MNIST
        self.image_updated.emit()

    def _on_decode_due(self) -> None:
        self.decode_now()

    def _on_slider_changed(self, d: int, v: int) -> None:
        value = v / SLIDER_STEPS_PER_SD
        z = self.cursor.z
        z[d] = value
        self.rows[d].value.setText(f"{value:+.2f}")
        self.cursor.set_z(z, self.SOURCE)
        self._schedule_decode()

    def _on_cursor_moved(self, source: str) -> None:
        if source == self.SOURCE:
            return
        if len(self.rows) != self.hub.latent_dim:
            return  # a new model: _on_model_changed rebuilds
        self._sync_sliders()
        self._schedule_decode()

    def _on_mode_toggled(self, *_):
        self._schedule_decode()

    def _on_from_test_clicked(self) -> None:
        z_loc, _ = encode_one(self.hub.model, self.picker.x())  # (latent,)
        self.set_z(z_loc.astype(np.float32).clip(-SLIDER_RANGE_SD, SLIDER_RANGE_SD))
        self.status.setText(f"z = μ of q(z|x) for test digit {self.picker.index()}")

    def _on_random_clicked(self) -> None:
        z = self._prior_gen.standard_normal(self.hub.latent_dim).astype(np.float32)
        self.set_z(z.clip(-SLIDER_RANGE_SD, SLIDER_RANGE_SD))
        self.status.setText("z drawn from the prior N(0, I)")

    def _on_reset_clicked(self) -> None:
        self.set_z(np.zeros(self.hub.latent_dim, dtype=np.float32))
        self.status.setText("z = 0, the prior mean")

    # --- the model -----------------------------------------------------------------------------
    def _on_model_changed(self) -> None:
        self._rebuild()

    def _on_stats_failed(self, message: str) -> None:
        self.header.setText(f"{self.hub.latent_dim} latent dimensions (no KL statistics: {message.splitlines()[0]})")

    def _on_stats_changed(self) -> None:
        stats = self.stats_service.stats
        if stats is None or stats.mean_kl.numel() != len(self.rows):
            return  # for a model that has since been replaced
        self.stats = stats
        max_kl = float(stats.mean_kl.max()) if stats.mean_kl.numel() else 1.0
        for d, row in enumerate(self.rows):
            row.set_stats(float(stats.mean_kl[d]), float(stats.activity[d]), max_kl, bool(stats.active[d]))
        order = stats.order.tolist()
        # never move rows under the user's mouse
        if order != self.row_order() and not any(r.slider.isSliderDown() for r in self.rows):
            self._layout_rows(order)
            self.order_changed.emit()
        n = len(self.rows)
        self.header.setText(
            f"<b>{stats.n_active} of {n}</b> dimensions active (average KL &gt; "
            f"{ACTIVE_KL_THRESHOLD} nats on the validation set); sorted by KL, largest first. "
            f"Total KL {float(stats.mean_kl.sum()):.1f} nats."
        )
