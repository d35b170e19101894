"""The exact posterior p(z|x) of one digit for a 2-D latent, on a grid zoomed onto its mass, and
the numbers that compare a q with it (no Qt).

    p(z|x) = p(x|z) p(z) / p(x),  p(x) ≈ Σ_cells p(x|z_c) p(z_c) ΔA      (midpoint rule)
    KL(q ‖ p(z|x)) = log p(x) − ELBO(q) = ∫ q (log q − log p(z|x)) dz   (Kingma & Welling 2014, eq. 2)

The grid itself is estimators.grid_posterior; ELBO(q) and IW-k(q) are core.q_elbo's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lvm_studio.core.estimators import GridPosterior, grid_posterior, log_normal
from lvm_studio.core.model import LatentVariableModel
from lvm_studio.core.q_elbo import elbo_for_q, iw_log_px_for_q


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
