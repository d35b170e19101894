"""The views of the "Missing pixels as latents" panel: the numbers, the ELBO(φ) trace, the sample strips
and the naive-vs-importance plot (in the estimator lab's colours and style). They draw what they are
given; the panel decides what to compute."""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from lvm_studio.core import pixel_inference as pi
from lvm_studio.core.pixel_tasks import PhiNumbers, Reference, gap_text
from lvm_studio.core.traversal import tile_images
from lvm_studio.ui.widgets.axes import plain_axes
from lvm_studio.ui.widgets.digit_image import DigitImage
from lvm_studio.ui.widgets.style import LEGEND_BACKGROUND

NAIVE_COLOUR = (230, 85, 60)  # the estimator lab's colours (ui/latent/estimator_lab_panel.py)
IS_COLOUR = (60, 160, 230)
TRACE_COLOUR = (120, 210, 120)
STRIP_COLS = 4


def numbers_html(numbers: PhiNumbers | None, reference: Reference | None, joint_label: str) -> str:
    """ELBO(φ) ± SE, log p(x_o) (exact or estimated, labelled) and the gap, as rich text."""
    rows = [f"<b>{html.escape(joint_label)}</b>"]
    if numbers is not None:
        e = numbers.elbo
        err = "exact (enumerated)" if e.exact else f"± {e.se:.2f} (MC s.e., {e.n} samples of q)"
        rows.append(f"ELBO(φ) = <b>{e.elbo:.2f}</b> nats {err}")
        rows.append(
            f"&nbsp;&nbsp;= E<sub>q</sub>[log p(x<sub>o</sub>, x<sub>m</sub>)] {e.expected_log_joint:.2f}"
            f" + H(q) {e.entropy:.2f}"
        )
    if reference is not None:
        rows.append(f"log p(x<sub>o</sub>) = <b>{reference.log_px_o:.2f}</b> nats ({html.escape(reference.label)})")
    else:
        rows.append("log p(x<sub>o</sub>) = … (computing)")
    if numbers is not None and reference is not None:
        gap = html.escape(gap_text(numbers.elbo, reference.log_px_o, reference.exact))
        rows.append(f"gap = KL(q ‖ p(x<sub>m</sub> | x<sub>o</sub>)) = <b>{gap}</b> nats")
    return "<br>".join(rows)


def completions_tile(x: torch.Tensor, missing: torch.Tensor, x_m: torch.Tensor, cols: int = STRIP_COLS) -> np.ndarray:
    """Completions (the observed pixels of x, the missing ones from each row of x_m (n, M)) as one tiled image."""
    full = pi.complete(x, missing, x_m).reshape(-1, x.numel())  # (n, D)
    n = (full.shape[0] // cols) * cols
    return tile_images(full[:n].reshape(n // cols, cols, -1), gap=1, fill=0.35)


class SampleStrips(QWidget):
    """Samples of q beside samples of the model's own conditional p(x_m | x_o), each labelled."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.q_view = DigitImage(min_side=70, hint_side=150)
        self.p_view = DigitImage(min_side=70, hint_side=150)
        self.q_caption = QLabel("samples of q(x<sub>m</sub>; φ)")
        self.p_caption = QLabel("samples of p(x<sub>m</sub> | x<sub>o</sub>)")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for caption, view in ((self.q_caption, self.q_view), (self.p_caption, self.p_view)):
            caption.setTextFormat(Qt.TextFormat.RichText)
            caption.setWordWrap(True)
            view.setMaximumHeight(150)
            lay.addWidget(caption)
            lay.addWidget(view)
        lay.addStretch(1)

    def show_q(self, x, missing, x_m) -> None:
        self.q_view.set_image(completions_tile(x, missing, x_m))

    def show_conditional(self, x, missing, cond: pi.ConditionalSamples | None) -> None:
        if cond is None:
            self.p_view.set_image(None)
            self.p_caption.setText("samples of p(x<sub>m</sub> | x<sub>o</sub>): …")
            return
        how = cond.how + (f" from q = optimised φ, ESS {cond.ess:.1f}" if cond.ess is not None else "")
        self.p_view.set_image(completions_tile(x, missing, cond.x_m))
        self.p_caption.setText(f"samples of the model's p(x<sub>m</sub> | x<sub>o</sub>): <b>{how}</b>")


class TracePlot(pg.PlotWidget):
    """ELBO(φ) after each optimisation step, with log p(x_o) as a dashed line."""

    def __init__(self, parent=None):
        super().__init__(parent)
        plain_axes(self)
        self.setLabel("bottom", "step")
        self.setLabel("left", "ELBO(φ) estimate (nats)")
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setMinimumSize(220, 150)
        self.curve = self.plot(pen=pg.mkPen(TRACE_COLOUR, width=2))
        self.ref = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen((240, 240, 240), width=1.2, style=Qt.PenStyle.DashLine),
            label="log p(x_o)",
            labelOpts={"position": 0.15, "color": (240, 240, 240)},
        )
        self.addItem(self.ref)
        self.ref.setVisible(False)

    def show_trace(self, trace: torch.Tensor | None, title: str = "") -> None:
        self.setTitle(f"<span style='font-size: 9pt'>{html.escape(title)}</span>" if title else None)
        if trace is None or len(trace) == 0:
            self.curve.setData([], [])
            return
        y = trace.numpy().astype(float)
        lo = (
            np.percentile(y, 5) if len(y) > 4 else y.min()
        )  # the start (φ = 0.5 or 1) is far below: do not let it flatten the rest
        self.curve.setData(np.arange(len(y)), np.maximum(y, lo - 0.2 * max(1.0, abs(lo))))
        self.enableAutoRange()

    def show_reference(self, log_px_o: float | None, exact: bool) -> None:
        self.ref.setVisible(log_px_o is not None and math.isfinite(log_px_o))
        if log_px_o is not None:
            self.ref.setValue(log_px_o)
            self.ref.label.setFormat("log p(x_o)" + ("" if exact else " (IS estimate)"))


class SweepPlot(QWidget):
    """Naive Monte Carlo (uniform completions) against importance sampling with q, as k grows."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        plain_axes(self.plot)
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "number of samples k")
        self.plot.setLabel("left", "estimate of log p(x_o) (nats)")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMinimumSize(220, 150)
        self.plot.addLegend(offset=(-8, -8), labelTextColor=(230, 230, 230), brush=pg.mkBrush(*LEGEND_BACKGROUND))
        self.naive = self.plot.plot(
            pen=pg.mkPen(NAIVE_COLOUR, width=2.5),
            symbol="o",
            symbolSize=4,
            symbolBrush=NAIVE_COLOUR,
            name="naive MC, x_m uniform",
        )
        self.importance = self.plot.plot(
            pen=pg.mkPen(IS_COLOUR, width=2.5),
            symbol="o",
            symbolSize=4,
            symbolBrush=IS_COLOUR,
            name="importance sampling, x_m ~ q(φ)",
        )
        self.runs: list[pg.PlotDataItem] = []
        self.ref = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen((240, 240, 240), width=1.2, style=Qt.PenStyle.DashLine),
            label="",
            labelOpts={"position": 0.2, "color": (240, 240, 240)},
        )
        self.plot.addItem(self.ref)
        self.ref.setVisible(False)
        self.summary = QLabel("Press “Naive vs importance” to estimate log p(x_o) both ways.")
        self.summary.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.summary)

    def show_sweep(self, sweep: pi.PixelSweep | None, reference: Reference | None) -> None:
        for item in self.runs:
            self.plot.removeItem(item)
        self.runs = []
        if sweep is None:
            self.naive.setData([], [])
            self.importance.setData([], [])
            return
        ks = sweep.ks.numpy().astype(float)
        for r in range(sweep.runs_done):
            for est, colour in ((sweep.naive, NAIVE_COLOUR), (sweep.importance, IS_COLOUR)):
                item = pg.PlotDataItem(ks, est[r].numpy().astype(float), pen=pg.mkPen(*colour, 90, width=1))
                self.plot.addItem(item)
                self.runs.append(item)
        self.naive.setData(ks, sweep.naive.mean(0).numpy().astype(float))
        self.importance.setData(ks, sweep.importance.mean(0).numpy().astype(float))
        ref = sweep.exact if sweep.exact is not None else (reference.log_px_o if reference is not None else None)
        self.ref.setVisible(ref is not None)
        if ref is not None:
            self.ref.setValue(ref)
            self.ref.label.setFormat("exact log p(x_o)" if sweep.exact is not None else "log p(x_o) (IS, optimised q)")
        k = int(sweep.ks[-1])
        naive, imp = float(sweep.naive[:, -1].mean()), float(sweep.importance[:, -1].mean())
        self.summary.setText(
            f"k = {k:,}: naive {naive:.1f}, importance {imp:.1f}"
            f" nats (mean of {sweep.runs_done} runs); ESS of the weights: naive {sweep.ess_naive:.1f}, "
            f"q {sweep.ess_q:.1f} of {k:,}."
        )
