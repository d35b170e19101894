"""Digit clusters: mixture models on MNIST without labels, and a mixture as a density model.

Tab "Clusters" (ui.mixtures.clusters_tab): a Gaussian mixture fitted by EM to the VAE's latent
  codes μ_φ(x) or to a PCA projection of the pixels, scored against the labels (Hungarian
  accuracy, NMI, confusion matrix); for codes the responsibilities go to the hub's latent map.
Tab "Density" (ui.mixtures.density_tab): a mixture of Bernoullis on binarized pixels, its exact
  test log p(x) beside the VAE's IWAE-k estimate.
Tab "Model's prior" (ui.mixtures.prior_tab): a mixture-prior VAE's own components (means, samples,
  pick a component and sample) and the confusion matrix of its q(c|x); first for such a model.

The maths is core.digit_clusters (fit_clusters_task, fit_density_task), run in the background
by one FitLifecycle per tab (ui.mixtures.fit_lifecycle) with progress and a Cancel button. This
panel composes the two tabs and keeps their public handles in one place.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from lvm_studio.core.digit_clusters import ClusterResult, DensityResult
from lvm_studio.ui.mixtures.clusters_tab import ClustersTab
from lvm_studio.ui.mixtures.density_tab import DensityTab
from lvm_studio.ui.mixtures.prior_tab import PriorTab


class DigitClustersPanel(QWidget):
    clusters_fitted = Signal()  # a Gaussian mixture result is shown (and, for VAE codes, published)
    density_fitted = Signal()  # a Bernoulli mixture result is shown
    fit_cancelled = Signal(str)  # 'clusters' | 'density'

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.clusters = ClustersTab(hub)
        self.density = DensityTab(hub)
        self.prior = PriorTab(hub)
        self.clusters.fitted.connect(self.clusters_fitted)
        self.density.fitted.connect(self.density_fitted)
        self.clusters.lifecycle.cancelled.connect(lambda: self.fit_cancelled.emit("clusters"))
        self.density.lifecycle.cancelled.connect(lambda: self.fit_cancelled.emit("density"))
        # the handles scripts and tests use
        self.runner, self.density_runner = self.clusters.lifecycle.runner, self.density.lifecycle.runner
        self.fit_button, self.cancel_button = self.clusters.lifecycle.fit_button, self.clusters.lifecycle.cancel_button
        self.gallery, self.confusion, self.status = self.clusters.gallery, self.clusters.confusion, self.clusters.status
        self.d_gallery, self.d_results = self.density.gallery, self.density.results

        self.tabs = QTabWidget()
        self.tabs.addTab(self.clusters, "Clusters (Gaussian mixture)")
        self.tabs.addTab(self.density, "Density (Bernoulli mixture)")
        self.tabs.addTab(self.prior, "Model's prior (mixture VAE)")
        hub.model_changed.connect(self._on_model_changed)
        self._on_model_changed()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs)

    def _on_model_changed(self) -> None:
        """A mixture-prior model opens on its own components; a standard VAE on the Clusters tab."""
        if self.prior.has_mixture():
            self.tabs.setCurrentWidget(self.prior)
        elif self.tabs.currentWidget() is self.prior:
            self.tabs.setCurrentWidget(self.clusters)

    @property
    def result(self) -> ClusterResult | None:
        return self.clusters.result

    @property
    def density_result(self) -> DensityResult | None:
        return self.density.result

    @property
    def _traces(self) -> dict[int, list]:
        return self.clusters.traces

    def fit(self, space: str | None = None, **settings) -> None:
        """Start a Gaussian mixture fit (see ClustersTab.fit)."""
        self.clusters.fit(space, **settings)

    def cancel(self) -> None:
        self.clusters.cancel()

    def show_clusters(self, result: ClusterResult) -> None:
        """Show a Gaussian mixture result computed elsewhere (see ClustersTab.show_result)."""
        self.tabs.setCurrentWidget(self.clusters)
        self.clusters.show_result(result)

    def show_tab(self, name: str) -> None:
        """Bring the 'clusters' or the 'density' tab to the front."""
        self.tabs.setCurrentWidget(self.density if name == "density" else self.clusters)

    def fit_density(self, **settings) -> None:
        """Start a Bernoulli mixture fit (see DensityTab.fit)."""
        self.density.fit(**settings)

    def cancel_density(self) -> None:
        self.density.cancel()
