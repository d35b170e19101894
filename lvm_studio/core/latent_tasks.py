"""The latent explorer panels' computations: background tasks f(ctx, ...) for a TaskRunner, and
the quick decodes the panels show (docs/architecture.md, §2 and §3).

Every function takes numpy or torch inputs and returns numpy arrays or plain dataclasses, so the
panels only convert and draw. Tasks report with ctx.report(fraction, payload) and end early
through ctx.check() / ctx.cancelled().
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lvm_studio.core.clustering import PCA, pca
from lvm_studio.core.estimator_sweep import estimator_sweep
from lvm_studio.core.estimators import exact_log_px_2d
from lvm_studio.core.images import image_side
from lvm_studio.core.latent import encode_loc_scale
from lvm_studio.core.posterior_grid import PosteriorNumbers, posterior_grid, posterior_numbers
from lvm_studio.core.q_elbo import importance_samples, optimise_phi
from lvm_studio.core.traversal import interpolate, tile_images, traversal_grid, traversal_values

MAP_PCA_COMPONENTS = 10  # principal components offered by the latent map


def _row(a) -> torch.Tensor:
    """A vector (latent,) or a row (1, latent), numpy or torch -> float32 tensor (1, latent)."""
    return torch.as_tensor(np.asarray(a, dtype=np.float32)).reshape(1, -1)


# --- quick decodes for display (GUI thread: one or a few decoder rows) -------------------------


@torch.no_grad()
def decode_image(model, z) -> np.ndarray:
    """E[x|z] for one code z (latent,) -> (N_PIXELS,) float32."""
    return model.decode_mean(_row(z))[0].numpy()


class ImageSampler:
    """Draws x ~ p(x|z) for display, from its own seeded generator (repeatable pictures)."""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def __call__(self, model, z) -> np.ndarray:
        return model.sample_x(_row(z), generator=self.generator)[0].numpy()  # (N_PIXELS,)


@torch.no_grad()
def encode_one(model, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """q(z|x) = N(μ, diag σ²) of one image x (1, N_PIXELS): μ and σ as float64 (latent,)."""
    loc, scale = model.encode(x)  # (1, latent)
    return loc[0].numpy().astype(np.float64), scale[0].numpy().astype(np.float64)


# --- traversals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraversalImages:
    codes: torch.Tensor  # (rows, n, latent): row 0 is the top row
    tiles: np.ndarray  # (rows·(SIDE + gap) − gap, n·(SIDE + gap) − gap) float32


@torch.no_grad()
def traversal_images(model, z, dims: tuple[int, ...], r: float, n: int, fill: float = 0.25) -> TraversalImages:
    """Decode a traversal around z (latent,): dims[0] from −r to r along the columns and, when given,
    dims[1] from +r (top) to −r along the rows; other dimensions stay at z."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))  # (latent,)
    values = traversal_values(-r, r, n)
    if len(dims) == 1:
        codes = traversal_grid(z, dims, values)[None]  # (1, n, latent)
    else:
        codes = traversal_grid(z, dims, values, values.flip(0))  # (n, n, latent), top row = +r
    images = model.decode_mean(codes)  # (rows, n, N_PIXELS)
    return TraversalImages(codes=codes, tiles=tile_images(images, gap=1, fill=fill))


@torch.no_grad()
def interpolation_strip(
    model, xa: torch.Tensor, xb: torch.Tensor, n: int, method: str = "linear", fill: float = 0.25, spacer: int = 8
) -> np.ndarray:
    """xa | decoded path from μ(xa) to μ(xb) in n steps | xb, as one strip; the two tiles between
    the originals and the path are narrowed to `spacer` pixels of `fill`. xa, xb: (1, N_PIXELS)."""
    z_loc, _ = model.encode(torch.cat([xa, xb]))  # (2, latent)
    codes = interpolate(z_loc[0], z_loc[1], n, method)  # (n, latent)
    images = model.decode_mean(codes)  # (n, N_PIXELS)
    gap = torch.full((1, xa.shape[1]), fill)  # (1, N_PIXELS) for MNIST
    row = torch.cat([xa, gap, images, gap, xb])  # (n + 4, N_PIXELS)
    tiles = tile_images(row[None], gap=1, fill=fill)
    step = image_side(xa.shape[1]) + 1  # a tile and its gap
    keep = np.ones(tiles.shape[1], dtype=bool)
    keep[step + spacer : 2 * step - 1] = False
    keep[(n + 2) * step + spacer : (n + 3) * step - 1] = False
    return tiles[:, keep]


# --- the latent map ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MapCodes:
    codes: np.ndarray  # (N, latent) float64 μ of q(z|x)
    projection: PCA | None  # of the codes, for latents of 2 or more dimensions


def encode_codes_task(ctx, model, x: torch.Tensor, batch_size: int = 2000) -> MapCodes:
    """μ of q(z|x) for every image x (N, N_PIXELS) and a PCA of them."""
    z_loc, _ = encode_loc_scale(model, x, batch_size, should_stop=ctx.cancelled, progress=lambda f: ctx.report(0.9 * f))
    ctx.check()
    # a PCA needs two codes at least (an imported dataset's test set may be one image)
    projection = pca(z_loc, min(z_loc.shape[1], MAP_PCA_COMPONENTS)) if z_loc.shape[1] > 1 and len(z_loc) > 1 else None
    return MapCodes(codes=z_loc.numpy().astype(np.float64), projection=projection)


@torch.no_grad()
def decode_grid_task(ctx, model, z_grid: np.ndarray) -> np.ndarray:
    """E[x|z] for a grid of codes (rows, cols, latent) -> (rows, cols, N_PIXELS) float32."""
    return model.decode_mean(torch.as_tensor(np.asarray(z_grid, dtype=np.float32))).numpy()


# --- the posterior view -----------------------------------------------------------------------


def posterior_grid_task(ctx, model, x: torch.Tensor, loc, scale, n: int, n_coarse: int):
    """core.posterior_grid.posterior_grid for one image, including q's 2σ box; the zoomed coarse grid goes
    out first as the progress payload (a picture shows early), then the fine one is returned."""
    return posterior_grid(
        model,
        x,
        n=n,
        n_coarse=n_coarse,
        include=(_row(loc), _row(scale)),
        preview=lambda g: (ctx.check(), ctx.report(0.3, g)),
    )


@dataclass(frozen=True)
class QSamples:
    numbers: PosteriorNumbers
    z: np.ndarray  # (shown, latent) importance samples z_j ~ q
    w: np.ndarray  # (shown,) their normalised weights w̃_j, Σ w̃ = 1


def posterior_numbers_task(ctx, model, x: torch.Tensor, loc, scale, log_px: float, k: int, seed: int, shown: int):
    """The posterior view's numbers for q = N(loc, diag scale²), and `shown` importance samples to draw."""
    g = torch.Generator().manual_seed(seed)
    loc, scale = _row(loc), _row(scale)
    num = posterior_numbers(model, x, loc, scale, log_px, k=k, generator=g)
    ctx.check()
    z, _log_w, w = importance_samples(model, x, loc, scale, min(k, shown), generator=g)
    return QSamples(numbers=num, z=z.numpy().copy(), w=w.numpy().copy())


class _Progress:
    """Forwards optimise_phi's callback to ctx.report as (μ, σ, ELBO): detached numpy copies."""

    def __init__(self, ctx, steps):
        self.ctx, self.steps = ctx, steps

    def __call__(self, step, elbo, loc, scale):
        self.ctx.report(step / self.steps, (loc[0].numpy().copy(), scale[0].numpy().copy(), float(elbo[0])))


@dataclass(frozen=True)
class OptimisedQ:
    loc: np.ndarray  # (latent,) float64 φ*_μ
    scale: np.ndarray  # (latent,) float64 φ*_σ
    numbers: PosteriorNumbers
    elbo_trace: np.ndarray  # (steps + 1,)


def optimise_q_task(ctx, model, x: torch.Tensor, loc, scale, log_px: float, k: int, steps: int) -> OptimisedQ:
    """φ* for this digit from q = N(loc, diag scale²) (core.q_elbo.optimise_phi), and its numbers."""
    res = optimise_phi(
        model, x, steps=steps, init=(_row(loc), _row(scale)), callback=_Progress(ctx, steps), should_stop=ctx.cancelled
    )
    ctx.check()
    g = torch.Generator().manual_seed(0)
    num = posterior_numbers(model, x, res.z_loc, res.z_scale, log_px, k=k, generator=g)
    return OptimisedQ(
        loc=res.z_loc[0].numpy().astype(np.float64),
        scale=res.z_scale[0].numpy().astype(np.float64),
        numbers=num,
        elbo_trace=res.elbo_trace[:, 0].numpy().copy(),
    )


# --- the estimator lab ------------------------------------------------------------------------


def estimator_sweep_task(ctx, model, x: torch.Tensor, k_max: int, runs: int, seed: int):
    """(EstimatorSweep, exact log p(x) or None): core.estimator_sweep.estimator_sweep, reported run by run
    as (partial sweep, exact); the exact value by the grid integral for a 2-D latent."""
    g = torch.Generator().manual_seed(seed)
    exact = float(exact_log_px_2d(model, x)[0]) if model.latent_dim == 2 else None
    ctx.check()
    sweep = estimator_sweep(
        model,
        x,
        k_max=k_max,
        runs=runs,
        generator=g,
        callback=lambda s: ctx.report(s.runs_done / runs, (s, exact)),
        should_stop=ctx.cancelled,
    )
    return sweep, exact


@dataclass(frozen=True)
class WeightHistograms:
    edges: np.ndarray  # (bins + 1,) of log w − max log w, shared by both
    prior: np.ndarray  # (bins,) counts of the prior's log-weights
    q: np.ndarray  # (bins,) counts of q's log-weights


def log_weight_histograms(log_w_prior, log_w_q, bins: int = 60, lower_pct: float = 0.5) -> WeightHistograms:
    """Histograms of both proposals' log-weights relative to the largest weight of either, from the
    lower_pct percentile of the two to 0; values below are counted in the first bin (every sample counts)."""
    lw_p = np.asarray(log_w_prior, dtype=np.float64)
    lw_q = np.asarray(log_w_q, dtype=np.float64)
    top = max(lw_p.max(), lw_q.max())
    rel_p, rel_q = lw_p - top, lw_q - top
    lo = float(np.percentile(np.concatenate([rel_p, rel_q]), lower_pct))
    edges = np.linspace(lo, 0.0, bins + 1)
    return WeightHistograms(
        edges=edges,
        prior=np.histogram(np.clip(rel_p, lo, 0), edges)[0],
        q=np.histogram(np.clip(rel_q, lo, 0), edges)[0],
    )
