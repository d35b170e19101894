"""The views of an inpainting fit: the completions, the uncertainty map, the latent plane and the ELBO trace.

InpaintingResults only draws what core.inpainting_task reports (GuessReport, InpaintProgress,
FitOutcome); numbers_html writes the outcome's numbers. Nothing here computes a fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QStackedWidget, QVBoxLayout, QWidget

from lvm_studio.core import inpainting as ip
from lvm_studio.core.colour_maps import STD_LEVEL, uncertainty_rgb
from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.gaussian import ellipse_points
from lvm_studio.core.images import SIDE
from lvm_studio.core.inpainting_completion import Completion
from lvm_studio.core.inpainting_task import ELBO_K, SAMPLE_ROWS, FitOutcome, GuessReport
from lvm_studio.core.traversal import tile_images
from lvm_studio.ui.inpainting.mask_overlay import MaskedDigitImage
from lvm_studio.ui.widgets import style
from lvm_studio.ui.widgets.axes import plain_axes

if TYPE_CHECKING:
    import torch

    from lvm_studio.core.estimators import GridPosterior

HEAT_NATS = 12.0  # the latent plane colours log p(z|x_o) from this far below its peak up to the peak
LATENT_MIN = 108  # px, the latent plane of a 2-D model (its row of the grid at 1,280×720 holds it)
IMPORTANCE_TIP = (
    "Posterior samples: z resampled from k draws of q with weights p(x_o|z) p(z) / q(z), approximately from p(z|x_o)"
)


def numbers_html(outcome: FitOutcome) -> str:
    """The outcome's ELBO numbers (and, with a latent grid, log p(x_o) and the KL gap) as rich text."""
    gain = outcome.elbo_fitted - outcome.elbo_guess
    n_missing = int(outcome.missing.sum())
    text = (
        f"ELBO of the {N_PIXELS - outcome.n_missing_model} seen pixels ({ELBO_K} samples): encoder's guess "
        f"<b>{outcome.elbo_guess:.1f}</b> → fitted q <b>{outcome.elbo_fitted:.1f}</b> nats "
        f"(<b>{gain:+.1f}</b>); {n_missing} pixels filled in."
    )
    if outcome.starts is not None:
        line = outcome.starts.summary(0)
        text += "<br>" + (f"<b>{line}</b>" if outcome.starts.disagree(0) else line) + "."
    if outcome.grid is not None:
        # log p(x_o) = ELBO(q) + KL(q ‖ p(z|x_o)) (Kingma & Welling 2014, eq. 2), x → x_o
        log_px_o = float(outcome.grid.log_px[0])
        text += (
            f"<br>log p(x<sub>o</sub>) = <b>{log_px_o:.1f}</b> (grid integral), so "
            f"KL(q ‖ p(z|x<sub>o</sub>)) = <b>{log_px_o - outcome.elbo_fitted:.2f}</b> nats "
            f"(encoder's guess: {log_px_o - outcome.elbo_guess:.2f})."
        )
    return text


def tile_samples(samples: torch.Tensor) -> np.ndarray:
    """(n, 784) completions -> one SAMPLE_ROWS × SAMPLE_ROWS tiled image."""
    n = SAMPLE_ROWS * SAMPLE_ROWS
    return tile_images(samples[:n].reshape(SAMPLE_ROWS, SAMPLE_ROWS, N_PIXELS), gap=1, fill=0.35)


class InpaintingResults(QWidget):
    """Five digit views and the latent plane in a grid, the observed-pixel ELBO plot below."""

    def __init__(self, parent=None):
        super().__init__(parent)
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
            f"disagree (black: certain; yellow: std {STD_LEVEL})"
        )
        self.samples_view = MaskedDigitImage(caption="samples, z ~ q")
        self.samples_view.setToolTip("E[x|z] for z drawn from the fitted q; seen pixels kept")
        self.importance_view = MaskedDigitImage(caption="importance resampled")
        self.importance_view.setToolTip(IMPORTANCE_TIP)
        images = QGridLayout()
        images.setSpacing(4)
        images.addWidget(self.mean_view, 0, 0)
        images.addWidget(self.amortized_view, 0, 1)
        images.addWidget(self.std_view, 0, 2)
        images.addWidget(self.samples_view, 1, 0)
        images.addWidget(self.importance_view, 1, 1)
        images.addWidget(self._build_latent_plane(), 1, 2)
        for i in range(3):
            images.setColumnStretch(i, 1)
        for i in range(2):
            images.setRowStretch(i, 1)
        self._build_elbo_plot()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(images, 3)
        lay.addWidget(self.elbo_plot, 1)

    def hasHeightForWidth(self) -> bool:
        # the latent plane's wrapped note would make the views height-for-width, and the panel's
        # column would then size them by the note's height, below the images' minimum
        return False

    def _build_latent_plane(self) -> QStackedWidget:
        """The latent plane (2-D latents): log p(z|x_o) as a heat map, q's ellipses, resampled z."""
        self.latent_plot = pg.PlotWidget()
        plain_axes(self.latent_plot)
        self.latent_plot.setMinimumSize(LATENT_MIN, LATENT_MIN)  # set_two_d: only while it is the page shown
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
        return self.latent_stack

    def _build_elbo_plot(self) -> None:
        """The observed-pixel ELBO while fitting, with the guess's and the fit's many-sample estimates."""
        self.elbo_plot = pg.PlotWidget()
        plain_axes(self.elbo_plot)
        self.elbo_plot.setMinimumHeight(100)
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

    # --- drawing ------------------------------------------------------------------------------------
    def set_two_d(self, two_d: bool) -> None:
        """A new model: the latent plane for a 2-D latent, a note otherwise; nothing drawn on it yet."""
        self.latent_stack.setCurrentWidget(self.latent_plot if two_d else self.latent_note)
        # a stacked widget's minimum is its largest page's: the hidden plot must not hold the row open
        side = LATENT_MIN if two_d else 0
        self.latent_plot.setMinimumSize(side, side)
        self.heat.clear()
        for item in (self.q1_curve, self.q2_curve, self.guess_curve, self.iw_points):
            item.setData([], [])

    def show_trivial(self, x: np.ndarray) -> None:
        """Nothing to fit: the input as its own completion, nothing else."""
        for view in (self.mean_view, self.amortized_view):
            view.set_image(x)
            view.set_mask(None)
        self.std_view.set_rgb(uncertainty_rgb(np.zeros((SIDE, SIDE))))
        self.samples_view.set_image(None)
        self.importance_view.set_image(None)
        self.trace_curve.setData([], [])
        self.guess_line.setVisible(False)
        self.fitted_line.setVisible(False)

    def show_guess(self, guess: GuessReport, mask: np.ndarray) -> None:
        self.amortized_view.set_image(guess.completion.mean[0])
        self.amortized_view.set_mask(mask)
        self._ellipse(self.guess_curve, guess.z_loc[0], guess.z_scale[0], 1.0)
        self.trace_curve.setData([], [])
        self.fitted_line.setVisible(False)

    def show_progress(self, progress: ip.InpaintProgress, mask: np.ndarray) -> None:
        self.show_completion(progress.completion, mask)
        self._trace(progress.elbo_trace)
        self._ellipse(self.q1_curve, progress.z_loc[0], progress.z_scale[0], 1.0)
        self._ellipse(self.q2_curve, progress.z_loc[0], progress.z_scale[0], 2.0)

    def show_outcome(self, outcome: FitOutcome) -> None:
        res = outcome.result
        mask = outcome.missing.reshape(SIDE, SIDE)
        self.show_completion(res.completion, mask)
        self.amortized_view.set_image(res.amortized.mean[0])
        self.amortized_view.set_mask(mask)
        self._trace(res.elbo_trace)
        self.guess_line.setValue(outcome.elbo_guess)
        self.fitted_line.setValue(outcome.elbo_fitted)
        self.guess_line.setVisible(True)
        self.fitted_line.setVisible(True)
        self._ellipse(self.q1_curve, res.z_loc[0], res.z_scale[0], 1.0)
        self._ellipse(self.q2_curve, res.z_loc[0], res.z_scale[0], 2.0)
        self._ellipse(self.guess_curve, res.init_loc[0], res.init_scale[0], 1.0)
        imp = outcome.importance
        if imp is not None:
            self.importance_view.set_image(tile_samples(imp.completions[:, 0]))
            self.importance_view.set_caption(f"resampled, ESS {float(imp.ess[0]):.0f}")  # short: fits 120 px
            self.importance_view.setToolTip(
                IMPORTANCE_TIP + f"\nEffective sample size of the {imp.log_w.shape[0]} weights: {float(imp.ess[0]):.1f}"
            )
            if imp.z.shape[-1] == 2:
                z = imp.z[:, 0].double().numpy()  # (n, 2)
                self.iw_points.setData(z[:, 0], z[:, 1])
        else:
            self.importance_view.set_image(None)
            pending = outcome.importance_pending
            self.importance_view.set_caption("resampling …" if pending else "importance resampling off")
            self.iw_points.setData([], [])
        if outcome.grid is not None:
            self.show_grid(outcome.grid)

    def show_completion(self, completion: Completion, mask: np.ndarray) -> None:
        self.mean_view.set_image(completion.mean[0])
        self.mean_view.set_mask(mask)
        self.std_view.set_rgb(uncertainty_rgb(completion.pixel_std[0].numpy()))
        self.std_view.set_mask(mask)
        if completion.samples.shape[0] >= SAMPLE_ROWS * SAMPLE_ROWS:
            self.samples_view.set_image(tile_samples(completion.samples[:, 0]))

    def show_grid(self, grid: GridPosterior) -> None:
        lp = grid.log_post[0].double().numpy()  # (n, n)
        # log scale: a second mode, or the mass q missed, stays visible beside the peak
        img = np.clip(lp - lp.max(), -HEAT_NATS, 0.0).astype(np.float32)
        z1, z2 = grid.z1.double().numpy(), grid.z2.double().numpy()
        d1, d2 = float(z1[1] - z1[0]), float(z2[1] - z2[0])
        self.heat.setImage(np.ascontiguousarray(img), levels=(-HEAT_NATS, 0.0), autoLevels=False)
        self.heat.setRect(float(z1[0] - d1 / 2), float(z2[0] - d2 / 2), d1 * len(z1), d2 * len(z2))
        self.latent_plot.getViewBox().setRange(
            xRange=(z1[0] - d1 / 2, z1[-1] + d1 / 2), yRange=(z2[0] - d2 / 2, z2[-1] + d2 / 2), padding=0.02
        )

    def _trace(self, elbo_trace: torch.Tensor) -> None:
        trace = elbo_trace[:, 0].double().numpy()  # (steps + 1,)
        self.trace_curve.setData(np.arange(len(trace), dtype=np.float64), trace)

    @staticmethod
    def _ellipse(item, loc: torch.Tensor, scale: torch.Tensor, n_sigma: float) -> None:
        if loc.numel() != 2:
            return
        s = scale.double().numpy()
        pts = ellipse_points(loc.double().numpy(), np.diag(s * s), n_sigma, 72)
        item.setData(pts[:, 0], pts[:, 1])
