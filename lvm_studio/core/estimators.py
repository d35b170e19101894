"""Estimators of the ELBO and of log p(x), for any latent variable model.

The model is anything with the protocol of core/model.py (LatentVariableModel), whose
docstring is the one description of it; the prior is always the model's own. Every
normalising constant is kept, so the numbers are real log-densities in nats per image.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # core.model imports this module (for the N(0, I) formulas)
    from lvm_studio.core.model import LatentVariableModel

LOG_2PI = math.log(2 * math.pi)
DEFAULT_MAX_ROWS = 1 << 15  # decoder rows per chunk: bounds memory for any k and batch


def log_normal(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log N(z; loc, diag scale²) summed over the last dim."""
    return (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * LOG_2PI).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dim."""
    return (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)


def kl_normal_standard(z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) in closed form (Kingma & Welling 2014, App. B), (batch,);
    StandardNormalPrior.kl_to_prior. Estimators call model.kl_to_prior, never this directly."""
    return 0.5 * (z_loc**2 + z_scale**2 - 1.0 - 2.0 * z_scale.log()).sum(-1)


def kl_per_dimension(z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
    """The same KL to N(0, I), one term per latent dimension, (batch, latent)."""
    return 0.5 * (z_loc**2 + z_scale**2 - 1.0 - 2.0 * z_scale.log())


def reparameterize(
    z_loc: torch.Tensor, z_scale: torch.Tensor, k: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = μ + σ ε with ε ~ N(0, I); (batch, latent), or (k, batch, latent) when k is given."""
    shape = z_loc.shape if k is None else (k, *z_loc.shape)
    eps = torch.randn(shape, generator=generator, device=z_loc.device, dtype=z_loc.dtype)
    return z_loc + z_scale * eps


@dataclass(frozen=True)
class ElboTerms:
    """Per-image terms, each (batch,): elbo = recon − kl."""

    elbo: torch.Tensor
    recon: torch.Tensor  # E_q[log p(x|z)], one sample
    kl: torch.Tensor  # KL(q(z|x) ‖ p(z)), the model's kl_to_prior (closed form for N(0, I))


def elbo(model: LatentVariableModel, x: torch.Tensor, generator: torch.Generator | None = None) -> ElboTerms:
    """One-sample reparameterized ELBO with the model's KL to its prior (Kingma & Welling 2014, eq. 10)."""
    z_loc, z_scale = model.encode(x)  # (batch, latent)
    z = reparameterize(z_loc, z_scale, generator=generator)  # (batch, latent)
    recon = model.log_px_given_z(x, z)  # (batch,)
    kl = model.kl_to_prior(z_loc, z_scale)  # (batch,)
    return ElboTerms(elbo=recon - kl, recon=recon, kl=kl)


def log_weights(
    log_lik: torch.Tensor, z: torch.Tensor, z_loc: torch.Tensor, z_scale: torch.Tensor, model: LatentVariableModel
) -> torch.Tensor:
    """log w = log p(x|z) + log p(z) − log q(z|x) for samples z (..., batch, latent) of
    q = N(z_loc, diag z_scale²) (Burda et al. 2016, eq. 8's summand); (..., batch).

    log_lik is log p(x|z) of those z, (..., batch): the whole image's, or only the observed
    pixels' log p(x_o|z) for the weights of p(x_o) (inpainting). The prior is the model's own.
    """
    return log_lik + model.prior_log_prob(z) - log_normal(z, z_loc, z_scale)  # (..., batch)


def log_importance_weights(
    model: LatentVariableModel,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """log w_j = log p(x, z_j) − log q(z_j|x), z_j ~ q(z|x); differentiable. Returns (k, batch)."""
    z_loc, z_scale = encoded if encoded is not None else model.encode(x)  # (batch, latent)
    z = reparameterize(z_loc, z_scale, k, generator)  # (k, batch, latent)
    return log_weights(model.log_px_given_z(x, z), z, z_loc, z_scale, model)  # (k, batch)


def iwae_bound(
    model: LatentVariableModel, x: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The IWAE-k bound (Burda et al. 2016, eq. 8), differentiable, no chunking; (batch,)."""
    log_w = log_importance_weights(model, x, k, generator)  # (k, batch)
    return torch.logsumexp(log_w, 0) - math.log(k)


def _k_chunk(k: int, batch: int, max_rows: int) -> int:
    return max(1, min(k, max_rows // max(1, batch)))


def _log_weight_chunks(
    model: LatentVariableModel,
    x: torch.Tensor,
    k: int,
    proposal: str,
    generator: torch.Generator | None,
    max_rows: int,
    encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Iterator[torch.Tensor]:
    """The k log-weights in chunks of at most max_rows decoder rows, each (kc, batch).

    proposal 'q': z ~ q(z|x) (or N(encoded) when given), log w = log p(x, z) − log q(z|x);
    'prior': z ~ p(z), log w = log p(x|z) (naive Monte Carlo).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if proposal not in ("q", "prior"):
        raise ValueError(f"unknown proposal {proposal!r}")
    batch = x.shape[0]
    step = _k_chunk(k, batch, max_rows)
    if proposal == "q" and encoded is None:
        encoded = model.encode(x)
    for start in range(0, k, step):
        kc = min(step, k - start)
        if proposal == "q":
            yield log_importance_weights(model, x, kc, generator, encoded)  # (kc, batch)
        else:
            z = model.sample_prior((kc, batch), generator)  # (kc, batch, latent)
            yield model.log_px_given_z(x, z)  # (kc, batch)


def _chunked_log_mean_exp(chunks: Iterator[torch.Tensor], k: int) -> torch.Tensor:
    """log (1/k) Σ_j w_j from chunks of log w: a logsumexp of the chunks' logsumexps (exact); (batch,)."""
    partial = [torch.logsumexp(log_w, 0) for log_w in chunks]  # each (batch,)
    return torch.logsumexp(torch.stack(partial), 0) - math.log(k)


@torch.no_grad()
def iwae_log_px(
    model: LatentVariableModel,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Importance-sampled log p̂(x) = logsumexp_j log w_j − log k (Burda et al. 2016, eq. 8), with
    q(z|x) as the proposal, or N(encoded) = N(z_loc, diag z_scale²) when given; (batch,).

    Samples are drawn in chunks of k so that at most max_rows decoder rows live at once;
    the chunks are combined by a logsumexp of their logsumexps, which is exact.
    """
    return _chunked_log_mean_exp(_log_weight_chunks(model, x, k, "q", generator, max_rows, encoded), k)


@torch.no_grad()
def naive_mc_log_px(
    model: LatentVariableModel,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> torch.Tensor:
    """Naive Monte Carlo: z_j ~ p(z), log p̂(x) = logsumexp_j log p(x|z_j) − log k; (batch,)."""
    return _chunked_log_mean_exp(_log_weight_chunks(model, x, k, "prior", generator, max_rows), k)


@torch.no_grad()
def sample_log_weights(
    model: LatentVariableModel,
    x: torch.Tensor,
    k: int,
    proposal: str = "q",
    generator: torch.Generator | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> torch.Tensor:
    """All k log importance weights, (k, batch), for histograms and effective sample sizes.

    proposal 'q' uses q(z|x); 'prior' uses p(z), so log w = log p(x|z).
    """
    return torch.cat(list(_log_weight_chunks(model, x, k, proposal, generator, max_rows)), 0)


def iw_bounds_from_weights(log_w: torch.Tensor, ks) -> dict[int, torch.Tensor]:
    """IW-k bounds for several k from one set of K log-weights (K, batch).

    The K samples are split into ⌊K/k⌋ disjoint groups of k; the bound is averaged over
    the groups, an unbiased estimate of the IWAE-k bound with less variance than one group.
    """
    K = log_w.shape[0]
    bounds = {}
    for k in ks:
        k = int(k)
        if k < 1 or k > K:
            continue
        groups = K // k
        lw = log_w[: groups * k].reshape(groups, k, -1)  # (groups, k, batch)
        bounds[k] = (torch.logsumexp(lw, 1) - math.log(k)).mean(0)  # (batch,)
    return bounds


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """ESS = (Σ w)² / Σ w² from log-weights (k, batch), computed in log space; (batch,)."""
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))


# --- exact inference for a 2-D latent ------------------------------------------------


@dataclass(frozen=True)
class GridPosterior:
    """log p(x, z) on a regular grid over the latent plane, normalised.

    z1, z2: (n,) cell centres; log_post: (batch, n, n) log p(z|x) density (index [b, i, j]
    is z = (z1[i], z2[j])); log_px: (batch,) = logsumexp over cells of log p(x, z) + log cell area.
    """

    z1: torch.Tensor
    z2: torch.Tensor
    log_post: torch.Tensor
    log_px: torch.Tensor
    cell_area: float


@torch.no_grad()
def grid_posterior(
    model: LatentVariableModel,
    x: torch.Tensor,
    n: int = 201,
    extent=(-4.0, 4.0, -4.0, 4.0),
    max_rows: int = DEFAULT_MAX_ROWS,
) -> GridPosterior:
    """Evaluate p(z|x) and log p(x) = log ∫ p(x|z) p(z) dz by the midpoint rule on a 2-D grid."""
    if model.latent_dim != 2:
        raise ValueError(f"the grid posterior needs a 2-D latent, this model has {model.latent_dim}")
    lo1, hi1, lo2, hi2 = (float(e) for e in extent)
    d1, d2 = (hi1 - lo1) / n, (hi2 - lo2) / n
    z1 = torch.linspace(lo1 + d1 / 2, hi1 - d1 / 2, n, device=x.device, dtype=x.dtype)  # (n,)
    z2 = torch.linspace(lo2 + d2 / 2, hi2 - d2 / 2, n, device=x.device, dtype=x.dtype)  # (n,)
    zz = torch.stack(torch.meshgrid(z1, z2, indexing="ij"), -1).reshape(-1, 2)  # (n*n, 2)
    batch = x.shape[0]
    step = _k_chunk(zz.shape[0], batch, max_rows)
    parts = []
    for start in range(0, zz.shape[0], step):
        zc = zz[start : start + step]  # (c, 2)
        z = zc[:, None, :].expand(-1, batch, -1)  # (c, batch, 2)
        parts.append(model.log_px_given_z(x, z) + model.prior_log_prob(zc)[:, None])  # (c, batch)
    log_joint = torch.cat(parts, 0).T.reshape(batch, n, n)  # (batch, n, n)
    log_area = math.log(d1 * d2)
    log_px = torch.logsumexp(log_joint.reshape(batch, -1), 1) + log_area  # (batch,)
    log_post = log_joint - log_px[:, None, None]  # density, integrates to 1 over the grid
    return GridPosterior(z1=z1, z2=z2, log_post=log_post, log_px=log_px, cell_area=d1 * d2)


@torch.no_grad()
def exact_log_px_2d(
    model: LatentVariableModel,
    x: torch.Tensor,
    n_coarse: int = 81,
    n_fine: int = 161,
    extent: float = 6.0,
    tail: float = 25.0,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> torch.Tensor:
    """log p(x) for a 2-D latent by a two-stage grid integral; (batch,).

    A coarse grid over [−extent, extent]² finds where the posterior mass lies (cells within
    `tail` nats of the peak); a fine grid over that box, per image, integrates it. Mass outside
    the box is below e^−tail relative to the peak cell, so it does not move the result.
    """
    coarse = grid_posterior(model, x, n_coarse, (-extent, extent, -extent, extent), max_rows)
    step = 2 * extent / n_coarse
    out = []
    for b in range(x.shape[0]):
        keep = coarse.log_post[b] > coarse.log_post[b].max() - tail  # (n, n)
        i = keep.any(1).nonzero().squeeze(1)
        j = keep.any(0).nonzero().squeeze(1)
        box = (
            coarse.z1[i.min()].item() - step,
            coarse.z1[i.max()].item() + step,
            coarse.z2[j.min()].item() - step,
            coarse.z2[j.max()].item() + step,
        )
        out.append(grid_posterior(model, x[b : b + 1], n_fine, box, max_rows).log_px)
    return torch.cat(out)
