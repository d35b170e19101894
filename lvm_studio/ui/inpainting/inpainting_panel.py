"""Inpainting: draw or load a digit, hide part of it, and watch q(z) fitted to the seen pixels fill in the rest.

The fit is lvm_studio.core.inpainting.fit_q: q(z; φ) = N(φ_μ, diag φ_σ²) maximises the ELBO of the
observed pixels only, E_q[log p(x_o|z)] − KL(q ‖ p(z)) (Kingma & Welling 2014, eq. 3 with x → x_o),
starting from the encoder's guess. While it runs the panel shows, live: the observed-pixel ELBO
per Adam step, the mean completion (observed pixels kept, missing ones E_q[E[x_i|z]]), a grid of
completions for z ~ q and the per-pixel spread of E[x_i|z] over q. Beside them: what the encoder's
guess alone gives (the amortized completion), and optionally posterior samples by importance
resampling with q as the proposal (Rubin 1988). For a 2-D latent, the latent plane shows the exact
p(z|x_o) on a grid with q's ellipses.

Fits run on a TaskRunner: every edit (and, while a stroke is drawn, every `live_interval_ms`) submits
a new fit, which cancels the one running, so the newest stroke wins.

Centring. The model knows digits placed as MNIST places them (fit in 20 × 20, centre of mass at
the centre). A drawn digit is centred that way (core.images.center_by_mass) when "Centre" is
pressed, and, with "auto-centre" on, at the moment pixels are first hidden on a fresh drawing (a
mask preset, or choosing a mask tool): the digit is complete then, and nothing moves under the
pen. When a mask is already there (a half-drawn digit beside a hidden region), strokes are used as
drawn: the dashed box on the canvas shows where MNIST's ink lies. The mask moves with the ink.
Drawn grey levels are given to the model as they are (a Bernoulli decoder's log-likelihood is then
−BCE, which a fit maximises just the same); loaded test digits are the binarized test set.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core import inpainting as ip
from lvm_studio.core import masks
from lvm_studio.core.gmm import ellipse_points
from lvm_studio.core.images import BOX, CENTRE, INK_THRESHOLD, area_resize, center_by_mass, centre_of_mass
from lvm_studio.core.latent import posterior_grid, tile_images
from lvm_studio.ui.inpainting.digit_canvas import DigitCanvas, MaskedDigitImage
from lvm_studio.ui.widgets import style
from lvm_studio.ui.widgets.controls import TestDigitPicker, button
from lvm_studio.ui.widgets.digit_image import save_grey_png
from lvm_studio.ui.widgets.image_io import ImageLoadError, file_dialog_filter, load_image_file
from lvm_studio.workers.tasks import TaskCancelled, TaskRunner

SIDE = 28
ELBO_K = 256  # z samples for the observed-pixel ELBO numbers (common random numbers for guess and fit)
GRID_N = 48  # latent-plane heat map cells per side (2-D latents)
GRID_COARSE = 25
SAMPLE_ROWS = 4  # sample grids are SAMPLE_ROWS × SAMPLE_ROWS completions
WEIGHTS_REFIT_MS = 1000  # while training: a new fit at most this often
HEAT_NATS = 12.0  # the latent plane colours log p(z|x_o) from this far below its peak up to the peak
VIEW_INTERVAL_MS = 80  # live fit reports are drawn at most this often
VIEW_INTERVAL_STROKE_MS = 250  # … and this often while a stroke is being drawn
STD_LEVEL = 0.5  # the uncertainty map's colour scale: 0 … 0.5 (the largest std of a value in [0, 1])


# --- the computation (runs in the TaskRunner's thread) ------------------------------------------


@dataclass(frozen=True)
class GuessReport:
    """The encoder's guess for the current input, reported before the fit starts."""

    completion: ip.Completion
    z_loc: torch.Tensor  # (1, latent)
    z_scale: torch.Tensor


@dataclass(frozen=True)
class FitOutcome:
    x: np.ndarray  # (784,) the model's input
    missing: np.ndarray  # (784,) bool
    result: ip.InpaintResult
    elbo_guess: float  # observed-pixel ELBO of the encoder's guess, ELBO_K samples
    elbo_fitted: float  # the same for the fitted q, with the same noise
    importance: ip.ImportanceSamples | None
    grid: object | None  # core GridPosterior of p(z|x_o) (2-D latents), once computed
    model_version: int


class _ObservedModel:
    """The model seen through the observed pixels: log_px_given_z(x, z) = log p(x_o|z), so the latent
    explorer's posterior_grid draws p(z|x_o) ∝ p(x_o|z) p(z)."""

    def __init__(self, model, x: torch.Tensor, missing: torch.Tensor):
        self.latent_dim = model.latent_dim
        self._lik = ip.ObservedLikelihood(model, x, missing)

    def log_px_given_z(self, x, z):  # z (c, 1, latent) -> (c, 1)
        return self._lik.value(z)


def _covering(*qs) -> tuple[torch.Tensor, torch.Tensor]:
    """A (loc, scale) whose 2σ box covers the 2σ boxes of all the given (loc, scale)."""
    lo = torch.stack([loc - 2 * scale for loc, scale in qs]).amin(0)
    hi = torch.stack([loc + 2 * scale for loc, scale in qs]).amax(0)
    return (lo + hi) / 2, (hi - lo) / 4


def fit_task(
    ctx,
    model,
    x: np.ndarray,
    missing: np.ndarray,
    config: ip.InpaintConfig,
    importance_k: int,
    want_grid: bool,
    model_version: int,
) -> FitOutcome:
    """Encoder's guess (reported), the fit (reported every config.report_every steps), ELBO numbers,
    importance resampling, and for a 2-D latent the grid of p(z|x_o) (the outcome is reported before it)."""
    xt, mt = ip.prepare(x, missing)
    g = torch.Generator().manual_seed(config.seed or 0)
    guess = ip.amortized_guess(model, xt, mt)
    amortized = ip.complete(
        model, xt, mt, *guess, n=config.n_mean_samples, n_keep=config.n_completion_samples, generator=g
    )
    ctx.report(0.0, GuessReport(amortized, guess[0].clone(), guess[1].clone()))
    steps = max(config.steps, 1)
    res = ip.fit_q(
        model, xt, mt, config, callback=lambda p: ctx.report(p.step / steps, p), should_stop=ctx.cancelled, init=guess
    )
    if res.stopped:
        raise TaskCancelled()
    elbo_guess = ip.observed_elbo(model, xt, mt, *guess, k=ELBO_K, generator=torch.Generator().manual_seed(1))
    elbo_fit = ip.observed_elbo(
        model, xt, mt, res.z_loc, res.z_scale, k=ELBO_K, generator=torch.Generator().manual_seed(1)
    )
    ctx.check()
    imp = None
    if importance_k > 0:
        imp = ip.importance_resample(
            model, xt, mt, res.z_loc, res.z_scale, k=importance_k, n=SAMPLE_ROWS * SAMPLE_ROWS, generator=g
        )
        ctx.check()
    outcome = FitOutcome(
        x=np.array(x, dtype=np.float32).reshape(-1),
        missing=np.array(missing, dtype=bool).reshape(-1),
        result=res,
        elbo_guess=float(elbo_guess[0]),
        elbo_fitted=float(elbo_fit[0]),
        importance=imp,
        grid=None,
        model_version=model_version,
    )
    if not want_grid or model.latent_dim != 2:
        return outcome
    ctx.report(1.0, outcome)
    include = _covering((res.z_loc, res.z_scale), guess)
    grid = posterior_grid(_ObservedModel(model, xt, mt), xt, n=GRID_N, n_coarse=GRID_COARSE, include=include)
    return dataclasses.replace(outcome, grid=grid)


# --- centring a drawing, with its mask ------------------------------------------------------------


def centre_with_mask(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-centre a drawing (core.images.center_by_mass: fit 20 × 20, centre of mass at (14, 14))
    and carry the mask along by the same scaling and shift (nearest neighbour, edges extended).
    A blank image is returned as it is."""
    image = np.clip(np.asarray(image, dtype=np.float64).reshape(SIDE, SIDE), 0.0, 1.0)
    mask = np.asarray(mask, dtype=bool).reshape(SIDE, SIDE)
    ink = image > INK_THRESHOLD
    if not ink.any():
        return image.astype(np.float32), mask.copy()
    out = center_by_mass(image)
    # the placement center_by_mass chose: crop box, scale, integer offset of the resized crop
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    r0, c0 = rows[0], cols[0]
    h, w = rows[-1] - r0 + 1, cols[-1] - c0 + 1
    scale = BOX / max(h, w)
    new_h, new_w = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    digit = np.clip(area_resize(image[r0 : r0 + h, c0 : c0 + w], new_h, new_w), 0.0, 1.0)
    com_r, com_c = centre_of_mass(digit)
    top, left = int(np.floor(CENTRE - com_r + 0.5)), int(np.floor(CENTRE - com_c + 0.5))
    # each output pixel's centre, mapped back into the input: nearest input pixel
    src_r = np.floor(r0 + (np.arange(SIDE) - top + 0.5) * h / new_h).astype(int).clip(0, SIDE - 1)
    src_c = np.floor(c0 + (np.arange(SIDE) - left + 0.5) * w / new_w).astype(int).clip(0, SIDE - 1)
    return out, mask[np.ix_(src_r, src_c)]


def uncertainty_rgb(std: np.ndarray) -> np.ndarray:
    """(28, 28) std in [0, STD_LEVEL] -> (28, 28, 3) uint8 through the inferno colour map."""
    v = np.clip(np.asarray(std, dtype=np.float64).reshape(SIDE, SIDE) / STD_LEVEL, 0.0, 1.0)
    rgba = _INFERNO.map(v.reshape(-1), mode="byte")  # (784, 4)
    return np.ascontiguousarray(rgba[:, :3].reshape(SIDE, SIDE, 3))


_INFERNO = pg.colormap.get("inferno")


# --- the panel -------------------------------------------------------------------------------------


class InpaintingPanel(QWidget):
    fit_started = Signal()
    fit_progressed = Signal(int)  # Adam steps done
    fit_finished = Signal()  # the final outcome (and, for a 2-D latent, the p(z|x_o) grid) is shown
    fit_skipped = Signal(str)  # nothing to fit (nothing hidden, or everything blank): why
    load_failed = Signal(str)  # an image file could not be loaded: the message shown

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.outcome: FitOutcome | None = None
        self.guess: GuessReport | None = None
        self.progress_report: ip.InpaintProgress | None = None
        self.last_error: str | None = None
        self.error_box: QMessageBox | None = None
        self._drawn_uncentred = False  # the canvas holds strokes not yet centred MNIST-style
        self.fits_submitted = 0  # fits started (the bench reads it)
        self._stale = True  # a fit is owed (model or weights changed while hidden, or never fitted)
        self._random_seed = 0

        self.runner = TaskRunner("inpainting", self)
        self.runner.progressed.connect(self._on_fit_progress)
        self.runner.finished.connect(self._on_fit_finished)
        self.runner.failed.connect(self._on_fit_failed)
        self.runner.cancelled.connect(self._on_fit_cancelled)

        # --- the canvas and its tools
        self.canvas = DigitCanvas(min_side=252)
        self.tool_buttons: dict[str, QToolButton] = {}
        self._tool_group = QButtonGroup(self)
        tools = QHBoxLayout()
        for mode, text, tip in (
            ("draw", "Draw", "Draw with the left button, erase with the right"),
            ("erase", "Erase", "Erase with the left button"),
            (
                "mask",
                "Hide brush",
                "Hide pixels (mark them missing) with the left button, show them again with the right",
            ),
            ("box", "Hide box", "Drag a box to hide it; the right button shows it again"),
        ):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setAutoRaise(False)
            self._tool_group.addButton(b)
            self.tool_buttons[mode] = b
            tools.addWidget(b)
            b.clicked.connect(self._on_tool_clicked)
        self.tool_buttons["draw"].setChecked(True)
        tools.addStretch(1)
        self.brush_size = QDoubleSpinBox()
        self.brush_size.setRange(0.5, 6.0)
        self.brush_size.setSingleStep(0.25)
        self.brush_size.setValue(self.canvas.brush_radius)
        self.brush_size.setToolTip("Brush radius in pixels (draw, erase and hide brush)")
        self.grey = QSlider(Qt.Orientation.Horizontal)
        self.grey.setRange(10, 100)
        self.grey.setValue(100)
        self.grey.setFixedWidth(80)
        self.grey.setToolTip("Grey level of the ink (100 % = white ink, as in MNIST)")
        tools.addWidget(QLabel("size"))
        tools.addWidget(self.brush_size)
        tools.addWidget(QLabel("ink"))
        tools.addWidget(self.grey)

        self.undo_button = button("Undo", "Undo the last stroke, mask or load (Ctrl+Z)", self.canvas.undo)
        self.redo_button = button("Redo", "Redo (Ctrl+Shift+Z)", self.canvas.redo)
        self.clear_button = button("Clear", "A blank canvas with nothing hidden", self._on_clear_clicked)
        self.centre_button = button(
            "Centre",
            "Centre the drawing as MNIST does: fit it in 20×20 pixels with its "
            "centre of mass in the middle (the mask moves with it)",
            self.centre_drawing,
        )
        self.auto_centre = QCheckBox("auto-centre")
        self.auto_centre.setChecked(True)
        self.auto_centre.setToolTip("Centre a fresh drawing when you first hide part of it")
        edit_row = QHBoxLayout()
        for w in (self.undo_button, self.redo_button, self.clear_button, self.centre_button):
            edit_row.addWidget(w)
        edit_row.addWidget(self.auto_centre)
        edit_row.addStretch(1)

        # --- sources
        self.picker = TestDigitPicker(hub, label="Test digit", seed=11)
        self.picker.set_index(0, emit=False)
        self.load_test_button = button(
            "Load", "Put this test digit on the canvas (the mask stays)", self._on_load_test_clicked
        )
        self.open_button = button(
            "Open image…",
            "Load a picture of a digit (PNG, JPEG, …): it is turned into 28×28 grey levels and centred as MNIST is",
            self._on_open_clicked,
        )
        src_row = QHBoxLayout()
        src_row.addWidget(self.picker, 1)
        src_row.addWidget(self.load_test_button)
        src_row.addWidget(self.open_button)

        # --- mask presets
        self.preset_buttons: dict[str, QPushButton] = {}
        mask_box = QGroupBox("Hide")
        ml = QGridLayout(mask_box)
        ml.setContentsMargins(6, 4, 6, 4)
        names = [
            ("top_half", "Top half"),
            ("bottom_half", "Bottom half"),
            ("left_half", "Left half"),
            ("right_half", "Right half"),
            ("centre_box", "Centre box"),
        ]
        for i, (name, label) in enumerate(names):
            b = button(label, f"Hide the {label.lower()} (replaces the mask)", self._on_preset_clicked)
            b.setProperty("preset", name)
            self.preset_buttons[name] = b
            ml.addWidget(b, 0, i)
        self.random_fraction = QSpinBox()
        self.random_fraction.setRange(1, 99)
        self.random_fraction.setValue(50)
        self.random_fraction.setSuffix(" %")
        self.random_fraction.setToolTip("Fraction of pixels the random mask hides")
        b = button(
            "Random",
            "Hide this fraction of the pixels, chosen at random (a new draw each click)",
            self._on_preset_clicked,
        )
        b.setProperty("preset", "random_pixels")
        self.preset_buttons["random_pixels"] = b
        ml.addWidget(b, 1, 0)
        ml.addWidget(self.random_fraction, 1, 1)
        self.invert_button = button("Invert", "Hidden ↔ seen", self.invert_mask)
        self.show_all_button = button("Show all", "Hide nothing", self._on_show_all_clicked)
        ml.addWidget(self.invert_button, 1, 3)
        ml.addWidget(self.show_all_button, 1, 4)

        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addLayout(tools)
        left.addWidget(self.canvas, 1)
        left.addLayout(edit_row)
        left.addLayout(src_row)
        left.addWidget(mask_box)
        left_w = QWidget()
        left_w.setLayout(left)

        # --- results
        self.mean_view = MaskedDigitImage(caption="mean completion")
        self.mean_view.setToolTip(
            "Seen pixels as given; hidden pixels (inside the orange outline) filled with "
            "E_q[E[x_i|z]], the mean of p(x_m|z) under the fitted q"
        )
        self.amortized_view = MaskedDigitImage(caption="encoder only, no fit")
        self.amortized_view.setToolTip(
            "The same completion under the encoder's q(z|x̃) without the fit "
            "(x̃: the hidden pixels filled with the model's average digit)"
        )
        self.std_view = MaskedDigitImage(caption="uncertainty (std)")
        self.std_view.setToolTip(
            "Per-pixel standard deviation of E[x_i|z] over z ~ q: where the completions "
            "disagree (black: certain; yellow: std 0.5)"
        )
        self.samples_view = MaskedDigitImage(caption="samples, z ~ q")
        self.samples_view.setToolTip("E[x|z] for z drawn from the fitted q; seen pixels kept")
        self.importance_view = MaskedDigitImage(caption="importance resampled")
        self._importance_tip = (
            "Posterior samples: z resampled from k draws of q with weights "
            "p(x_o|z) p(z) / q(z), approximately from p(z|x_o)"
        )
        self.importance_view.setToolTip(self._importance_tip)
        images = QGridLayout()
        images.setSpacing(4)
        images.addWidget(self.mean_view, 0, 0)
        images.addWidget(self.amortized_view, 0, 1)
        images.addWidget(self.std_view, 0, 2)
        images.addWidget(self.samples_view, 1, 0)
        images.addWidget(self.importance_view, 1, 1)

        # the latent plane (2-D latents)
        self.latent_plot = pg.PlotWidget()
        self.latent_plot.setMinimumSize(150, 150)
        self.latent_plot.setAspectLocked(True)
        self.latent_plot.setLabel("bottom", "z1")
        self.latent_plot.setLabel("left", "z2")
        for axis in ("left", "bottom"):
            self.latent_plot.getAxis(axis).enableAutoSIPrefix(False)  # latent units, never "z2 (x0.001)"
        self.latent_plot.setTitle("log p(z | x<sub>o</sub>) and q", size="9pt")
        self.heat = pg.ImageItem(axisOrder="col-major")  # heat[i, j] is z = (z1[i], z2[j])
        self.heat.setColorMap(pg.colormap.get("viridis"))
        self.heat.setZValue(-10)
        self.latent_plot.addItem(self.heat)
        self.q1_curve = self.latent_plot.plot(pen=pg.mkPen((255, 255, 255), width=2))
        self.q2_curve = self.latent_plot.plot(pen=pg.mkPen((255, 255, 255), width=1, style=Qt.PenStyle.DashLine))
        self.guess_curve = self.latent_plot.plot(pen=pg.mkPen((200, 200, 200), width=1.5, style=Qt.PenStyle.DotLine))
        self.iw_points = pg.ScatterPlotItem(size=6, pen=pg.mkPen(60, 30, 0), brush=pg.mkBrush(255, 150, 30, 220))
        self.latent_plot.addItem(self.iw_points)
        for item in (self.q1_curve, self.q2_curve, self.guess_curve, self.iw_points):
            item.setZValue(10)
        self.latent_plot.setToolTip(
            f"Heat map: the exact log p(z|x_o) on a grid, from {HEAT_NATS:.0f} nats below its "
            "peak (dark) to the peak (yellow). White: the fitted q (1σ solid, 2σ dashed); "
            "dotted: the encoder's guess (1σ); orange: importance-resampled z"
        )
        self.latent_note = QLabel(
            "The latent plane, with the exact p(z|x<sub>o</sub>) beside q, is drawn for models with a 2-D latent."
        )
        self.latent_note.setWordWrap(True)
        self.latent_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.latent_note.setStyleSheet("color: gray;")
        self.latent_stack = QStackedWidget()
        self.latent_stack.addWidget(self.latent_plot)
        self.latent_stack.addWidget(self.latent_note)
        images.addWidget(self.latent_stack, 1, 2)
        for i in range(3):
            images.setColumnStretch(i, 1)
        for i in range(2):
            images.setRowStretch(i, 1)

        # the observed-pixel ELBO while fitting
        self.elbo_plot = pg.PlotWidget()
        self.elbo_plot.setMinimumHeight(120)
        self.elbo_plot.setLabel("bottom", "Adam step")
        self.elbo_plot.setLabel("left", "ELBO(x<sub>o</sub>), nats")
        self.elbo_plot.showGrid(x=True, y=True, alpha=0.2)
        self.trace_curve = self.elbo_plot.plot(pen=pg.mkPen(style.COLORS["train_elbo_smooth"], width=1.5))
        self.guess_line = pg.InfiniteLine(
            angle=0, movable=False, pen=pg.mkPen((170, 170, 170), width=1, style=Qt.PenStyle.DashLine)
        )
        self.fitted_line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(style.COLORS["log_px"], width=1))
        for line in (self.guess_line, self.fitted_line):
            line.setVisible(False)
            self.elbo_plot.addItem(line)
        self.elbo_plot.setToolTip(
            f"Blue: the one-step estimate (S = {ip.InpaintConfig.n_samples} samples) of "
            "E_q[log p(x_o|z)] − KL(q ‖ p(z)) after each Adam step. Lines: "
            f"{ELBO_K}-sample estimates at the encoder's guess (grey, dashed) and at the fit (green)"
        )

        # fit controls
        self.steps = QSpinBox()
        self.steps.setRange(10, 5000)
        self.steps.setValue(ip.InpaintConfig.steps)
        self.steps.setSingleStep(50)
        self.steps.setToolTip("Adam steps of the fit")
        self.live = QCheckBox("fit as I draw")
        self.live.setChecked(True)
        self.live.setToolTip(
            "Fit again after every edit, and every tenth of a second during a stroke "
            "(the newest stroke wins); off: only the Fit button fits"
        )
        self.use_importance = QCheckBox("importance resampling, k =")
        self.use_importance.setChecked(True)
        self.importance_k = QSpinBox()
        self.importance_k.setRange(10, 20000)
        self.importance_k.setValue(2000)
        self.importance_k.setSingleStep(500)
        self.importance_k.setToolTip("Proposals z ~ q for importance resampling")
        self.fit_button = button("Fit", "Fit q to the seen pixels now", self.request_fit)
        self.save_button = button(
            "Save PNG…", "Save the masked input and the mean completion as PNG images", self._on_save_clicked
        )
        fit_row = QHBoxLayout()
        fit_row.addWidget(QLabel("steps"))
        fit_row.addWidget(self.steps)
        fit_row.addWidget(self.live)
        fit_row.addWidget(self.use_importance)
        fit_row.addWidget(self.importance_k)
        fit_row.addStretch(1)
        fit_row.addWidget(self.fit_button)
        fit_row.addWidget(self.save_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        self.numbers = QLabel()
        self.numbers.setTextFormat(Qt.TextFormat.RichText)
        self.numbers.setWordWrap(True)
        self.numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: gray;")

        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.addLayout(images, 3)
        right.addWidget(self.elbo_plot, 1)
        right.addWidget(self.progress)
        right.addLayout(fit_row)
        right.addWidget(self.numbers)
        right.addWidget(self.status)
        right_w = QWidget()
        right_w.setLayout(right)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left_w)
        split.addWidget(right_w)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        lay = QHBoxLayout(self)
        lay.addWidget(split)

        # --- behaviour
        self._refit_timer = QTimer(self)  # coalesces the signals of one edit into one fit
        self._refit_timer.setSingleShot(True)
        self._refit_timer.setInterval(0)
        self._refit_timer.timeout.connect(self._on_refit_timeout)
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.timeout.connect(self._on_view_timeout)
        self._pending: list = []  # live reports not drawn yet
        self._fit_mask = masks.empty()  # the mask of the fit in flight
        self._pending_fraction = 0.0
        self._last_view = 0.0
        self._weights_timer = QTimer(self)
        self._weights_timer.setSingleShot(True)
        self._weights_timer.timeout.connect(self.request_fit)
        self.canvas.image_edited.connect(self._on_canvas_edited)
        self.canvas.mask_edited.connect(self._on_canvas_edited)
        self.canvas.stroke_started.connect(self._on_stroke_started)
        self.canvas.history_changed.connect(self._on_history_changed)
        self.brush_size.valueChanged.connect(self._on_brush_size_changed)
        self.grey.valueChanged.connect(self._on_grey_changed)
        self.picker.picked.connect(self._on_digit_picked)
        self.use_importance.toggled.connect(self._on_options_changed)
        self.importance_k.valueChanged.connect(self._on_options_changed)
        self.steps.valueChanged.connect(self._on_options_changed)
        for keys, slot in (
            (QKeySequence.StandardKey.Undo, self.canvas.undo),
            (QKeySequence.StandardKey.Redo, self.canvas.redo),
        ):
            sc = QShortcut(QKeySequence(keys), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
        hub.model_changed.connect(self._on_model_changed)
        hub.weights_updated.connect(self._on_weights_updated)
        hub.data_changed.connect(self._on_data_changed)

        self._on_history_changed()
        self._on_model_changed()
        # a first example: a test digit with its top half hidden (fitted when the panel is first shown)
        try:
            x0 = hub.eval_x("test")[self.picker.index()].numpy().reshape(SIDE, SIDE)
            self.canvas.set_state(x0, masks.top_half(), undoable=False)
        except Exception as e:  # no data: start blank
            self.status.setText(f"No test digits: {e}")

    # --- inputs -------------------------------------------------------------------------------------
    def load_test_digit(self, i: int | None = None) -> None:
        """Put test digit i (default: the picker's) on the canvas; the mask stays."""
        if i is not None:
            self.picker.set_index(i, emit=False)
        x = self.hub.eval_x("test")[self.picker.index()].numpy().reshape(SIDE, SIDE)
        self.canvas.set_image(x)
        self._drawn_uncentred = False
        self.status.setText(
            f"Test digit {self.picker.index()} (label {int(self.hub.labels('test')[self.picker.index()])})."
        )

    def load_image_file(self, path: str | Path) -> bool:
        """Load a picture (28×28 grey, centred as MNIST); on failure show the message, keep the canvas."""
        try:
            digit = load_image_file(path)
        except ImageLoadError as e:
            self._show_error("Cannot load the image", str(e))
            self.load_failed.emit(str(e))
            return False
        self.canvas.set_image(digit)
        self._drawn_uncentred = False
        self.status.setText(f"Loaded {Path(path).name} (28×28 grey, centred by mass).")
        return True

    def _show_error(self, title: str, message: str) -> None:
        """A non-blocking message box (window-modal) and the status line; the panel keeps working."""
        self.last_error = message
        self.status.setText(message)
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.destroyed.connect(self._on_error_box_destroyed)
        box.open()
        self.error_box = box

    def _on_error_box_destroyed(self, *_):
        self.error_box = None

    def centre_drawing(self) -> None:
        image, mask = centre_with_mask(self.canvas.image(), self.canvas.mask())
        self.canvas.set_state(image, mask)
        self._drawn_uncentred = False

    def _auto_centre(self) -> None:
        """Centre a fresh drawing at the moment pixels are first hidden (see the module's notes)."""
        if self.auto_centre.isChecked() and self._drawn_uncentred and not self.canvas.mask().any():
            self.centre_drawing()

    def apply_preset(self, name: str) -> None:
        """Replace the mask by a preset of core.masks (random_pixels uses the fraction box and a new seed)."""
        self._auto_centre()
        if name == "random_pixels":
            self._random_seed += 1
            mask = masks.preset(name, fraction=self.random_fraction.value() / 100.0, seed=self._random_seed)
        else:
            mask = masks.preset(name)
        self.canvas.set_mask(mask)

    def invert_mask(self) -> None:
        self._auto_centre()
        self.canvas.set_mask(masks.invert(self.canvas.mask()))

    def set_tool(self, mode: str) -> None:
        if mode in ("mask", "box"):
            self._auto_centre()
        self.tool_buttons[mode].setChecked(True)
        self.canvas.set_mode(mode)

    # --- the fit ------------------------------------------------------------------------------------
    def fit_config(self) -> ip.InpaintConfig:
        return ip.InpaintConfig(
            steps=self.steps.value(), n_completion_samples=SAMPLE_ROWS * SAMPLE_ROWS, report_every=10, seed=0
        )

    def request_fit(self) -> None:
        """Submit a fit of the canvas as it is now (cancelling one in progress)."""
        self._refit_timer.stop()
        self._weights_timer.stop()
        self._stale = False
        self._pending = []
        x, missing = self.canvas.image(), self.canvas.mask()
        self._fit_mask = missing
        if not missing.any():
            self.runner.cancel()
            self._show_trivial(x, "Nothing is hidden: choose a mask (Hide …) or paint one with the hide tools.")
            return
        if missing.all():
            note = "Everything is hidden: the completions are samples from the model's prior."
        else:
            note = ""
        self.progress.setValue(0)
        self.status.setText(note or "Fitting q to the seen pixels …")
        k = self.importance_k.value() if self.use_importance.isChecked() else 0
        self.runner.submit(
            fit_task, self.hub.model, x, missing, self.fit_config(), k, self.hub.latent_dim == 2, self.hub.version
        )
        self.fits_submitted += 1
        self.fit_started.emit()

    def _on_refit_timeout(self) -> None:
        if self.isVisible():
            self.request_fit()
        else:
            self._stale = True  # fitted when shown

    def _show_trivial(self, x: np.ndarray, message: str) -> None:
        for view in (self.mean_view, self.amortized_view):
            view.set_image(x)
            view.set_mask(None)
        self.std_view.set_rgb(uncertainty_rgb(np.zeros((SIDE, SIDE))))
        self.samples_view.set_image(None)
        self.importance_view.set_image(None)
        self.trace_curve.setData([], [])
        self.guess_line.setVisible(False)
        self.fitted_line.setVisible(False)
        self.numbers.setText("")
        self.outcome = None
        self.status.setText(message)
        self.fit_skipped.emit(message)

    def _on_fit_progress(self, task_id: int, fraction: float, payload) -> None:
        if isinstance(payload, FitOutcome):
            self._pending = []
            self.progress.setValue(1000)
            self._show_outcome(payload)  # the grid of p(z|x_o) follows
            return
        # live reports are drawn at most VIEW_INTERVAL_MS apart: the fit can report faster than
        # the views repaint, and the canvas must keep up with the pen meanwhile
        self._pending_fraction = fraction
        if isinstance(payload, GuessReport):
            self._pending = [payload]
        else:
            self._pending = self._pending[:1] if self._pending and isinstance(self._pending[0], GuessReport) else []
            self._pending.append(payload)
        if not self._view_timer.isActive():
            # while a stroke is drawn the eye is on the canvas: fewer redraws leave the pen more of the GUI thread
            interval = VIEW_INTERVAL_STROKE_MS if self.canvas.is_stroking() else VIEW_INTERVAL_MS
            self._view_timer.start(max(0, int(interval - 1000 * (time.perf_counter() - self._last_view))))

    def _on_view_timeout(self) -> None:
        self._last_view = time.perf_counter()
        pending, self._pending = self._pending, []
        self.progress.setValue(int(1000 * self._pending_fraction))
        for payload in pending:
            self._show_report(payload)

    def _show_report(self, payload) -> None:
        if isinstance(payload, GuessReport):
            self.guess = payload
            self.amortized_view.set_image(payload.completion.mean[0])
            self.amortized_view.set_mask(self._fit_mask)
            self._ellipse(self.guess_curve, payload.z_loc[0], payload.z_scale[0], 1.0)
            self.trace_curve.setData([], [])
            self.fitted_line.setVisible(False)
        elif isinstance(payload, ip.InpaintProgress):
            self.progress_report = payload
            self._show_completion(payload.completion, self._fit_mask)
            trace = payload.elbo_trace[:, 0].double().numpy()
            self.trace_curve.setData(np.arange(len(trace), dtype=np.float64), trace)
            self._ellipse(self.q1_curve, payload.z_loc[0], payload.z_scale[0], 1.0)
            self._ellipse(self.q2_curve, payload.z_loc[0], payload.z_scale[0], 2.0)
            self.fit_progressed.emit(int(payload.step))

    def _on_fit_finished(self, task_id: int, outcome: FitOutcome) -> None:
        self._pending = []
        self._view_timer.stop()
        self.progress.setValue(1000)
        self._show_outcome(outcome)
        self.fit_finished.emit()

    def _show_outcome(self, outcome: FitOutcome) -> None:
        self.outcome = outcome
        res = outcome.result
        mask = outcome.missing.reshape(SIDE, SIDE)
        self._show_completion(res.completion, mask)
        self.amortized_view.set_image(res.amortized.mean[0])
        self.amortized_view.set_mask(mask)
        trace = res.elbo_trace[:, 0].double().numpy()
        self.trace_curve.setData(np.arange(len(trace), dtype=np.float64), trace)
        self.guess_line.setValue(outcome.elbo_guess)
        self.fitted_line.setValue(outcome.elbo_fitted)
        self.guess_line.setVisible(True)
        self.fitted_line.setVisible(True)
        self._ellipse(self.q1_curve, res.z_loc[0], res.z_scale[0], 1.0)
        self._ellipse(self.q2_curve, res.z_loc[0], res.z_scale[0], 2.0)
        self._ellipse(self.guess_curve, res.init_loc[0], res.init_scale[0], 1.0)
        imp = outcome.importance
        if imp is not None:
            self.importance_view.set_image(self._tile(imp.completions[:, 0]))
            self.importance_view.set_caption(f"importance resampled (ESS {float(imp.ess[0]):.0f})")
            self.importance_view.setToolTip(
                self._importance_tip + f"\nEffective sample size of the {imp.log_w.shape[0]} "
                f"weights: {float(imp.ess[0]):.1f}"
            )
            if imp.z.shape[-1] == 2:
                z = imp.z[:, 0].double().numpy()
                self.iw_points.setData(z[:, 0], z[:, 1])
        else:
            self.importance_view.set_image(None)
            self.importance_view.set_caption("importance resampling off")
            self.iw_points.setData([], [])
        if outcome.grid is not None:
            self._show_grid(outcome.grid)
        self.numbers.setText(self._numbers_html(outcome))
        state = "stopped early" if res.stopped else "done"
        self.status.setText(f"{res.steps_done} Adam steps in {1000 * res.seconds:.0f} ms ({state}).")

    @staticmethod
    def _numbers_html(outcome: FitOutcome) -> str:
        gain = outcome.elbo_fitted - outcome.elbo_guess
        n_missing = int(outcome.missing.sum())
        text = (
            f"ELBO of the {784 - n_missing} seen pixels ({ELBO_K} samples): encoder's guess "
            f"<b>{outcome.elbo_guess:.1f}</b> → fitted q <b>{outcome.elbo_fitted:.1f}</b> nats "
            f"(<b>{gain:+.1f}</b>); {n_missing} pixels filled in."
        )
        if outcome.grid is not None:
            # log p(x_o) = ELBO(q) + KL(q ‖ p(z|x_o)) (Kingma & Welling 2014, eq. 2), x → x_o
            log_px_o = float(outcome.grid.log_px[0])
            text += (
                f"<br>log p(x<sub>o</sub>) = <b>{log_px_o:.1f}</b> (grid integral), so "
                f"KL(q ‖ p(z|x<sub>o</sub>)) = <b>{log_px_o - outcome.elbo_fitted:.2f}</b> nats "
                f"(encoder's guess: {log_px_o - outcome.elbo_guess:.2f})."
            )
        return text

    def _show_completion(self, completion: ip.Completion, mask: np.ndarray) -> None:
        self.mean_view.set_image(completion.mean[0])
        self.mean_view.set_mask(mask)
        self.std_view.set_rgb(uncertainty_rgb(completion.pixel_std[0].numpy()))
        self.std_view.set_mask(mask)
        if completion.samples.shape[0] >= SAMPLE_ROWS * SAMPLE_ROWS:
            self.samples_view.set_image(self._tile(completion.samples[:, 0]))

    @staticmethod
    def _tile(samples: torch.Tensor) -> np.ndarray:
        """(n, 784) completions -> one SAMPLE_ROWS × SAMPLE_ROWS tiled image."""
        n = SAMPLE_ROWS * SAMPLE_ROWS
        return tile_images(samples[:n].reshape(SAMPLE_ROWS, SAMPLE_ROWS, 784), gap=1, fill=0.35)

    def _ellipse(self, item, loc: torch.Tensor, scale: torch.Tensor, n_sigma: float) -> None:
        if loc.numel() != 2:
            return
        s = scale.double().numpy()
        pts = ellipse_points(loc.double().numpy(), np.diag(s * s), n_sigma, 72)
        item.setData(pts[:, 0], pts[:, 1])

    def _show_grid(self, grid) -> None:
        lp = grid.log_post[0].double().numpy()
        # log scale: a second mode, or the mass q missed, stays visible beside the peak
        img = np.clip(lp - lp.max(), -HEAT_NATS, 0.0).astype(np.float32)
        z1, z2 = grid.z1.double().numpy(), grid.z2.double().numpy()
        d1, d2 = float(z1[1] - z1[0]), float(z2[1] - z2[0])
        self.heat.setImage(np.ascontiguousarray(img), levels=(-HEAT_NATS, 0.0), autoLevels=False)
        self.heat.setRect(float(z1[0] - d1 / 2), float(z2[0] - d2 / 2), d1 * len(z1), d2 * len(z2))
        self.latent_plot.getViewBox().setRange(
            xRange=(z1[0] - d1 / 2, z1[-1] + d1 / 2), yRange=(z2[0] - d2 / 2, z2[-1] + d2 / 2), padding=0.02
        )

    def _on_fit_failed(self, task_id: int, message: str) -> None:
        self.status.setText("The fit failed: " + message.splitlines()[0])

    def _on_fit_cancelled(self, task_id: int) -> None:
        self.status.setText("Fit cancelled.")

    # --- saving ------------------------------------------------------------------------------------
    def save_pngs(self, path: str | Path, scale: int = 10) -> list[Path]:
        """Write <stem>-masked.png (the input, hidden pixels hatched) and, once fitted, <stem>-completion.png
        (the mean completion); scale × scale pixels per digit pixel. Returns the files written."""
        path = Path(path)
        stem = path.with_suffix("")
        written = []
        masked = stem.with_name(stem.name + "-masked.png")
        if not self.canvas.grab_masked(scale).save(str(masked), "PNG"):
            raise OSError(f"could not write {masked}")
        written.append(masked)
        if self.outcome is not None:
            comp = stem.with_name(stem.name + "-completion.png")
            if not save_grey_png(str(comp), self.outcome.result.completion.mean[0].numpy().reshape(SIDE, SIDE), scale):
                raise OSError(f"could not write {comp}")
            written.append(comp)
        self.status.setText("Saved " + ", ".join(p.name for p in written) + f" in {path.parent}.")
        return written

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save PNG", str(Path.cwd() / "inpainting.png"), "PNG images (*.png)"
        )
        if path:
            try:
                self.save_pngs(path)
            except OSError as e:
                self._show_error("Cannot save", str(e))

    # --- events --------------------------------------------------------------------------------------
    def _on_canvas_edited(self, final: bool) -> None:
        if not self.live.isChecked():
            return
        if final:
            self._refit_timer.start()  # one fit for the image and mask signals of one edit
        elif self.isVisible():
            self.request_fit()  # mid-stroke (already throttled by the canvas): at once, no timer to starve

    def _on_stroke_started(self, mode: str) -> None:
        if mode in ("draw", "erase"):
            self._drawn_uncentred = True

    def _on_history_changed(self) -> None:
        self.undo_button.setEnabled(self.canvas.can_undo())
        self.redo_button.setEnabled(self.canvas.can_redo())

    def _on_tool_clicked(self) -> None:
        for mode, b in self.tool_buttons.items():
            if b.isChecked():
                self.set_tool(mode)

    def _on_brush_size_changed(self, value: float) -> None:
        self.canvas.set_brush_radius(value)

    def _on_grey_changed(self, value: int) -> None:
        self.canvas.set_grey_level(value / 100.0)

    def _on_preset_clicked(self) -> None:
        self.apply_preset(self.sender().property("preset"))

    def _on_show_all_clicked(self) -> None:
        self.canvas.set_mask(masks.empty())

    def _on_clear_clicked(self) -> None:
        self.canvas.clear()
        self._drawn_uncentred = False

    def _on_load_test_clicked(self) -> None:
        self.load_test_digit()

    def _on_digit_picked(self, i: int) -> None:
        self.load_test_digit()

    def _on_open_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image of a digit", str(Path.cwd()), file_dialog_filter())
        if path:
            self.load_image_file(path)

    def _on_options_changed(self, *_) -> None:
        self.importance_k.setEnabled(self.use_importance.isChecked())
        self._refit_timer.start()

    def _on_model_changed(self) -> None:
        two_d = self.hub.latent_dim == 2
        self.latent_stack.setCurrentWidget(self.latent_plot if two_d else self.latent_note)
        self.heat.clear()
        for item in (self.q1_curve, self.q2_curve, self.guess_curve, self.iw_points):
            item.setData([], [])
        if self.isVisible():
            self._refit_timer.start()
        else:
            self._stale = True

    def _on_weights_updated(self, step: int) -> None:
        if not self.isVisible():
            self._stale = True
        elif not self._weights_timer.isActive() and not self.runner.is_busy():
            self._weights_timer.start(WEIGHTS_REFIT_MS)

    def _on_data_changed(self) -> None:
        self.picker.set_index(self.picker.index(), emit=False)  # refreshes the thumbnail

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self._refit_timer.start()
