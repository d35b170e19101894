"""Inpainting, how well a completion predicts the true missing pixels x_m of a digit, in nats.

    mean field:  Σ_{i∈m} log[(1/k) Σ_j p(x_i|z_j)],       z_j ~ q
    mixture:     log (1/k) Σ_j p(x_m|z_j)
    importance:  log Σ_j w̃_j p(x_m|z_j),  w̃_j ∝ p(x_o|z_j) p(z_j) / q(z_j)   (Rubin 1988; an
                 estimate of log p(x_m|x_o) = log p(x) − log p(x_o))
    ESS = (Σ w)² / Σ w²                                                       (Kong 1992)

Masks are True = MISSING (core.masks); inputs take the forms of core.inpainting_completion.prepare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.estimators import log_weights, reparameterize
from lvm_studio.core.inpainting_completion import MAX_ROWS, prepare, to_tensor


@dataclass(frozen=True)
class MissingPixelScores:
    """log-likelihood of the true missing pixels x_m, nats per digit, (batch,) each.

    mean_field: Σ_{i∈m} log[(1/k) Σ_j p(x_i|z_j)], z_j ~ q. For a Bernoulli decoder this is
                Σ_{i∈m} log Bern(x_i; φ_i) with φ_i = E_q[p(x_i = 1|z)]: the completion as a
                product of independent pixels, as the app shows it.
    mixture:    log (1/k) Σ_j p(x_m|z_j): the q-mixture as a joint distribution over x_m
                (keeps the correlations between missing pixels that mean-field drops).
    importance: log Σ_j w̃_j p(x_m|z_j), w̃ ∝ p(x_o|z_j) p(z_j)/q(z_j): the self-normalised
                estimate of log p(x_m|x_o) = log p(x) − log p(x_o). Consistent as k → ∞ (biased
                for finite k, not a bound); its quality depends on how well q covers p(z|x_o).

    mixture and importance are log-mean-exps over k samples: like the IWAE bound they are biased
    low for finite k and grow with k (by several nats from k = 100 to 3,000 on MNIST with the top
    half missing); mean_field converges within a fraction of a nat by k ≈ 100. Quote k with them.
    """

    mean_field: torch.Tensor
    mixture: torch.Tensor
    importance: torch.Tensor
    ess: torch.Tensor  # effective sample size of the importance weights, between 1 and k


# --- how well a completion predicts the true missing pixels ----------------------------------


@torch.no_grad()
def missing_pixel_scores(
    model,
    x_true,
    missing,
    q_loc: torch.Tensor,
    q_scale: torch.Tensor,
    k: int = 500,
    generator: torch.Generator | None = None,
) -> MissingPixelScores:
    """log-likelihood of the true missing pixels under the completion from q, three ways (see MissingPixelScores).

    All three use the same k samples z_j ~ q; nats per digit, (batch,). Computed in chunks of k
    with running log-sum-exps, so memory stays bounded for any k and batch.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    x, missing = prepare(x_true, missing, q_loc.device)
    B = x.shape[0]
    miss_f = missing.to(x.dtype)  # (batch | 1, 784)
    obs_f = 1.0 - miss_f
    neg_inf = torch.full((B,), -math.inf, device=x.device, dtype=x.dtype)
    pix_lse = torch.full((B, N_PIXELS), -math.inf, device=x.device, dtype=x.dtype)  # logsumexp_j log p(x_i|z_j)
    mix_lse, iw_num, iw_den, iw_den2 = neg_inf.clone(), neg_inf.clone(), neg_inf.clone(), neg_inf.clone()
    step = max(1, MAX_ROWS // B)
    for s in range(0, k, step):
        c = min(step, k - s)
        z = reparameterize(q_loc, q_scale, c, generator)  # (c, batch, latent)
        lp_pix = model.log_px_given_z_pixels(x, z)  # (c, batch, 784)
        lp_m = (lp_pix * miss_f).sum(-1)  # (c, batch) log p(x_m|z_j)
        lp_o = (lp_pix * obs_f).sum(-1)  # (c, batch) log p(x_o|z_j)
        log_w = log_weights(lp_o, z, q_loc, q_scale, model)  # (c, batch)
        pix_lse = torch.logaddexp(pix_lse, torch.logsumexp(lp_pix, 0))
        mix_lse = torch.logaddexp(mix_lse, torch.logsumexp(lp_m, 0))
        iw_num = torch.logaddexp(iw_num, torch.logsumexp(log_w + lp_m, 0))
        iw_den = torch.logaddexp(iw_den, torch.logsumexp(log_w, 0))
        iw_den2 = torch.logaddexp(iw_den2, torch.logsumexp(2 * log_w, 0))
    log_k = math.log(k)
    return MissingPixelScores(
        mean_field=((pix_lse - log_k) * miss_f).sum(-1),
        mixture=mix_lse - log_k,
        importance=iw_num - iw_den,
        ess=torch.exp(2 * iw_den - iw_den2),
    )


def missing_pixel_log_likelihood(
    model,
    x_true,
    missing,
    q_loc: torch.Tensor,
    q_scale: torch.Tensor,
    k: int = 500,
    method: str = "mean_field",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log p(x_m) of the true missing pixels under the completion, nats per digit, (batch,).

    method 'mean_field' (the completion as the app shows it: Σ_{i∈m} log Bern(x_i; φ_i)),
    'mixture' (log E_q[p(x_m|z)]) or 'importance' (log Σ_j w̃_j p(x_m|z_j), an estimate of
    log p(x_m|x_o)); see MissingPixelScores.
    """
    scores = missing_pixel_scores(model, x_true, missing, q_loc, q_scale, k, generator)
    try:
        return getattr(scores, method)
    except AttributeError:
        raise ValueError(f"method must be 'mean_field', 'mixture' or 'importance', got {method!r}") from None


def mean_field_log_likelihood(x_true, missing, probs) -> torch.Tensor:
    """Σ_{i∈m} log Bern(x_i; p_i) for fixed pixel probabilities p (784,) or (batch, 784); (batch,).

    The baseline: p = the training-set mean image. Probabilities are clamped to [1e-6, 1 − 1e-6]
    so that a pixel never inked in training does not give −∞.
    """
    p = to_tensor(probs, None, torch.float32).reshape(-1, N_PIXELS)
    x, missing = prepare(x_true, missing, p.device)
    p = p.clamp(1e-6, 1 - 1e-6)
    lp = x * p.log() + (1 - x) * (1 - p).log()  # (batch, 784)
    return (lp * missing.to(lp.dtype)).sum(-1)
