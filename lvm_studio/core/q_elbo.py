"""How good a hand-set q(z) = N(z_loc, diag z_scale²) is for one digit, and the best one (no Qt).

    ELBO(q) = E_q[log p(x|z)] − KL(q ‖ p(z))                (Kingma & Welling 2014, eq. 3)
    E_q[f(z)] ≈ Σ_i w_i f(z_loc + z_scale u_i)             (Gauss–Hermite, Abramowitz & Stegun 25.4.46)
              or (1/n) Σ_j f(z_loc + z_scale ε_j)           (reparameterized Monte Carlo, ibid. eq. 7)
    IW-k(q) = logsumexp_j log w_j − log k                   (Burda et al. 2016, eq. 8)
    φ* = argmax_φ ELBO(q(z; φ)); ELBO(φ*) − ELBO(encoder) is the amortization gap (Cremer et al. 2018)

The KL is the model's kl_to_prior (closed form for N(0, I): Kingma & Welling 2014, App. B) and the
log weights are estimators.log_weights. Functions take a model with the protocol of core/model.py
(LatentVariableModel), never change it, and return detached tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lvm_studio.core.adam import Adam
from lvm_studio.core.estimators import (
    DEFAULT_MAX_ROWS,
    iwae_log_px,
    log_weights,
    reparameterize,
)
from lvm_studio.core.model import LatentVariableModel

# bounds on log φ_σ while q is optimised: the floor keeps log q finite if a fit collapses a dimension
MIN_LOG_SCALE, MAX_LOG_SCALE = math.log(1e-4), math.log(10.0)


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


def _resolve(method: str, latent: int) -> str:
    """'auto' -> quadrature for latents of 1 or 2 dimensions (deterministic), else Monte Carlo."""
    if method == "auto":
        return "quadrature" if latent <= 2 else "mc"
    return method


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
    method = _resolve(method, latent)
    if method == "quadrature":
        nodes, weights = gauss_hermite(n or DEFAULT_QUADRATURE_NODES, latent, z_loc.dtype)  # (m, latent), (m,)
        z = z_loc[None] + z_scale[None] * nodes[:, None, :].to(z_loc.device)  # (m, batch, latent)
        return (weights.to(z_loc.device)[:, None] * _chunked_log_px_given_z(model, x, z)).sum(0)
    if method == "mc":
        k = n or 256
        z = reparameterize(z_loc, z_scale, k, generator)  # (k, batch, latent)
        return _chunked_log_px_given_z(model, x, z).mean(0)  # (batch,)
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
    return _elbo_terms(model, x, z_loc, z_scale, method, n, generator)


def _elbo_terms(model, x, z_loc, z_scale, method, n, generator) -> QElbo:
    """elbo_for_q, differentiable in z_loc and z_scale (the objective of optimise_phi)."""
    recon = expected_log_px_given_z(model, x, z_loc, z_scale, method, n, generator)  # (batch,)
    kl = model.kl_to_prior(z_loc, z_scale)  # (batch,)
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
    return iwae_log_px(model, x, k, generator, max_rows, encoded=(z_loc, z_scale))


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
    z = reparameterize(z_loc, z_scale, k, generator)  # (k, 1, latent)
    log_w = log_weights(model.log_px_given_z(x, z), z, z_loc, z_scale, model)  # (k, 1)
    log_w = log_w[:, 0]
    return z[:, 0], log_w, torch.softmax(log_w, 0)


@dataclass(frozen=True)
class OptimisedPhi:
    z_loc: torch.Tensor  # (batch, latent) φ*_μ
    z_scale: torch.Tensor  # (batch, latent) φ*_σ
    elbo_trace: torch.Tensor  # (steps + 1, batch) the objective before each step and at the end
    method: str


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
    method = _resolve(method, model.latent_dim)
    n = n or (12 if method == "quadrature" else 16)
    with torch.no_grad():
        loc0, scale0 = init if init is not None else model.encode(x)
    mu = loc0.detach().clone().requires_grad_(True)  # (batch, latent)
    log_sigma = scale0.detach().log().clamp(MIN_LOG_SCALE, MAX_LOG_SCALE).clone().requires_grad_(True)
    opt = Adam([mu, log_sigma], lr=lr)  # core.adam: torch.optim's first use imports torch._dynamo (seconds)
    lr_min, t_max = lr / 10, max(1, steps)
    trace = []
    done = 0
    with torch.enable_grad():
        for t in range(steps):
            if should_stop is not None and should_stop():
                break
            sigma = log_sigma.exp()
            obj = _elbo_terms(model, x, mu, sigma, method, n, generator).elbo  # (batch,)
            trace.append(obj.detach().clone())
            # gradients for φ only: autograd.grad leaves the model's parameters (and their .grad) alone
            mu.grad, log_sigma.grad = torch.autograd.grad(-obj.sum(), [mu, log_sigma])
            # cosine annealing (Loshchilov & Hutter 2017, eq. 5), torch's CosineAnnealingLR in closed form
            opt.param_groups[0]["lr"] = lr_min + (lr - lr_min) * (1 + math.cos(math.pi * t / t_max)) / 2
            opt.step()
            with torch.no_grad():
                log_sigma.clamp_(MIN_LOG_SCALE, MAX_LOG_SCALE)
            done = t + 1
            if callback is not None and done % 10 == 0:
                callback(done, obj.detach().clone(), mu.detach().clone(), log_sigma.detach().exp())
    with torch.no_grad():
        sigma = log_sigma.exp()
        trace.append(_elbo_terms(model, x, mu, sigma, method, n, generator).elbo)
    return OptimisedPhi(
        z_loc=mu.detach().clone(), z_scale=sigma.detach().clone(), elbo_trace=torch.stack(trace), method=method
    )
