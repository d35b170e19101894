"""The digit clusters panel's "Clusters" tab: a Gaussian mixture on VAE codes or PCA coordinates.

The computation is core.digit_clusters.fit_clusters_task, run by a FitLifecycle; this tab reads
its controls, shows the EM traces while it runs, and draws the result: each component's mean and
samples (ordered by the digit it is matched to), the confusion matrix and the scores. For VAE
codes the test responsibilities go to the hub, and the latent map can colour by them.

While training runs. A fit runs on the snapshot it was started from (hub.model and hub.version at
the press of Fit) and its result is published for that snapshot, however far training has moved
on meanwhile. When the weights move on (hub.weights_updated), the published mixture is kept and
only its responsibilities follow: the test digits are re-encoded with the current weights and
p(c | z) recomputed under the fitted mixture (core.digit_clusters.code_responsibilities_task, one
encoder pass and one E-step in the background, at most every REFRESH_S), so the map's 'mixture'
colouring stays live. Fit again to refit the mixture itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from lvm_studio.core.digit_clusters import (
    FIT_SETS,
    N_LABELS,
    ClusterResult,
    CodeResponsibilities,
    code_responsibilities_task,
    fit_clusters_task,
)
from lvm_studio.ui.mixtures.fit_lifecycle import FitLifecycle, rich_label, split_view, trace_plot
from lvm_studio.ui.widgets.mixture_views import ComponentGallery, ConfusionMatrixView
from lvm_studio.ui.widgets.style import MUTED, cluster_colours
from lvm_studio.workers.tasks import TaskRunner

DEFAULT_MAX_ITER = 300
REFRESH_S = 5.0  # while training: the published responsibilities are recomputed at most this often (one
# encoder pass over the test digits, ~0.3–1 s of one core for VAE-32, so at most ~6–20 % of a core)


@dataclass(frozen=True)
class Published:
    """A mixture of VAE codes whose test responsibilities the hub holds, and the codes they are for."""

    result: ClusterResult
    colours: np.ndarray  # (K, 3) uint8
    fit_step: int  # training step of the weights the mixture was fitted to
    codes_step: int  # … and of the codes the published responsibilities belong to
    codes_version: int  # hub.version of those codes


class ClustersTab(QWidget):
    fitted = Signal()  # a result is shown (and, for VAE codes, published)
    responsibilities_refreshed = Signal(int)  # the published p(c|z) now belong to the codes of this step

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.result: ClusterResult | None = None
        self.traces: dict[int, list] = {}  # restart -> mean log-likelihoods so far
        self._fit_step: int | None = None
        self._fit_version: int | None = None
        self.published: Published | None = None
        self._posterior = None  # the hub's cluster_posterior tuple as published here (identity: still ours?)
        self._refresh_for: tuple | None = None  # (Published, version, step) of the refresh in flight
        self._last_refresh = -float("inf")
        self.refresh_runner = TaskRunner("digit-clusters-codes", self)
        self.refresh_runner.finished.connect(self._on_refreshed)
        self.refresh_runner.failed.connect(self._on_refresh_failed)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self.refresh_responsibilities)
        self.lifecycle = FitLifecycle(
            "digit-clusters", "Fit the mixture by EM (in the background)", "Stop the fit", self.fit, self
        )
        self.lifecycle.progressed.connect(self._on_progress)
        self.lifecycle.finished.connect(self._on_finished)
        self._build()
        hub.model_changed.connect(self._on_model_changed)
        hub.data_changed.connect(self._on_model_changed)  # another dataset: as for a new model
        hub.weights_updated.connect(self._on_weights_updated)
        self._on_space_changed()

    # --- building ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.space = QComboBox()
        self.space.addItem("a) VAE latent codes μ(x)", "vae")
        self.space.addItem("b) PCA of the pixels", "pca")
        self.space.setToolTip(
            "Where the Gaussian mixture lives: the current VAE's encoder means (the latent map's "
            "codes), or a principal-component projection of the grey-level pixels"
        )
        self.pca_dim = QSpinBox()
        self.pca_dim.setRange(2, 200)
        self.pca_dim.setValue(50)
        self.pca_dim.setToolTip(
            "Number of principal components of the pixels (PCA computed in torch on the training digits)"
        )
        self.k = QSpinBox()
        self.k.setRange(2, 40)
        self.k.setValue(10)
        self.k.setToolTip("Mixture components K")
        self.covariance = QComboBox()
        self.covariance.addItem("full", "full")
        self.covariance.addItem("diagonal", "diag")
        self.seed = QSpinBox()
        self.seed.setRange(0, 9999)
        self.seed.setToolTip("Seed of the k-means++ initialisation (restart r uses seed + r)")
        self.restarts = QSpinBox()
        self.restarts.setRange(1, 10)
        self.restarts.setValue(1)
        self.restarts.setToolTip(
            "EM runs from different seeds; the one with the highest training log-likelihood "
            "is kept (chosen without labels)"
        )
        self.fit_on = QComboBox()
        for key, text in FIT_SETS:
            self.fit_on.addItem(text, key)
        self.fit_on.setToolTip(
            "Digits the mixture is fitted to (no labels). Scores are always on the 10,000 test digits."
        )
        self.status = rich_label("Choose a space and press Fit.")
        self.lifecycle.status_changed.connect(self.status.setText)

        # three label-field pairs a row (about 500 px), so the tab fits a dock of a 1,280 × 720 window:
        # space, PCA dims / K, covariance, restarts / fit on, seed, Fit Stop progress
        grid = QGridLayout()
        rows = (
            (("space", self.space), ("PCA dims", self.pca_dim)),
            (("K", self.k), ("covariance", self.covariance), ("restarts", self.restarts)),
            (("fit on", self.fit_on), ("seed", self.seed)),
        )
        for r, pairs in enumerate(rows):
            for col, (text, widget) in enumerate(pairs):
                grid.addWidget(QLabel(text), r, 2 * col)
                grid.addWidget(widget, r, 2 * col + 1, Qt.AlignmentFlag.AlignLeft)
        row = QHBoxLayout()
        row.addWidget(self.lifecycle.fit_button)
        row.addWidget(self.lifecycle.cancel_button)
        row.addWidget(self.lifecycle.progress)
        grid.addLayout(row, 2, 4, 1, 3)
        grid.setColumnStretch(6, 1)

        self.gallery = ComponentGallery()
        self.gallery.set_message("Component means (top row, framed) and samples z ~ N(μ_k, Σ_k) appear here.")
        self.gallery.setToolTip(
            "One column per component, ordered by the digit it is matched to: its mean (framed) "
            "and samples from its Gaussian, decoded by the VAE (a) or back-projected from PCA (b). "
            "The header gives component → matched digit and the weight π_k."
        )
        self.confusion = ConfusionMatrixView()
        self.confusion.setToolTip(
            "Test digits by true label (rows) and most responsible component (columns, in "
            "the gallery's order). Outlined: the Hungarian matching of components to labels."
        )
        self.metrics = rich_label()
        self.trace_plot, self.trace_curves = trace_plot("mean log p per digit")
        self.gallery_caption = rich_label(
            "Top row (framed): each component's mean; below: samples z ~ N(μ<sub>k</sub>, "
            "Σ<sub>k</sub>). Header: component → the digit it is matched to.",
            caption=True,
        )
        split = split_view(
            [(self.gallery, 1), (self.gallery_caption, 0)],
            [(self.metrics, 0), (self.confusion, 3), (self.trace_plot, 1)],
        )
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addWidget(self.status)
        lay.addWidget(split, 1)
        self.space.currentIndexChanged.connect(self._on_space_changed)

    # --- running ----------------------------------------------------------------------------------------
    def fit(self, space: str | None = None, **settings) -> None:
        """Start a fit. space 'vae' | 'pca'; settings override the controls: k, covariance, pca_dim,
        seed, restarts, fit_on ('10k' | 'train' | 'trainval'); and max_iter, tol (EM's, not shown)."""
        if space is not None:
            self.space.setCurrentIndex(self.space.findData(space))
        for name in ("k", "pca_dim", "seed", "restarts"):
            if name in settings:
                getattr(self, name).setValue(int(settings[name]))
        for name in ("covariance", "fit_on"):
            if name in settings:
                combo = getattr(self, name)
                combo.setCurrentIndex(combo.findData(settings[name]))
        space = self.space.currentData()
        try:
            data = self.hub.data
        except Exception as e:
            self.lifecycle.set_status(f"No data: {e}")
            return
        self.traces = {}
        for c in self.trace_curves:
            c.setData([], [])
        self._fit_step, self._fit_version = self.hub.step, self.hub.version
        what = "encoding the digits with the VAE" if space == "vae" else "computing the PCA"
        extra = {"tol": float(settings["tol"])} if "tol" in settings else {}
        self.lifecycle.start(
            f"Fitting K = {self.k.value()} to the {self.fit_on.currentText()}: {what} …",
            fit_clusters_task,
            self.hub.model,
            data,
            space,
            self.fit_on.currentData(),
            k=self.k.value(),
            covariance=self.covariance.currentData(),
            pca_dim=self.pca_dim.value(),
            seed=self.seed.value(),
            restarts=self.restarts.value(),
            max_iter=int(settings.get("max_iter", DEFAULT_MAX_ITER)),
            **extra,
        )

    def cancel(self) -> None:
        self.lifecycle.cancel()

    def show_result(self, res: ClusterResult) -> None:
        """Show a fit made elsewhere for the current model (the lecture tour computes it once, seeded)."""
        self.lifecycle.cancel()
        self._fit_step, self._fit_version = self.hub.step, self.hub.version
        self._on_finished(res)

    def _on_progress(self, fraction: float, payload) -> None:
        if payload is None:
            return
        trace = self.traces.setdefault(payload.run, [])
        trace.append(payload.ll)
        if payload.t == 0:
            runs = self.restarts.value()
            self.lifecycle.set_status("EM …" if runs == 1 else f"EM (run {payload.run + 1} of {runs}) …")
        self.trace_curves[payload.run % len(self.trace_curves)].setData(np.arange(len(trace)), np.array(trace))

    # --- drawing ----------------------------------------------------------------------------------------
    def _on_finished(self, res: ClusterResult) -> None:
        self.result = res
        for r, trace in enumerate(res.traces):
            self.trace_curves[r % len(self.trace_curves)].setData(np.arange(len(trace)), np.array(trace))
        order = sorted(range(res.k), key=lambda c: (res.mapping.get(c, 99), c))  # by matched digit
        colours = cluster_colours(res.k, res.mapping)
        captions = [f"{c + 1}→{res.mapping[c]}" if c in res.mapping else f"{c + 1}" for c in order]
        images = np.concatenate([res.mean_images[:, None], res.sample_images], 1)  # (K, 1 + S, N_PIXELS)
        self.gallery.set_components(images[order], colours[order], captions)
        self.gallery.setToolTip(
            "\n".join(
                f"component {c + 1}: π = {res.weights[c]:.3f}"
                + (f", matched to digit {res.mapping[c]}" if c in res.mapping else "")
                for c in order
            )
        )
        highlight = [(res.mapping[c], j) for j, c in enumerate(order) if c in res.mapping]
        self.confusion.set_matrix(
            res.confusion[:, order],
            [str(d) for d in range(N_LABELS)],
            [str(c + 1) for c in order],
            colours[order],
            highlight,
        )
        self.metrics.setText(self._metrics_text(res))
        if res.space == "vae":
            # published for the snapshot it was fitted to, even if training has moved on since
            self._publish(Published(res, colours, self._fit_step, self._fit_step, self._fit_version), res.resp_test)
            if self._fit_version == self.hub.version:
                self.lifecycle.set_status(
                    "Done. The latent map can colour the test codes by these responsibilities "
                    "(Colour by: mixture p(c|z))."
                )
            else:
                self.lifecycle.set_status(
                    f"Done: fitted to the codes of step {self._fit_step}. The latent map can colour the test codes "
                    "by these responsibilities (Colour by: mixture p(c|z)); as training moves on they are "
                    "recomputed for the newest codes under this mixture (Fit again to refit it)."
                )
                self._schedule_refresh(at_once=True)
        else:
            self.lifecycle.set_status("Done.")
        self.fitted.emit()

    # --- the published responsibilities -----------------------------------------------------------------
    def _publish(self, pub: Published, resp: np.ndarray) -> None:
        res = pub.result
        desc = (
            f"Gaussian mixture, K = {res.k} ({res.covariance}), on the VAE codes of step {pub.fit_step}; "
            f"test accuracy {res.accuracy:.3f}, NMI {res.nmi:.3f}"
            + (f"; p(c|z) at the codes of step {pub.codes_step}" if pub.codes_step != pub.fit_step else "")
            + ". Each component has the colour of the digit it is matched to."
        )
        self.published = pub
        self.hub.set_cluster_posterior(resp, pub.colours, desc)
        self._posterior = self.hub.cluster_posterior

    def _ours(self) -> bool:
        """The hub still holds the responsibilities published here (not cleared or replaced)."""
        return (
            self.published is not None and self._posterior is not None and self.hub.cluster_posterior is self._posterior
        )

    def _schedule_refresh(self, at_once: bool = False) -> None:
        """Recompute the published p(c|z) for the current weights, at most every REFRESH_S."""
        if self._refresh_timer.isActive():
            return
        if self.refresh_runner.is_busy():
            return  # _on_refreshed schedules the next one if the weights moved meanwhile
        wait_s = 0.0 if at_once else max(0.0, REFRESH_S - (time.perf_counter() - self._last_refresh))
        self._refresh_timer.start(int(1000 * wait_s))

    def refresh_responsibilities(self) -> None:
        """Re-encode the test digits with the current weights and recompute p(c|z) under the published mixture."""
        self._refresh_timer.stop()
        if not self._ours() or self.published.codes_version == self.hub.version:
            return
        try:
            x, labels = self.hub.eval_x("test"), self.hub.labels("test")
        except Exception:  # no data: nothing to recompute (the fit could not have run either)
            return
        self._refresh_for = (self.published, self.hub.version, self.hub.step)
        self._last_refresh = time.perf_counter()
        self.refresh_runner.submit(code_responsibilities_task, self.hub.model, x, self.published.result, labels)

    def _on_refreshed(self, task_id: int, out: CodeResponsibilities) -> None:
        pub, version, step = self._refresh_for
        if self._ours() and pub.result is self.published.result:  # else a new fit or another model came since
            self._publish(Published(pub.result, pub.colours, pub.fit_step, step, version), out.resp_test)
            self.lifecycle.set_note(
                f" <i style='color:{MUTED}'>Map colours: p(c|z) under this mixture (fitted at step {pub.fit_step}) "
                f"at the codes of step {step}; test accuracy there {out.accuracy:.3f}.</i>"
            )
            self.responsibilities_refreshed.emit(step)
        if self._ours() and self.hub.version != self.published.codes_version:
            self._schedule_refresh()  # the weights moved on while this one ran

    def _on_refresh_failed(self, task_id: int, message: str) -> None:
        self.lifecycle.set_note(
            f" <i style='color:{MUTED}'>The map's colours could not follow the new weights: "
            f"{message.splitlines()[0]}</i>"
        )

    def _metrics_text(self, res: ClusterResult) -> str:
        where = (
            f"VAE codes ({res.dim}-D, {self.hub.name}, step {self._fit_step})"
            if res.space == "vae"
            else f"PCA of the pixels ({res.dim} components, {100 * res.explained_variance:.1f} % of the variance)"
        )
        return (
            f"<b>Test digits ({res.resp_test.shape[0]:,})</b>: accuracy after matching <b>{res.accuracy:.3f}</b>, "
            f"NMI <b>{res.nmi:.3f}</b><br>K = {res.k} ({res.covariance}) in {where}; fitted to {res.n_fit:,} "
            f"digits, seed {res.seed}"
            + (f", best of {res.restarts} runs (run {res.best_restart + 1})" if res.restarts > 1 else "")
            + f"; {res.iterations} EM iterations{' (converged)' if res.converged else ''}, {res.seconds:.1f} s."
            f"<br>mean log p: {res.train_ll:.2f} (fitted digits), {res.test_ll:.2f} (test) nats per point, in the "
            f"{'latent' if res.space == 'vae' else 'PCA'} space."
        )

    # --- the model changes ------------------------------------------------------------------------------
    def _on_space_changed(self, *_) -> None:
        self.pca_dim.setEnabled(self.space.currentData() == "pca")

    def _on_model_changed(self) -> None:
        # the hub dropped the responsibilities (they belong to the old model's codes)
        self.published, self._posterior = None, None
        self._refresh_timer.stop()
        self.refresh_runner.cancel()
        if self.lifecycle.busy() and self.space.currentData() == "vae":
            self.cancel()
        if self.result is not None and self.result.space == "vae":
            self.lifecycle.set_status("A different model is loaded: the codes changed. Press Fit to cluster its codes.")

    def _on_weights_updated(self, step: int) -> None:
        if self._ours():
            self._schedule_refresh()  # the mixture stays; its colouring follows the codes
        elif self.result is not None and self.result.space == "vae":
            self.lifecycle.mark_stale(
                f" <i style='color:gray'>Fitted to the codes of step {self._fit_step}; training has moved on — "
                "press Fit to update.</i>"
            )
