"""Inpainting, the fit: q(z; φ) = N(φ_μ, diag φ_σ²) for the observed pixels of a digit
(docs/architecture.md, §1 "The model protocol": any model that implements it).

Masks follow lvm_studio.core.masks: a boolean array, **True = MISSING**, False = observed.
x_o are the observed pixels, x_m the missing ones. q maximises the ELBO of the observed pixels only,

    L(φ) = E_q[log p(x_o|z)] − KL(q ‖ p(z))            (Kingma & Welling 2014, eq. 3, with x → x_o)

starting from the encoder's guess q(z|x̃) (x̃: x with its missing pixels filled, see
amortized_guess), by Adam (Kingma & Ba 2015, Alg. 1) on (φ_μ, log φ_σ) with S reparameterized
samples per step and the KL in closed form. The gradient of log p(x_o|z) in z is propagated
through the decoder MLP by hand (core.observed_likelihood: no autograd graph, no parameter
gradients), which makes a 200-step fit of one digit take a few tens of milliseconds on a CPU;
models whose decoder is not a plain Linear/activation stack fall back to autograd. The ELBO numbers
take the KL from the model's kl_to_prior; the fit's KL gradient (∂KL/∂μ = μ, ∂KL/∂log σ = σ² − 1,
App. B) is that of the N(0, I) prior (StandardNormalPrior, the VAE's and the linear-Gaussian's).

What the fitted q says about the missing pixels is core.inpainting_completion (complete,
importance_resample); how well it predicts the true ones, core.inpainting_scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lvm_studio.core.estimators import reparameterize
from lvm_studio.core.inpainting_completion import (
    MAX_ROWS,
    Completion,
    complete,
    model_device,
    prepare,
)
from lvm_studio.core.observed_likelihood import ObservedLikelihood
from lvm_studio.core.q_elbo import MAX_LOG_SCALE, MIN_LOG_SCALE  # bounds on log φ_σ, as in optimise_phi


@dataclass
class InpaintConfig:
    steps: int = 200  # Adam steps
    lr: float = 0.05  # Adam step size on (φ_μ, log φ_σ); the steps shrink by cosine decay to lr · lr_final
    lr_final: float = 0.1  # final step size as a fraction of lr (1 = constant)
    n_samples: int = 4  # reparameterized z samples per Adam step (batched in one decoder pass)
    n_completion_samples: int = 16  # sample completions shown (and reported live)
    n_mean_samples: int = 64  # z samples averaged for the final mean completion and uncertainty
    report_every: int = 10  # steps between callback reports; 0 = never
    seed: int | None = 0  # None draws a fresh seed

    def __post_init__(self):
        if self.steps < 0 or self.n_samples < 1 or self.n_completion_samples < 0 or self.n_mean_samples < 1:
            raise ValueError("steps ≥ 0, n_samples ≥ 1, n_completion_samples ≥ 0 and n_mean_samples ≥ 1 are required")
        if not (self.lr > 0 and math.isfinite(self.lr)) or not 0 < self.lr_final <= 1:
            raise ValueError(f"lr must be positive and lr_final in (0, 1], got {self.lr}, {self.lr_final}")


@dataclass(frozen=True)
class InpaintProgress:
    """A live report from fit_q: plain detached CPU copies, safe to hand to another thread."""

    step: int  # Adam steps done
    steps: int  # steps asked for
    elbo_trace: torch.Tensor  # (step + 1, batch) observed-pixel ELBO estimates; [0] at the encoder's guess
    z_loc: torch.Tensor  # (batch, latent)
    z_scale: torch.Tensor  # (batch, latent)
    completion: Completion  # n_completion_samples samples with fixed noise, so the grid changes smoothly


@dataclass(frozen=True)
class InpaintResult:
    z_loc: torch.Tensor  # (batch, latent) fitted φ_μ
    z_scale: torch.Tensor  # (batch, latent) fitted φ_σ
    init_loc: torch.Tensor  # (batch, latent) the encoder's guess it started from
    init_scale: torch.Tensor  # (batch, latent)
    elbo_trace: torch.Tensor  # (steps_done + 1, batch) MC estimate of L(φ) after each step; [0] at the guess
    completion: Completion  # under the fitted q
    amortized: Completion  # under the encoder's guess alone, for side-by-side display
    steps_done: int
    stopped: bool  # should_stop() ended the fit early
    seconds: float  # wall time of the Adam loop


# --- the encoder's guess ---------------------------------------------------------------------

DEFAULT_FILL = "prior_mean"  # see amortized_guess


@torch.no_grad()
def prior_mean_image(model, n: int = 512, seed: int = 0) -> torch.Tensor:
    """E_{p(z)}[E[x|z]] by n prior samples, (784,): the model's own idea of the average digit.

    For a well-trained model this is close to the training-set mean image (the aggregate posterior
    is close to the prior), and it needs no data.
    """
    device = model_device(model)
    z = model.sample_prior((n,), generator=torch.Generator(device=device).manual_seed(seed))  # (n, latent)
    return model.decode_mean(z).mean(0)


@torch.no_grad()
def amortized_guess(
    model, x, missing, fill: float | str | torch.Tensor = DEFAULT_FILL
) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's q(z|x̃) for x̃ = x with its missing pixels filled in; (z_loc, z_scale), (batch, latent).

    The encoder never saw holes, so it must be shown a complete image. `fill` is a number, a (784,)
    image (e.g. the training-set mean) or "prior_mean" (prior_mean_image, the default). Measured on
    the quality benchmark (bench/inpainting.py, top half missing): a grey mean-image fill gives a
    far better guess than a black one, whose guess is worse than predicting the mean image (a black
    half reads to the encoder as "no ink there", i.e. a digit confined to the visible half). After
    the fit the fill hardly matters: from either start it reaches the same observed-pixel ELBO
    (within 0.1 nat on average).
    """
    x, missing = prepare(x, missing, model_device(model))
    if isinstance(fill, str):
        if fill != "prior_mean":
            raise ValueError(f"fill must be a number, an image or 'prior_mean', got {fill!r}")
        fill_t = prior_mean_image(model).to(x.dtype)
    else:
        fill_t = torch.as_tensor(fill, device=x.device, dtype=x.dtype)
    x_filled = torch.where(missing, fill_t, x)  # (batch, 784)
    z_loc, z_scale = model.encode(x_filled)
    return z_loc.detach(), z_scale.detach()


@torch.no_grad()
def observed_elbo(
    model,
    x,
    missing,
    z_loc: torch.Tensor,
    z_scale: torch.Tensor,
    k: int = 256,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E_q[log p(x_o|z)] − KL(q ‖ p(z)) by k samples (KL in closed form), nats per digit, (batch,)."""
    x, missing = prepare(x, missing, z_loc.device)
    lik = ObservedLikelihood(model, x, missing)
    step = max(1, MAX_ROWS // x.shape[0])
    total = torch.zeros(x.shape[0], device=x.device, dtype=torch.float64)
    for s in range(0, k, step):
        z = reparameterize(z_loc, z_scale, min(step, k - s), generator)  # (c, batch, latent)
        total += lik.value(z).sum(0, dtype=torch.float64)
    kl = model.kl_to_prior(z_loc, z_scale)  # (batch,) closed form for N(0, I), Kingma & Welling 2014, App. B
    return (total / k).to(x.dtype) - kl


# --- the fit ---------------------------------------------------------------------------------


def _generator(seed: int | None, device) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def fit_q(
    model,
    x,
    missing,
    config: InpaintConfig | None = None,
    callback: Callable[[InpaintProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> InpaintResult:
    """Fit q(z; φ) to the observed pixels of one digit or a batch (each digit its own φ, its own mask).

    callback(progress) is called every config.report_every steps and at the end; should_stop() is
    checked before every Adam step and ends the fit at once (the result then has stopped=True and
    the φ reached so far; the callback has seen that φ). init = (z_loc, z_scale) overrides the
    encoder's guess (amortized_guess with the default fill). The model is only read, never changed.
    """
    cfg = config or InpaintConfig()
    device = model_device(model)
    x, missing = prepare(x, missing, device)
    B = x.shape[0]
    gen = _generator(cfg.seed, device)
    init_loc, init_scale = init if init is not None else amortized_guess(model, x, missing)
    init_loc, init_scale = init_loc.detach().to(device), init_scale.detach().to(device)
    L = init_loc.shape[-1]
    lik = ObservedLikelihood(model, x, missing)

    # φ = (φ_μ, log φ_σ) stacked so that Adam updates both with one set of ops; mu, log_sigma and
    # the grad_* are views that stay valid because everything is updated in place
    phi = torch.stack([init_loc, init_scale.log().clamp(MIN_LOG_SCALE, MAX_LOG_SCALE)])  # (2, batch, latent)
    mu, log_sigma = phi[0], phi[1]
    grad = torch.empty_like(phi)
    grad_mu, grad_log_sigma = grad[0], grad[1]
    adam_m, adam_v = torch.zeros_like(phi), torch.zeros_like(phi)
    beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
    eps = torch.empty((cfg.n_samples, B, L), device=device, dtype=phi.dtype)  # (S, batch, latent)
    # per step: the mean of log p(x_o|z_s) and the φ it was taken at; the KL half of the ELBO trace is
    # computed from φ afterwards, in one vectorized pass, which keeps small ops out of the loop
    lp_hist = torch.empty((cfg.steps + 1, B), device=device, dtype=phi.dtype)
    phi_hist = torch.empty((cfg.steps + 1, 2, B, L), device=device, dtype=phi.dtype)
    # the live sample grid reuses one noise draw, so it moves smoothly; its own generator keeps the
    # fit itself identical with or without a callback
    report_eps = (
        torch.randn(
            (cfg.n_completion_samples, B, L),
            device=device,
            dtype=phi.dtype,
            generator=_generator(None if cfg.seed is None else cfg.seed + 1, device),
        )
        if callback is not None
        else None
    )

    def step_gradient(t: int):
        """lp_hist[t] = one MC estimate of E_q[log p(x_o|z)], and ∂L/∂φ into grad (K&W 2014, §2.4)."""
        sigma = log_sigma.exp()  # (batch, latent)
        torch.randn(eps.shape, generator=gen, out=eps)
        z = torch.addcmul(mu, sigma, eps)  # (S, batch, latent)
        lp, gz = lik.value_and_grad(z)  # (S, batch), (S, batch, latent)
        torch.mean(lp, 0, out=lp_hist[t])
        phi_hist[t].copy_(phi)
        # ∂/∂μ E[log p] = E[g_z], ∂/∂log σ E[log p] = E[g_z ε] σ; ∂KL/∂μ = μ, ∂KL/∂log σ = σ² − 1 (App. B)
        torch.mean(gz, 0, out=grad_mu)
        grad_mu.sub_(mu)
        torch.mean(gz.mul_(eps), 0, out=grad_log_sigma)
        grad_log_sigma.mul_(sigma).addcmul_(sigma, sigma, value=-1.0).add_(1.0)

    def elbo_trace(upto: int) -> torch.Tensor:
        """(upto + 1, batch): E_q[log p(x_o|z)] estimates minus the closed-form KL at each step's φ."""
        m, ls = phi_hist[: upto + 1, 0], phi_hist[: upto + 1, 1]  # (upto + 1, batch, latent) each
        kl = model.kl_to_prior(m.reshape(-1, L), ls.exp().reshape(-1, L)).view(upto + 1, B)  # (upto + 1, batch)
        return lp_hist[: upto + 1] - kl

    def report(step: int):
        z_loc, z_scale = mu.clone(), log_sigma.exp()
        comp = complete(model, x, missing, z_loc, z_scale, eps=report_eps, n_keep=cfg.n_completion_samples)
        callback(
            InpaintProgress(
                step=step,
                steps=cfg.steps,
                elbo_trace=elbo_trace(step).cpu().clone(),
                z_loc=z_loc.cpu().clone(),
                z_scale=z_scale.cpu().clone(),
                completion=Completion(
                    comp.mean.cpu().clone(), comp.samples.cpu().clone(), comp.pixel_std.cpu().clone()
                ),
            )
        )

    stopped = False
    done = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for t in range(cfg.steps + 1):
            done = t
            step_gradient(t)  # the ELBO estimate at φ after t Adam steps, and its gradient
            reported = False
            if callback is not None and (
                t == cfg.steps or (cfg.report_every > 0 and t > 0 and t % cfg.report_every == 0)
            ):
                report(t)
                reported = True
            if t == cfg.steps:
                break
            if should_stop is not None and should_stop():
                stopped = True
                if callback is not None and not reported:
                    report(t)
                break
            # Adam ascending (Kingma & Ba 2015, Alg. 1, with the bias corrections folded into the step
            # size as in their §2); the step size follows a cosine from lr down to lr · lr_final
            n = t + 1
            lr = cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * t / cfg.steps)))
            root_bc2 = math.sqrt(1 - beta2**n)
            adam_m.lerp_(grad, 1 - beta1)
            adam_v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            phi.addcdiv_(adam_m, adam_v.sqrt().add_(adam_eps * root_bc2), value=lr * root_bc2 / (1 - beta1**n))
            log_sigma.clamp_(MIN_LOG_SCALE, MAX_LOG_SCALE)
        seconds = time.perf_counter() - t0
        z_loc, z_scale = mu.clone(), log_sigma.exp()
        n_keep = cfg.n_completion_samples
        n_mean = max(cfg.n_mean_samples, n_keep)
        completion = complete(model, x, missing, z_loc, z_scale, n=n_mean, n_keep=n_keep, generator=gen)
        amortized = complete(model, x, missing, init_loc, init_scale, n=n_mean, n_keep=n_keep, generator=gen)
        trace = elbo_trace(done).clone()
    return InpaintResult(
        z_loc=z_loc,
        z_scale=z_scale,
        init_loc=init_loc,
        init_scale=init_scale,
        elbo_trace=trace,
        completion=completion,
        amortized=amortized,
        steps_done=done,
        stopped=stopped,
        seconds=seconds,
    )
