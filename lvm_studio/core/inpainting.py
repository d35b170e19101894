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
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lvm_studio.core.adam import adam_update_
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
    # … and at least this long apart (the last step's report always comes): a view that redraws every
    # 80 ms gains nothing from a report every 6 ms, and each report decodes its live samples
    report_interval_s: float = 0.0
    seed: int | None = 0  # None draws a fresh seed

    def __post_init__(self):
        if self.steps < 0 or self.n_samples < 1 or self.n_completion_samples < 0 or self.n_mean_samples < 1:
            raise ValueError("steps ≥ 0, n_samples ≥ 1, n_completion_samples ≥ 0 and n_mean_samples ≥ 1 are required")
        if not self.report_interval_s >= 0:
            raise ValueError(f"report_interval_s must be ≥ 0, got {self.report_interval_s}")
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


_PRIOR_MEAN_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_key(model) -> tuple:
    """Changes whenever the model's weights do: in place (an optimizer step, load_state_dict) bumps a
    tensor's _version, a new tensor has a new address."""
    try:
        return tuple((p.data_ptr(), p._version) for p in model.parameters())
    except (AttributeError, RuntimeError):  # no parameters, or inference tensors (no version counter)
        return (id(model), time.monotonic())  # never equal twice: no cache


@torch.no_grad()
def prior_mean_image(model, n: int = 512, seed: int = 0) -> torch.Tensor:
    """E_{p(z)}[E[x|z]] by n prior samples, (784,): the model's own idea of the average digit.

    For a well-trained model this is close to the training-set mean image (the aggregate posterior
    is close to the prior), and it needs no data. Remembered per model until its weights change
    (it costs a 512-row decode, more than the encoder's guess it serves).
    """
    key = (n, seed, _weights_key(model))
    try:
        cached = _PRIOR_MEAN_CACHE.get(model)
    except TypeError:  # not weak-referenceable: no cache
        cached = None
    if cached is not None and cached[0] == key:
        return cached[1]
    device = model_device(model)
    z = model.sample_prior((n,), generator=torch.Generator(device=device).manual_seed(seed))  # (n, latent)
    image = model.decode_mean(z).mean(0)
    try:
        _PRIOR_MEAN_CACHE[model] = (key, image)
    except TypeError:
        pass
    return image


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
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """E_q[log p(x_o|z)] − KL(q ‖ p(z)) by k samples (KL in closed form), nats per digit, (batch,).
    eps (k, batch | 1, latent): the noise, z = z_loc + z_scale ε (default: drawn from generator)."""
    x, missing = prepare(x, missing, z_loc.device)
    lik = ObservedLikelihood(model, x, missing)
    step = max(1, MAX_ROWS // x.shape[0])
    total = torch.zeros(x.shape[0], device=x.device, dtype=torch.float64)
    for s in range(0, k, step):
        c = min(step, k - s)
        z = reparameterize(z_loc, z_scale, c, generator) if eps is None else z_loc + z_scale * eps[s : s + c]
        total += lik.value(z).sum(0, dtype=torch.float64)  # z: (c, batch, latent)
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


class AdamFit:
    """fit_q's state: Adam on φ = (φ_μ, log φ_σ) for `rows` copies of q, resumable, and able to keep
    only some rows midway (core.inpainting_starts fits several starts for a few steps together,
    then only the best one per digit).

    Rows are start-major, row g·B + b = group g of digit b (groups = 1 for a plain fit). The S noise
    draws of each step are shared by the groups of a digit (common random numbers: the starts of a
    digit see the same ε, so their per-step ELBO estimates compare without that noise). Per step
    everything is updated in place in preallocated buffers: the matrices are small (S · rows × 512),
    so a step's cost is as much the number of torch calls as their arithmetic.
    """

    def __init__(
        self,
        model,
        x: torch.Tensor,
        missing: torch.Tensor,
        init_loc: torch.Tensor,
        init_scale: torch.Tensor,
        cfg: InpaintConfig,
        gen: torch.Generator,
        groups: int = 1,
        n_samples: int | None = None,
    ):
        self.model, self.cfg, self.gen, self.groups = model, cfg, gen, groups
        S = cfg.n_samples if n_samples is None else n_samples
        self.x, self.missing = x, missing  # (groups·batch, 784), (1 | groups·batch, 784)
        R, L = init_loc.shape
        self.B = R // groups  # digits
        self.lik = ObservedLikelihood(model, x, missing)
        # φ = (φ_μ, log φ_σ) stacked so that Adam updates both in one call; mu, log_sigma, grad_* are
        # views that stay valid because everything is updated in place
        self.phi = torch.stack([init_loc, init_scale.log().clamp(MIN_LOG_SCALE, MAX_LOG_SCALE)])  # (2, rows, latent)
        self.adam_m, self.adam_v = torch.zeros_like(self.phi), torch.zeros_like(self.phi)
        self.adam_t = torch.zeros((), dtype=torch.float32)  # Adam's step count, a tensor for the fused kernel
        self.grad = torch.empty_like(self.phi)
        self.sigma = torch.empty_like(init_loc)  # (rows, latent) exp(log φ_σ), refreshed after each update
        self.eps = torch.empty((S, 1, self.B, L), dtype=self.phi.dtype)  # (S, 1, batch, latent)
        self.z = torch.empty((S, groups, self.B, L), dtype=self.phi.dtype)  # (S, groups, batch, latent)
        # per step: the mean of log p(x_o|z_s) and the φ it was taken at; the KL half of the ELBO trace
        # is computed from φ afterwards, in one vectorized pass, which keeps small ops out of the loop
        self.lp_hist = torch.empty((cfg.steps + 1, R), dtype=self.phi.dtype)
        self.phi_hist = torch.empty((cfg.steps + 1, 2, R, L), dtype=self.phi.dtype)
        self.t = 0  # Adam steps done
        self._bind()

    def _bind(self):
        """The views a step works on, made once (each view or reshape is a torch call too)."""
        self.mu, self.log_sigma = self.phi[0], self.phi[1]
        self.grad_mu, self.grad_log_sigma = self.grad[0], self.grad[1]
        torch.exp(self.log_sigma, out=self.sigma)
        S, G, B, L = self.z.shape
        self._mu_g, self._sigma_g = self.mu.view(G, B, L), self.sigma.view(G, B, L)  # (groups, batch, latent)
        self._z_rows = self.z.view(S, G * B, L)  # (S, rows, latent)
        self._grad_mu_flat = self.grad_mu.view(1, -1)  # (1, rows·latent)
        self._grad_log_sigma_flat = self.grad_log_sigma.view(1, -1)
        # the mean over the S samples as a (1, S) @ (S, ·) product: torch.mean's division makes two more calls
        self._mean_w = self.z.new_full((1, S), 1.0 / S)

    def keep(
        self,
        rows: torch.Tensor,
        x: torch.Tensor,
        missing: torch.Tensor,
        groups: int = 1,
        n_samples: int | None = None,
    ) -> AdamFit:
        """This fit with only `rows` (new_rows,) of it, in `groups` groups (start-major as before), for the
        digits x (new_rows, 784), missing, and n_samples z samples per step from now on (default
        cfg.n_samples); φ, the traces so far and (for the same n_samples) Adam's moments carried over,
        so the kept rows continue as if they had been fitted alone."""
        new = object.__new__(AdamFit)
        new.model, new.cfg, new.gen, new.groups = self.model, self.cfg, self.gen, groups
        new.x, new.missing, new.B = x, missing, rows.numel() // groups
        new.lik = ObservedLikelihood(self.model, x, missing)
        new.phi = self.phi[:, rows].clone()
        new.adam_m, new.adam_v = self.adam_m[:, rows].clone(), self.adam_v[:, rows].clone()
        new.adam_t = self.adam_t.clone()
        if n_samples is not None and n_samples != self.eps.shape[0]:
            # a different number of samples per step changes the gradient's noise, and Adam's second
            # moment (β₂ = 0.999) would remember the old noise level for hundreds of steps (measured: a
            # 1-sample shared phase left the kept fit 0.1 nat short on average): its moments restart
            new.adam_m.zero_()
            new.adam_v.zero_()
            new.adam_t.zero_()
        new.grad = torch.empty_like(new.phi)
        new.sigma = torch.empty_like(new.phi[0])
        S, L = (self.cfg.n_samples if n_samples is None else n_samples), new.phi.shape[-1]
        new.eps = torch.empty((S, 1, new.B, L), dtype=new.phi.dtype)
        new.z = torch.empty((S, groups, new.B, L), dtype=new.phi.dtype)
        new.lp_hist = self.lp_hist[:, rows].clone()
        new.phi_hist = self.phi_hist[:, :, rows].clone()
        new.t = self.t
        new._bind()
        return new

    def _gradient(self, t: int):
        """lp_hist[t] = one MC estimate of E_q[log p(x_o|z)] at φ_t, and ∂L/∂φ into grad (K&W 2014, §2.4)."""
        eps, w = self.eps, self._mean_w
        S, G, B, L = self.z.shape
        torch.randn(eps.shape, generator=self.gen, out=eps)
        torch.addcmul(self._mu_g, self._sigma_g, eps, out=self.z)  # (S, groups, batch, latent)
        lp, gz = self.lik.value_and_grad(self._z_rows)  # (S, rows), (S, rows, latent)
        torch.mm(w, lp, out=self.lp_hist[t : t + 1])  # the mean over the S samples, (1, rows)
        self.phi_hist[t].copy_(self.phi)
        # ∂/∂μ E[log p] = E[g_z], ∂/∂log σ E[log p] = E[g_z ε] σ; ∂KL/∂μ = μ, ∂KL/∂log σ = σ² − 1 (App. B)
        gz_flat = gz.view(S, -1)  # (S, rows·latent)
        torch.mm(w, gz_flat, out=self._grad_mu_flat)
        self.grad_mu.sub_(self.mu)
        gz.view(S, G, B, L).mul_(eps)
        torch.mm(w, gz_flat, out=self._grad_log_sigma_flat)
        self.grad_log_sigma.sub_(self.sigma).mul_(self.sigma).add_(1.0)  # σ (E[g_z ε] − σ) + 1

    def _adam(self, t: int):
        """One Adam step ascending (Kingma & Ba 2015, Alg. 1; core.adam.adam_update_); the step size follows
        a cosine from lr down to lr · lr_final."""
        cfg = self.cfg
        lr = cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * t / cfg.steps)))
        adam_update_([self.phi], [self.grad], [self.adam_m], [self.adam_v], [self.adam_t], lr=lr, maximize=True)
        self.log_sigma.clamp_(MIN_LOG_SCALE, MAX_LOG_SCALE)
        torch.exp(self.log_sigma, out=self.sigma)

    def elbo_trace(self, upto: int) -> torch.Tensor:
        """(upto + 1, rows): E_q[log p(x_o|z)] estimates minus the closed-form KL at each step's φ."""
        R, L = self.phi.shape[1:]
        m, ls = self.phi_hist[: upto + 1, 0], self.phi_hist[: upto + 1, 1]  # (upto + 1, rows, latent) each
        kl = self.model.kl_to_prior(m.reshape(-1, L), ls.exp().reshape(-1, L)).view(upto + 1, R)
        return self.lp_hist[: upto + 1] - kl

    def run(
        self,
        until: int,
        report: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Adam steps until `until` are done (then φ_until is not yet estimated), or, with until =
        cfg.steps, until the last step's ELBO estimate; report(t) every report_every steps and at
        the end. should_stop() before every step ends the fit (reported). Returns True if stopped."""
        cfg = self.cfg
        with torch.no_grad():
            while True:
                t = self.t
                self._gradient(t)  # the ELBO estimate at φ after t Adam steps, and its gradient
                reported = False
                if report is not None and (
                    t == cfg.steps or (cfg.report_every > 0 and t > 0 and t % cfg.report_every == 0)
                ):
                    report(t)
                    reported = True
                if t == cfg.steps:
                    return False
                if should_stop is not None and should_stop():
                    if report is not None and not reported:
                        report(t)
                    return True
                self._adam(t)
                self.t = t + 1
                if self.t == until < cfg.steps:
                    return False

    def q(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current (z_loc, z_scale), (rows, latent), copies."""
        return self.mu.clone(), self.log_sigma.exp()


def fit_q(
    model,
    x,
    missing,
    config: InpaintConfig | None = None,
    callback: Callable[[InpaintProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    amortized: Completion | None = None,
) -> InpaintResult:
    """Fit q(z; φ) to the observed pixels of one digit or a batch (each digit its own φ, its own mask).

    callback(progress) is called every config.report_every steps and at the end; should_stop() is
    checked before every Adam step and ends the fit at once (the result then has stopped=True and
    the φ reached so far; the callback has seen that φ). init = (z_loc, z_scale) overrides the
    encoder's guess (amortized_guess with the default fill); amortized: its completion, if the
    caller has it already (else it is computed). The model is only read, never changed.
    """
    cfg = config or InpaintConfig()
    device = model_device(model)
    x, missing = prepare(x, missing, device)
    gen = _generator(cfg.seed, device)
    init_loc, init_scale = init if init is not None else amortized_guess(model, x, missing)
    init_loc, init_scale = init_loc.detach().to(device), init_scale.detach().to(device)
    fit = AdamFit(model, x, missing, init_loc, init_scale, cfg, gen)
    reporter = LiveReports(fit, cfg, callback) if callback is not None else None
    t0 = time.perf_counter()
    stopped = fit.run(cfg.steps, reporter, should_stop)
    return fit_result(fit, init_loc, init_scale, stopped, time.perf_counter() - t0, amortized)


class LiveReports:
    """The callback side of a fit: InpaintProgress with plain CPU copies. The live sample grid reuses
    one noise draw, so it moves smoothly; its own generator keeps the fit itself identical with or
    without a callback. rows(t) picks the rows reported (default all), e.g. the leading start; eps
    (n_completion_samples, batch, latent): that noise (to carry it on to a later fit). Reports come
    at least cfg.report_interval_s apart (the last step's always); last_at: when the previous one
    came (time.perf_counter(), to carry on to a later fit)."""

    def __init__(
        self,
        fit: AdamFit,
        cfg: InpaintConfig,
        callback,
        rows: Callable[[int], torch.Tensor] | None = None,
        eps: torch.Tensor | None = None,
        last_at: float | None = None,
    ):
        self.fit, self.cfg, self.callback, self.rows = fit, cfg, callback, rows
        self.last_at = time.perf_counter() if last_at is None else last_at  # the fit's start counts as one
        B, L = fit.B, fit.phi.shape[-1]
        if eps is None:
            g = _generator(None if cfg.seed is None else cfg.seed + 1, fit.phi.device)
            eps = torch.randn((cfg.n_completion_samples, B, L), dtype=fit.phi.dtype, generator=g)
        self.eps = eps

    def __call__(self, step: int):
        now = time.perf_counter()
        if step < self.cfg.steps and now - self.last_at < self.cfg.report_interval_s:
            return
        self.last_at = now
        fit = self.fit
        trace = fit.elbo_trace(step)
        z_loc, z_scale = fit.mu, fit.sigma
        x, missing = fit.x, fit.missing
        if self.rows is not None:
            r = self.rows(step)  # (batch,)
            trace, z_loc, z_scale, x = trace[:, r], z_loc[r], z_scale[r], x[r]
            missing = missing if missing.shape[0] == 1 else missing[r]
        comp = complete(
            fit.model, x, missing, z_loc, z_scale, eps=self.eps, n_keep=self.cfg.n_completion_samples, lik=fit.lik
        )
        self.callback(
            InpaintProgress(
                step=step,
                steps=self.cfg.steps,
                elbo_trace=trace.cpu().clone(),
                z_loc=z_loc.cpu().clone(),
                z_scale=z_scale.cpu().clone(),
                completion=Completion(
                    comp.mean.cpu().clone(), comp.samples.cpu().clone(), comp.pixel_std.cpu().clone()
                ),
            )
        )


def fit_result(
    fit: AdamFit,
    init_loc: torch.Tensor,
    init_scale: torch.Tensor,
    stopped: bool,
    seconds: float,
    amortized: Completion | None = None,
) -> InpaintResult:
    """The InpaintResult of a finished (or stopped) AdamFit; amortized: the guess's completion, if computed."""
    cfg = fit.cfg
    with torch.no_grad():
        z_loc, z_scale = fit.q()
        n_keep = cfg.n_completion_samples
        n_mean = max(cfg.n_mean_samples, n_keep)
        completion = complete(
            fit.model, fit.x, fit.missing, z_loc, z_scale, n=n_mean, n_keep=n_keep, generator=fit.gen, lik=fit.lik
        )
        if amortized is None:
            amortized = complete(
                fit.model, fit.x, fit.missing, init_loc, init_scale, n=n_mean, n_keep=n_keep, generator=fit.gen
            )
        trace = fit.elbo_trace(fit.t).clone()
    return InpaintResult(
        z_loc=z_loc,
        z_scale=z_scale,
        init_loc=init_loc,
        init_scale=init_scale,
        elbo_trace=trace,
        completion=completion,
        amortized=amortized,
        steps_done=fit.t,
        stopped=stopped,
        seconds=seconds,
    )
