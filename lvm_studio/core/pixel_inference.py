"""The lecture's estimators in pixel space: the missing pixels x_m of one image are the latent z.

For one binary image x (D,) with a flat boolean mask ``missing`` (D,) (True = MISSING, core.masks)
and any joint with an exact log p(x) (core/pixel_joint.py), with M = |missing|:

    p(x_o) = Σ_{x_m} p(x_o, x_m) = 2^M E_{x_m ~ U}[p(x_o, x_m)]          naive Monte Carlo, uniform completions
    p̂(x_o) = (1/k) Σ_j p(x_o, x_m^j) / q(x_m^j; φ),  x_m^j ~ q          importance sampling (Burda et al. 2016, eq. 8)
    q(x_m; φ) = Π_i φ_i^{x_i} (1 − φ_i)^{1−x_i}                          the lecture's factorised Bernoulli q
    ELBO(φ) = E_q[log p(x_o, x_m)] + H(q) ≤ log p(x_o),  gap = KL(q ‖ p(x_m | x_o))   (Kingma & Welling 2014, eq. 2)

H(q) = Σ_i h(φ_i) is in closed form, so the ELBO's Monte Carlo error is that of E_q[log p] alone:
SE = sd(log p(x_o, x_m^s)) / √S. With M ≤ ``ENUMERATE_MAX`` every sum over completions is done
exactly by enumeration instead. The log-mean-exp of the estimators is core.estimators' (chunked,
exact) and the running estimates as k grows are core.estimator_sweep's.

φ_i ∈ {0, 1} is allowed: q is then a point mass on those pixels (log q = 0 on the value it draws).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lvm_studio.core.estimator_sweep import _running_log_mean, log_spaced_ks
from lvm_studio.core.estimators import _chunked_log_mean_exp, effective_sample_size
from lvm_studio.core.pixel_joint import LOG2, MixtureJoint, PixelJoint, all_binary

ENUMERATE_MAX = 12  # up to 2^12 = 4,096 completions: sums over x_m are done exactly
CHUNK_ROWS = 4096  # complete images per joint evaluation


def flat_mask(missing) -> torch.Tensor:
    """A (D,) bool tensor from a (28, 28) / (D,) numpy or torch mask, True = missing."""
    return torch.as_tensor(missing).reshape(-1).to(torch.bool)


def complete(x: torch.Tensor, missing: torch.Tensor, x_m: torch.Tensor) -> torch.Tensor:
    """Images with the observed pixels of x (D,) and the missing ones from x_m (k, M); (k, D)."""
    out = x.reshape(1, -1).expand(x_m.shape[0], -1).clone()  # (k, D)
    out[:, missing] = x_m.to(out.dtype)
    return out


@torch.no_grad()
def log_joint(joint: PixelJoint, x: torch.Tensor, missing: torch.Tensor, x_m: torch.Tensor) -> torch.Tensor:
    """log p(x_o, x_m) for completions x_m (k, M) of one image (D,), in chunks; (k,) float64."""
    fast = getattr(joint, "log_prob_completions", None)
    parts = []
    for i in range(0, x_m.shape[0], CHUNK_ROWS):
        chunk = x_m[i : i + CHUNK_ROWS]  # (c, M)
        lp = fast(x, missing, chunk) if fast is not None else joint.log_prob(complete(x, missing, chunk))  # (c,)
        parts.append(lp.to(torch.float64))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def log_joint_images(joint: PixelJoint, xs: torch.Tensor, missing: torch.Tensor, x_m: torch.Tensor) -> torch.Tensor:
    """log p(x_o, x_m) of the same completions x_m (k, M) for each image xs (n, D) with the same mask,
    in chunks; (k, n) float64. The joints' fast paths share the completions' work across images."""
    fast = getattr(joint, "log_prob_completions", None)
    parts = []
    for i in range(0, x_m.shape[0], CHUNK_ROWS):
        chunk = x_m[i : i + CHUNK_ROWS]  # (c, M)
        if fast is not None:
            lp = fast(xs, missing, chunk)  # (c, n)
        else:
            lp = torch.stack([joint.log_prob(complete(x, missing, chunk)) for x in xs], 1)  # (c, n)
        parts.append(lp.to(torch.float64))
    return torch.cat(parts) if parts else torch.zeros(0, len(xs), dtype=torch.float64)


def log_q(x_m: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """log q(x_m; φ) = Σ_i x_i log φ_i + (1 − x_i) log(1 − φ_i), (k, M) → (k,); 0·log 0 = 0."""
    phi = phi.to(torch.float64)
    x_m = x_m.to(torch.float64)
    return (torch.xlogy(x_m, phi) + torch.xlogy(1 - x_m, 1 - phi)).sum(-1)


def entropy(phi: torch.Tensor) -> float:
    """H(q) = Σ_i [−φ_i log φ_i − (1 − φ_i) log(1 − φ_i)] in nats (closed form)."""
    phi = phi.to(torch.float64)
    return float((torch.special.entr(phi) + torch.special.entr(1 - phi)).sum())


def sample_q(phi: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """x_m ~ q(·; φ), (n, M) float32."""
    return torch.bernoulli(phi.to(torch.float32).expand(int(n), -1), generator=generator)


@dataclass(frozen=True)
class ElboEstimate:
    elbo: float  # ELBO(φ) = E_q[log p(x_o, x_m)] + H(q), nats
    se: float  # its Monte Carlo standard error (0 when enumerated)
    expected_log_joint: float  # E_q[log p(x_o, x_m)]
    entropy: float  # H(q), exact
    n: int  # samples (or completions enumerated)
    exact: bool  # enumerated: no Monte Carlo error


@torch.no_grad()
def elbo_phi(
    joint: PixelJoint,
    x: torch.Tensor,
    missing: torch.Tensor,
    phi: torch.Tensor,
    n: int = 1000,
    generator: torch.Generator | None = None,
) -> ElboEstimate:
    """ELBO(φ) for one image, by enumeration when M ≤ ENUMERATE_MAX, else with n samples of q."""
    h = entropy(phi)
    m = int(missing.sum())
    if m <= ENUMERATE_MAX:
        x_m = all_binary(m)  # (2^M, M)
        log_p = log_joint(joint, x, missing, x_m)  # (2^M,)
        q = log_q(x_m, phi).exp()  # (2^M,)
        e = float((q * torch.where(q > 0, log_p, torch.zeros_like(log_p))).sum())
        return ElboEstimate(e + h, 0.0, e, h, len(x_m), True)
    log_p = log_joint(joint, x, missing, sample_q(phi, n, generator))  # (n,)
    e = float(log_p.mean())
    se = float(log_p.std() / math.sqrt(n)) if n > 1 else math.inf
    return ElboEstimate(e + h, se, e, h, n, False)


@torch.no_grad()
def exact_log_marginal(joint: PixelJoint, x: torch.Tensor, missing: torch.Tensor) -> float | None:
    """log p(x_o) exactly: the mixture's closed form, or enumeration of 2^M completions when
    M ≤ 20 for any joint; None when neither applies (what the estimators are for)."""
    if isinstance(joint, MixtureJoint):
        return joint.log_marginal(x, missing)
    m = int(missing.sum())
    if m <= 20:
        return float(torch.logsumexp(log_joint(joint, x, missing, all_binary(m)), 0))
    return None


def _naive_chunks(joint, xs, missing, k, generator) -> Iterator[torch.Tensor]:
    """log |Z| p(x_o, u) for uniform completions u, the same for each image xs (n, D); chunks (c, n)."""
    m = int(missing.sum())
    for i in range(0, k, CHUNK_ROWS):
        u = torch.bernoulli(torch.full((min(CHUNK_ROWS, k - i), m), 0.5), generator=generator)  # (c, M) uniform
        yield log_joint_images(joint, xs, missing, u) + m * LOG2  # (c, n)


def _importance_chunks(joint, x, missing, phi, k, generator) -> Iterator[torch.Tensor]:
    for i in range(0, k, CHUNK_ROWS):
        x_m = sample_q(phi, min(CHUNK_ROWS, k - i), generator)  # (c, M)
        yield (log_joint(joint, x, missing, x_m) - log_q(x_m, phi))[:, None]  # (c, 1) log w


@torch.no_grad()
def naive_log_marginal(
    joint: PixelJoint, x: torch.Tensor, missing: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> float:
    """log p̂(x_o) = M log 2 + log (1/k) Σ_j p(x_o, u_j), u_j uniform: unbiased in p(x_o), and useless
    for large M ("works in theory but not in practice")."""
    return float(_chunked_log_mean_exp(_naive_chunks(joint, x[None], missing, k, generator), k)[0])


@torch.no_grad()
def naive_log_marginals(
    joint: PixelJoint, xs: torch.Tensor, missing: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """naive_log_marginal for each image xs (n, D) with the same mask, (n,) float64, with the same k
    uniform completions for every image (common random numbers): each entry is the same estimator
    as naive_log_marginal with that generator, and the completions' share of the joint's work is
    done once for all n (MADE.log_prob_completions). Only the errors are correlated across images."""
    return _chunked_log_mean_exp(_naive_chunks(joint, xs, missing, k, generator), k)


@torch.no_grad()
def importance_log_marginal(
    joint: PixelJoint,
    x: torch.Tensor,
    missing: torch.Tensor,
    phi: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
) -> float:
    """log p̂(x_o) = log (1/k) Σ_j p(x_o, x_m^j) / q(x_m^j; φ), x_m^j ~ q (Burda et al. 2016, eq. 8)."""
    return float(_chunked_log_mean_exp(_importance_chunks(joint, x, missing, phi, k, generator), k)[0])


@dataclass(frozen=True)
class PixelSweep:
    """Running estimates of log p(x_o) for one image as k grows, several independent runs.

    ks (m,); naive, importance (runs, m) with the first k samples of each run; exact: log p(x_o) when
    known; ess_naive, ess_q: effective sample sizes of the first run's k_max weights (Kong 1992)."""

    ks: torch.Tensor
    naive: torch.Tensor
    importance: torch.Tensor
    exact: float | None
    ess_naive: float
    ess_q: float
    runs_done: int


@torch.no_grad()
def pixel_sweep(
    ctx,
    joint: PixelJoint,
    x: torch.Tensor,
    missing: torch.Tensor,
    phi: torch.Tensor,
    k_max: int = 100_000,
    runs: int = 3,
    seed: int = 0,
) -> PixelSweep:
    """Naive vs importance estimates of log p(x_o) for k = 1 … k_max (a workers.tasks task: reports a
    PixelSweep after each run, polls ctx.check(); ctx may be None)."""
    g = torch.Generator().manual_seed(seed)
    ks = log_spaced_ks(k_max)
    exact = exact_log_marginal(joint, x, missing)
    naive, imp, ess_n, ess_q = [], [], math.nan, math.nan
    result = None
    for r in range(runs):
        lw_n, lw_q = [], []
        chunks = zip(
            _naive_chunks(joint, x[None], missing, k_max, g), _importance_chunks(joint, x, missing, phi, k_max, g)
        )
        for a, b in chunks:
            lw_n.append(a[:, 0])
            lw_q.append(b[:, 0])
            if ctx is not None:
                ctx.check()
                ctx.report((r + len(lw_n) * CHUNK_ROWS / k_max) / runs, None)  # progress within a run
        lw_n, lw_q = torch.cat(lw_n), torch.cat(lw_q)  # (k_max,)
        naive.append(_running_log_mean(lw_n, ks))
        imp.append(_running_log_mean(lw_q, ks))
        if r == 0:
            ess_n = float(effective_sample_size(lw_n[:, None])[0])
            ess_q = float(effective_sample_size(lw_q[:, None])[0])
        result = PixelSweep(ks, torch.stack(naive), torch.stack(imp), exact, ess_n, ess_q, r + 1)
        if ctx is not None:
            ctx.report((r + 1) / runs, result)
    return result


@dataclass(frozen=True)
class ConditionalSamples:
    x_m: torch.Tensor  # (n, M)
    how: str  # 'exact', 'ancestral' or 'importance-resampled'
    ess: float | None = None  # of the importance weights, when resampled


def missing_after_observed(missing: torch.Tensor) -> bool:
    """Every missing pixel comes after every observed one in raster order (MADE's order)."""
    idx_m = torch.nonzero(missing).flatten()
    idx_o = torch.nonzero(~missing).flatten()
    return len(idx_m) > 0 and (len(idx_o) == 0 or int(idx_m.min()) > int(idx_o.max()))


@torch.no_grad()
def conditional_samples(
    joint: PixelJoint,
    x: torch.Tensor,
    missing: torch.Tensor,
    n: int,
    phi: torch.Tensor,
    k: int = 4000,
    generator: torch.Generator | None = None,
) -> ConditionalSamples:
    """n samples of the model's own p(x_m | x_o): exact for the mixture; ancestral for an
    autoregressive joint when the missing pixels come last in its order; otherwise sampling
    importance resampling (Rubin 1988) from k draws of q(·; φ), weights p(x_o, x_m) / q(x_m)."""
    if isinstance(joint, MixtureJoint):
        return ConditionalSamples(joint.sample_conditional(x, missing, n, generator), "exact")
    if hasattr(joint, "sample") and missing_after_observed(missing):
        full = joint.sample(n, generator=generator, x_fixed=x, fixed=~missing)  # (n, D)
        return ConditionalSamples(full[:, missing], "ancestral")
    x_m = sample_q(phi, k, generator)  # (k, M)
    log_w = log_joint(joint, x, missing, x_m) - log_q(x_m, phi)  # (k,)
    pick = torch.multinomial(torch.softmax(log_w, 0), int(n), replacement=True, generator=generator)  # (n,)
    return ConditionalSamples(x_m[pick], "importance-resampled", float(effective_sample_size(log_w[:, None])[0]))
