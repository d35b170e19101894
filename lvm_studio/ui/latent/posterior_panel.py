"""Posterior view (2-D latents): the exact p(z|x) beside the encoder's guess q(z|x), for one digit.

- Heat map: p(z|x) = p(x|z) p(z) / p(x) on a grid zoomed onto the posterior's mass
  (core.posterior_grid.posterior_grid), log p(x) by the grid integral (midpoint rule).
- q(z|x) = N(μ, diag σ²) as its 1σ and 2σ ellipses; importance samples z_j ~ q drawn as dots
  whose area grows with the normalised weight w̃_j = w_j / Σ w.
- Numbers: ELBO(q) = E_q[log p(x|z)] − KL(q ‖ p(z)) (quadrature for the expectation, the KL in
  closed form), the exact log p(x), their difference KL(q ‖ p(z|x)) ≥ 0, and IW-k for a chosen k.
- q can be moved by hand (sliders, or drag the centre and the two σ handles) to watch the ELBO
  and the KL change; "Optimise φ" fits q to this digit alone, and ELBO(φ*) − ELBO(encoder) is the
  amortization gap (Cremer, Li & Duvenaud 2018).

Grids, numbers and the fit run on three TaskRunners (newest request wins), never on the GUI thread.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core import latent_views as V
from lvm_studio.core.images import SIDE, image_side, to_mnist_format
from lvm_studio.core.latent_tasks import (
    decode_image,
    encode_one,
    optimise_q_task,
    posterior_grid_task,
    posterior_numbers_task,
)
from lvm_studio.ui.latent.posterior_view import PosteriorPlot
from lvm_studio.ui.widgets.controls import TestDigitPicker, button
from lvm_studio.ui.widgets.digit_image import DigitImage, DrawPad
from lvm_studio.ui.widgets.snapshots import SnapshotGate
from lvm_studio.workers.tasks import TaskRunner

GRID_N = 64  # heat-map cells per side
GRID_COARSE = 25  # cells per side of the two coarse searches that find the mass (core.posterior_grid.posterior_grid)
SHOWN_SAMPLES = 300  # importance samples drawn on the map (IW-k itself uses all k)
MU_RANGE = 5.0
LOG10_SIGMA = (-2.0, math.log10(3.0))  # σ sliders: 0.01 … 3, logarithmic
SLIDER_TICKS = 1000


def _sigma_from_slider(v: int) -> float:
    lo, hi = LOG10_SIGMA
    return 10 ** (lo + (hi - lo) * v / SLIDER_TICKS)


def _slider_from_sigma(s: float) -> int:
    lo, hi = LOG10_SIGMA
    return int(round(SLIDER_TICKS * (math.log10(max(s, 1e-6)) - lo) / (hi - lo)))


class PosteriorPanel(QWidget):
    posterior_updated = Signal()  # the fine heat map and log p(x) of a new digit or new weights are in
    heat_updated = Signal(bool)  # a heat map was set: False for the zoomed coarse preview, True for the fine grid
    numbers_updated = Signal()  # the numbers for the current q arrived
    optimised = Signal()  # φ* for this digit arrived

    SNAPSHOT_INTERVAL_S = 2.0  # the fastest rate of new training weights this panel can use (2-D latents)

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.x: torch.Tensor | None = None  # (1, N_PIXELS) the digit
        self.grid = None
        self.log_px: float | None = None
        self.q_loc = np.zeros(2)
        self.q_scale = np.ones(2)
        self.enc_loc = self.enc_scale = None
        self.opt_loc = self.opt_scale = None
        self.numbers = None  # PosteriorNumbers for the current q
        self.encoder_numbers = None
        self.optimised_numbers = None
        self._q_is_encoder = True
        self._seed = 0

        self.grid_runner = TaskRunner("posterior-grid", self)
        self.grid_runner.progressed.connect(self._on_grid_preview)
        self.grid_runner.finished.connect(self._on_grid_finished)
        self.grid_runner.failed.connect(self._on_task_failed)
        self.numbers_runner = TaskRunner("posterior-numbers", self)
        self.numbers_runner.finished.connect(self._on_numbers_finished)
        self.numbers_runner.failed.connect(self._on_task_failed)
        self.opt_runner = TaskRunner("posterior-optimise", self)
        self.opt_runner.progressed.connect(self._on_optimise_progress)
        self.opt_runner.finished.connect(self._on_optimise_finished)
        self.opt_runner.failed.connect(self._on_task_failed)

        # --- the plot (posterior_view.py); the panel keeps names for its items
        self.plot = PosteriorPlot()
        pl = self.plot
        self.heat, self.legend, self.message, self.samples = pl.heat, pl.legend, pl.message, pl.samples
        self.q1, self.q2, self.enc_curve, self.opt_curve = pl.q1, pl.q2, pl.enc_curve, pl.opt_curve
        self.centre, self.handle1, self.handle2 = pl.centre, pl.handle1, pl.handle2

        # --- the digit
        self.picker = TestDigitPicker(hub, label="Test digit", seed=3)
        self.picker.set_index(0, emit=False)
        self.draw_pad = DrawPad(side=140)
        self.use_test = QRadioButton("a test digit")
        self.use_drawn = QRadioButton("my drawing")
        self.use_test.setChecked(True)
        src = QButtonGroup(self)
        src.addButton(self.use_test)
        src.addButton(self.use_drawn)
        self._src_group = src
        draw_box = QWidget()
        dl = QHBoxLayout(draw_box)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.draw_pad)
        dl.addWidget(button("Clear", "Erase the drawing", self._on_clear_clicked), 0, Qt.AlignmentFlag.AlignBottom)
        draw_box.setVisible(False)
        self.draw_box = draw_box
        self.x_image = DigitImage(min_side=84, hint_side=112, caption="x")
        self.recon_image = DigitImage(min_side=84, hint_side=112, caption="E[x|z = μ]")

        # --- q controls
        self.mu_sliders, self.sigma_sliders = [], []
        self.mu_labels, self.sigma_labels = [], []
        qbox = QGroupBox("q(z) = N(μ, diag σ²) — move it by hand")
        ql = QGridLayout(qbox)
        for i in range(2):
            s = QSlider(Qt.Orientation.Horizontal)
            s.setRange(-int(MU_RANGE * 100), int(MU_RANGE * 100))
            s.setToolTip(f"μ{i + 1}, the centre of q along z{i + 1}")
            t = QSlider(Qt.Orientation.Horizontal)
            t.setRange(0, SLIDER_TICKS)
            t.setToolTip(f"σ{i + 1}, the spread of q along z{i + 1} (logarithmic)")
            self.mu_sliders.append(s)
            self.sigma_sliders.append(t)
            self.mu_labels.append(QLabel())
            self.sigma_labels.append(QLabel())
            ql.addWidget(QLabel(f"μ{i + 1}"), i, 0)
            ql.addWidget(s, i, 1)
            ql.addWidget(self.mu_labels[i], i, 2)
            ql.addWidget(QLabel(f"σ{i + 1}"), i + 2, 0)
            ql.addWidget(t, i + 2, 1)
            ql.addWidget(self.sigma_labels[i], i + 2, 2)
            s.valueChanged.connect(self._on_q_slider_changed)
            t.valueChanged.connect(self._on_q_slider_changed)
        self.encoder_button = button("Encoder's q(z|x)", "Put q back to the encoder's guess", self._on_encoder_clicked)
        self.optimise_button = button(
            "Optimise φ for this digit",
            "Maximise the ELBO over μ and σ for this digit "
            "alone (200 Adam steps); the gain over the encoder is the amortization gap",
            self._on_optimise_clicked,
        )
        brow = QHBoxLayout()
        brow.addWidget(self.encoder_button)
        brow.addWidget(self.optimise_button)
        ql.addLayout(brow, 4, 0, 1, 3)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 10000)
        self.k_spin.setValue(100)
        self.k_spin.setToolTip("Importance samples k for the IW-k estimate of log p(x)")
        self.k_spin.setKeyboardTracking(False)
        self.log_scale = QCheckBox("log density")
        self.log_scale.setToolTip("Colour by log p(z|x) (12 nats below the peak and up) instead of p(z|x)")
        self.numbers_label = QLabel()
        self.numbers_label.setTextFormat(Qt.TextFormat.RichText)
        self.numbers_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: gray;")

        side = QVBoxLayout()
        srow = QHBoxLayout()
        srow.addWidget(QLabel("Digit:"))
        srow.addWidget(self.use_test)
        srow.addWidget(self.use_drawn)
        srow.addStretch(1)
        side.addLayout(srow)
        side.addWidget(self.picker)
        side.addWidget(self.draw_box)
        irow = QHBoxLayout()
        irow.addWidget(self.x_image)
        irow.addWidget(self.recon_image)
        side.addLayout(irow)
        side.addWidget(qbox)
        krow = QHBoxLayout()
        krow.addWidget(QLabel("IW-k with k ="))
        krow.addWidget(self.k_spin)
        krow.addStretch(1)
        krow.addWidget(self.log_scale)
        side.addLayout(krow)
        side.addWidget(self.numbers_label)
        side.addStretch(1)
        side.addWidget(self.status)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setMaximumWidth(380)
        lay = QHBoxLayout(self)
        lay.addWidget(self.plot, 1)
        lay.addWidget(side_w)

        self._numbers_timer = QTimer(self)
        self._numbers_timer.setSingleShot(True)
        self._numbers_timer.setInterval(0)
        self._numbers_timer.timeout.connect(self.request_numbers)
        self._grid_timer = QTimer(self)
        self._grid_timer.setSingleShot(True)
        self._grid_timer.timeout.connect(self.request_grid)

        self.picker.picked.connect(self._on_digit_picked)
        self.draw_pad.drawn.connect(self._on_drawn)
        self.use_test.toggled.connect(self._on_source_toggled)
        self.k_spin.valueChanged.connect(self._on_k_changed)
        self.log_scale.toggled.connect(self._on_log_scale_toggled)
        self.centre.sigPositionChanged.connect(self._on_centre_dragged)
        self.handle1.sigPositionChanged.connect(self._on_handle_dragged)
        self.handle2.sigPositionChanged.connect(self._on_handle_dragged)
        hub.model_changed.connect(self._on_model_changed)
        hub.data_changed.connect(self._on_model_changed)  # another test set: the chosen digit changes
        self.snapshots = SnapshotGate(self, hub, self._on_new_weights, self.SNAPSHOT_INTERVAL_S)
        self._on_model_changed()

    # --- the digit and the grid ----------------------------------------------------------------
    def supported(self) -> bool:
        return self.hub.latent_dim == 2

    def set_digit_index(self, i: int) -> None:
        self.use_test.setChecked(True)
        self.picker.set_index(i, emit=False)
        self._set_x(self.picker.x(), f"test digit {i}")

    def set_digit(self, x, description: str = "a drawn digit") -> None:
        self._set_x(torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(1, -1), description)  # (1, N_PIXELS)

    def _set_x(self, x: torch.Tensor, description: str) -> None:
        self.x = x
        self.x_description = description
        self.x_image.set_image(x.reshape(image_side(x.numel()), -1))  # SIDE × SIDE for MNIST
        self.opt_loc = self.opt_scale = self.optimised_numbers = None
        self.opt_curve.setData([], [])
        self.opt_runner.cancel()
        self._q_is_encoder = True
        self.request_grid()

    def request_grid(self) -> None:
        self._grid_timer.stop()
        if not self.supported() or self.x is None:
            return
        self.enc_loc, self.enc_scale = encode_one(self.hub.model, self.x)  # (2,) each
        if self._q_is_encoder:
            self._set_q(self.enc_loc, self.enc_scale, request=False)
        self.plot.set_ellipse(self.enc_curve, self.enc_loc, self.enc_scale, 1.0)
        self.status.setText(f"{self.x_description}: computing p(z|x) on a {GRID_N}×{GRID_N} grid …")
        self.grid_runner.submit(
            posterior_grid_task, self.hub.model, self.x.clone(), self.enc_loc, self.enc_scale, GRID_N, GRID_COARSE
        )

    def _on_grid_preview(self, task_id: int, fraction: float, grid) -> None:
        if grid is not None:
            self._show_heat(grid)
            self._fit_view(grid)
            self.heat_updated.emit(False)

    def _on_grid_finished(self, task_id: int, grid) -> None:
        self.grid = grid
        self.log_px = float(grid.log_px[0])
        self._show_heat(grid)
        x0, y0, w, h = self._fit_view(grid)
        self.heat_updated.emit(True)
        self.status.setText(
            f"{self.x_description}: p(z|x) on a {len(grid.z1)}×{len(grid.z2)} grid over "
            f"[{x0:.2f}, {x0 + w:.2f}] × [{y0:.2f}, {y0 + h:.2f}]; log p(x) is its integral (midpoint rule)."
        )
        self.encoder_numbers = None
        self.request_numbers()
        self.posterior_updated.emit()

    def _fit_view(self, grid) -> tuple[float, float, float, float]:
        rect = V.grid_rect(grid.z1.numpy(), grid.z2.numpy())  # float64: pyqtgraph's range checks overflow float32
        self.plot.fit_to(rect)
        return rect

    def _show_heat(self, grid=None) -> None:
        grid = grid if grid is not None else self.grid
        if grid is not None:
            self.plot.show_heat(
                V.heat_image(grid.log_post[0].numpy(), grid.z1.numpy(), grid.z2.numpy(), self.log_scale.isChecked())
            )

    # --- q --------------------------------------------------------------------------------------
    def set_q(self, loc, scale) -> None:
        """Set q by hand (as the sliders and handles do) and recompute the numbers."""
        self._q_is_encoder = False
        self._set_q(np.asarray(loc, dtype=np.float64), np.asarray(scale, dtype=np.float64))

    def _set_q(self, loc: np.ndarray, scale: np.ndarray, request: bool = True) -> None:
        self.q_loc = np.clip(np.array(loc, dtype=np.float64), -MU_RANGE, MU_RANGE)
        self.q_scale = np.clip(
            np.array(scale, dtype=np.float64), _sigma_from_slider(0), _sigma_from_slider(SLIDER_TICKS)
        )
        for i in range(2):
            self.mu_sliders[i].blockSignals(True)
            self.mu_sliders[i].setValue(int(round(self.q_loc[i] * 100)))
            self.mu_sliders[i].blockSignals(False)
            self.sigma_sliders[i].blockSignals(True)
            self.sigma_sliders[i].setValue(_slider_from_sigma(self.q_scale[i]))
            self.sigma_sliders[i].blockSignals(False)
            self.mu_labels[i].setText(f"{self.q_loc[i]:+.2f}")
            self.sigma_labels[i].setText(f"{self.q_scale[i]:.3f}")
        self.plot.show_q(self.q_loc, self.q_scale)
        self.recon_image.set_image(decode_image(self.hub.model, self.q_loc))
        if request:
            self._numbers_timer.start()

    def request_numbers(self) -> None:
        self._numbers_timer.stop()
        if self.log_px is None or self.x is None:
            return
        self._seed += 1
        self.numbers_runner.submit(
            posterior_numbers_task,
            self.hub.model,
            self.x.clone(),
            self.q_loc,
            self.q_scale,
            self.log_px,
            self.k_spin.value(),
            self._seed,
            SHOWN_SAMPLES,
        )

    def _on_numbers_finished(self, task_id: int, result) -> None:
        num, z = result.numbers, result.z
        self.numbers = num
        if self._q_is_encoder and self.encoder_numbers is None:
            self.encoder_numbers = num
        # area ∝ k w̃: a sample of average weight is 9 px across, the heaviest at most 30 px
        self.samples.setData(z[:, 0], z[:, 1], size=V.sample_sizes(result.w))
        self._show_numbers()
        self.numbers_updated.emit()

    def _show_numbers(self) -> None:
        n = self.numbers
        if n is None:
            return
        rows = [
            ("log p(x)", f"{n.log_px:.2f}", "exact: grid integral"),
            ("ELBO(q)", f"{n.elbo:.2f}", "E<sub>q</sub>[log p(x|z)] − KL(q ‖ p(z))"),
            ("KL(q ‖ p(z|x))", f"<b>{n.kl_post:.3f}</b>", "= log p(x) − ELBO ≥ 0"),
            (f"IW-{n.iw_k}", f"{n.iw_log_px:.2f}", "importance sampling with q"),
            ("E<sub>q</sub>[log p(x|z)]", f"{n.recon:.2f}", "reconstruction"),
            ("KL(q ‖ p(z))", f"{n.kl_prior:.2f}", "closed form"),
        ]
        if self.encoder_numbers is not None and self.optimised_numbers is not None:
            gap = self.optimised_numbers.elbo - self.encoder_numbers.elbo
            rows.append(("amortization gap", f"<b>{gap:.3f}</b>", "ELBO(φ*) − ELBO(encoder)"))
            rows.append(("approximation gap", f"{self.optimised_numbers.kl_post:.3f}", "KL(q<sub>φ*</sub> ‖ p(z|x))"))
        html = "<table cellspacing='3'>" + "".join(
            f"<tr><td>{a}</td><td align='right'>{b}</td><td style='color:gray'>&nbsp;{c}</td></tr>" for a, b, c in rows
        )
        self.numbers_label.setText(html + "</table><span style='color:gray'>nats per image</span>")

    # --- optimisation ---------------------------------------------------------------------------
    def optimise(self, steps: int = 200) -> None:
        if self.log_px is None or self.x is None:
            return
        self.optimise_button.setEnabled(False)
        self.status.setText("Optimising φ = (μ, σ) for this digit …")
        self.opt_runner.submit(
            optimise_q_task,
            self.hub.model,
            self.x.clone(),
            self.enc_loc,
            self.enc_scale,
            self.log_px,
            self.k_spin.value(),
            steps,
        )

    def _on_optimise_progress(self, task_id: int, fraction: float, payload) -> None:
        if payload is not None:
            loc, scale, elbo = payload
            self.plot.set_ellipse(self.opt_curve, loc, scale, 1.0)
            self.status.setText(f"Optimising φ … {100 * fraction:.0f} %, ELBO {elbo:.2f}")

    def _on_optimise_finished(self, task_id: int, result) -> None:
        num, trace = result.numbers, result.elbo_trace
        self.opt_loc, self.opt_scale = result.loc, result.scale
        self.optimised_numbers = num
        self.plot.set_ellipse(self.opt_curve, self.opt_loc, self.opt_scale, 1.0)
        self.optimise_button.setEnabled(True)
        self._q_is_encoder = False
        self._set_q(self.opt_loc, self.opt_scale)
        enc = self.encoder_numbers.elbo if self.encoder_numbers is not None else float("nan")
        self.status.setText(f"φ* after {len(trace) - 1} Adam steps: ELBO {num.elbo:.2f} (encoder {enc:.2f}).")
        self.optimised.emit()

    # --- events ----------------------------------------------------------------------------------
    def _on_q_slider_changed(self, *_):
        loc = np.array([s.value() / 100 for s in self.mu_sliders])
        scale = np.array([_sigma_from_slider(s.value()) for s in self.sigma_sliders])
        self._q_is_encoder = False
        self._set_q(loc, scale)

    def _on_centre_dragged(self, *_):
        p = self.centre.pos()
        self._q_is_encoder = False
        self._set_q(np.array([p.x(), p.y()]), self.q_scale)

    def _on_handle_dragged(self, *_):
        p1, p2 = self.handle1.pos(), self.handle2.pos()
        scale = np.array([abs(p1.x() - self.q_loc[0]), abs(p2.y() - self.q_loc[1])])
        self._q_is_encoder = False
        self._set_q(self.q_loc, scale)

    def _on_encoder_clicked(self) -> None:
        if self.enc_loc is not None:
            self._q_is_encoder = True
            self._set_q(self.enc_loc, self.enc_scale)

    def _on_optimise_clicked(self) -> None:
        self.optimise()

    def _on_k_changed(self, *_):
        self._numbers_timer.start()

    def _on_log_scale_toggled(self, *_):
        self._show_heat()

    def _on_digit_picked(self, i: int) -> None:
        self._set_x(self.picker.x(), f"test digit {i}")

    def _on_source_toggled(self, *_):
        self.picker.setVisible(self.use_test.isChecked())
        self.draw_box.setVisible(not self.use_test.isChecked())
        if self.use_test.isChecked():
            self._on_digit_picked(self.picker.index())
        elif self.draw_pad.image().max() > 0:
            self._on_drawn(self.draw_pad.image())

    def _on_drawn(self, img) -> None:
        if not self.use_drawn.isChecked():
            self.use_drawn.setChecked(True)  # -> _on_source_toggled -> here again
            return
        side = image_side(self.hub.config.x_dim)  # the pad is SIDE × SIDE; the model may take another side
        x = to_mnist_format(np.asarray(img).reshape(SIDE, SIDE), invert_if_light_background=False, side=side)
        if self.hub.config.likelihood == "bernoulli":
            x = (x > 0.5).astype(np.float32)  # a Bernoulli model's density is for binary pixels
        self.set_digit(x.reshape(-1), "your drawing")

    def _on_clear_clicked(self) -> None:
        self.draw_pad.clear()

    def _on_task_failed(self, task_id: int, message: str) -> None:
        self.optimise_button.setEnabled(True)
        self.status.setText("Failed: " + message.splitlines()[0])

    def _on_model_changed(self) -> None:
        ok = self.supported()
        for w in (self.optimise_button, self.encoder_button, self.k_spin, *self.mu_sliders, *self.sigma_sliders):
            w.setEnabled(ok)
        for item in self.plot.items_for_q():
            item.setVisible(ok)
        self.message.setVisible(not ok)
        self.grid = self.log_px = self.numbers = None
        self.encoder_numbers = None
        if not ok:
            self.plot.show_message(
                f"The exact posterior needs a 2-D latent;\nthis model has {self.hub.latent_dim} "
                "dimensions.\nOpen or train a 2-D model."
            )
            self.numbers_label.setText("")
            self.status.setText("")
            return
        self.set_digit_index(self.picker.index())

    def _on_new_weights(self) -> None:
        # while training and shown: a new heat map at most every SNAPSHOT_INTERVAL_S (SnapshotGate);
        # a hidden panel catches up once when shown
        if self.supported():
            self._grid_timer.start(0)
