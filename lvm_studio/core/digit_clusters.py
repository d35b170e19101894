"""Mixture models on MNIST without labels, and a mixture as a density model: the computations
behind the digit clusters panel (ui.mixtures.digit_clusters_panel) and bench/clusters.py.

fit_clusters_task: a Gaussian mixture (EM, core.gmm) fitted to the digits in one of two spaces,
  a) the VAE's latent codes μ_φ(x) of the evaluation images (the latent map's codes), or
  b) a PCA projection of the grey-level pixels (core.clustering.pca).
  The best of several restarts by training likelihood (chosen without labels); the labels only
  score: accuracy after the best one-to-one matching of clusters to labels (Hungarian), normalised
  mutual information and the confusion matrix, on the test digits. Each component's mean and a
  few samples z ~ N(μ_k, Σ_k) come back as images (decoded by p(x|z) for a, back-projected for b).
code_responsibilities_task: the test responsibilities of a fitted mixture at the codes of another
  set of weights (a later training snapshot): one encoder pass and one E-step, so the latent map's
  'mixture' colouring follows training without refitting.
fit_density_task: a mixture of Bernoullis (core.bernoulli_mixture) fitted by EM to binarized
  pixels: its exact test log p(x), and beside it the VAE's importance-sampled estimate (IWAE-k,
  Burda et al. 2016) on the same fixed binarization of the test set.

Both are background tasks: the first argument is a workers.tasks-style context (duck-typed, as
core imports no workers): ctx.report(fraction, payload) for progress, ctx.cancelled() polled
inside the loops, ctx.check() raising the runner's cancel exception between stages. EM progress
payloads are TracePoint(kind, run, t, ll). Plain data in and out; nothing is cached.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from lvm_studio.core.bernoulli_mixture import BernoulliMixture, BernoulliMixtureConfig
from lvm_studio.core.clustering import confusion_matrix, hungarian_accuracy, match_clusters, normalized_mutual_info, pca
from lvm_studio.core.estimators import iwae_log_px
from lvm_studio.core.gaussian import covariance_root, sample_gaussian
from lvm_studio.core.gmm import GaussianMixture, GMMConfig, GMMParameters
from lvm_studio.core.latent import encode_loc_scale
from lvm_studio.core.training import eval_images

GMM_TOL = 1e-3  # nats per point: EM stops when the mean log-likelihood rises by less
BMM_TOL = 1e-2  # nats per image (log p(x) of a digit is ~ −100 … −200 nats)
N_SAMPLES = 5  # samples drawn from each Gaussian component
N_LABELS = 10  # digits 0 … 9
SUBSET = 10000  # the '10k' fit set
ENCODE_BATCH = 2000  # images per encoder pass
IWAE_BATCH = 50  # test digits per importance-sampling pass
FIT_SETS = (  # fit_on keys and what they mean
    ("10k", "first 10,000 training digits"),
    ("train", "all training digits (55,000)"),
    ("trainval", "training + validation (60,000)"),
)


class TracePoint(NamedTuple):
    """An EM progress payload: mean log-likelihood ll after t M-steps of restart `run`."""

    kind: str  # 'trace'
    run: int
    t: int
    ll: float


def fit_images(data, which: str, kind: str, likelihood: str = "bernoulli") -> torch.Tensor:
    """The training images to fit on, (N, N_PIXELS).

    kind 'eval': the images the hub evaluates the VAE on (eval_images: the fixed binarization for a
    Bernoulli decoder), so that training codes match the latent map's test codes; 'binary': the
    fixed binarization; 'grey': grey levels in [0, 1]. which: a FIT_SETS key.
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
        return get("train")[:SUBSET]  # binarized as a whole split, then cut: the same pixels as 'train'
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
    confusion: np.ndarray  # (N_LABELS, K) labels × components
    mapping: dict  # component -> label (the best one-to-one matching)
    mean_images: np.ndarray  # (K, N_PIXELS) in [0, 1]
    sample_images: np.ndarray  # (K, S, N_PIXELS)
    train_ll: float  # mean log p of the fitted points under the mixture, nats per point (in its space)
    test_ll: float
    iterations: int
    converged: bool
    seconds: float
    explained_variance: float | None = None  # PCA: fraction of the pixel variance kept
    traces: list = field(default_factory=list)  # one EM trace per restart


@dataclass(frozen=True)
class DensityResult:
    k: int
    n_fit: int
    seed: int
    weights: np.ndarray  # (K,)
    probs: np.ndarray  # (K, N_PIXELS) μ_kd
    sample_images: np.ndarray  # (K, S, N_PIXELS) binary samples x ~ p(x | z = k)
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


@dataclass(frozen=True)
class CodeResponsibilities:
    """A fitted mixture's p(c | z) at the test codes μ_φ(x) of the weights it was computed with."""

    resp_test: np.ndarray  # (N_test, K) float32
    pred_test: np.ndarray  # (N_test,) int64, the most responsible component
    accuracy: float  # Hungarian, against the test labels (nan without labels)
    seconds: float


# --- pieces -------------------------------------------------------------------------------------------


def component_samples(params: GMMParameters, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws from each component N(μ_k, Σ_k), float64: (K, n, D)."""
    means = params.means.to(torch.float64)  # (K, D)
    roots = covariance_root(params.covariances.to(torch.float64), diagonal=params.covariance == "diag")
    k, d = means.shape
    z = torch.arange(k).repeat_interleave(int(n))  # (K·n,) component-major
    return sample_gaussian(means, roots, z, generator).reshape(k, int(n), d)  # (K, n, D) μ + A ε


def _decode_mean(model, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.decode_mean(z.to(torch.float32)).numpy()


def _features(ctx, model, data, space: str, fit_on: str, pca_dim: int):
    """(f_fit, f_test, projection or None, explained variance or None); progress 0 → 0.25."""
    likelihood = model.config.likelihood
    x_fit = fit_images(data, fit_on, "eval" if space == "vae" else "grey", likelihood)
    x_test = eval_images(data, "test", likelihood) if space == "vae" else data.float_images("test")
    ctx.check()
    if space == "vae":
        span = 0.25 * x_fit.shape[0] / (x_fit.shape[0] + x_test.shape[0])
        f_fit, _ = encode_loc_scale(
            model, x_fit, ENCODE_BATCH, should_stop=ctx.cancelled, progress=lambda f: ctx.report(span * f)
        )
        ctx.check()
        f_test, _ = encode_loc_scale(
            model,
            x_test,
            ENCODE_BATCH,
            should_stop=ctx.cancelled,
            progress=lambda f: ctx.report(span + (0.25 - span) * f),
        )
        ctx.check()
        return f_fit, f_test, None, None
    ctx.report(0.02)
    proj = pca(x_fit, int(pca_dim))  # thin SVD of the centred pixels, in torch
    ctx.check()
    explained = float(proj.explained_variance_ratio.sum())
    ctx.report(0.25)
    return proj.transform(x_fit), proj.transform(x_test), proj, explained  # (N, dim) each


def _best_of_restarts(ctx, f_fit, k, covariance, seed, restarts, max_iter, tol):
    """EM from seeds seed, seed + 1, …; the highest training log-likelihood wins. Progress 0.25 → 0.95."""
    best, best_ll, best_r, traces = None, -math.inf, 0, []
    for r in range(int(restarts)):
        gmm = GaussianMixture(
            GMMConfig(n_components=int(k), covariance=covariance, seed=int(seed) + r), dtype=torch.float64
        )
        base = 0.25 + 0.7 * r / restarts

        def report(t, ll, r=r, base=base):
            ctx.report(base + 0.7 / restarts * min(1.0, t / max_iter), TracePoint("trace", r, t, ll))

        trace = gmm.fit(f_fit, max_iter=max_iter, tol=tol, callback=report, should_stop=ctx.cancelled)
        ctx.check()
        traces.append(trace)
        if trace[-1] > best_ll:
            best, best_ll, best_r = gmm, trace[-1], r
    return best, best_ll, best_r, traces


# --- tasks (worker thread; plain data in and out) -------------------------------------------------------


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
    tol: float = GMM_TOL,
) -> ClusterResult:
    """Features (VAE codes or PCA coordinates), EM with restarts (best training likelihood wins),
    test responsibilities, scores against the labels, and the component images.

    data: an MNIST (core.data; read only). space 'vae': codes μ_φ(x) of the evaluation images (as
    the latent map), 'pca': PCA coordinates of the grey levels. tol: EM's stopping rise, nats/point.
    """
    t0 = time.perf_counter()
    f_fit, f_test, proj, explained = _features(ctx, model, data, space, fit_on, pca_dim)
    f_fit = f_fit.to(torch.float64)  # (N_fit, dim)
    f_test = f_test.to(torch.float64)  # (N_test, dim)
    best, best_ll, best_r, traces = _best_of_restarts(ctx, f_fit, k, covariance, seed, restarts, max_iter, tol)
    labels_test = np.asarray(data.y_test).astype(np.int64)
    resp = best.responsibilities(f_test)  # (N_test, K)
    pred = resp.argmax(1).numpy()
    params = best.get_parameters()
    samples = component_samples(params, n_samples, torch.Generator().manual_seed(int(seed)))  # (K, S, D)
    if space == "vae":
        means_img = _decode_mean(model, params.means)  # (K, N_PIXELS) p(x | z = μ_k)
        samples_img = _decode_mean(model, samples)  # (K, S, N_PIXELS)
    else:
        means_img = proj.inverse_transform(params.means.to(proj.mean.dtype)).clamp(0, 1).numpy()
        samples_img = proj.inverse_transform(samples.to(proj.mean.dtype)).clamp(0, 1).numpy()
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
        confusion=confusion_matrix(labels_test, pred, n_labels=N_LABELS, n_clusters=int(k)),
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


def fitted_mixture(res: ClusterResult) -> GaussianMixture:
    """The Gaussian mixture a ClusterResult describes, ready for responsibilities (float64)."""
    gmm = GaussianMixture(GMMConfig(n_components=res.k, covariance=res.covariance), dtype=torch.float64)
    return gmm.set_parameters(res.weights, res.means, res.covariances)


def code_responsibilities_task(
    ctx, model, x_test: torch.Tensor, res: ClusterResult, labels=None
) -> CodeResponsibilities:
    """p(c | z_n) under the fitted mixture res (a 'vae' fit) at the codes z_n = μ_φ(x_n) of `model`.

    x_test: (N_test, N_PIXELS) the evaluation images (as the latent map encodes them). The mixture
    is not refitted: the E-step's γ_nk = π_k N(z_n; μ_k, Σ_k) / Σ_j π_j N(z_n; μ_j, Σ_j) (Bishop
    2006, eq. 9.23) at the new codes. labels: (N_test,) for the accuracy after matching, or None.
    """
    t0 = time.perf_counter()
    if res.space != "vae":
        raise ValueError("only a mixture of VAE codes has responsibilities at new codes")
    codes, _ = encode_loc_scale(model, x_test, ENCODE_BATCH, should_stop=ctx.cancelled, progress=ctx.report)
    ctx.check()
    if codes.shape[1] != res.dim:
        raise ValueError(f"the model's codes are {codes.shape[1]}-D, the mixture's {res.dim}-D")
    resp = fitted_mixture(res).responsibilities(codes.to(torch.float64))  # (N_test, K)
    pred = resp.argmax(1).numpy().astype(np.int64)
    acc = float("nan") if labels is None else hungarian_accuracy(np.asarray(labels).astype(np.int64), pred)
    return CodeResponsibilities(resp.numpy().astype(np.float32), pred, acc, time.perf_counter() - t0)


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
    tol: float = BMM_TOL,
) -> DensityResult:
    """EM for a Bernoulli mixture on binarized training digits, its exact log p(x) on the fixed
    binarization of the test digits, and the VAE's IWAE-k estimate on the first n_vae of the same
    digits (n_vae = 0 or model None: skipped)."""
    t0 = time.perf_counter()
    x_fit = fit_images(data, fit_on, "binary")
    x_test = data.binarized("test")  # the evaluation binarization (seed 1234), as hub.eval_x for Bernoulli VAEs
    ctx.check()
    bmm = BernoulliMixture(BernoulliMixtureConfig(n_components=int(k), seed=int(seed)))
    share = 0.8 if (model is not None and n_vae > 0) else 1.0  # of the progress bar, for EM

    def report(t, ll):
        ctx.report(share * min(1.0, t / max_iter), TracePoint("trace", 0, t, ll))

    bmm.fit(x_fit, max_iter=max_iter, tol=tol, callback=report, should_stop=ctx.cancelled)
    ctx.check()
    log_px = bmm.log_prob(x_test).to(torch.float64)  # (N_test,) exact
    n_vae = min(int(n_vae), x_test.shape[0]) if model is not None else 0
    vae, t1 = None, time.perf_counter()
    if n_vae > 0:
        g = torch.Generator().manual_seed(int(seed))
        total = 0.0
        for start in range(0, n_vae, IWAE_BATCH):
            ctx.check()
            xb = x_test[start : min(n_vae, start + IWAE_BATCH)]
            with torch.no_grad():
                total += float(iwae_log_px(model, xb, int(vae_k), generator=g).sum(dtype=torch.float64))
            ctx.report(share + (1 - share) * min(1.0, (start + IWAE_BATCH) / n_vae))
        vae = total / n_vae
    g = torch.Generator().manual_seed(int(seed))
    samples = torch.bernoulli(bmm.probs[:, None, :].expand(-1, n_samples, -1), generator=g)  # (K, S, N_PIXELS)
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
