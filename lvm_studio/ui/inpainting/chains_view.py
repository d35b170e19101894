"""The inpainting panel's Markov chains: their completions as they mix and "what digit is it?" (issue 16).

ChainsView draws what core.inpainting_chains reports (ChainReport): a grid of the chains' current
completions, the class mix p(class | x_o) estimated from the samples as bars, and the acceptance
rate and effective sample size. ChainsController owns the chains' TaskRunner: the panel starts a
run after each fit (so the two never compete for the CPU) and stops it when a new fit is asked
for, so the newest stroke wins here too; while training sends new weights the chains wait
(TRAINING_QUIET_S). Reports are drawn at most every VIEW_INTERVAL_MS.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSpinBox, QVBoxLayout, QWidget

from lvm_studio.core.classifier import N_CLASSES, classifier_from_checkpoint
from lvm_studio.core.inpainting_chains import ChainReport, chains_task
from lvm_studio.core.mwg import ChainConfig
from lvm_studio.core.traversal import tile_images
from lvm_studio.ui.inpainting.mask_overlay import MaskedDigitImage
from lvm_studio.ui.widgets import style
from lvm_studio.ui.widgets.axes import plain_axes
from lvm_studio.workers.tasks import TaskRunner

CHAIN_ROWS = 4  # the grid shows CHAIN_ROWS × CHAIN_ROWS chains
VIEW_INTERVAL_MS = 80
# while training sends new weights (about every second) the chains wait, so they never take the
# core the training thread wants; they run once no new weights came for this long
TRAINING_QUIET_S = 2.5
MAX_HEIGHT = 200
MIN_HEIGHT = 100  # the bars and the five short lines of numbers stay readable at 1,280×720
METHODS = (("mwg", "Metropolis-within-Gibbs"), ("pseudo_gibbs", "pseudo-Gibbs"))
SHORT = {"mwg": "MwG", "pseudo_gibbs": "pseudo-Gibbs"}  # in the numbers beside the bars
MWG_TIP = (
    "Metropolis-within-Gibbs (Mattei & Frellsen 2018): propose z from the encoder at the completed image, "
    "accept with the exact ratio p(x, z) / q, then draw the hidden pixels from p(x_m | z). Its samples come "
    "from the exact p(z, x_m | x_o). Pseudo-Gibbs (Rezende et al. 2014) accepts every proposal: exact only "
    "if the encoder were."
)


STATS_TIP = (
    "The chains' numbers: the sweep; for MwG the share of proposals accepted; the class mix (the digit "
    "classifier's p(class | completion) averaged over the completions past burn-in, an estimate of "
    "p(class | x_o)); how many different digits the chains' current states are; the effective sample "
    "size (the smallest over the coordinates of z) and how many per second."
)


def load_shipped_classifier():
    """The shipped digit classifier (pretrained/manifest.json "classifiers"), or (None, why not)."""
    from lvm_studio.core.checkpoint import CheckpointError, load_checkpoint
    from lvm_studio.core.pretrained import default_classifier_path

    path = default_classifier_path()
    if path is None:
        return None, "no digit classifier is shipped (lvm-studio train-classifier makes one)"
    try:
        return classifier_from_checkpoint(load_checkpoint(path)), ""
    except CheckpointError as e:
        return None, f"the digit classifier cannot be loaded: {e}"


class ChainsView(QWidget):
    """The chains' current completions, the class bars and the chain numbers, side by side."""

    options_changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.grid_view = MaskedDigitImage(min_side=56, hint_side=150, caption="chains, current states")
        self.grid_view.setToolTip(
            f"The hidden pixels of {CHAIN_ROWS * CHAIN_ROWS} Markov chains' current states, E[x_m | z], updated as "
            "they mix; the seen pixels are yours"
        )
        self.bars_plot = pg.PlotWidget()
        plain_axes(self.bars_plot)
        self.bars_plot.setMinimumSize(110, 64)  # the panel fits 1,280×720 (tests/ui/test_panel_sizes.py)
        self.bars_plot.setMouseEnabled(False, False)
        self.bars_plot.setMenuEnabled(False)
        self.bars_plot.setYRange(0.0, 1.0, padding=0.02)
        self.bars_plot.setXRange(-0.6, N_CLASSES - 0.4, padding=0)
        self.bars_plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(N_CLASSES)]])
        self.bars_plot.setLabel("left", "p(class | x<sub>o</sub>)")
        self.bars_plot.setTitle("what digit is it?", size="9pt")
        brushes = [pg.mkBrush(*map(int, c)) for c in style.LABEL_COLOURS[:N_CLASSES]]
        self.bars = pg.BarGraphItem(x=np.arange(N_CLASSES), height=np.zeros(N_CLASSES), width=0.75, brushes=brushes)
        self.bars_plot.addItem(self.bars)
        self.bars_plot.setToolTip(
            "The class mix: the digit classifier's p(class | completion) averaged over the chains' completions "
            "past burn-in, an estimate of p(class | x_o)"
        )
        self.method = QComboBox()
        for key, label in METHODS:
            self.method.addItem(label, key)
        self.method.setToolTip(MWG_TIP)
        # a long method name elides instead of widening the panel
        self.method.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.method.setMinimumContentsLength(8)
        self.sweeps = QSpinBox()
        self.sweeps.setRange(20, 20000)
        self.sweeps.setValue(400)
        self.sweeps.setSingleStep(100)
        self.sweeps.setSuffix(" sweeps")
        self.sweeps.setToolTip("Gibbs sweeps per run (each: a z step for every chain, then new hidden pixels)")
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        self.stats.setTextFormat(Qt.TextFormat.RichText)
        self.stats.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.stats.setMinimumWidth(90)
        self.stats.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)  # takes what it gets
        self.stats.setToolTip(STATS_TIP)
        options = QHBoxLayout()
        options.setSpacing(4)
        options.addWidget(self.method, 1)
        options.addWidget(self.sweeps)
        side = QVBoxLayout()
        side.setSpacing(2)
        side.addLayout(options)
        side.addWidget(self.stats, 1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.setMinimumHeight(MIN_HEIGHT)
        self.setMaximumHeight(MAX_HEIGHT)  # the fit's views above keep most of the height
        lay.addWidget(self.grid_view, 2)
        lay.addWidget(self.bars_plot, 4)  # ten labelled bars need the width more than the short lines
        lay.addLayout(side, 3)
        self.method.currentIndexChanged.connect(self.options_changed)
        self.sweeps.valueChanged.connect(self.options_changed)

    def hasHeightForWidth(self) -> bool:
        # A wrapped label inside makes this a height-for-width widget, and a box layout takes an
        # item's height for its width as its minimum: the panel's column gave this view all of
        # MAX_HEIGHT and squeezed the fit's views above below theirs (seen on Xvfb at 1,366×768:
        # captions lost, the samples under the ELBO plot). Its lines are short: MIN_HEIGHT holds them.
        return False

    def config(self) -> ChainConfig:
        return ChainConfig(
            n_chains=CHAIN_ROWS * CHAIN_ROWS,
            steps=self.sweeps.value(),
            burn_in=min(20, self.sweeps.value() // 4),
            method=self.method.currentData(),
            report_every=10,
            seed=0,
        )

    def clear(self, note: str = "") -> None:
        self.grid_view.set_image(None)
        self.bars.setOpts(height=np.zeros(N_CLASSES))
        self.stats.setText(note)

    def show_report(self, r: ChainReport, classifier_note: str = "") -> None:
        n = CHAIN_ROWS * CHAIN_ROWS
        comps = r.completions[:n]
        if len(comps) == n:
            self.grid_view.set_image(tile_images(comps.reshape(CHAIN_ROWS, CHAIN_ROWS, -1), gap=1, fill=0.35))
        self.grid_view.set_caption(f"{len(comps)} chains, sweep {r.step}")
        lines = [f"{SHORT[r.method]}, sweep {r.step} of {r.steps}"]
        if r.method == "mwg":
            lines.append(f"acceptance rate <b>{100 * r.accept_rate:.1f} %</b>")
        if r.class_probs is not None:
            p = r.class_probs.double().numpy()
            self.bars.setOpts(height=p)
            top = np.argsort(p)[::-1][:3]
            mix = ", ".join(f"{int(c)}: {100 * p[c]:.0f} %" for c in top if p[c] >= 0.05)
            lines.append(f"class mix <b>{mix}</b>")
            kinds = len(set(r.chain_classes.tolist())) if r.chain_classes is not None else 0
            lines.append(f"the chains show {kinds} digit{'s' if kinds != 1 else ''} now")
        else:
            self.bars.setOpts(height=np.zeros(N_CLASSES))
            lines.append(classifier_note)
        if r.ess_min is not None:
            eps = r.ess_per_second
            rate = f", {eps:.0f} per second" if eps is not None and math.isfinite(eps) else ""
            lines.append(f"effective samples <b>{r.ess_min:.0f}</b>{rate}")
        self.stats.setText("<br>".join(lines))
        over = f"\nThe class mix is over {r.n_samples} completions." if r.n_samples else ""
        self.stats.setToolTip(STATS_TIP + over)


class ChainsController(QObject):
    """Runs the chains for the panel: start(...) after a fit, stop() before the next; draws throttled."""

    report_shown = Signal(object)  # the ChainReport just drawn
    finished = Signal(object)  # the final ChainReport

    def __init__(self, view: ChainsView, hub, parent=None):
        super().__init__(parent)
        self.view = view
        self.hub = hub
        self.runner = TaskRunner("inpainting-chains", self)
        self.runner.progressed.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.classifier, self.classifier_note = load_shipped_classifier()
        self.last: ChainReport | None = None
        self._pending: ChainReport | None = None
        self._last_view = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._draw_pending)
        self._last_weights = -math.inf
        self._deferred: tuple | None = None
        self._defer_timer = QTimer(self)
        self._defer_timer.setSingleShot(True)
        self._defer_timer.timeout.connect(self._on_defer_timeout)
        hub.weights_updated.connect(self.note_weights_updated)

    def note_weights_updated(self, step: int = 0) -> None:
        """New weights arrived (a training step): chains started soon after wait until it is quiet."""
        self._last_weights = time.monotonic()

    def start_for(self, outcome) -> None:
        """Chains for a fit's FitOutcome (if of the hub's current weights), started at draws of its
        fitted q: MwG forgets where it starts, so this only saves it the walk from afar."""
        if outcome is not None and outcome.model_version == self.hub.version:
            q = (outcome.result.z_loc[0], outcome.result.z_scale[0])
            self.start(self.hub.model, outcome.x, outcome.missing, outcome.model_version, outcome.placement, q)

    def start(self, model, x, missing, version: int, placement=None, init_q=None) -> None:
        self._pending = None
        wait_s = TRAINING_QUIET_S - (time.monotonic() - self._last_weights)
        if wait_s > 0:
            self.runner.cancel()
            self._deferred = (model, x, missing, version, placement, init_q)
            self._defer_timer.start(int(1000 * wait_s) + 50)
            self.view.stats.setText("The chains wait while the model trains; they run once new weights stop coming.")
            return
        self._deferred = None
        self.runner.submit(
            chains_task, model, self.classifier, x, missing, self.view.config(), version, placement, init_q
        )

    def _on_defer_timeout(self) -> None:
        if self._deferred is not None:
            self.start(*self._deferred)

    def stop(self) -> None:
        self._deferred = None
        self._defer_timer.stop()
        self.runner.cancel()
        self._pending = None
        self._timer.stop()

    def _on_progress(self, task_id: int, fraction: float, report: ChainReport) -> None:
        self._pending = report
        if not self._timer.isActive():
            wait = VIEW_INTERVAL_MS - 1000 * (time.perf_counter() - self._last_view)
            self._timer.start(max(0, int(wait)))

    def _draw_pending(self) -> None:
        report, self._pending = self._pending, None
        if report is not None:
            self._show(report)

    def _show(self, report: ChainReport) -> None:
        self._last_view = time.perf_counter()
        self.last = report
        self.view.show_report(report, self.classifier_note)
        self.report_shown.emit(report)

    def _on_finished(self, task_id: int, report: ChainReport) -> None:
        self._timer.stop()
        self._pending = None
        self._show(report)
        self.finished.emit(report)

    def _on_failed(self, task_id: int, message: str) -> None:
        self.view.stats.setText("The chains failed: " + message.splitlines()[0])
