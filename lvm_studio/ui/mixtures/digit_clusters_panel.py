"""Digit clusters: mixture models on MNIST without labels, and a mixture as a density model.

Tab "Clusters": a Gaussian mixture (EM, core.gmm) fitted to the digits in one of two spaces,
  a) the current VAE's latent codes μ_φ(x) (the map's codes: the fixed binarization), or
  b) a PCA projection of the grey-level pixels (dimension chosen here; core.clustering.pca, torch).
  Each component's mean is shown as a digit (decoded by p(x|z) for a, back-projected for b) with
  samples z ~ N(μ_k, Σ_k) below it, decoded or back-projected the same way. The labels are used
  only to score: accuracy after the best one-to-one matching of clusters to labels (Hungarian),
  normalised mutual information, and the confusion matrix, all on the 10,000 test digits. For a)
  the responsibilities of the test codes go to the hub, and the latent map can colour by them.

Tab "Density": a mixture of Bernoullis (core.bernoulli_mixture) fitted by EM to binarized pixels.
  Its test log p(x) is exact (a sum over K components); beside it the VAE's importance-sampled
  estimate (IWAE-k, Burda et al. 2016) on the same fixed binarization of the test set — the
  lecture's "combine simple models" next to its "infinite mixture".

Fitting (10,000 to 60,000 points) runs in TaskRunners with progress and a Cancel button.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core.bernoulli_mixture import BernoulliMixture, BernoulliMixtureConfig
from lvm_studio.core.clustering import confusion_matrix, hungarian_accuracy, match_clusters, normalized_mutual_info, pca
from lvm_studio.core.estimators import iwae_log_px
from lvm_studio.core.gmm import GaussianMixture, GMMConfig
from lvm_studio.core.latent import encode_loc_scale
from lvm_studio.core.training import eval_images
from lvm_studio.ui.widgets.controls import button
from lvm_studio.ui.widgets.mixture_views import ComponentGallery, ConfusionMatrixView
from lvm_studio.ui.widgets.style import component_colours
from lvm_studio.workers.tasks import TaskRunner

GMM_TOL = 1e-3  # nats per point: EM stops when the mean log-likelihood rises by less
BMM_TOL = 1e-2  # nats per image (log p(x) of a digit is ~ −100 … −200 nats)
N_SAMPLES = 5  # samples shown under each component's mean
FIT_SETS = (
    ("10k", "first 10,000 training digits"),
    ("train", "all training digits (55,000)"),
    ("trainval", "training + validation (60,000)"),
)
TRACE_COLOURS = [
    (79, 163, 224),
    (240, 166, 64),
    (98, 196, 138),
    (198, 120, 221),
    (224, 108, 117),
    (200, 200, 120),
    (120, 200, 200),
    (180, 180, 180),
    (255, 140, 180),
    (140, 140, 255),
]


def fit_images(data, which: str, kind: str, likelihood: str = "bernoulli") -> torch.Tensor:
    """The training images to fit on (made in the worker thread; nothing is cached).

    kind 'eval': the images the hub evaluates the VAE on (eval_images: the fixed binarization for a
    Bernoulli decoder), so that training codes match the latent map's test codes; 'binary': the
    fixed binarization; 'grey': grey levels in [0, 1]. which: '10k', 'train' or 'trainval'.
    """
    if kind == "eval":

        def get(split):
            return eval_images(data, split, likelihood)
    elif kind == "binary":

        def get(split):
            return data.binarized(split)
    else:

        def get(split):
            return data.float_images(split)

    if which == "10k":
        return get("train")[:10000]  # binarized as a whole split, then cut: the same pixels as 'train'
    if which == "train":
        return get("train")
    return torch.cat([get("train"), get("val")])


# --- results (plain data, made in the worker thread) --------------------------------------------------


@dataclass(frozen=True)
class ClusterResult:
    space: str  # 'vae' | 'pca'
    k: int
    covariance: str
    dim: int  # dimension the mixture was fitted in
    n_fit: int
    seed: int
    restarts: int
    best_restart: int
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, dim) μ_k in the fitted space
    covariances: np.ndarray  # (K, dim, dim) full, (K, dim) diag
    resp_test: np.ndarray  # (N_test, K) float32: p(c | x_n) of the test digits
    pred_test: np.ndarray  # (N_test,) int64
    accuracy: float  # Hungarian
    nmi: float
    confusion: np.ndarray  # (10, K) labels × components
    mapping: dict  # component -> label (the best one-to-one matching)
    mean_images: np.ndarray  # (K, 784) in [0, 1]
    sample_images: np.ndarray  # (K, S, 784)
    train_ll: float  # mean log p of the fitted points under the mixture, nats per point (in its space)
    test_ll: float
    iterations: int
    converged: bool
    seconds: float
    explained_variance: float | None = None  # PCA: fraction of the pixel variance kept
    traces: list = field(default_factory=list)


@dataclass(frozen=True)
class DensityResult:
    k: int
    n_fit: int
    seed: int
    weights: np.ndarray  # (K,)
    probs: np.ndarray  # (K, 784) μ_kd
    sample_images: np.ndarray  # (K, S, 784) binary samples x ~ p(x | z = k)
    test_log_px: float  # exact mean log p(x) over every test digit, nats
    test_log_px_subset: float  # the same over the first n_vae digits
    n_test: int
    vae_log_px: float | None  # IWAE-k over the first n_vae digits (None: not asked or not comparable)
    vae_k: int
    n_vae: int
    iterations: int
    converged: bool
    seconds: float
    vae_seconds: float


# --- tasks (worker thread; plain data in and out) -------------------------------------------------------


def _decode_mean(model, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.decode_mean(z.to(torch.float32)).numpy()


def _component_samples(params, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws from each component N(μ_k, Σ_k): (K, n, D)."""
    covs = params.covariance_matrices().to(torch.float64)  # (K, D, D)
    means = params.means.to(torch.float64)  # (K, D)
    chol = torch.linalg.cholesky(covs)  # (K, D, D)
    eps = torch.randn(means.shape[0], n, means.shape[1], generator=generator, dtype=torch.float64)  # (K, n, D)
    return means[:, None, :] + torch.einsum("kij,knj->kni", chol, eps)  # (K, n, D) μ + L ε


def fit_clusters_task(
    ctx,
    model,
    data,
    space: str,
    fit_on: str = "10k",
    k: int = 10,
    covariance: str = "full",
    pca_dim: int = 50,
    seed: int = 0,
    restarts: int = 1,
    max_iter: int = 300,
    n_samples: int = N_SAMPLES,
) -> ClusterResult:
    """Features (VAE codes or PCA coordinates), EM with restarts (best training likelihood wins),
    test responsibilities, scores against the labels, and the component images.

    data: the hub's MNIST (read only). space 'vae': codes μ_φ(x) of the evaluation images (as the
    latent map), 'pca': PCA coordinates of the grey levels.
    """
    t0 = time.perf_counter()
    explained = None
    likelihood = model.config.likelihood
    kind = "eval" if space == "vae" else "grey"
    x_fit = fit_images(data, fit_on, kind, likelihood)
    x_test = eval_images(data, "test", likelihood) if space == "vae" else data.float_images("test")
    labels_test = np.asarray(data.y_test).astype(np.int64)
    ctx.check()
    if space == "vae":
        span = 0.25 * x_fit.shape[0] / (x_fit.shape[0] + x_test.shape[0])
        f_fit, _ = encode_loc_scale(
            model, x_fit, 2000, should_stop=ctx.cancelled, progress=lambda f: ctx.report(span * f)
        )
        ctx.check()
        f_test, _ = encode_loc_scale(
            model, x_test, 2000, should_stop=ctx.cancelled, progress=lambda f: ctx.report(span + (0.25 - span) * f)
        )
        ctx.check()
        proj = None
    else:
        ctx.report(0.02)
        proj = pca(x_fit, int(pca_dim))  # thin SVD of the centred pixels, in torch
        ctx.check()
        f_fit, f_test = proj.transform(x_fit), proj.transform(x_test)  # (N, dim)
        explained = float(proj.explained_variance_ratio.sum())
        ctx.report(0.25)
    f_fit = f_fit.to(torch.float64)
    f_test = f_test.to(torch.float64)
    best, best_ll, best_r, traces = None, -math.inf, 0, []
    for r in range(int(restarts)):
        gmm = GaussianMixture(
            GMMConfig(n_components=int(k), covariance=covariance, seed=int(seed) + r), dtype=torch.float64
        )
        base = 0.25 + 0.7 * r / restarts

        def report(t, ll, r=r, base=base):
            ctx.report(base + 0.7 / restarts * min(1.0, t / max_iter), ("trace", r, t, ll))

        trace = gmm.fit(f_fit, max_iter=max_iter, tol=GMM_TOL, callback=report, should_stop=ctx.cancelled)
        ctx.check()
        traces.append(trace)
        if trace[-1] > best_ll:
            best, best_ll, best_r = gmm, trace[-1], r
    resp = best.responsibilities(f_test)  # (N_test, K)
    pred = resp.argmax(1).numpy()
    params = best.get_parameters()
    g = torch.Generator().manual_seed(int(seed))
    samples = _component_samples(params, n_samples, g)  # (K, S, D)
    if space == "vae":
        means_img = _decode_mean(model, params.means)  # (K, 784) p(x | z = μ_k)
        samples_img = _decode_mean(model, samples)  # (K, S, 784)
    else:
        means_img = proj.inverse_transform(params.means.to(proj.mean.dtype)).clamp(0, 1).numpy()
        samples_img = proj.inverse_transform(samples.to(proj.mean.dtype)).clamp(0, 1).numpy()
    confusion = confusion_matrix(labels_test, pred, n_labels=10, n_clusters=int(k))
    return ClusterResult(
        space=space,
        k=int(k),
        covariance=covariance,
        dim=int(f_fit.shape[1]),
        n_fit=int(f_fit.shape[0]),
        seed=int(seed),
        restarts=int(restarts),
        best_restart=best_r,
        weights=params.weights.numpy().copy(),
        means=params.means.numpy().copy(),
        covariances=params.covariances.numpy().copy(),
        resp_test=resp.numpy().astype(np.float32),
        pred_test=pred.astype(np.int64),
        accuracy=hungarian_accuracy(labels_test, pred),
        nmi=normalized_mutual_info(labels_test, pred),
        confusion=confusion,
        mapping=match_clusters(labels_test, pred) if len(pred) else {},
        mean_images=np.ascontiguousarray(means_img),
        sample_images=np.ascontiguousarray(samples_img),
        train_ll=float(best_ll),
        test_ll=best.log_likelihood(f_test),
        iterations=best.n_iter,
        converged=bool(best.converged),
        seconds=time.perf_counter() - t0,
        explained_variance=explained,
        traces=traces,
    )


def fit_density_task(
    ctx,
    model,
    data,
    fit_on: str = "10k",
    k: int = 10,
    seed: int = 0,
    max_iter: int = 100,
    n_vae: int = 1000,
    vae_k: int = 100,
    n_samples: int = 2,
) -> DensityResult:
    """EM for a Bernoulli mixture on binarized training digits, its exact log p(x) on the fixed
    binarization of the test digits, and the VAE's IWAE-k estimate on the first n_vae of the same
    digits (n_vae = 0 or model None: skipped)."""
    t0 = time.perf_counter()
    x_fit = fit_images(data, fit_on, "binary")
    x_test = data.binarized("test")  # the evaluation binarization (seed 1234), as hub.eval_x for Bernoulli VAEs
    ctx.check()
    bmm = BernoulliMixture(BernoulliMixtureConfig(n_components=int(k), seed=int(seed)))
    share = 0.8 if (model is not None and n_vae > 0) else 1.0

    def report(t, ll):
        ctx.report(share * min(1.0, t / max_iter), ("trace", 0, t, ll))

    bmm.fit(x_fit, max_iter=max_iter, tol=BMM_TOL, callback=report, should_stop=ctx.cancelled)
    ctx.check()
    log_px = bmm.log_prob(x_test).to(torch.float64)  # (N_test,) exact
    n_vae = min(int(n_vae), x_test.shape[0]) if model is not None else 0
    vae, t1 = None, time.perf_counter()
    if n_vae > 0:
        g = torch.Generator().manual_seed(int(seed))
        total, batch = 0.0, 50
        for start in range(0, n_vae, batch):
            ctx.check()
            xb = x_test[start : min(n_vae, start + batch)]
            with torch.no_grad():
                total += float(iwae_log_px(model, xb, int(vae_k), generator=g).sum(dtype=torch.float64))
            ctx.report(share + (1 - share) * min(1.0, (start + batch) / n_vae))
        vae = total / n_vae
    g = torch.Generator().manual_seed(int(seed))
    samples = torch.bernoulli(bmm.probs[:, None, :].expand(-1, n_samples, -1), generator=g)  # (K, S, 784)
    return DensityResult(
        k=int(k),
        n_fit=int(x_fit.shape[0]),
        seed=int(seed),
        weights=bmm.weights.numpy().copy(),
        probs=bmm.probs.numpy().copy(),
        sample_images=samples.numpy(),
        test_log_px=float(log_px.mean()),
        test_log_px_subset=float(log_px[: max(n_vae, 1)].mean()),
        n_test=int(x_test.shape[0]),
        vae_log_px=vae,
        vae_k=int(vae_k),
        n_vae=n_vae,
        iterations=bmm.n_iter,
        converged=bool(bmm.converged),
        seconds=t1 - t0,
        vae_seconds=time.perf_counter() - t1,
    )


# --- small pieces -------------------------------------------------------------------------------------


def _trace_plot(ylabel: str) -> tuple[pg.PlotWidget, list[pg.PlotDataItem]]:
    plot = pg.PlotWidget()
    plot.setLabel("bottom", "EM iteration")
    plot.setLabel("left", ylabel)
    plot.showGrid(x=True, y=True, alpha=0.15)
    plot.setMinimumHeight(130)
    curves = [plot.plot(pen=pg.mkPen(c, width=1.8)) for c in TRACE_COLOURS]
    return plot, curves


def _progress_bar() -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, 1000)
    bar.setTextVisible(True)
    bar.setFormat("%p %")
    bar.setMaximumWidth(180)
    return bar


def cluster_colours(k: int, mapping: dict) -> np.ndarray:
    """(K, 3) colours: a component matched to digit d takes digit d's colour (the map's label colours,
    so 'mixture' and 'label' colourings compare at a glance); the others take further palette colours."""
    palette = component_colours(10 + k)
    out = np.zeros((k, 3), dtype=np.uint8)
    extra = 10
    for c in range(k):
        if c in mapping and 0 <= int(mapping[c]) < 10:
            out[c] = palette[int(mapping[c])]
        else:
            out[c] = palette[extra]
            extra += 1
    return out


class DigitClustersPanel(QWidget):
    clusters_fitted = Signal()  # a Gaussian mixture result is shown (and, for VAE codes, published)
    density_fitted = Signal()  # a Bernoulli mixture result is shown
    fit_cancelled = Signal(str)  # 'clusters' | 'density'

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.result: ClusterResult | None = None
        self.density_result: DensityResult | None = None
        self._fit_step: int | None = None
        self._fit_version: int | None = None
        self._traces: dict[int, list] = {}
        self._density_trace: list = []
        self._density_comparable = True
        self._density_step, self._density_name = 0, ""

        self.runner = TaskRunner("digit-clusters", self)
        self.runner.progressed.connect(self._on_cluster_progress)
        self.runner.finished.connect(self._on_cluster_finished)
        self.runner.failed.connect(self._on_cluster_failed)
        self.runner.cancelled.connect(self._on_cluster_cancelled)
        self.density_runner = TaskRunner("bernoulli-mixture", self)
        self.density_runner.progressed.connect(self._on_density_progress)
        self.density_runner.finished.connect(self._on_density_finished)
        self.density_runner.failed.connect(self._on_density_failed)
        self.density_runner.cancelled.connect(self._on_density_cancelled)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_clusters_tab(), "Clusters (Gaussian mixture)")
        self.tabs.addTab(self._build_density_tab(), "Density (Bernoulli mixture)")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs)

        hub.model_changed.connect(self._on_model_changed)
        hub.weights_updated.connect(self._on_weights_updated)
        self._on_space_changed()

    # --- building ---------------------------------------------------------------------------------------
    def _build_clusters_tab(self) -> QWidget:
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
        self.fit_button = button("Fit", "Fit the mixture by EM (in the background)", self._on_fit_clicked)
        self.cancel_button = button("Cancel", "Stop the fit", self._on_cancel_clicked)
        self.cancel_button.setEnabled(False)
        self.progress = _progress_bar()
        self.status = QLabel("Choose a space and press Fit.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)

        grid = QGridLayout()
        grid.addWidget(QLabel("space"), 0, 0)
        grid.addWidget(self.space, 0, 1)
        grid.addWidget(QLabel("PCA dims"), 0, 2)
        grid.addWidget(self.pca_dim, 0, 3)
        grid.addWidget(QLabel("K"), 0, 4)
        grid.addWidget(self.k, 0, 5)
        grid.addWidget(QLabel("covariance"), 0, 6)
        grid.addWidget(self.covariance, 0, 7)
        grid.addWidget(QLabel("fit on"), 1, 0)
        grid.addWidget(self.fit_on, 1, 1)
        grid.addWidget(QLabel("seed"), 1, 2)
        grid.addWidget(self.seed, 1, 3)
        grid.addWidget(QLabel("restarts"), 1, 4)
        grid.addWidget(self.restarts, 1, 5)
        row = QHBoxLayout()
        row.addWidget(self.fit_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress)
        grid.addLayout(row, 1, 6, 1, 2)
        grid.setColumnStretch(8, 1)

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
        self.metrics = QLabel("")
        self.metrics.setWordWrap(True)
        self.metrics.setTextFormat(Qt.TextFormat.RichText)
        self.trace_plot, self.trace_curves = _trace_plot("mean log p (nats)")

        self.gallery_caption = QLabel(
            "Top row (framed): each component's mean; below: samples z ~ N(μ<sub>k</sub>, "
            "Σ<sub>k</sub>). Header: component → the digit it is matched to."
        )
        self.gallery_caption.setWordWrap(True)
        self.gallery_caption.setTextFormat(Qt.TextFormat.RichText)
        self.gallery_caption.setStyleSheet("color: #aab1bd;")
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.gallery, 1)
        ll.addWidget(self.gallery_caption)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.metrics)
        rl.addWidget(self.confusion, 3)
        rl.addWidget(self.trace_plot, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        w = QWidget()
        lay = QVBoxLayout(w)
        lay.addLayout(grid)
        lay.addWidget(self.status)
        lay.addWidget(split, 1)
        self.space.currentIndexChanged.connect(self._on_space_changed)
        return w

    def _build_density_tab(self) -> QWidget:
        self.d_k = QSpinBox()
        self.d_k.setRange(1, 500)
        self.d_k.setValue(10)
        self.d_k.setToolTip("Bernoulli components K")
        self.d_seed = QSpinBox()
        self.d_seed.setRange(0, 9999)
        self.d_fit_on = QComboBox()
        for key, text in FIT_SETS:
            self.d_fit_on.addItem(text, key)
        self.d_fit_on.setToolTip("Binarized training digits the mixture is fitted to (one fixed binarization)")
        self.d_iters = QSpinBox()
        self.d_iters.setRange(1, 1000)
        self.d_iters.setValue(100)
        self.d_iters.setToolTip("Most EM iterations (stops earlier when the log-likelihood rises by < 0.01 nats)")
        self.d_vae_n = QSpinBox()
        self.d_vae_n.setRange(0, 10000)
        self.d_vae_n.setSingleStep(500)
        self.d_vae_n.setValue(1000)
        self.d_vae_n.setToolTip(
            "Test digits for the VAE's importance-sampled log p(x) (0: skip). It costs k decoder passes per digit."
        )
        self.d_vae_k = QComboBox()
        for k in (10, 100, 1000):
            self.d_vae_k.addItem(f"{k:,}", k)
        self.d_vae_k.setCurrentIndex(1)
        self.d_vae_k.setToolTip("Importance samples k of the VAE's IWAE estimate")
        self.d_fit_button = button(
            "Fit", "Fit the Bernoulli mixture by EM and evaluate both models", self._on_density_fit_clicked
        )
        self.d_cancel_button = button("Cancel", "Stop", self._on_density_cancel_clicked)
        self.d_cancel_button.setEnabled(False)
        self.d_progress = _progress_bar()
        form = QGridLayout()
        form.addWidget(QLabel("K"), 0, 0)
        form.addWidget(self.d_k, 0, 1)
        form.addWidget(QLabel("seed"), 0, 2)
        form.addWidget(self.d_seed, 0, 3)
        form.addWidget(QLabel("fit on"), 0, 4)
        form.addWidget(self.d_fit_on, 0, 5)
        form.addWidget(QLabel("max iterations"), 0, 6)
        form.addWidget(self.d_iters, 0, 7)
        form.addWidget(QLabel("VAE: test digits"), 1, 0)
        form.addWidget(self.d_vae_n, 1, 1)
        form.addWidget(QLabel("samples k"), 1, 2)
        form.addWidget(self.d_vae_k, 1, 3)
        row = QHBoxLayout()
        row.addWidget(self.d_fit_button)
        row.addWidget(self.d_cancel_button)
        row.addWidget(self.d_progress)
        form.addLayout(row, 1, 4, 1, 4)
        form.setColumnStretch(8, 1)
        self.d_status = QLabel(
            "A mixture of K Bernoullis p(x) = Σ<sub>k</sub> π<sub>k</sub> Π<sub>d</sub> μ<sub>kd</sub><sup>x<sub>d"
            "</sub></sup>(1 − μ<sub>kd</sub>)<sup>1 − x<sub>d</sub></sup> combines K simple models into a more "
            "complex one; its log p(x) is exact. The VAE is an infinite mixture p(x) = ∫ p(x|z) p(z) dz whose log p(x) "
            "must be estimated. Both on the same fixed binarization of the test digits, in nats per digit."
        )
        self.d_status.setWordWrap(True)
        self.d_status.setTextFormat(Qt.TextFormat.RichText)
        self.d_gallery = ComponentGallery()
        self.d_gallery.set_message(
            "The pixel probabilities μ_k of each component (top) and binary samples x ~ p(x | z = k) appear here."
        )
        self.d_results = QLabel("")
        self.d_results.setWordWrap(True)
        self.d_results.setTextFormat(Qt.TextFormat.RichText)
        self.d_trace_plot, self.d_trace_curves = _trace_plot("mean log p(x) (nats)")
        caption = QLabel(
            "Top row (framed): each component's pixel probabilities μ<sub>k</sub>, heaviest first "
            "(header: weight π<sub>k</sub>); below: binary samples x ~ p(x | z = k)."
        )
        caption.setWordWrap(True)
        caption.setTextFormat(Qt.TextFormat.RichText)
        caption.setStyleSheet("color: #aab1bd;")
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.d_gallery, 1)
        ll.addWidget(caption)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.d_results)
        rl.addWidget(self.d_trace_plot, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.addLayout(form)
        lay.addWidget(self.d_status)
        lay.addWidget(split, 1)
        return w

    # --- clusters: running ---------------------------------------------------------------------------------
    def fit(self, space: str | None = None, **settings) -> None:
        """Start a fit. space 'vae' | 'pca'; settings override the controls: k, covariance, pca_dim,
        seed, restarts, fit_on ('10k' | 'train' | 'trainval'), max_iter."""
        if space is not None:
            self.space.setCurrentIndex(self.space.findData(space))
        for name, widget in (
            ("k", self.k),
            ("pca_dim", self.pca_dim),
            ("seed", self.seed),
            ("restarts", self.restarts),
        ):
            if name in settings:
                widget.setValue(int(settings[name]))
        if "covariance" in settings:
            self.covariance.setCurrentIndex(self.covariance.findData(settings["covariance"]))
        if "fit_on" in settings:
            self.fit_on.setCurrentIndex(self.fit_on.findData(settings["fit_on"]))
        space = self.space.currentData()
        try:
            data = self.hub.data
        except Exception as e:
            self.status.setText(f"No data: {e}")
            return
        self._traces = {}
        for c in self.trace_curves:
            c.setData([], [])
        self.progress.setValue(0)
        self.fit_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._fit_step, self._fit_version = self.hub.step, self.hub.version
        what = "encoding the digits with the VAE" if space == "vae" else "computing the PCA"
        self.status.setText(f"Fitting K = {self.k.value()} to the {self.fit_on.currentText()}: {what} …")
        self.runner.submit(
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
            max_iter=int(settings.get("max_iter", 300)),
        )

    def cancel(self) -> None:
        self.runner.cancel()
        self._fit_ended()
        self.status.setText("Cancelled.")
        self.fit_cancelled.emit("clusters")

    def _fit_ended(self) -> None:
        self.fit_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_fit_clicked(self) -> None:
        self.fit()

    def _on_cancel_clicked(self) -> None:
        self.cancel()

    def _on_cluster_progress(self, task_id: int, fraction: float, payload) -> None:
        self.progress.setValue(int(1000 * fraction))
        if payload is None:
            return
        _, r, t, ll = payload
        trace = self._traces.setdefault(r, [])
        trace.append(ll)
        if t == 0:
            runs = self.restarts.value()
            self.status.setText("EM …" if runs == 1 else f"EM (run {r + 1} of {runs}) …")
        self.trace_curves[r % len(self.trace_curves)].setData(np.arange(len(trace)), np.array(trace))

    def _on_cluster_failed(self, task_id: int, message: str) -> None:
        self._fit_ended()
        self.status.setText("Failed: " + message.splitlines()[0])

    def _on_cluster_cancelled(self, task_id: int) -> None:
        self._fit_ended()
        self.status.setText("Cancelled.")
        self.fit_cancelled.emit("clusters")

    def _on_cluster_finished(self, task_id: int, res: ClusterResult) -> None:
        self._fit_ended()
        self.progress.setValue(1000)
        self.result = res
        for r, trace in enumerate(res.traces):
            self.trace_curves[r % len(self.trace_curves)].setData(np.arange(len(trace)), np.array(trace))
        order = sorted(range(res.k), key=lambda c: (res.mapping.get(c, 99), c))  # by matched digit
        colours = cluster_colours(res.k, res.mapping)
        captions = [f"{c + 1}→{res.mapping[c]}" if c in res.mapping else f"{c + 1}" for c in order]
        images = np.concatenate([res.mean_images[:, None], res.sample_images], 1)  # (K, 1 + S, 784)
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
            res.confusion[:, order], [str(d) for d in range(10)], [str(c + 1) for c in order], colours[order], highlight
        )
        where = (
            f"VAE codes ({res.dim}-D, {self.hub.name}, step {self._fit_step})"
            if res.space == "vae"
            else f"PCA of the pixels ({res.dim} components, {100 * res.explained_variance:.1f} % of the variance)"
        )
        self.metrics.setText(
            f"<b>Test digits ({res.resp_test.shape[0]:,})</b>: accuracy after matching <b>{res.accuracy:.3f}</b>, "
            f"NMI <b>{res.nmi:.3f}</b><br>K = {res.k} ({res.covariance}) in {where}; fitted to {res.n_fit:,} "
            f"digits, seed {res.seed}"
            + (f", best of {res.restarts} runs (run {res.best_restart + 1})" if res.restarts > 1 else "")
            + f"; {res.iterations} EM iterations{' (converged)' if res.converged else ''}, {res.seconds:.1f} s."
            f"<br>mean log p: {res.train_ll:.2f} (fitted digits), {res.test_ll:.2f} (test) nats per point, in the "
            f"{'latent' if res.space == 'vae' else 'PCA'} space."
        )
        if res.space == "vae" and self._fit_version == self.hub.version:
            desc = (
                f"Gaussian mixture, K = {res.k} ({res.covariance}), on the VAE codes; step {self._fit_step}; "
                f"test accuracy {res.accuracy:.3f}, NMI {res.nmi:.3f}. Each component has the colour of the "
                f"digit it is matched to."
            )
            self.hub.set_cluster_posterior(res.resp_test, colours, desc)
            self.status.setText(
                "Done. The latent map can colour the test codes by these responsibilities (Colour by: mixture p(c|z))."
            )
        elif res.space == "vae":
            self.status.setText("Done, but the model has changed since the fit started: not published to the map.")
        else:
            self.status.setText("Done.")
        self.clusters_fitted.emit()

    # --- density: running ----------------------------------------------------------------------------------
    def fit_density(self, **settings) -> None:
        """Start a Bernoulli mixture fit; settings override the controls: k, seed, fit_on, max_iter,
        n_vae, vae_k."""
        for name, widget in (
            ("k", self.d_k),
            ("seed", self.d_seed),
            ("max_iter", self.d_iters),
            ("n_vae", self.d_vae_n),
        ):
            if name in settings:
                widget.setValue(int(settings[name]))
        if "fit_on" in settings:
            self.d_fit_on.setCurrentIndex(self.d_fit_on.findData(settings["fit_on"]))
        if "vae_k" in settings:
            i = self.d_vae_k.findData(int(settings["vae_k"]))
            if i < 0:
                self.d_vae_k.addItem(f"{int(settings['vae_k']):,}", int(settings["vae_k"]))
                i = self.d_vae_k.count() - 1
            self.d_vae_k.setCurrentIndex(i)
        try:
            data = self.hub.data
        except Exception as e:
            self.d_results.setText(f"No data: {e}")
            return
        comparable = self.hub.config.likelihood == "bernoulli"
        model = self.hub.model if comparable else None
        self._density_trace = []
        self._density_comparable = comparable
        self.d_trace_curves[0].setData([], [])
        self.d_progress.setValue(0)
        self.d_fit_button.setEnabled(False)
        self.d_cancel_button.setEnabled(True)
        self._density_step, self._density_name = self.hub.step, self.hub.name
        self.d_results.setText(
            f"Fitting K = {self.d_k.value()} Bernoullis to the {self.d_fit_on.currentText()}, binarized …"
        )
        self.density_runner.submit(
            fit_density_task,
            model,
            data,
            self.d_fit_on.currentData(),
            k=self.d_k.value(),
            seed=self.d_seed.value(),
            max_iter=self.d_iters.value(),
            n_vae=self.d_vae_n.value(),
            vae_k=int(self.d_vae_k.currentData()),
        )

    def cancel_density(self) -> None:
        self.density_runner.cancel()
        self._density_ended()
        self.d_results.setText("Cancelled.")
        self.fit_cancelled.emit("density")

    def _density_ended(self) -> None:
        self.d_fit_button.setEnabled(True)
        self.d_cancel_button.setEnabled(False)

    def _on_density_fit_clicked(self) -> None:
        self.fit_density()

    def _on_density_cancel_clicked(self) -> None:
        self.cancel_density()

    def _on_density_progress(self, task_id: int, fraction: float, payload) -> None:
        self.d_progress.setValue(int(1000 * fraction))
        if payload is not None:
            self._density_trace.append(payload[3])
            self.d_trace_curves[0].setData(np.arange(len(self._density_trace)), np.array(self._density_trace))
        elif fraction > 0.0 and self._density_trace:
            self.d_results.setText("EM done; estimating the VAE's log p(x) by importance sampling …")

    def _on_density_failed(self, task_id: int, message: str) -> None:
        self._density_ended()
        self.d_results.setText("Failed: " + message.splitlines()[0])

    def _on_density_cancelled(self, task_id: int) -> None:
        self._density_ended()
        self.d_results.setText("Cancelled.")
        self.fit_cancelled.emit("density")

    def _on_density_finished(self, task_id: int, res: DensityResult) -> None:
        self._density_ended()
        self.d_progress.setValue(1000)
        self.density_result = res
        order = np.argsort(-res.weights)  # heaviest first
        images = np.concatenate([res.probs[:, None], res.sample_images], 1)  # (K, 1 + S, 784)
        self.d_gallery.set_components(
            images[order], component_colours(res.k)[order], [f"{res.weights[c]:.2f}" for c in order]
        )
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
        table = (
            "<table cellspacing='6'><tr><th align='left'>model</th><th>test log p(x)</th><th align='left'>on</th>"
            "</tr>" + "".join(rows) + "</table>"
        )
        notes = (
            f"nats per digit, one fixed binarization of the test set (seed 1234). EM: {res.iterations} iterations"
            f"{' (converged)' if res.converged else ''} on {res.n_fit:,} binarized training digits, seed "
            f"{res.seed}, {res.seconds:.1f} s."
        )
        if res.vae_log_px is not None:
            gap = res.vae_log_px - res.test_log_px_subset
            notes += (
                f"<br>On the same digits the VAE ({self._density_name}, step {self._density_step}) gives "
                f"<b>{abs(gap):.1f} nats</b> per digit {'more' if gap >= 0 else 'less'} than the mixture. Its "
                f"IWAE-{res.vae_k} number is a stochastic lower bound on its log p(x) ({res.vae_seconds:.1f} s); "
                f"the mixture's is exact."
            )
        elif not self._density_comparable:
            notes += "<br>The current VAE has a Gaussian decoder: its densities are not comparable with these."
        self.d_results.setText(table + notes)
        self.density_fitted.emit()

    # --- the model changes ----------------------------------------------------------------------------------
    def _on_space_changed(self, *_):
        self.pca_dim.setEnabled(self.space.currentData() == "pca")

    def _on_model_changed(self) -> None:
        if self.runner.is_busy() and self.space.currentData() == "vae":
            self.cancel()
        if self.result is not None and self.result.space == "vae":
            self.status.setText("A different model is loaded: the codes changed. Press Fit to cluster its codes.")

    def _on_weights_updated(self, step: int) -> None:
        if self.result is not None and self.result.space == "vae" and "training has moved on" not in self.status.text():
            self.status.setText(
                self.status.text() + f" <i style='color:gray'>Fitted to the codes of step "
                f"{self._fit_step}; training has moved on — press Fit to update.</i>"
            )
