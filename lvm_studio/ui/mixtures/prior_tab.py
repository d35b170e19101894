"""The digit clusters panel's "Model's prior" tab: a mixture-prior VAE's own components.

Nothing is fitted here: the model's prior p(z) = Σ_c π_c N(μ_c, σ_c²) already is a mixture
(core/mixture_prior.py). The tab shows each component's mean and samples decoded by p(x|z), lets
you pick a component and sample from it (the lecture's generative process c → z → x, through a
neural decoder), and the confusion matrix of the test digits' q(c|x) against their labels (which
only score). The computation is core.prior_clusters, in the background (a TaskRunner); it reruns
when the model changes, and while training at most every REFRESH_S with the newest weights.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from lvm_studio.core.prior_clusters import N_LABELS, PriorClusters, component_samples, prior_clusters_task
from lvm_studio.ui.mixtures.fit_lifecycle import rich_label, split_view
from lvm_studio.ui.widgets.controls import button
from lvm_studio.ui.widgets.mixture_views import ComponentGallery, ConfusionMatrixView
from lvm_studio.ui.widgets.style import cluster_colours
from lvm_studio.workers.tasks import TaskRunner

N_SAMPLES = 5  # gallery samples per component
N_PICKED = 24  # samples of the picked component, in columns of PICKED_ROWS
PICKED_ROWS = 3
REFRESH_S = 5.0


class PriorTab(QWidget):
    shown = Signal()  # a result is on screen
    sampled = Signal()  # the picked component's samples are on screen

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.result: PriorClusters | None = None
        self._seed = 0
        self._last = -float("inf")
        self.runner = TaskRunner("prior-clusters", self)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)

        self.component = QComboBox()
        self.component.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.component.setToolTip("The component c to sample from: z ~ N(μ_c, σ_c²), then x ~ p(x|z)")
        self.n_samples = QSpinBox(minimum=PICKED_ROWS, maximum=60, value=N_PICKED, singleStep=PICKED_ROWS)
        self.sample_button = button("Sample", "Draw new samples from the chosen component", self.sample)
        self.status = rich_label("")
        self.gallery = ComponentGallery()
        self.gallery.setToolTip(
            "One column per component of the model's prior, ordered by the digit it is matched to: "
            "its mean μ_c decoded (framed) and samples z ~ N(μ_c, σ_c²) decoded. Header: c → digit."
        )
        self.picked = ComponentGallery(min_height=120, frame_first=False)
        self.picked.set_message("Pick a component and press Sample.")
        self.confusion = ConfusionMatrixView()
        self.confusion.setToolTip(
            "Test digits by true label (rows) and their most probable component under q(c|x) (columns, in "
            "the gallery's order). Outlined: the Hungarian matching of components to labels."
        )
        self.metrics = rich_label()
        caption = rich_label(
            "Top: each component's mean (framed) and samples. Below: the picked component's samples, "
            "c → z ~ N(μ<sub>c</sub>, σ<sub>c</sub>²) → p(x|z).",
            caption=True,
        )
        row = QHBoxLayout()
        row.addWidget(QLabel("component"))
        row.addWidget(self.component)
        row.addWidget(QLabel("samples"))
        row.addWidget(self.n_samples)
        row.addWidget(self.sample_button)
        row.addStretch(1)
        split = split_view(
            [(self.gallery, 3), (self.picked, 2), (caption, 0)], [(self.metrics, 0), (self.confusion, 3)]
        )
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(split, 1)
        hub.model_changed.connect(self._on_model_changed)
        hub.weights_updated.connect(self._on_weights_updated)
        self._on_model_changed()

    # --- running ---------------------------------------------------------------------------------
    def has_mixture(self) -> bool:
        return getattr(self.hub.model, "mixture", None) is not None

    def refresh(self) -> None:
        """Recompute the gallery and the scores for the current weights (in the background)."""
        if not self.has_mixture():
            return
        try:
            x, labels = self.hub.eval_x("test"), self.hub.labels("test")
        except Exception as e:  # no data file: say so, lose nothing
            self.status.setText(f"No test data: {e}")
            return
        self._last = time.monotonic()
        self.runner.submit(prior_clusters_task, self.hub.model, x, labels, N_SAMPLES, self._seed)

    def sample(self) -> None:
        """New samples from the picked component (cheap: a few decoder rows, on this thread)."""
        if not self.has_mixture() or self.component.currentData() is None:
            return
        c = int(self.component.currentData())
        self._seed += 1
        n = self.n_samples.value() // PICKED_ROWS * PICKED_ROWS
        images = component_samples(self.hub.model, c, n, seed=self._seed)  # (n, D_x)
        colour = self._colours()[c]
        cols = n // PICKED_ROWS
        captions = [f"c{c + 1}"] + [""] * (cols - 1)
        self.picked.set_components(images.reshape(cols, PICKED_ROWS, -1), np.repeat(colour[None], cols, 0), captions)
        self.sampled.emit()

    def _colours(self) -> np.ndarray:
        k = self.hub.model.mixture.n_components
        return cluster_colours(k, self.result.mapping if self.result is not None else {})

    # --- results ---------------------------------------------------------------------------------
    def _on_finished(self, task_id: int, res: PriorClusters) -> None:
        if not self.has_mixture() or res.k != self.hub.model.mixture.n_components:
            return
        self.result = res
        order = sorted(range(res.k), key=lambda c: (res.mapping.get(c, 99), c))  # by matched digit
        colours = cluster_colours(res.k, res.mapping)
        captions = [f"{c + 1}→{res.mapping[c]}" if c in res.mapping else f"{c + 1}" for c in order]
        images = np.concatenate([res.mean_images[:, None], res.sample_images], 1)  # (K, 1 + S, D_x)
        self.gallery.set_components(images[order], colours[order], captions)
        if res.confusion.size:
            highlight = [(res.mapping[c], j) for j, c in enumerate(order) if c in res.mapping]
            self.confusion.set_matrix(
                res.confusion[:, order],
                [str(d) for d in range(N_LABELS)],
                [str(c + 1) for c in order],
                colours[order],
                highlight,
            )
        keep = self.component.currentData()
        self.component.blockSignals(True)
        self.component.clear()
        for c in order:
            digit = f" → {res.mapping[c]}" if c in res.mapping else ""
            self.component.addItem(f"{c + 1}{digit}  (π = {res.weights[c]:.3f})", c)
        self.component.setCurrentIndex(max(0, self.component.findData(keep)))
        self.component.blockSignals(False)
        self.metrics.setText(
            f"<b>q(c|x) on {len(res.assignments):,} test digits</b>: accuracy <b>{res.accuracy:.3f}</b> "
            f"(Hungarian), NMI <b>{res.nmi:.3f}</b>. The labels only score; they never trained the model."
        )
        self.status.setText(f"The model's own {res.k} components, weights of step {self.hub.step}.")
        self.shown.emit()
        if self.picked.images() is None:
            self.sample()

    def _on_failed(self, task_id: int, message: str) -> None:
        self.status.setText("Failed: " + message.splitlines()[0])

    def _on_model_changed(self) -> None:
        self.result = None
        self.component.clear()
        on = self.has_mixture()
        for w in (self.component, self.n_samples, self.sample_button):
            w.setEnabled(on)
        if not on:
            self.gallery.set_message(
                "This model's prior is N(0, I): it has no components. Create one with a Gaussian-mixture "
                "prior (File → New model…) or open the shipped VaDE model, or fit a mixture to its codes "
                "in the Clusters tab."
            )
            self.picked.set_message("")
            self.confusion.clear()
            self.metrics.setText("")
            self.status.setText("")
            return
        self.gallery.set_message("Decoding the components …")
        self.picked.set_message("Pick a component and press Sample.")
        self.refresh()

    def _on_weights_updated(self, *_) -> None:
        if not self.has_mixture() or self._timer.isActive():
            return
        wait = max(0.0, REFRESH_S - (time.monotonic() - self._last))
        self._timer.start(int(1000 * wait))
