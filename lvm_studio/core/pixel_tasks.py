"""The background tasks of the "Missing pixels as latents" panel (workers.tasks ctx protocol), and the
Bernoulli mixture it fits at start.

    fit_mixture_task      the project's EM (core/bernoulli_mixture.py) on binarized training digits
    reference_task        what depends on (joint, image, mask) only: log p(x_o) exact or estimated,
                          the exact marginals (mixture), an optimised φ (MADE: as the IS proposal),
                          samples of the model's own p(x_m | x_o)
    numbers_task          what depends on φ: ELBO(φ) ± SE, samples of q, the gap

All return plain dataclasses of CPU tensors (safe to hand to the GUI thread).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from lvm_studio.core import pixel_inference as pi
from lvm_studio.core import pixel_phi as pp
from lvm_studio.core.bernoulli_mixture import BernoulliMixture, BernoulliMixtureConfig
from lvm_studio.core.pixel_joint import MixtureJoint, PixelJoint

MIXTURE_K = 50  # components
MIXTURE_N = 10_000  # training digits EM sees (about 10 s of EM on one core)
MIXTURE_ITERS = 30
ELBO_N = 500  # samples of q for ELBO(φ) while painting
IS_K = 1000  # importance samples for log p(x_o) (the k)
N_SHOWN = 8  # samples shown of q and of p(x_m | x_o)


def fit_mixture_task(ctx, x_train: torch.Tensor, k: int = MIXTURE_K, iters: int = MIXTURE_ITERS, seed: int = 0):
    """EM for a K-component Bernoulli mixture on binary images (N, D) → MixtureJoint (k-means++ start)."""
    mixture = BernoulliMixture(BernoulliMixtureConfig(n_components=k, seed=seed))
    mixture.initialize(x_train)
    mixture.fit(
        x_train,
        max_iter=iters,
        callback=(lambda t, ll: ctx.report(t / iters, ll)) if ctx is not None else None,
        should_stop=(lambda: ctx.cancelled()) if ctx is not None else None,
    )
    if ctx is not None:
        ctx.check()
    return MixtureJoint.from_mixture(mixture)


def binarized_train_subset(data, n: int = MIXTURE_N, seed: int = 0) -> torch.Tensor:
    """n training digits, binarized once with a fixed seed, (n, D)."""
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(data.float_images("train")[:n], generator=g)


@dataclass(frozen=True)
class Reference:
    log_px_o: float  # exact, or the IS estimate with the optimised φ
    exact: bool
    label: str  # how log p(x_o) was obtained
    marginals: torch.Tensor | None  # (M,) p(x_i = 1 | x_o), mixture only
    optimised_phi: torch.Tensor  # (M,) from φ = 0.5
    trace: torch.Tensor  # the optimisation's ELBO trace
    method: str  # how φ was optimised (core.pixel_phi) and the trace's samples per point
    conditional: pi.ConditionalSamples  # N_SHOWN samples of p(x_m | x_o)
    seconds: float


def reference_task(ctx, joint: PixelJoint, x: torch.Tensor, missing: torch.Tensor, seed: int = 0) -> Reference:
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    m = int(missing.sum())
    fit = pp.optimise_phi(None, joint, x, missing, torch.full((m,), 0.5), pp.OptimiseConfig(seed=seed))
    if ctx is not None:
        ctx.check()
        ctx.report(0.7, None)
    exact = pi.exact_log_marginal(joint, x, missing)
    if exact is not None:
        log_px_o, label = exact, "exact" if isinstance(joint, MixtureJoint) else f"exact (2^{m} completions)"
    else:
        log_px_o = pi.importance_log_marginal(joint, x, missing, fit.phi, IS_K, g)
        label = f"≈ importance sampling, k = {IS_K:,}, q = optimised φ"
    marginals = joint.posterior_marginals(x, missing).to(torch.float32) if isinstance(joint, MixtureJoint) else None
    cond = pi.conditional_samples(joint, x, missing, N_SHOWN, fit.phi, generator=g)
    return Reference(
        log_px_o,
        exact is not None,
        label,
        marginals,
        fit.phi,
        fit.trace,
        f"{fit.method}, {fit.trace_samples} samples of q per point",
        cond,
        time.perf_counter() - t0,
    )


@dataclass(frozen=True)
class PhiNumbers:
    elbo: pi.ElboEstimate
    q_samples: torch.Tensor  # (N_SHOWN, M)
    seconds: float


def numbers_task(ctx, joint: PixelJoint, x: torch.Tensor, missing: torch.Tensor, phi: torch.Tensor, seed: int = 0):
    """ELBO(φ) with its standard error (common random numbers: the same seed for every φ) and samples of q."""
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    elbo = pi.elbo_phi(joint, x, missing, phi, ELBO_N, g)
    return PhiNumbers(elbo, pi.sample_q(phi, N_SHOWN, g), time.perf_counter() - t0)


def gap_text(elbo: pi.ElboEstimate, log_px_o: float, exact: bool) -> str:
    """The gap log p(x_o) − ELBO(φ) = KL(q ‖ p(x_m | x_o)), with its error when either side is estimated."""
    gap = log_px_o - elbo.elbo
    if not math.isfinite(gap):
        return "∞"
    err = f" ± {2 * elbo.se:.2f}" if elbo.se > 0 else ""
    return f"{gap:.2f}{err}" + ("" if exact else " (log p(x_o) estimated)")
