"""The digit clusters panel's "Density" tab: a mixture of Bernoullis as a density model of the digits.

The computation is core.digit_clusters.fit_density_task, run by a FitLifecycle: EM on binarized
pixels, the mixture's exact test log p(x), and beside it the VAE's importance-sampled estimate
(IWAE-k, Burda et al. 2016) on the same fixed binarization — the lecture's "combine simple
models" next to its "infinite mixture". This tab reads its controls and draws the result.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from lvm_studio.core.data import TEST_BINARIZATION_SEED
from lvm_studio.core.digit_clusters import FIT_SETS, DensityResult, fit_density_task
from lvm_studio.ui.mixtures.fit_lifecycle import FitLifecycle, rich_label, split_view, trace_plot
from lvm_studio.ui.widgets.mixture_views import ComponentGallery
from lvm_studio.ui.widgets.style import MUTED, component_colours

INTRO = (
    "A mixture of K Bernoullis p(x) = Σ<sub>k</sub> π<sub>k</sub> Π<sub>d</sub> μ<sub>kd</sub><sup>x<sub>d"
    "</sub></sup>(1 − μ<sub>kd</sub>)<sup>1 − x<sub>d</sub></sup> combines K simple models into a more "
    "complex one; its log p(x) is exact. The VAE is an infinite mixture p(x) = ∫ p(x|z) p(z) dz whose log p(x) "
    "must be estimated. Both on the same fixed binarization of the test digits, in nats per digit."
)


class DensityTab(QWidget):
    fitted = Signal()  # a result is shown

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.result: DensityResult | None = None
        self.trace: list = []  # mean log p(x) after each M-step so far
        self._comparable = True  # the VAE has a Bernoulli decoder: its log p(x) is comparable
        self._step, self._name = 0, ""
        self.lifecycle = FitLifecycle(
            "bernoulli-mixture", "Fit the Bernoulli mixture by EM and evaluate both models", "Stop", self.fit, self
        )
        self.lifecycle.progressed.connect(self._on_progress)
        self.lifecycle.finished.connect(self._on_finished)
        self._build()
        hub.weights_updated.connect(self._on_weights_updated)
        hub.model_changed.connect(self._on_model_changed)
        hub.data_changed.connect(self._on_model_changed)  # another dataset: as for a new model

    def _build(self) -> None:
        self.k = QSpinBox()
        self.k.setRange(1, 500)
        self.k.setValue(10)
        self.k.setToolTip("Bernoulli components K")
        self.seed = QSpinBox()
        self.seed.setRange(0, 9999)
        self.fit_on = QComboBox()
        for key, text in FIT_SETS:
            self.fit_on.addItem(text, key)
        self.fit_on.setToolTip("Binarized training digits the mixture is fitted to (one fixed binarization)")
        self.iters = QSpinBox()
        self.iters.setRange(1, 1000)
        self.iters.setValue(100)
        self.iters.setToolTip("Most EM iterations (stops earlier when the log-likelihood rises by < 0.01 nats)")
        self.vae_n = QSpinBox()
        self.vae_n.setRange(0, 10000)
        self.vae_n.setSingleStep(500)
        self.vae_n.setValue(1000)
        self.vae_n.setToolTip(
            "Test digits for the VAE's importance-sampled log p(x) (0: skip). It costs k decoder passes per digit."
        )
        self.vae_k = QComboBox()
        for k in (10, 100, 1000):
            self.vae_k.addItem(f"{k:,}", k)
        self.vae_k.setCurrentIndex(1)
        self.vae_k.setToolTip("Importance samples k of the VAE's IWAE estimate")
        form = QGridLayout()
        fields = (
            ("K", self.k),
            ("seed", self.seed),
            ("fit on", self.fit_on),
            ("max iterations", self.iters),
            ("VAE: test digits", self.vae_n),
            ("samples k", self.vae_k),
        )
        # three label-field pairs a row, the buttons in a third row (the tab fits a 780-px dock)
        for i, (text, widget) in enumerate(fields):
            row, col = divmod(i, 3)
            form.addWidget(QLabel(text), row, 2 * col)
            form.addWidget(widget, row, 2 * col + 1, Qt.AlignmentFlag.AlignLeft)
        buttons = QHBoxLayout()
        buttons.addWidget(self.lifecycle.fit_button)
        buttons.addWidget(self.lifecycle.cancel_button)
        buttons.addWidget(self.lifecycle.progress)
        buttons.addStretch(1)
        form.addLayout(buttons, 2, 0, 1, 6)
        form.setColumnStretch(6, 1)
        self.intro = rich_label(INTRO)
        self.gallery = ComponentGallery()
        self.gallery.set_message(
            "The pixel probabilities μ_k of each component (top) and binary samples x ~ p(x | z = k) appear here."
        )
        self.results = rich_label()
        self.lifecycle.status_changed.connect(self.results.setText)
        self.trace_plot, self.trace_curves = trace_plot("mean log p(x) per digit")
        caption = rich_label(
            "Top row (framed): each component's pixel probabilities μ<sub>k</sub>, heaviest first "
            "(header: weight π<sub>k</sub>); below: binary samples x ~ p(x | z = k).",
            caption=True,
        )
        split = split_view([(self.gallery, 1), (caption, 0)], [(self.results, 0), (self.trace_plot, 1)])
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.intro)
        lay.addWidget(split, 1)

    # --- running ----------------------------------------------------------------------------------------
    def fit(self, **settings) -> None:
        """Start a Bernoulli mixture fit; settings override the controls: k, seed, fit_on, max_iter,
        n_vae, vae_k."""
        for name, widget in (("k", self.k), ("seed", self.seed), ("max_iter", self.iters), ("n_vae", self.vae_n)):
            if name in settings:
                widget.setValue(int(settings[name]))
        if "fit_on" in settings:
            self.fit_on.setCurrentIndex(self.fit_on.findData(settings["fit_on"]))
        if "vae_k" in settings:
            i = self.vae_k.findData(int(settings["vae_k"]))
            if i < 0:
                self.vae_k.addItem(f"{int(settings['vae_k']):,}", int(settings["vae_k"]))
                i = self.vae_k.count() - 1
            self.vae_k.setCurrentIndex(i)
        try:
            data = self.hub.data
        except Exception as e:
            self.lifecycle.set_status(f"No data: {e}")
            return
        self._comparable = self.hub.config.likelihood == "bernoulli"
        self.trace = []
        self.trace_curves[0].setData([], [])
        self._step, self._name = self.hub.step, self.hub.name
        self.lifecycle.start(
            f"Fitting K = {self.k.value()} Bernoullis to the {self.fit_on.currentText()}, binarized …",
            fit_density_task,
            self.hub.model if self._comparable else None,
            data,
            self.fit_on.currentData(),
            k=self.k.value(),
            seed=self.seed.value(),
            max_iter=self.iters.value(),
            n_vae=self.vae_n.value(),
            vae_k=int(self.vae_k.currentData()),
        )

    def cancel(self) -> None:
        self.lifecycle.cancel()

    def _on_progress(self, fraction: float, payload) -> None:
        if payload is not None:
            self.trace.append(payload.ll)
            self.trace_curves[0].setData(np.arange(len(self.trace)), np.array(self.trace))
        elif fraction > 0.0 and self.trace:
            self.lifecycle.set_status("EM done; estimating the VAE's log p(x) by importance sampling …")

    # --- drawing ----------------------------------------------------------------------------------------
    def _on_finished(self, res: DensityResult) -> None:
        self.result = res
        order = np.argsort(-res.weights)  # heaviest first
        images = np.concatenate([res.probs[:, None], res.sample_images], 1)  # (K, 1 + S, N_PIXELS)
        self.gallery.set_components(
            images[order], component_colours(res.k)[order], [f"{res.weights[c]:.2f}" for c in order]
        )
        self.lifecycle.set_status(self._table(res) + self._notes(res))
        self.fitted.emit()

    # --- the model changes ------------------------------------------------------------------------------
    def _vae_shown(self) -> bool:
        """A VAE number is shown (and the status is the result's, not a fit in progress)."""
        return self.result is not None and self.result.vae_log_px is not None and not self.lifecycle.busy()

    def _on_weights_updated(self, step: int) -> None:
        # the mixture's number is exact and stays; the VAE's is for the weights it was computed with
        if self._vae_shown():
            self.lifecycle.mark_stale(
                f"<br><i style='color:{MUTED}'>The VAE's number is for step {self._step}; training has moved on "
                "— press Fit for the current weights.</i>"
            )

    def _on_model_changed(self) -> None:
        if self._vae_shown():
            self.lifecycle.set_note(
                f"<br><i style='color:{MUTED}'>The VAE's number is for {self._name}, not the model loaded now.</i>"
            )

    @staticmethod
    def _table(res: DensityResult) -> str:
        rows = [
            f"<tr><td>mixture of {res.k} Bernoullis (exact)</td><td align='right'><b>{res.test_log_px:.2f}"
            f"</b></td><td>all {res.n_test:,} test digits</td></tr>"
        ]
        if res.vae_log_px is not None:
            rows.append(
                f"<tr><td>mixture of {res.k} Bernoullis (exact)</td><td align='right'>"
                f"<b>{res.test_log_px_subset:.2f}</b></td><td>first {res.n_vae:,} test digits</td></tr>"
            )
            rows.append(
                f"<tr><td>VAE, IWAE-{res.vae_k:,} estimate</td><td align='right'><b>{res.vae_log_px:.2f}"
                f"</b></td><td>first {res.n_vae:,} test digits</td></tr>"
            )
        return (
            "<table cellspacing='6'><tr><th align='left'>model</th><th>test log p(x)</th><th align='left'>on</th>"
            "</tr>" + "".join(rows) + "</table>"
        )

    def _notes(self, res: DensityResult) -> str:
        notes = (
            f"nats per digit, one fixed binarization of the test set (seed {TEST_BINARIZATION_SEED}). "
            f"EM: {res.iterations} iterations"
            f"{' (converged)' if res.converged else ''} on {res.n_fit:,} binarized training digits, seed "
            f"{res.seed}, {res.seconds:.1f} s."
        )
        if res.vae_log_px is not None:
            gap = res.vae_log_px - res.test_log_px_subset
            notes += (
                f"<br>On the same digits the VAE ({self._name}, step {self._step}) gives "
                f"<b>{abs(gap):.1f} nats</b> per digit {'more' if gap >= 0 else 'less'} than the mixture. Its "
                f"IWAE-{res.vae_k} number is a stochastic lower bound on its log p(x) ({res.vae_seconds:.1f} s); "
                f"the mixture's is exact."
            )
        elif not self._comparable:
            notes += "<br>The current VAE has a Gaussian decoder: its densities are not comparable with these."
        return notes
