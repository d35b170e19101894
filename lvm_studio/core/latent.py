"""The latent space seen from outside the model: what the explorer panels compute (no Qt).

- Which dimensions are used: the average KL(q(z_d|x) ‖ p(z_d)) per dimension over a data set,
  the active-unit test, and Burda et al.'s activity statistic.
- Where to look: traversal grids, linear and spherical interpolation (PCA of the codes is
  lvm_studio.core.clustering.pca, re-exported here).
- How good q(z|x) is, for one digit and a 2-D latent: the ELBO of any diagonal Gaussian q
  (KL in closed form, E_q[log p(x|z)] by Gauss–Hermite quadrature or Monte Carlo), the exact
  log p(x) and p(z|x) on a grid, KL(q ‖ p(z|x)) = log p(x) − ELBO, importance samples, and a
  per-digit optimum φ* whose ELBO minus the encoder's is the amortization gap.
- How estimators of log p(x) behave as k grows: naive Monte Carlo against importance sampling.

Functions take a model with the protocol of core/model.py (LatentVariableModel; and decode_mean
where images are made), never change it, and return detached tensors. The prior is the model's own
(prior_log_prob, kl_to_prior), except for the per-dimension KL statistics, which are to N(0, 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lvm_studio.core.clustering import PCA, pca  # noqa: F401  (the map's projection; shared with the mixtures panels)
from lvm_studio.core.estimators import (
    DEFAULT_MAX_ROWS,
    GridPosterior,
    grid_posterior,
    kl_per_dimension,
    log_importance_weights,
    log_normal,
    log_weights,
)
from lvm_studio.core.images import SIDE
from lvm_studio.core.model import LatentVariableModel

# A unit is "active" when its average KL to the prior exceeds this many nats. Burda et al. (2016,
# §5.2) use instead the activity A_u = Cov_x(E_q[u]) > 1e-2; both are reported (LatentStats).
ACTIVE_KL_THRESHOLD = 0.01
ACTIVITY_THRESHOLD = 1e-2


# --- which dimensions are used -------------------------------------------------------------


@dataclass(frozen=True)
class LatentStats:
    """Per-dimension statistics of q(z|x) over a data set, each (latent,)."""

    mean_kl: torch.Tensor  # E_x KL(q(z_d|x) ‖ N(0, 1)), nats
    activity: torch.Tensor  # Cov_x(E_q[z_d]) (Burda et al. 2016, §5.2)
    order: torch.Tensor  # dimension indices by mean_kl, largest first (int64)
    active: torch.Tensor  # mean_kl > threshold (bool)
    threshold: float

    @property
    def n_active(self) -> int:
        return int(self.active.sum())


def order_by_kl(mean_kl: torch.Tensor) -> torch.Tensor:
    """Dimension indices sorted by average KL, largest first; ties keep index order (stable)."""
    return torch.sort(mean_kl, descending=True, stable=True).indices


@torch.no_grad()
def encode_loc_scale(
    model: LatentVariableModel,
    x: torch.Tensor,
    batch_size: int = 2000,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x) for many images in chunks: z_loc, z_scale each (N, latent). Returns partial results
    (the rows encoded so far) if should_stop() turns true."""
    locs, scales = [], []
    n = x.shape[0]
    for start in range(0, n, batch_size):
        if should_stop is not None and should_stop():
            break
        z_loc, z_scale = model.encode(x[start : start + batch_size])  # (b, latent)
        locs.append(z_loc)
        scales.append(z_scale)
        if progress is not None:
            progress(min(1.0, (start + batch_size) / n))
    if not locs:
        empty = torch.empty(0, model.latent_dim)
        return empty, empty.clone()
    return torch.cat(locs), torch.cat(scales)


def latent_stats_from_codes(
    z_loc: torch.Tensor, z_scale: torch.Tensor, threshold: float = ACTIVE_KL_THRESHOLD
) -> LatentStats:
    """LatentStats from encoded (N, latent) means and scales."""
    mean_kl = kl_per_dimension(z_loc, z_scale).mean(0)  # (latent,)
    activity = z_loc.var(0, unbiased=False) if z_loc.shape[0] > 1 else torch.zeros_like(mean_kl)  # (latent,)
    return LatentStats(
        mean_kl=mean_kl,
        activity=activity,
        order=order_by_kl(mean_kl),
        active=mean_kl > threshold,
        threshold=float(threshold),
    )


def latent_stats(
    model: LatentVariableModel, x: torch.Tensor, batch_size: int = 2000, threshold: float = ACTIVE_KL_THRESHOLD
) -> LatentStats:
    """Average KL per dimension over x (the validation set), the KL ordering and the active units."""
    z_loc, z_scale = encode_loc_scale(model, x, batch_size)
    return latent_stats_from_codes(z_loc, z_scale, threshold)


# --- where to look ------------------------------------------------------------------------------


def traversal_values(lo: float, hi: float, n: int) -> torch.Tensor:
    """n evenly spaced values from lo to hi inclusive (in prior standard deviations)."""
    return torch.linspace(float(lo), float(hi), int(n))


def traversal_grid(
    z: torch.Tensor, dims: tuple[int, ...] | list[int], values_a: torch.Tensor, values_b: torch.Tensor | None = None
) -> torch.Tensor:
    """Codes that vary one or two dimensions of z while the others stay fixed.

    One dimension: (n_a, latent), row i has z[dims[0]] = values_a[i].
    Two dimensions: (n_b, n_a, latent), [r, c] has z[dims[0]] = values_a[c] and z[dims[1]] = values_b[r]
    (columns follow the first dimension, rows the second, as on a plot's x and y axes).
    """
    z = torch.as_tensor(z).reshape(-1)
    values_a = torch.as_tensor(values_a, dtype=z.dtype)
    if len(dims) == 1 or values_b is None:
        out = z.expand(len(values_a), -1).clone()  # (n_a, latent)
        out[:, dims[0]] = values_a
        return out
    if dims[0] == dims[1]:
        raise ValueError("a two-dimensional traversal needs two different dimensions")
    values_b = torch.as_tensor(values_b, dtype=z.dtype)
    out = z.expand(len(values_b), len(values_a), -1).clone()  # (n_b, n_a, latent)
    out[:, :, dims[0]] = values_a[None, :]
    out[:, :, dims[1]] = values_b[:, None]
    return out


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 − t) z0 + t z1 for each t; (n, latent)."""
    t = torch.as_tensor(t, dtype=z0.dtype).reshape(-1, 1)  # (n, 1)
    return (1 - t) * z0.reshape(1, -1) + t * z1.reshape(1, -1)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985), as recommended for Gaussian latents by White (2016,
    "Sampling generative networks", §2.2): sin((1−t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1 with
    cos Ω = ⟨z0, z1⟩ / (‖z0‖‖z1‖). Endpoints are exact; near-parallel codes fall back to lerp. (n, latent)."""
    z0, z1 = z0.reshape(-1), z1.reshape(-1)
    t = torch.as_tensor(t, dtype=z0.dtype).reshape(-1, 1)  # (n, 1)
    n0, n1 = z0.norm(), z1.norm()
    if n0 < eps or n1 < eps:
        return lerp(z0, z1, t)
    cos_omega = torch.clamp(torch.dot(z0, z1) / (n0 * n1), -1.0, 1.0)
    omega = torch.arccos(cos_omega)
    sin_omega = torch.sin(omega)
    if sin_omega < 1e-4:
        return lerp(z0, z1, t)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / sin_omega


def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int, method: str = "linear") -> torch.Tensor:
    """n codes from z0 to z1 inclusive; method 'linear' or 'spherical'. (n, latent)."""
    t = torch.linspace(0.0, 1.0, int(n), dtype=z0.dtype)
    if method == "linear":
        return lerp(z0, z1, t)
    if method == "spherical":
        return slerp(z0, z1, t)
    raise ValueError(f"unknown interpolation {method!r}; use 'linear' or 'spherical'")


def tile_images(images: torch.Tensor | np.ndarray, gap: int = 1, fill: float = 0.0) -> np.ndarray:
    """(rows, cols, 784) or (rows, cols, 28, 28) digits -> one (rows·29 − 1, cols·29 − 1) float32 array,
    row r at the top; gaps of `gap` pixels filled with `fill`."""
    a = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    rows, cols = a.shape[:2]
    a = a.reshape(rows, cols, SIDE, SIDE).astype(np.float32, copy=False)
    step = SIDE + gap
    out = np.full((rows * step - gap, cols * step - gap), fill, dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            out[r * step : r * step + SIDE, c * step : c * step + SIDE] = a[r, c]
    return out


# --- how good is q, for one digit --------------------------------------------------------------


def gauss_hermite(n: int, dim: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (n**dim, dim) and weights (n**dim,) with Σ_i w_i f(u_i) ≈ E_{u~N(0,I)}[f(u)].

    Product rule from the probabilists' Gauss–Hermite rule (weight e^{−u²/2}); exact for
    polynomials of degree ≤ 2n − 1 in each coordinate (Abramowitz & Stegun 25.4.46).
    """
    if n**dim > 1 << 20:
        raise ValueError(f"{n}^{dim} quadrature nodes are too many; use Monte Carlo")
    u, w = np.polynomial.hermite_e.hermegauss(int(n))
    w = w / w.sum()  # Σ w = √(2π) before normalising
    grids = np.meshgrid(*([u] * dim), indexing="ij")
    nodes = np.stack([g.reshape(-1) for g in grids], -1)  # (n^dim, dim)
    weights = np.ones(nodes.shape[0])
    for wg in np.meshgrid(*([w] * dim), indexing="ij"):
        weights = weights * wg.reshape(-1)
    return torch.as_tensor(nodes, dtype=dtype), torch.as_tensor(weights, dtype=dtype)


DEFAULT_QUADRATURE_NODES = 24  # per dimension; 576 decoder rows for a 2-D latent


def expected_log_px_given_z(
    model: LatentVariableModel,
    x: torch.Tensor,
    z_loc: torch.Tensor,
    z_scale: torch.Tensor,
    method: str = "auto",
    n: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E_{q}[log p(x|z)] for q = N(z_loc, diag z_scale²), differentiable in z_loc and z_scale; (batch,).

    method 'quadrature': Gauss–Hermite with n nodes per dimension (deterministic; latents ≤ 3);
    'mc': n reparameterized samples (Kingma & Welling 2014, eq. 7); 'auto': quadrature for
    latents of 1 or 2 dimensions, else Monte Carlo with 256 samples.
    """
    latent = z_loc.shape[-1]
    if method == "auto":
        method = "quadrature" if latent <= 2 else "mc"
    if method == "quadrature":
        nodes, weights = gauss_hermite(n or DEFAULT_QUADRATURE_NODES, latent, z_loc.dtype)  # (m, latent), (m,)
        z = z_loc[None] + z_scale[None] * nodes[:, None, :].to(z_loc.device)  # (m, batch, latent)
        return (weights.to(z_loc.device)[:, None] * _chunked_log_px_given_z(model, x, z)).sum(0)
    if method == "mc":
        k = n or 256
        eps = torch.randn((k, *z_loc.shape), generator=generator, device=z_loc.device, dtype=z_loc.dtype)
        return _chunked_log_px_given_z(model, x, z_loc + z_scale * eps).mean(0)  # (batch,)
    raise ValueError(f"unknown method {method!r}")


def _chunked_log_px_given_z(
    model: LatentVariableModel, x: torch.Tensor, z: torch.Tensor, max_rows: int = DEFAULT_MAX_ROWS
) -> torch.Tensor:
    """log p(x|z) for z (m, batch, latent) in chunks of m; (m, batch)."""
    step = max(1, max_rows // max(1, x.shape[0]))
    if z.shape[0] <= step:
        return model.log_px_given_z(x, z)
    return torch.cat([model.log_px_given_z(x, z[s : s + step]) for s in range(0, z.shape[0], step)])


@dataclass(frozen=True)
class QElbo:
    """ELBO terms of one q(z) = N(z_loc, diag z_scale²) for each image, each (batch,)."""

    elbo: torch.Tensor
    recon: torch.Tensor  # E_q[log p(x|z)]
    kl: torch.Tensor  # KL(q ‖ p(z)), the model's kl_to_prior (closed form for N(0, I))


@torch.no_grad()
def elbo_for_q(
    model: LatentVariableModel,
    x: torch.Tensor,
    z_loc: torch.Tensor,
    z_scale: torch.Tensor,
    method: str = "auto",
    n: int | None = None,
    generator: torch.Generator | None = None,
) -> QElbo:
    """ELBO(q) = E_q[log p(x|z)] − KL(q ‖ p(z)) for a hand-set q (Kingma & Welling 2014, eq. 3),
    KL from the model's kl_to_prior (closed form for N(0, I): ibid., App. B)."""
    recon = expected_log_px_given_z(model, x, z_loc, z_scale, method, n, generator)
    kl = model.kl_to_prior(z_loc, z_scale)
    return QElbo(elbo=recon - kl, recon=recon, kl=kl)


@torch.no_grad()
def iw_log_px_for_q(
    model: LatentVariableModel,
    x: torch.Tensor,
    z_loc: torch.Tensor,
    z_scale: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> torch.Tensor:
    """The IW-k estimate logsumexp_j log w_j − log k with q = N(z_loc, diag z_scale²) as the
    proposal (Burda et al. 2016, eq. 8), in chunks of k; (batch,)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    step = max(1, min(k, max_rows // max(1, x.shape[0])))
    parts = []
    for start in range(0, k, step):
        log_w = log_importance_weights(model, x, min(step, k - start), generator, (z_loc, z_scale))  # (kc, batch)
        parts.append(torch.logsumexp(log_w, 0))
    return torch.logsumexp(torch.stack(parts), 0) - math.log(k)


@torch.no_grad()
def importance_samples(
    model: LatentVariableModel,
    x: torch.Tensor,
    z_loc: torch.Tensor,
    z_scale: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """k draws z_j ~ q for one image x (1, 784): z (k, latent), log w (k,), normalised w̃ (k,), Σ w̃ = 1."""
    eps = torch.randn((k, *z_loc.shape), generator=generator, device=z_loc.device, dtype=z_loc.dtype)
    z = z_loc + z_scale * eps  # (k, 1, latent)
    log_w = log_weights(model.log_px_given_z(x, z), z, z_loc, z_scale, model)  # (k, 1)
    log_w = log_w[:, 0]
    return z[:, 0], log_w, torch.softmax(log_w, 0)


def _mass_box(grid: GridPosterior, tail: float) -> tuple[float, float, float, float]:
    """Bounding box of the cells within `tail` nats of the peak, one cell wider on every side."""
    d1, d2 = (grid.z1[1] - grid.z1[0]).item(), (grid.z2[1] - grid.z2[0]).item()
    keep = grid.log_post[0] > grid.log_post[0].max() - tail  # (n, n)
    i = keep.any(1).nonzero().squeeze(1)
    j = keep.any(0).nonzero().squeeze(1)
    return (
        grid.z1[i.min()].item() - 1.5 * d1,
        grid.z1[i.max()].item() + 1.5 * d1,
        grid.z2[j.min()].item() - 1.5 * d2,
        grid.z2[j.max()].item() + 1.5 * d2,
    )


@torch.no_grad()
def posterior_grid(
    model: LatentVariableModel,
    x: torch.Tensor,
    n: int = 96,
    n_coarse: int = 33,
    extent: float = 5.0,
    tail: float = 15.0,
    display_tail: float = 9.0,
    include: tuple[torch.Tensor, torch.Tensor] | None = None,
    margin: float = 0.1,
    preview: Callable[[GridPosterior], None] | None = None,
) -> GridPosterior:
    """p(z|x) for ONE image x (1, 784) of a 2-D latent on an n × n grid zoomed onto its mass.

    1. A coarse grid over [−extent, extent]² finds the cells within `tail` nats of the peak (box A).
    2. A second coarse grid over box A narrows that down (a posterior can be much narrower than a
       first-stage cell); preview(grid), if given, receives it so a picture shows early.
    3. The n × n grid covers box B: the cells of (2) within `display_tail` nats of the peak, plus
       q's 2σ box if `include` = (z_loc, z_scale) is given, squared, plus a margin.
    log p(x) is a composite midpoint rule: the fine grid over B plus the second-stage cells outside B
    (each below e^−display_tail of the peak); mass beyond box A is below e^−tail of the peak (the idea
    of exact_log_px_2d). log_post is normalised by that p(x), so it is the true density on B and
    integrates over B to 1 minus the (tiny) mass outside B.
    """
    coarse = grid_posterior(model, x, n_coarse, (-extent, extent, -extent, extent))
    zoomed = grid_posterior(model, x, n_coarse, _mass_box(coarse, tail))
    if preview is not None:
        preview(zoomed)
    lo1, hi1, lo2, hi2 = _mass_box(zoomed, display_tail)
    if include is not None:
        loc, scale = (t.reshape(-1).tolist() for t in include)
        lo1, hi1 = min(lo1, loc[0] - 2 * scale[0]), max(hi1, loc[0] + 2 * scale[0])
        lo2, hi2 = min(lo2, loc[1] - 2 * scale[1]), max(hi2, loc[1] + 2 * scale[1])
    # a square box (the plot keeps the aspect ratio), with a margin
    c1, c2 = (lo1 + hi1) / 2, (lo2 + hi2) / 2
    half = max(hi1 - lo1, hi2 - lo2) * (0.5 + margin)
    box = (c1 - half, c1 + half, c2 - half, c2 + half)
    fine = grid_posterior(model, x, n, box)
    # second-stage cells whose centre lies outside box B add their midpoint mass
    outside = ~(
        ((zoomed.z1 >= box[0]) & (zoomed.z1 <= box[1]))[:, None]
        & ((zoomed.z2 >= box[2]) & (zoomed.z2 <= box[3]))[None, :]
    )  # (n_coarse, n_coarse)
    parts = [fine.log_px]
    if outside.any():
        log_joint_out = zoomed.log_post[0][outside] + zoomed.log_px[0]  # log p(x, z) at those cells
        parts.append((torch.logsumexp(log_joint_out, 0) + math.log(zoomed.cell_area)).reshape(1))
    log_px = torch.logsumexp(torch.stack(parts), 0)  # (1,)
    log_post = fine.log_post + (fine.log_px - log_px)[:, None, None]
    return GridPosterior(z1=fine.z1, z2=fine.z2, log_post=log_post, log_px=log_px, cell_area=fine.cell_area)


def kl_q_posterior_on_grid(grid: GridPosterior, z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
    """KL(q ‖ p(z|x)) = ∫ q (log q − log p(z|x)) dz by the midpoint rule on the grid, for a q that
    is wide compared with the cells; an independent check of log p(x) − ELBO. (batch,)."""
    zz = torch.stack(torch.meshgrid(grid.z1, grid.z2, indexing="ij"), -1)  # (n, n, 2)
    log_q = log_normal(zz[None], z_loc[:, None, None, :], z_scale[:, None, None, :])  # (batch, n, n)
    q = log_q.exp() * grid.cell_area
    return (q * (log_q - grid.log_post)).sum((1, 2))


@dataclass(frozen=True)
class PosteriorNumbers:
    """The numbers of the posterior view for one image and one q, floats in nats."""

    log_px: float  # exact, grid integral
    elbo: float
    recon: float  # E_q[log p(x|z)]
    kl_prior: float  # KL(q ‖ p(z))
    kl_post: float  # KL(q ‖ p(z|x)) = log p(x) − ELBO ≥ 0
    iw_k: int
    iw_log_px: float  # IW-k estimate with q as the proposal (random)


@torch.no_grad()
def posterior_numbers(
    model: LatentVariableModel,
    x: torch.Tensor,
    z_loc: torch.Tensor,
    z_scale: torch.Tensor,
    log_px: float | torch.Tensor,
    k: int = 100,
    generator: torch.Generator | None = None,
    method: str = "auto",
    n: int | None = None,
) -> PosteriorNumbers:
    """ELBO(q), KL(q ‖ p(z|x)) = log p(x) − ELBO(q) and IW-k(q) for one image x (1, 784) given its
    exact log p(x) (from posterior_grid or exact_log_px_2d)."""
    terms = elbo_for_q(model, x, z_loc, z_scale, method, n, generator)
    log_px = float(log_px)
    elbo_v = float(terms.elbo[0])
    iw = float(iw_log_px_for_q(model, x, z_loc, z_scale, k, generator)[0])
    return PosteriorNumbers(
        log_px=log_px,
        elbo=elbo_v,
        recon=float(terms.recon[0]),
        kl_prior=float(terms.kl[0]),
        kl_post=log_px - elbo_v,
        iw_k=int(k),
        iw_log_px=iw,
    )


@dataclass(frozen=True)
class OptimisedPhi:
    z_loc: torch.Tensor  # (batch, latent) φ*_μ
    z_scale: torch.Tensor  # (batch, latent) φ*_σ
    elbo_trace: torch.Tensor  # (steps + 1, batch) the objective before each step and at the end
    method: str


MIN_LOG_SCALE, MAX_LOG_SCALE = math.log(1e-4), math.log(10.0)


def optimise_phi(
    model: LatentVariableModel,
    x: torch.Tensor,
    steps: int = 200,
    lr: float = 0.05,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    method: str = "auto",
    n: int | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> OptimisedPhi:
    """Maximise ELBO(φ) = E_q[log p(x|z)] − KL(q ‖ p(z)) over q(z; φ) = N(φ_μ, diag φ_σ²) for these
    images alone — the lecture's "pick φ so that q(z; φ) is as close as possible to p(z|x)".

    Adam (Kingma & Ba 2015) on (φ_μ, log φ_σ) from the encoder's guess (or `init`), step size on a
    cosine schedule down to lr/10. The objective is the quadrature ELBO for latents ≤ 2 (so it is
    deterministic and the optimum is sharp) and an n-sample reparameterized estimate otherwise
    (n defaults to 16). ELBO(φ*) − ELBO(encoder) is the amortization gap (Cremer et al. 2018).
    callback(step, elbo, z_loc, z_scale) runs every 10 steps; should_stop() ends early.
    """
    latent = model.latent_dim
    if method == "auto":
        method = "quadrature" if latent <= 2 else "mc"
    n = n or (12 if method == "quadrature" else 16)
    with torch.no_grad():
        loc0, scale0 = init if init is not None else model.encode(x)
    mu = loc0.detach().clone().requires_grad_(True)  # (batch, latent)
    log_sigma = scale0.detach().log().clamp(MIN_LOG_SCALE, MAX_LOG_SCALE).clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps), eta_min=lr / 10)
    trace = []
    done = 0
    with torch.enable_grad():
        for t in range(steps):
            if should_stop is not None and should_stop():
                break
            sigma = log_sigma.exp()
            obj = expected_log_px_given_z(model, x, mu, sigma, method, n, generator) - model.kl_to_prior(mu, sigma)
            trace.append(obj.detach().clone())
            # gradients for φ only: autograd.grad leaves the model's parameters (and their .grad) alone
            mu.grad, log_sigma.grad = torch.autograd.grad(-obj.sum(), [mu, log_sigma])
            opt.step()
            sched.step()
            with torch.no_grad():
                log_sigma.clamp_(MIN_LOG_SCALE, MAX_LOG_SCALE)
            done = t + 1
            if callback is not None and done % 10 == 0:
                callback(done, obj.detach().clone(), mu.detach().clone(), log_sigma.detach().exp())
    with torch.no_grad():
        sigma = log_sigma.exp()
        final = expected_log_px_given_z(model, x, mu, sigma, method, n, generator) - model.kl_to_prior(mu, sigma)
        trace.append(final)
    return OptimisedPhi(
        z_loc=mu.detach().clone(), z_scale=sigma.detach().clone(), elbo_trace=torch.stack(trace), method=method
    )


# --- estimators of log p(x) as k grows --------------------------------------------------------


def log_spaced_ks(k_max: int, per_decade: int = 6) -> torch.Tensor:
    """Distinct integers from 1 to k_max, about per_decade per factor of ten (int64)."""
    n = max(2, int(round(math.log10(max(k_max, 2)) * per_decade)) + 1)
    ks = torch.logspace(0, math.log10(k_max), n).round().to(torch.int64)
    return torch.unique(torch.cat([ks, torch.tensor([1, int(k_max)])]))


@dataclass(frozen=True)
class EstimatorSweep:
    """Running estimates of log p(x) for one image, several independent runs.

    ks: (m,) sample counts; naive, importance: (runs, m) estimates with the first k samples of each
    run, from the prior and from q(z|x); log_w_prior, log_w_q: (k_max,) the log-weights of the
    first run (histograms); ess_prior, ess_q: their effective sample sizes (Kong 1992).
    """

    ks: torch.Tensor
    naive: torch.Tensor
    importance: torch.Tensor
    log_w_prior: torch.Tensor
    log_w_q: torch.Tensor
    ess_prior: float
    ess_q: float
    elbo: float  # the encoder's ELBO (quadrature for 2-D latents, else 1000-sample MC)
    runs_done: int


def _running_log_mean(log_w: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    """log (1/k Σ_{j≤k} w_j) for each k in ks, from (k_max,) log-weights; (m,)."""
    cum = torch.logcumsumexp(log_w.to(torch.float64), 0)  # (k_max,)
    return (cum[ks - 1] - torch.log(ks.to(torch.float64))).to(log_w.dtype)


@torch.no_grad()
def estimator_sweep(
    model: LatentVariableModel,
    x: torch.Tensor,
    k_max: int = 10000,
    runs: int = 8,
    per_decade: int = 6,
    generator: torch.Generator | None = None,
    callback: Callable[[EstimatorSweep], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EstimatorSweep:
    """Naive Monte Carlo (z ~ p(z), w = p(x|z)) beside importance sampling with q(z|x)
    (w = p(x, z)/q(z|x)) for one image x (1, 784), each k from 1 to k_max, over `runs` independent
    runs. callback(partial sweep) after each run; should_stop() ends early (runs_done < runs)."""
    from lvm_studio.core.estimators import effective_sample_size, sample_log_weights

    ks = log_spaced_ks(k_max, per_decade)
    naive, imp = [], []
    log_w_prior = log_w_q = None
    ess_prior = ess_q = float("nan")
    encoded = model.encode(x)
    elbo_v = float(
        elbo_for_q(model, x, *encoded, n=None if model.latent_dim <= 2 else 1000, generator=generator).elbo[0]
    )
    result = None
    for r in range(runs):
        if should_stop is not None and should_stop():
            break
        lw_p = sample_log_weights(model, x, k_max, "prior", generator)[:, 0]  # (k_max,)
        lw_q = sample_log_weights(model, x, k_max, "q", generator)[:, 0]  # (k_max,)
        naive.append(_running_log_mean(lw_p, ks))
        imp.append(_running_log_mean(lw_q, ks))
        if r == 0:
            log_w_prior, log_w_q = lw_p.clone(), lw_q.clone()
            ess_prior = float(effective_sample_size(lw_p[:, None])[0])
            ess_q = float(effective_sample_size(lw_q[:, None])[0])
        result = EstimatorSweep(
            ks=ks,
            naive=torch.stack(naive),
            importance=torch.stack(imp),
            log_w_prior=log_w_prior,
            log_w_q=log_w_q,
            ess_prior=ess_prior,
            ess_q=ess_q,
            elbo=elbo_v,
            runs_done=r + 1,
        )
        if callback is not None:
            callback(result)
    if result is None:
        empty = torch.empty(0, len(ks))
        result = EstimatorSweep(
            ks=ks,
            naive=empty,
            importance=empty.clone(),
            log_w_prior=torch.empty(0),
            log_w_q=torch.empty(0),
            ess_prior=ess_prior,
            ess_q=ess_q,
            elbo=elbo_v,
            runs_done=0,
        )
    return result


def latent_stats_task(ctx, model: LatentVariableModel, x_val: torch.Tensor) -> LatentStats:
    """A background task (workers.tasks context `ctx`): the KL statistics of `model` on x_val."""
    z_loc, z_scale = encode_loc_scale(model, x_val, 1000, should_stop=ctx.cancelled)
    ctx.check()
    return latent_stats_from_codes(z_loc, z_scale)
