"""What both mixtures (core.gmm, core.bernoulli_mixture) share: the EM driver loop and k-means++ seeding.

    repeat: E-step (responsibilities and ℓ_t = mean log p(x) of the current θ), M-step (new θ)
    until |ℓ_t − ℓ_{t−1}| < tol, max_iter M-steps, or should_stop()    (Bishop, PRML 2006, §9.2.2)

EM never decreases the log-likelihood (PRML §9.4), so the trace it returns rises monotonically
up to rounding (for the MAP Bernoulli mixture: its log posterior, see core.bernoulli_mixture).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class EMRun:
    trace: list[float]  # [ℓ_0, …, ℓ_T], ℓ_t = mean log p(x) after t M-steps
    n_iter: int  # M-steps taken: T
    converged: bool  # stopped because |ℓ_T − ℓ_{T−1}| < tol


def run_em(
    e_step: Callable[[], tuple[Any, float]],
    m_step: Callable[[Any], object],
    max_iter: int = 100,
    tol: float = 1e-4,
    callback: Callable[[int, float], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EMRun:
    """Alternate e_step() → (statistics, ℓ_t) and m_step(statistics) until converged.

    Ends after an E-step, so trace[-1] belongs to the parameters left behind and len(trace) =
    n_iter + 1. callback(t, ℓ_t) is called for every entry; should_stop() is asked before each
    M-step (a cancelled fit keeps its last complete parameters).
    """
    trace: list[float] = []
    n_iter, converged = 0, False
    for t in range(max_iter + 1):
        stats, ll = e_step()
        trace.append(ll)
        if callback is not None:
            callback(t, ll)
        if t > 0 and abs(ll - trace[-2]) < tol:
            converged = True
            break
        if t == max_iter or (should_stop is not None and should_stop()):
            break
        m_step(stats)
        n_iter = t + 1
    return EMRun(trace, n_iter, converged)


@torch.no_grad()
def kmeans_plusplus_indices(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007, §2.2): the first centre uniformly, each
    next one with probability D(x)² / Σ D(x)², D the distance to the nearest chosen centre.

    Draws on the CPU generator, so the indices are the same on any device. Returns K distinct
    indices (int64, CPU): chosen points have D = 0; when every remaining D is 0 (duplicates),
    the next centre is drawn uniformly among the points not chosen yet.
    """
    n = x.shape[0]
    if k > n:
        raise ValueError(f"cannot choose {k} centres from {n} points")
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    dist2 = (x - x[chosen[0]]).square().sum(1)  # (N,)
    for _ in range(1, k):
        weights = dist2.to(device="cpu", dtype=torch.float64)  # (N,)
        total = float(weights.sum())
        if not math.isfinite(total) or total <= 0:
            weights = torch.ones(n, dtype=torch.float64)
            weights[chosen] = 0
        nxt = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(nxt)
        dist2 = torch.minimum(dist2, (x - x[nxt]).square().sum(1))
    return torch.tensor(chosen, dtype=torch.int64)
