"""How estimators of log p(x) behave as k grows, for one digit: naive Monte Carlo with the prior
as the proposal against importance sampling with q(z|x) (no Qt).

    naive:      log (1/k) Σ_{j≤k} p(x|z_j),                   z_j ~ p(z)
    importance: log (1/k) Σ_{j≤k} p(x, z_j) / q(z_j|x),       z_j ~ q(z|x)   (Burda et al. 2016, eq. 8)
    ESS = (Σ w)² / Σ w²                                                       (Kong 1992)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lvm_studio.core.estimators import effective_sample_size, sample_log_weights
from lvm_studio.core.model import LatentVariableModel
from lvm_studio.core.q_elbo import elbo_for_q


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
