"""Inpainting: completing a digit from the pixels that are seen (docs/architecture.md, §1 "The model
protocol": any model that implements it, and the one log_weights given log p(x_o|z)).

Masks follow lvm_studio.core.masks: a boolean array, **True = MISSING**, False = observed.
x_o are the observed pixels, x_m the missing ones.

The fit. q(z; φ) = N(φ_μ, diag φ_σ²) maximises the ELBO of the observed pixels only,

    L(φ) = E_q[log p(x_o|z)] − KL(q ‖ p(z))            (Kingma & Welling 2014, eq. 3, with x → x_o)

starting from the encoder's guess q(z|x̃) (x̃: x with its missing pixels filled, see
amortized_guess), by Adam (Kingma & Ba 2015, Alg. 1) on (φ_μ, log φ_σ) with S reparameterized
samples per step and the KL in closed form. The gradient of log p(x_o|z) in z is propagated
through the decoder MLP by hand (core.observed_likelihood: no autograd graph, no parameter
gradients), which makes a 200-step fit of one digit take a few tens of milliseconds on a CPU;
models whose decoder is not a plain Linear/activation stack fall back to autograd. The ELBO numbers
take the KL from the model's kl_to_prior; the fit's KL gradient (∂KL/∂μ = μ, ∂KL/∂log σ = σ² − 1,
App. B) is that of the N(0, I) prior (StandardNormalPrior, the VAE's and the linear-Gaussian's).

The completion is the variational approximation to p(x_m|x_o): mean-field Bernoulli over the
missing pixels with probabilities φ_i = E_q[p(x_i = 1|z)]; samples decode z ~ q; the per-pixel
uncertainty is the spread of E[x_i|z] over z ~ q. Observed pixels are always copied from x.
Importance resampling with q as the proposal, w = p(x_o|z) p(z) / q(z) (core.estimators.log_weights
given log p(x_o|z), with the model's prior), gives posterior samples from p(z|x_o) for comparison
(and a consistent estimate of p(x_m|x_o)).

Everything takes x as (784,), (28, 28), (batch, 784) or (batch, 28, 28), and a mask of the
same forms (one mask for the whole batch, or one per digit). Returned tensors are batched:
(batch, ...), on the model's device, detached.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.estimators import log_weights
from lvm_studio.core.images import SIDE
from lvm_studio.core.observed_likelihood import ObservedLikelihood

MIN_LOG_SCALE = math.log(1e-4)  # floor on log φ_σ: keeps log q finite if a fit collapses a dimension
MAX_LOG_SCALE = math.log(10.0)
MAX_ROWS = 1 << 14  # decoder rows per chunk in the sampling estimators: bounds memory


# --- configuration and results -------------------------------------------------------------


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
class Completion:
    """What a q(z) says about the missing pixels. Observed pixels are copied from x, exactly.

    mean:      (batch, 784) missing pixels = φ_i = E_q[E[x_i|z]] (Bernoulli: E_q[p(x_i = 1|z)])
    samples:   (n, batch, 784) missing pixels = E[x_i|z_j] for z_j ~ q (decoder means, not noisy draws)
    pixel_std: (batch, 784) std over z ~ q of E[x_i|z] — how much the completions disagree; 0 on
               observed pixels. (The total predictive variance of a Bernoulli pixel, φ_i(1 − φ_i),
               also counts the coin flip itself; it follows from `mean`.)
    """

    mean: torch.Tensor
    samples: torch.Tensor
    pixel_std: torch.Tensor


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


@dataclass(frozen=True)
class ImportanceSamples:
    """Importance resampling with q as the proposal (self-normalised; Rubin 1988, SIR).

    z:           (n, batch, latent) approximately from p(z|x_o)
    completions: (n, batch, 784) observed pixels = x, missing = E[x_i|z] of each resampled z
    mean:        (batch, 784) observed = x, missing = Σ_j w̃_j E[x_i|z_j]: the estimate of E[x_m|x_o]
    log_w:       (k, batch) log w_j = log p(x_o|z_j) + log p(z_j) − log q(z_j)
    ess:         (batch,) effective sample size (Σ w)² / Σ w² (Kong 1992), between 1 and k
    """

    z: torch.Tensor
    completions: torch.Tensor
    mean: torch.Tensor
    log_w: torch.Tensor
    ess: torch.Tensor


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


# --- inputs ---------------------------------------------------------------------------------


def _as_tensor(a, device, dtype=None) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(np.ascontiguousarray(a))
    return torch.as_tensor(a, device=device, dtype=dtype)


def prepare(x, missing, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """x -> (batch, 784) float32; missing -> (batch, 784) or (1, 784) bool (one mask shared)."""
    x = _as_tensor(x, device, torch.float32)
    if x.shape[-2:] == (SIDE, SIDE):
        x = x.reshape(*x.shape[:-2], N_PIXELS)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != N_PIXELS:
        raise ValueError(f"x must be (784,), (28, 28), (batch, 784) or (batch, 28, 28), got {tuple(x.shape)}")
    m = _as_tensor(missing, device).to(torch.bool)
    if m.shape[-2:] == (SIDE, SIDE):
        m = m.reshape(*m.shape[:-2], N_PIXELS)
    if m.ndim == 1:
        m = m[None]
    if m.ndim != 2 or m.shape[1] != N_PIXELS or m.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"the mask must be (28, 28), (784,) or one per digit, got {tuple(m.shape)} for {x.shape[0]} digits"
        )
    if m.shape[0] > 1 and bool((m == m[:1]).all()):
        m = m[:1]  # one mask for all: the fit then decodes only the observed pixels
    return x, m


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def _keep_observed(x: torch.Tensor, missing: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """Observed pixels from x, exactly; missing ones from `filled` (broadcast over leading dims)."""
    return torch.where(missing, filled, x)


# --- the encoder's guess ---------------------------------------------------------------------

DEFAULT_FILL = "prior_mean"  # see amortized_guess


@torch.no_grad()
def prior_mean_image(model, n: int = 512, seed: int = 0) -> torch.Tensor:
    """E_{p(z)}[E[x|z]] by n prior samples, (784,): the model's own idea of the average digit.

    For a well-trained model this is close to the training-set mean image (the aggregate posterior
    is close to the prior), and it needs no data.
    """
    device = _device(model)
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
    x, missing = prepare(x, missing, _device(model))
    if isinstance(fill, str):
        if fill != "prior_mean":
            raise ValueError(f"fill must be a number, an image or 'prior_mean', got {fill!r}")
        fill_t = prior_mean_image(model).to(x.dtype)
    else:
        fill_t = torch.as_tensor(fill, device=x.device, dtype=x.dtype)
    x_filled = torch.where(missing, fill_t, x)  # (batch, 784)
    z_loc, z_scale = model.encode(x_filled)
    return z_loc.detach(), z_scale.detach()


# --- completions -----------------------------------------------------------------------------


@torch.no_grad()
def complete(
    model,
    x,
    missing,
    z_loc: torch.Tensor,
    z_scale: torch.Tensor,
    n: int = 64,
    n_keep: int = 16,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Completion:
    """The completion under q = N(z_loc, diag z_scale²) from n samples; the first n_keep are returned as samples.

    eps (n, batch, latent) fixes the noise (z = z_loc + z_scale · eps), e.g. to animate a fit smoothly.
    """
    x, missing = prepare(x, missing, z_loc.device)
    B, L = z_loc.shape
    if eps is None:
        eps = torch.randn((n, B, L), generator=generator, device=z_loc.device, dtype=z_loc.dtype)
    n = eps.shape[0]
    total = torch.zeros(B, N_PIXELS, device=x.device, dtype=torch.float64)  # Σ_j E[x|z_j]
    total_sq = torch.zeros_like(total)
    kept = []
    step = max(1, MAX_ROWS // max(B, 1))
    for s in range(0, n, step):
        z = z_loc + z_scale * eps[s : s + step]  # (c, batch, latent)
        mean_x = model.decode_mean(z)  # (c, batch, 784)
        total += mean_x.sum(0, dtype=torch.float64)
        total_sq += (mean_x.double() ** 2).sum(0)
        if sum(k.shape[0] for k in kept) < n_keep:
            kept.append(mean_x[: n_keep - sum(k.shape[0] for k in kept)])
    mean = (total / n).to(x.dtype)  # (batch, 784)
    var = (total_sq / n - (total / n) ** 2).clamp_min(0).to(x.dtype)
    samples = torch.cat(kept, 0) if kept else x.new_zeros((0, B, N_PIXELS))
    return Completion(
        mean=_keep_observed(x, missing, mean),
        samples=_keep_observed(x, missing, samples),
        pixel_std=torch.where(missing, var.sqrt(), torch.zeros_like(var)),
    )


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
        eps = torch.randn((min(step, k - s), *z_loc.shape), generator=generator, device=x.device, dtype=x.dtype)
        total += lik.value(z_loc + z_scale * eps).sum(0, dtype=torch.float64)
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
    device = _device(model)
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


# --- importance sampling with q as the proposal ----------------------------------------------


def _log_weights_and_z(lik: ObservedLikelihood, q_loc, q_scale, k, generator):
    """z_j ~ q and log w_j = log p(x_o|z_j) + log p(z_j) − log q(z_j); (k, batch, latent), (k, batch)."""
    B = q_loc.shape[0]
    step = max(1, MAX_ROWS // B)
    zs, log_ws = [], []
    for s in range(0, k, step):
        z = q_loc + q_scale * torch.randn(
            (min(step, k - s), *q_loc.shape), generator=generator, device=q_loc.device, dtype=q_loc.dtype
        )  # (c, batch, latent)
        zs.append(z)
        log_ws.append(log_weights(lik.value(z), z, q_loc, q_scale, lik.model))  # (c, batch)
    return torch.cat(zs), torch.cat(log_ws)


@torch.no_grad()
def importance_resample(
    model,
    x,
    missing,
    q_loc: torch.Tensor,
    q_scale: torch.Tensor,
    k: int = 1000,
    n: int = 16,
    generator: torch.Generator | None = None,
) -> ImportanceSamples:
    """Posterior samples of z given x_o by sampling-importance-resampling with q as the proposal.

    k proposals z_j ~ q get weights w_j = p(x_o|z_j) p(z_j) / q(z_j); n of them are drawn with
    replacement with probabilities w̃_j = w_j / Σ w (Rubin 1988). As k grows the draws tend to
    p(z|x_o); the ESS says how many independent samples the weights are worth.
    """
    if k < 1 or n < 0:
        raise ValueError("k ≥ 1 and n ≥ 0 are required")
    x, missing = prepare(x, missing, q_loc.device)
    lik = ObservedLikelihood(model, x, missing)
    z, log_w = _log_weights_and_z(lik, q_loc, q_scale, k, generator)  # (k, batch, latent), (k, batch)
    w_norm = torch.softmax(log_w, 0)  # (k, batch) self-normalised weights
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))  # (batch,)
    B = x.shape[0]
    # Σ_j w̃_j E[x|z_j], chunked over k
    mean = torch.zeros(B, N_PIXELS, device=x.device, dtype=x.dtype)
    step = max(1, MAX_ROWS // B)
    for s in range(0, k, step):
        mean += (w_norm[s : s + step, :, None] * model.decode_mean(z[s : s + step])).sum(0)  # (batch, 784)
    if n > 0:
        idx = torch.multinomial(w_norm.T, n, replacement=True, generator=generator).T  # (n, batch)
        z_post = z.gather(0, idx[..., None].expand(-1, -1, z.shape[-1]))  # (n, batch, latent)
        completions = _keep_observed(x, missing, model.decode_mean(z_post))  # (n, batch, 784)
    else:
        z_post = z.new_zeros((0, B, z.shape[-1]))
        completions = x.new_zeros((0, B, N_PIXELS))
    return ImportanceSamples(
        z=z_post, completions=completions, mean=_keep_observed(x, missing, mean), log_w=log_w, ess=ess
    )


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
        z = q_loc + q_scale * torch.randn(
            (c, *q_loc.shape), generator=generator, device=x.device, dtype=x.dtype
        )  # (c, batch, latent)
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
    p = _as_tensor(probs, None, torch.float32).reshape(-1, N_PIXELS)
    x, missing = prepare(x_true, missing, p.device)
    p = p.clamp(1e-6, 1 - 1e-6)
    lp = x * p.log() + (1 - x) * (1 - p).log()  # (batch, 784)
    return (lp * missing.to(lp.dtype)).sum(-1)
