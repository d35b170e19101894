"""Estimator lab: why log p(x) = log ∫ p(x|z) p(z) dz is not estimated with samples from the prior.

For one digit, as k grows from 1 to 10,000 and over several independent runs:
  naive Monte Carlo      log (1/k Σ p(x|z_j)),           z_j ~ p(z)
  importance sampling    log (1/k Σ p(x, z_j)/q(z_j|x)), z_j ~ q(z|x)   (the IW-k bound; Burda et al. 2016)
with a reference line (the exact log p(x) for a 2-D latent, else IW-k at the largest k) and the
ELBO. Beside it, histograms of the log importance weights of one run and their effective sample
sizes (Σw)²/Σw² (Kong 1992): almost all of the prior's weight sits on one or two samples.
The sweep runs in a TaskRunner and the plot fills in run by run.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QSpinBox, QSplitter, QVBoxLayout, QWidget

from lvm_studio.core.latent_tasks import estimator_sweep_task, log_weight_histograms
from lvm_studio.ui.widgets.axes import plain_axes
from lvm_studio.ui.widgets.controls import TestDigitPicker, button
from lvm_studio.ui.widgets.style import LEGEND_BACKGROUND
from lvm_studio.workers.tasks import TaskRunner

NAIVE_COLOUR = (230, 85, 60)
IS_COLOUR = (60, 160, 230)
HIST_BINS = 60


class EstimatorLabPanel(QWidget):
    sweep_updated = Signal()  # partial or final results were drawn
    finished = Signal()

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.sweep = None
        self.exact: float | None = None
        self._seed = 0
        self.runner = TaskRunner("estimator-lab", self)
        self.runner.progressed.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)

        # --- controls
        self.picker = TestDigitPicker(hub, label="Test digit", seed=5)
        self.picker.set_index(0, emit=False)
        self.k_max = QComboBox()
        for k in (100, 1000, 10000):
            self.k_max.addItem(f"{k:,}", k)
        self.k_max.setCurrentIndex(2)
        self.k_max.setToolTip("Largest number of samples k")
        self.runs = QSpinBox()
        self.runs.setRange(1, 50)
        self.runs.setValue(8)
        self.runs.setToolTip("Independent runs: their spread shows each estimator's variance")
        self.run_button = button("Run", "Estimate log p(x) both ways for k = 1 … k_max", self._on_run_clicked)
        self.stop_button = button("Stop", "Stop after the current run", self._on_stop_clicked)
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(160)
        top = QHBoxLayout()
        top.addWidget(self.picker)
        top.addStretch(1)
        second = QHBoxLayout()
        second.addWidget(QLabel("k up to"))
        second.addWidget(self.k_max)
        second.addWidget(QLabel("runs"))
        second.addWidget(self.runs)
        second.addWidget(self.run_button)
        second.addWidget(self.stop_button)
        second.addWidget(self.progress)
        second.addStretch(1)

        # --- estimates against k
        self.plot = pg.PlotWidget()
        plain_axes(self.plot)
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "number of samples k")
        self.plot.setLabel("left", "estimate of log p(x) (nats)")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMinimumSize(340, 300)
        self.legend = self.plot.addLegend(
            offset=(-8, -8), labelTextColor=(230, 230, 230), brush=pg.mkBrush(*LEGEND_BACKGROUND)
        )
        self.naive_runs: list[pg.PlotDataItem] = []
        self.is_runs: list[pg.PlotDataItem] = []
        # min–max bands: edge curves in the plot (so they follow its log x axis), filled between
        # (a pen is needed: PlotDataItem gives a pen-less curve no path to fill between)
        self._band_curves = [
            pg.PlotDataItem(pen=pg.mkPen(*c, 110, width=1)) for c in (NAIVE_COLOUR, NAIVE_COLOUR, IS_COLOUR, IS_COLOUR)
        ]
        for c in self._band_curves:
            self.plot.addItem(c)
        self.naive_band = pg.FillBetweenItem(
            self._band_curves[0], self._band_curves[1], brush=pg.mkBrush(*NAIVE_COLOUR, 60)
        )
        self.is_band = pg.FillBetweenItem(self._band_curves[2], self._band_curves[3], brush=pg.mkBrush(*IS_COLOUR, 60))
        self.plot.addItem(self.naive_band)
        self.plot.addItem(self.is_band)
        self.naive_mean = self.plot.plot(
            pen=pg.mkPen(NAIVE_COLOUR, width=2.5),
            symbol="o",
            symbolSize=5,
            symbolBrush=NAIVE_COLOUR,
            name="naive MC, z ~ p(z): mean, min–max",
        )
        self.is_mean = self.plot.plot(
            pen=pg.mkPen(IS_COLOUR, width=2.5),
            symbol="o",
            symbolSize=5,
            symbolBrush=IS_COLOUR,
            name="importance sampling, z ~ q(z|x)",
        )
        self.ref_line = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen((240, 240, 240), width=1.5, style=Qt.PenStyle.DashLine),
            label="",
            labelOpts={"position": 0.22, "color": (240, 240, 240)},
        )
        self.elbo_line = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen((180, 180, 180), width=1, style=Qt.PenStyle.DotLine),
            label="",
            labelOpts={"position": 0.85, "color": (190, 190, 190)},
        )
        self.plot.addItem(self.ref_line)
        self.plot.addItem(self.elbo_line)
        self.ref_line.setVisible(False)
        self.elbo_line.setVisible(False)

        # --- log-weight histograms
        self.hist = pg.PlotWidget()
        plain_axes(self.hist)
        self.hist.setLabel("bottom", "log w − max log w (one run, all k samples)")
        self.hist.setLabel("left", "samples")
        self.hist.setMinimumSize(260, 220)
        self.hist_legend = self.hist.addLegend(
            offset=(8, 8), labelTextColor=(230, 230, 230), brush=pg.mkBrush(*LEGEND_BACKGROUND)
        )
        self.hist_prior = self.hist.plot(
            stepMode="center",
            fillLevel=0,
            pen=pg.mkPen(NAIVE_COLOUR, width=1.5),
            brush=pg.mkBrush(*NAIVE_COLOUR, 90),
            name="prior",
        )
        self.hist_q = self.hist.plot(
            stepMode="center",
            fillLevel=0,
            pen=pg.mkPen(IS_COLOUR, width=1.5),
            brush=pg.mkBrush(*IS_COLOUR, 90),
            name="q(z|x)",
        )
        self.summary = QLabel("Choose a digit and press Run.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.hist, 1)
        rl.addWidget(self.summary)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.plot)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(second)
        lay.addWidget(split, 1)

        hub.model_changed.connect(self._on_model_changed)
        hub.data_changed.connect(self._on_model_changed)  # another dataset: as for a new model
        hub.weights_updated.connect(self._on_weights_updated)
        self._sweep_step = None

    # --- running ---------------------------------------------------------------------------------
    def run(self, k_max: int | None = None, runs: int | None = None) -> None:
        if k_max is not None:
            i = self.k_max.findData(int(k_max))
            if i < 0:
                self.k_max.addItem(f"{int(k_max):,}", int(k_max))
                i = self.k_max.count() - 1
            self.k_max.setCurrentIndex(i)
        if runs is not None:
            self.runs.setValue(int(runs))
        self._seed += 1
        self.progress.setValue(0)
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.summary.setText(f"Sampling for test digit {self.picker.index()} …")
        self._sweep_step = self.hub.step
        self.runner.submit(
            estimator_sweep_task,
            self.hub.model,
            self.picker.x(),
            int(self.k_max.currentData()),
            self.runs.value(),
            self._seed,
        )

    def set_digit(self, i: int) -> None:
        """Choose test digit i (the next Run uses it)."""
        self.picker.set_index(int(i), emit=False)

    def show_sweep(self, sweep, exact: float | None = None) -> None:
        """Draw a sweep computed elsewhere (core.estimator_sweep; the lecture tour's seeded one)."""
        self.runner.cancel()
        self._sweep_step = self.hub.step
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.progress.setValue(100)
        self.runs.setValue(max(1, sweep.runs_done))
        self._show(sweep, exact)

    def _on_run_clicked(self) -> None:
        self.run()

    def _on_stop_clicked(self) -> None:
        self.runner.cancel()

    def _on_progress(self, task_id: int, fraction: float, payload) -> None:
        self.progress.setValue(int(100 * fraction))
        if payload is not None:
            self._show(*payload)

    def _on_finished(self, task_id: int, result) -> None:
        self._show(*result)
        self.progress.setValue(100)
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.finished.emit()

    def _on_cancelled(self, task_id: int) -> None:
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    def _on_failed(self, task_id: int, message: str) -> None:
        self._on_cancelled(task_id)
        self.summary.setText("Failed: " + message.splitlines()[0])

    def _on_weights_updated(self, step: int) -> None:
        # a sweep costs seconds of CPU: it is not redone on every snapshot; say that it is dated
        if self.sweep is not None and not self.runner.is_busy() and "training has moved on" not in self.summary.text():
            self.summary.setText(
                self.summary.text() + f"<br><i style='color:gray'>Computed with the weights of step "
                f"{self._sweep_step}; training has moved on — press Run to update.</i>"
            )

    def _on_model_changed(self) -> None:
        self.runner.cancel()
        self.sweep = None
        for item in (self.naive_mean, self.is_mean, self.hist_prior, self.hist_q, *self._band_curves):
            item.setData([], [])
        for item in self.naive_runs + self.is_runs:
            item.setData([], [])
        self.ref_line.setVisible(False)
        self.elbo_line.setVisible(False)
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.summary.setText("Choose a digit and press Run.")

    # --- drawing ---------------------------------------------------------------------------------
    def _run_curves(self, store: list, n: int, colour) -> None:
        while len(store) < n:
            item = pg.PlotDataItem(pen=pg.mkPen(*colour, 70, width=1))
            self.plot.addItem(item)
            store.append(item)

    def _show(self, sweep, exact) -> None:
        if sweep.runs_done == 0:
            return
        self.sweep, self.exact = sweep, exact
        ks = sweep.ks.numpy().astype(np.float64)
        naive, imp = sweep.naive.double().numpy(), sweep.importance.double().numpy()  # (runs, m)
        self._run_curves(self.naive_runs, len(naive), NAIVE_COLOUR)
        self._run_curves(self.is_runs, len(imp), IS_COLOUR)
        for store, data in ((self.naive_runs, naive), (self.is_runs, imp)):
            for i, item in enumerate(store):
                item.setData(ks, data[i]) if i < len(data) else item.setData([], [])
        finite = lambda a: np.where(np.isfinite(a), a, np.nan)
        self.naive_mean.setData(ks, np.nanmean(finite(naive), 0))
        self.is_mean.setData(ks, np.nanmean(finite(imp), 0))
        for curve, values in zip(self._band_curves, (naive.min(0), naive.max(0), imp.min(0), imp.max(0))):
            curve.setData(ks, finite(values))
        ref = exact if exact is not None else float(np.mean(imp[:, -1]))
        ref_name = "exact log p(x) (grid)" if exact is not None else f"IW-{int(ks[-1])} (best estimate)"
        self.ref_line.setValue(ref)
        self.ref_line.label.setFormat(f"{ref_name} = {ref:.2f}")
        self.ref_line.setVisible(True)
        self.elbo_line.setValue(sweep.elbo)
        self.elbo_line.label.setFormat(f"ELBO = {sweep.elbo:.2f}")
        self.elbo_line.setVisible(True)
        # histograms of log w relative to the largest weight of either proposal
        hist = log_weight_histograms(sweep.log_w_prior.double().numpy(), sweep.log_w_q.double().numpy(), HIST_BINS)
        self.hist_prior.setData(hist.edges, hist.prior)
        self.hist_q.setData(hist.edges, hist.q)
        K = len(sweep.log_w_prior)
        self.hist_legend.clear()
        self.hist_legend.addItem(self.hist_prior, f"prior p(z): ESS {sweep.ess_prior:,.1f} of {K:,}")
        self.hist_legend.addItem(self.hist_q, f"q(z|x): ESS {sweep.ess_q:,.1f} of {K:,}")
        # the lesson in words
        k_last = int(ks[-1])
        naive_gap = ref - float(np.mean(naive[:, -1]))
        i10 = int(np.searchsorted(ks, 10))
        is_gap10 = ref - float(np.mean(imp[:, min(i10, len(ks) - 1)]))
        lesson = (
            "Works in theory, not in practice: p(x|z) is tiny for almost every z ~ p(z), so a handful of "
            "lucky samples carry the whole sum."
            if naive_gap > 1.0
            else "With so few latent dimensions the prior still covers the posterior; try a model with more "
            "latent dimensions to see naive Monte Carlo fail."
        )
        self.summary.setText(
            f"<b>{sweep.runs_done}</b> run(s) of {k_last:,} samples each. With samples from the <span style='color:"
            f"rgb{NAIVE_COLOUR}'>prior</span>, the estimate at k = {k_last:,} is <b>{naive_gap:.1f} nats</b> "
            f"below {'log p(x)' if exact is not None else 'the best estimate'} and varies by "
            f"{float(np.ptp(naive[:, -1])):.1f} nats between runs. With "
            f"<span style='color:rgb{IS_COLOUR}'>q(z|x)</span> as the proposal it is "
            f"{is_gap10:.2f} nats below at k = 10. {lesson}"
        )
        self.sweep_updated.emit()
