"""Posterior view (2-D latents): the exact p(z|x) beside the encoder's guess q(z|x), for one digit.

- Heat map: p(z|x) = p(x|z) p(z) / p(x) on a grid zoomed onto the posterior's mass
  (core.latent.posterior_grid), log p(x) by the grid integral (midpoint rule).
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
import pyqtgraph as pg
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

from lvm_studio.core.gmm import ellipse_points
from lvm_studio.core.images import to_mnist_format
from lvm_studio.core.latent import importance_samples, optimise_phi, posterior_grid, posterior_numbers
from lvm_studio.ui.widgets.controls import TestDigitPicker, button
from lvm_studio.ui.widgets.digit_image import DigitImage, DrawPad
from lvm_studio.workers.tasks import TaskRunner

GRID_N = 64  # heat-map cells per side
GRID_COARSE = 25  # cells per side of the two coarse searches that find the mass (core.latent.posterior_grid)
SHOWN_SAMPLES = 300  # importance samples drawn on the map (IW-k itself uses all k)
MU_RANGE = 5.0
LOG10_SIGMA = (-2.0, math.log10(3.0))  # σ sliders: 0.01 … 3, logarithmic
SLIDER_TICKS = 1000


def _grid_task(ctx, model, x, include):
    # the zoomed coarse grid is shown first, then the fine one (and its log p(x))
    return posterior_grid(
        model, x, n=GRID_N, n_coarse=GRID_COARSE, include=include, preview=lambda g: (ctx.check(), ctx.report(0.3, g))
    )


def _numbers_task(ctx, model, x, loc, scale, log_px, k, seed):
    g = torch.Generator().manual_seed(seed)
    num = posterior_numbers(model, x, loc, scale, log_px, k=k, generator=g)
    ctx.check()
    z, log_w, w = importance_samples(model, x, loc, scale, min(k, SHOWN_SAMPLES), generator=g)
    return num, z.numpy().copy(), w.numpy().copy()


class _Progress:
    """Forwards optimise_phi's callback to ctx.report (the payload is a detached copy)."""

    def __init__(self, ctx, steps):
        self.ctx, self.steps = ctx, steps

    def __call__(self, step, elbo, loc, scale):
        self.ctx.report(step / self.steps, (loc[0].numpy().copy(), scale[0].numpy().copy(), float(elbo[0])))


def _optimise_task(ctx, model, x, loc, scale, log_px, k, steps):
    res = optimise_phi(
        model, x, steps=steps, init=(loc, scale), callback=_Progress(ctx, steps), should_stop=ctx.cancelled
    )
    ctx.check()
    g = torch.Generator().manual_seed(0)
    num = posterior_numbers(model, x, res.z_loc, res.z_scale, log_px, k=k, generator=g)
    return res.z_loc[0].numpy().copy(), res.z_scale[0].numpy().copy(), num, res.elbo_trace[:, 0].numpy().copy()


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

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.x: torch.Tensor | None = None  # (1, 784) the digit
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

        # --- the plot
        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(320, 320)
        self.plot.setAspectLocked(True)
        self.plot.setLabel("bottom", "z1")
        self.plot.setLabel("left", "z2")
        self.heat = pg.ImageItem(axisOrder="col-major")  # heat[i, j] is z = (z1[i], z2[j])
        self.heat.setColorMap(pg.colormap.get("viridis"))
        self.heat.setZValue(-10)
        self.plot.addItem(self.heat)
        self.legend = self.plot.addLegend(
            offset=(-8, 8), labelTextColor=(235, 235, 235), brush=pg.mkBrush(0, 0, 0, 160)
        )
        white = pg.mkPen((255, 255, 255), width=2)
        self.q1 = self.plot.plot(pen=white, name="q(z|x): 1σ")
        self.q2 = self.plot.plot(
            pen=pg.mkPen((255, 255, 255), width=1.5, style=Qt.PenStyle.DashLine), name="q(z|x): 2σ"
        )
        self.enc_curve = self.plot.plot(
            pen=pg.mkPen((200, 200, 200), width=1, style=Qt.PenStyle.DotLine), name="encoder's q, 1σ"
        )
        self.opt_curve = self.plot.plot(pen=pg.mkPen((255, 80, 200), width=2), name="optimised φ*, 1σ")
        self.samples = pg.ScatterPlotItem(
            pen=pg.mkPen(60, 30, 0, 160), brush=pg.mkBrush(255, 140, 0, 150), name="z ~ q, area ∝ weight w̃"
        )
        self.samples.setZValue(5)
        self.plot.addItem(self.samples)
        for curve in (self.q1, self.q2, self.enc_curve, self.opt_curve):
            curve.setZValue(10)
        self.centre = pg.TargetItem(pos=(0, 0), size=14, pen=pg.mkPen((255, 255, 255), width=2), symbol="o")
        self.handle1 = pg.TargetItem(pos=(1, 0), size=10, pen=pg.mkPen((255, 255, 255)), symbol="s")
        self.handle2 = pg.TargetItem(pos=(0, 1), size=10, pen=pg.mkPen((255, 255, 255)), symbol="s")
        for h, tip in ((self.centre, "drag: move μ"), (self.handle1, "drag: σ1"), (self.handle2, "drag: σ2")):
            h.setZValue(30)
            h.setToolTip(tip)
            self.plot.addItem(h)
        self.message = pg.TextItem("", color=(230, 230, 230), anchor=(0.5, 0.5))
        self.plot.addItem(self.message)

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
        hub.weights_updated.connect(self._on_weights_updated)
        self._on_model_changed()

    # --- the digit and the grid ----------------------------------------------------------------
    def supported(self) -> bool:
        return self.hub.latent_dim == 2

    def set_digit_index(self, i: int) -> None:
        self.use_test.setChecked(True)
        self.picker.set_index(i, emit=False)
        self._set_x(self.picker.x(), f"test digit {i}")

    def set_digit(self, x, description: str = "a drawn digit") -> None:
        self._set_x(torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(1, 784), description)

    def _set_x(self, x: torch.Tensor, description: str) -> None:
        self.x = x
        self.x_description = description
        self.x_image.set_image(x.reshape(28, 28))
        self.opt_loc = self.opt_scale = self.optimised_numbers = None
        self.opt_curve.setData([], [])
        self.opt_runner.cancel()
        self._q_is_encoder = True
        self.request_grid()

    def request_grid(self) -> None:
        self._grid_timer.stop()
        if not self.supported() or self.x is None:
            return
        with torch.no_grad():
            loc, scale = self.hub.model.encode(self.x)  # (1, 2)
        self.enc_loc, self.enc_scale = loc[0].numpy().astype(np.float64), scale[0].numpy().astype(np.float64)
        if self._q_is_encoder:
            self._set_q(self.enc_loc, self.enc_scale, request=False)
        self._curve(self.enc_curve, self.enc_loc, self.enc_scale, 1.0)
        self.status.setText(f"{self.x_description}: computing p(z|x) on a {GRID_N}×{GRID_N} grid …")
        self.grid_runner.submit(_grid_task, self.hub.model, self.x.clone(), (loc.clone(), scale.clone()))

    def _on_grid_preview(self, task_id: int, fraction: float, grid) -> None:
        if grid is not None:
            self._show_heat(grid)
            self._fit_view(grid)
            self.heat_updated.emit(False)

    def _on_grid_finished(self, task_id: int, grid) -> None:
        self.grid = grid
        self.log_px = float(grid.log_px[0])
        self._show_heat(grid)
        z1, z2 = self._fit_view(grid)
        d1, d2 = float(z1[1] - z1[0]), float(z2[1] - z2[0])
        self.heat_updated.emit(True)
        self.status.setText(
            f"{self.x_description}: p(z|x) on a {len(z1)}×{len(z2)} grid over "
            f"[{z1[0] - d1 / 2:.2f}, {z1[-1] + d1 / 2:.2f}] × [{z2[0] - d2 / 2:.2f}, "
            f"{z2[-1] + d2 / 2:.2f}]; log p(x) is its integral (midpoint rule)."
        )
        self.encoder_numbers = None
        self.request_numbers()
        self.posterior_updated.emit()

    def _fit_view(self, grid):
        z1, z2 = (
            grid.z1.double().numpy(),
            grid.z2.double().numpy(),
        )  # float64: pyqtgraph's range checks overflow float32
        d1, d2 = float(z1[1] - z1[0]), float(z2[1] - z2[0])
        self.plot.getViewBox().setRange(
            xRange=(z1[0] - d1 / 2, z1[-1] + d1 / 2), yRange=(z2[0] - d2 / 2, z2[-1] + d2 / 2), padding=0.02
        )
        return z1, z2

    def _show_heat(self, grid=None) -> None:
        grid = grid if grid is not None else self.grid
        if grid is None:
            return
        lp = grid.log_post[0].numpy()
        peak = float(lp.max())
        if self.log_scale.isChecked():
            img, levels = np.clip(lp - peak, -12.0, 0.0), (-12.0, 0.0)
        else:
            img, levels = np.exp(lp - peak), (0.0, 1.0)
        z1, z2 = grid.z1.double().numpy(), grid.z2.double().numpy()
        d1, d2 = float(z1[1] - z1[0]), float(z2[1] - z2[0])
        self.heat.setImage(np.ascontiguousarray(img, dtype=np.float32), levels=levels, autoLevels=False)
        self.heat.setRect(float(z1[0] - d1 / 2), float(z2[0] - d2 / 2), d1 * len(z1), d2 * len(z2))

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
        self._place_handles()
        self._curve(self.q1, self.q_loc, self.q_scale, 1.0)
        self._curve(self.q2, self.q_loc, self.q_scale, 2.0)
        with torch.no_grad():
            self.recon_image.set_image(
                self.hub.model.decode_mean(torch.tensor(self.q_loc, dtype=torch.float32)[None])[0]
            )
        if request:
            self._numbers_timer.start()

    def _place_handles(self) -> None:
        for h, pos in (
            (self.centre, self.q_loc),
            (self.handle1, self.q_loc + [self.q_scale[0], 0]),
            (self.handle2, self.q_loc + [0, self.q_scale[1]]),
        ):
            h.blockSignals(True)
            h.setPos(float(pos[0]), float(pos[1]))
            h.blockSignals(False)

    @staticmethod
    def _curve(item, loc, scale, n_sigma) -> None:
        pts = ellipse_points(loc, np.diag(np.asarray(scale) ** 2), n_sigma, 96)
        item.setData(pts[:, 0], pts[:, 1])

    def request_numbers(self) -> None:
        self._numbers_timer.stop()
        if self.log_px is None or self.x is None:
            return
        self._seed += 1
        loc = torch.tensor(self.q_loc, dtype=torch.float32)[None]
        scale = torch.tensor(self.q_scale, dtype=torch.float32)[None]
        self.numbers_runner.submit(
            _numbers_task, self.hub.model, self.x.clone(), loc, scale, self.log_px, self.k_spin.value(), self._seed
        )

    def _on_numbers_finished(self, task_id: int, result) -> None:
        num, z, w = result
        self.numbers = num
        if self._q_is_encoder and self.encoder_numbers is None:
            self.encoder_numbers = num
        # area ∝ k w̃: a sample of average weight is 9 px across, the heaviest at most 30 px
        sizes = np.clip(9.0 * np.sqrt(len(w) * w), 2.0, 30.0)
        self.samples.setData(z[:, 0], z[:, 1], size=sizes)
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
        loc = torch.tensor(self.enc_loc, dtype=torch.float32)[None]
        scale = torch.tensor(self.enc_scale, dtype=torch.float32)[None]
        self.optimise_button.setEnabled(False)
        self.status.setText("Optimising φ = (μ, σ) for this digit …")
        self.opt_runner.submit(
            _optimise_task, self.hub.model, self.x.clone(), loc, scale, self.log_px, self.k_spin.value(), steps
        )

    def _on_optimise_progress(self, task_id: int, fraction: float, payload) -> None:
        if payload is not None:
            loc, scale, elbo = payload
            self._curve(self.opt_curve, loc, scale, 1.0)
            self.status.setText(f"Optimising φ … {100 * fraction:.0f} %, ELBO {elbo:.2f}")

    def _on_optimise_finished(self, task_id: int, result) -> None:
        loc, scale, num, trace = result
        self.opt_loc, self.opt_scale = loc.astype(np.float64), scale.astype(np.float64)
        self.optimised_numbers = num
        self._curve(self.opt_curve, self.opt_loc, self.opt_scale, 1.0)
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
        x = to_mnist_format(np.asarray(img).reshape(28, 28), invert_if_light_background=False)
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
        for item in (
            self.heat,
            self.q1,
            self.q2,
            self.enc_curve,
            self.opt_curve,
            self.samples,
            self.centre,
            self.handle1,
            self.handle2,
        ):
            item.setVisible(ok)
        self.message.setVisible(not ok)
        self.grid = self.log_px = self.numbers = None
        self.encoder_numbers = None
        if not ok:
            self.message.setText(
                f"The exact posterior needs a 2-D latent;\nthis model has {self.hub.latent_dim} "
                "dimensions.\nOpen or train a 2-D model."
            )
            self.message.setPos(0, 0)
            self.plot.getViewBox().setRange(xRange=(-1, 1), yRange=(-1, 1))
            self.numbers_label.setText("")
            self.status.setText("")
            return
        self.set_digit_index(self.picker.index())

    def _on_weights_updated(self, step: int) -> None:
        if not self.supported():
            return
        if not self.isVisible():
            self._stale = True  # catch up when shown
        elif not self._grid_timer.isActive():
            self._grid_timer.start(1500)  # while training: a new heat map at most every 1.5 s

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if getattr(self, "_stale", False):
            self._stale = False
            self._grid_timer.start(0)
