"""Posterior samples for inpainting by Markov chains: Metropolis-within-Gibbs and pseudo-Gibbs (no Qt).

Masks follow lvm_studio.core.masks: True = MISSING. The state of a chain is (z, x_m); x̂ = (x_o, x_m)
is the image completed by the chain's current missing pixels. One sweep:

  Metropolis-within-Gibbs (Mattei & Frellsen 2018, "Leveraging the exact likelihood of deep latent
  variable models", §4, Algorithm 1):
    1. propose z̃ ~ q(z | x̂), the encoder at the completed image (an independent proposal given x̂);
    2. accept z ← z̃ with probability min(1, ρ),
           ρ = p(x̂ | z̃) p(z̃) q(z | x̂) / (p(x̂ | z) p(z) q(z̃ | x̂))  = w(z̃) / w(z),
       w the importance weight of estimators.log_weights with the WHOLE image x̂'s likelihood;
    3. draw x_m ~ p(x_m | z).
  Both steps leave p(z, x_m | x_o) invariant (step 2 is Metropolis–Hastings for p(z | x̂), step 3
  the exact conditional), so the chain's z are draws of the exact posterior p(z | x_o), whatever
  the encoder's quality (it only sets the acceptance rate).

  pseudo-Gibbs (Rezende et al. 2014, "Stochastic backpropagation and approximate inference in deep
  generative models", §5.2 "Missing data imputation"): z ~ q(z | x̂) always accepted, then
  x_m ~ p(x_m | z). Its stationary law is exact only if q(z | x̂) = p(z | x̂); kept for comparison.

Many chains (chains × digits) run batched as one (chains·batch) matrix per decoder call. The
effective sample size is the multi-chain one of Gelman et al. (BDA3, 2013, §11.5) with Geyer's
(1992) initial monotone sequence, per latent dimension.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.estimators import log_weights
from lvm_studio.core.images import SIDE
from lvm_studio.core.inpainting import amortized_guess
from lvm_studio.core.inpainting_completion import model_device, prepare

METHODS = ("mwg", "pseudo_gibbs")


@dataclass
class ChainConfig:
    n_chains: int = 16  # chains per digit
    steps: int = 200  # Gibbs sweeps
    burn_in: int = 20  # sweeps left out of the trace, the acceptance rate and the ESS
    method: str = "mwg"  # "mwg" (Mattei & Frellsen 2018) or "pseudo_gibbs" (Rezende et al. 2014)
    report_every: int = 10  # sweeps between callback reports; 0 = never
    seed: int | None = 0  # None draws a fresh seed

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.n_chains < 1 or self.steps < 0 or self.burn_in < 0:
            raise ValueError("n_chains ≥ 1, steps ≥ 0 and burn_in ≥ 0 are required")


@dataclass(frozen=True)
class ChainProgress:
    """A live report: detached CPU copies, safe to hand to another thread."""

    step: int  # sweeps done
    steps: int
    z: torch.Tensor  # (chains, batch, latent) current states
    completions: torch.Tensor  # (chains, batch, 784) x_o kept, missing pixels E[x_i | z] of the current z
    accept_rate: torch.Tensor  # (batch,) accepted proposals / sweeps so far (after burn-in once past it)


@dataclass(frozen=True)
class ChainResult:
    z_trace: torch.Tensor  # (kept, chains, batch, latent) states after each sweep past burn-in
    log_joint_trace: torch.Tensor  # (kept, chains, batch) log p(x_o, z) = log p(x_o | z) + log p(z) of them
    z: torch.Tensor  # (chains, batch, latent) final states
    x: torch.Tensor  # (chains, batch, 784) final completed images x̂ (x_m drawn from p(x_m | z))
    accept_rate: torch.Tensor  # (batch,) past burn-in (all sweeps when there are none); 1 for pseudo-Gibbs
    ess: torch.Tensor  # (batch, latent) multi-chain effective sample size of each latent coordinate
    method: str
    steps_done: int
    stopped: bool
    seconds: float

    @property
    def ess_min(self) -> torch.Tensor:
        """(batch,) the smallest ESS over the latent coordinates: the conservative figure."""
        return self.ess.amin(-1)


def _prepare(x, missing, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as inpainting_completion.prepare takes them; other data (batch, D) with a (1 | batch, D)
    mask pass as they are (the linear-Gaussian test model), in their own dtype."""
    if torch.is_tensor(x) and x.shape[-1] != N_PIXELS and x.shape[-2:] != (SIDE, SIDE):
        x = x.to(device)
        m = torch.as_tensor(missing, device=device).to(torch.bool)
        return (x if x.ndim == 2 else x[None]), (m if m.ndim == 2 else m[None])
    return prepare(x, missing, device)


def _generator(seed: int | None, device) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def _decode_terms(model, x_hat: torch.Tensor, z: torch.Tensor, observed: torch.Tensor):
    """Per-pixel log p(x̂_i | z) split into the observed and the missing parts, and a sampler of x ~ p(x | z).

    x̂ (n, 784), z (r, n, latent) -> log p(x̂_o | z) (r, n), log p(x̂_m | z) (r, n), and
    sample(first, g) -> (x ~ p(x | z), E[x | z]), each (n, 784), at z[0] (or per row z[0] where
    first, else z[1]).
    A VAE's decoder runs once for both (its output gives the likelihood and the draws); another model
    uses log_px_given_z_pixels and its own sample_x.
    """
    decode = getattr(model, "decode", None)
    cfg = getattr(model, "config", None)
    if decode is not None and getattr(cfg, "likelihood", None) == "bernoulli":
        logits = decode(z)  # (r, n, 784)
        lp = x_hat * logits - torch.nn.functional.softplus(logits)  # log Bern(x; σ(l)) = x l − softplus(l)

        def sample(first: torch.Tensor | None, g):  # first (n, 1) bool: take z[0]'s row, else z[1]'s
            chosen = logits[0] if first is None else torch.where(first, logits[0], logits[1])  # (n, 784)
            probs = torch.sigmoid(chosen)
            return torch.bernoulli(probs, generator=g), probs
    else:
        lp = model.log_px_given_z_pixels(x_hat, z)  # (r, n, 784)

        def sample(first: torch.Tensor | None, g):
            zz = z[0] if first is None else torch.where(first, z[0], z[1])  # (n, latent)
            return model.sample_x(zz, generator=g), model.decode_mean(zz)

    lp_o = (lp * observed).sum(-1)  # (r, n)
    lp_m = (lp * (1.0 - observed)).sum(-1)
    return lp_o, lp_m, sample


@torch.no_grad()
def run_chains(
    model,
    x,
    missing,
    config: ChainConfig | None = None,
    init_z: torch.Tensor | None = None,
    callback: Callable[[ChainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ChainResult:
    """config.n_chains chains per digit of x (batch, 784) with its mask; see the module's notes.

    init_z: (chains, batch, latent) or (batch, latent) starting states; default: draws of the
    encoder's guess q(z | x̃) (x̃ = x with its hole filled by the model's prior mean image).
    x_m starts as a draw of p(x_m | z_0). callback(progress) every config.report_every sweeps and
    at the end; should_stop() before every sweep ends the run with what it has.
    """
    cfg = config or ChainConfig()
    device = model_device(model)
    x, missing = _prepare(x, missing, device)
    B, C, D = x.shape[0], cfg.n_chains, x.shape[-1]
    g = _generator(cfg.seed, device)
    miss = missing.expand(B, D)  # (batch, 784)
    observed = (~miss).to(x.dtype).repeat(C, 1)  # (chains·batch, 784)
    x_obs = x.repeat(C, 1)  # (chains·batch, 784), row c·B + b is chain c of digit b
    miss_rows = miss.repeat(C, 1)
    if init_z is None:
        loc, scale = amortized_guess(model, x, missing)  # (batch, latent)
        eps = torch.randn((C, B, loc.shape[-1]), generator=g, device=device, dtype=loc.dtype)
        init_z = loc + scale * eps  # (chains, batch, latent)
    z = init_z.to(device=device, dtype=x.dtype).expand(C, B, -1).reshape(C * B, -1).clone()  # (chains·batch, latent)
    L = z.shape[-1]
    # x_m ~ p(x_m | z_0); observed pixels are x's
    lp_o, _, sample = _decode_terms(model, x_obs, z[None], observed)
    x_m, mean_x = sample(None, g)  # (chains·batch, 784) each
    x_hat = torch.where(miss_rows, x_m, x_obs)  # (chains·batch, 784)
    log_joint = lp_o[0] + model.prior_log_prob(z)  # (chains·batch,)

    kept = max(cfg.steps - cfg.burn_in, 0)
    z_trace = torch.empty((kept, C, B, L), device=device, dtype=x.dtype)
    lj_trace = torch.empty((kept, C, B), device=device, dtype=x.dtype)
    n_accept = torch.zeros(C * B, device=device, dtype=torch.float64)
    n_counted = 0
    stopped, done = False, 0

    def accept_rate() -> torch.Tensor:
        if cfg.method == "pseudo_gibbs":
            return torch.ones(B, dtype=torch.float64)
        return (n_accept.view(C, B).mean(0) / max(n_counted, 1)).cpu()

    def report(step: int):
        comp = torch.where(miss_rows, mean_x, x_obs).view(C, B, D)
        callback(
            ChainProgress(
                step=step,
                steps=cfg.steps,
                z=z.view(C, B, L).cpu().clone(),
                completions=comp.cpu().clone(),
                accept_rate=accept_rate(),
            )
        )

    t0 = time.perf_counter()
    for t in range(cfg.steps):
        if should_stop is not None and should_stop():
            stopped = True
            break
        if t == cfg.burn_in and t > 0:
            n_accept.zero_()
            n_counted = 0
        loc, scale = model.encode(x_hat)  # (chains·batch, latent): q(z | x̂)
        z_prop = loc + scale * torch.randn(loc.shape, generator=g, device=device, dtype=loc.dtype)
        if cfg.method == "mwg":
            both = torch.stack([z_prop, z])  # (2, chains·batch, latent)
            lp_o, lp_m, sample = _decode_terms(model, x_hat, both, observed)  # (2, chains·batch) each
            # log ρ = log w(z̃) − log w(z), w = p(x̂|z) p(z) / q(z|x̂)  (Mattei & Frellsen 2018, Alg. 1)
            log_w = log_weights(lp_o + lp_m, both, loc, scale, model)  # (2, chains·batch)
            log_u = torch.rand(C * B, generator=g, device=device, dtype=x.dtype).log()
            accept = log_u < log_w[0] - log_w[1]  # (chains·batch,)
            z = torch.where(accept[:, None], z_prop, z)
            log_joint = torch.where(accept, lp_o[0], lp_o[1]) + model.prior_log_prob(z)
            n_accept += accept.double()
            x_m, mean_x = sample(accept[:, None], g)  # x_m ~ p(x_m | z)
        else:
            # pseudo-Gibbs: z ~ q(z | x̂) always (Rezende et al. 2014, §5.2)
            z = z_prop
            lp_o, _, sample = _decode_terms(model, x_hat, z[None], observed)
            log_joint = lp_o[0] + model.prior_log_prob(z)
            x_m, mean_x = sample(None, g)
        n_counted += 1
        x_hat = torch.where(miss_rows, x_m, x_obs)
        done = t + 1
        if t >= cfg.burn_in:
            z_trace[t - cfg.burn_in] = z.view(C, B, L)
            lj_trace[t - cfg.burn_in] = log_joint.view(C, B)
        if callback is not None and cfg.report_every > 0 and done % cfg.report_every == 0 and done < cfg.steps:
            report(done)
    seconds = time.perf_counter() - t0
    if callback is not None:
        report(done)
    n_kept = max(done - cfg.burn_in, 0)
    trace = z_trace[:n_kept]
    return ChainResult(
        z_trace=trace,
        log_joint_trace=lj_trace[:n_kept],
        z=z.view(C, B, L).clone(),
        x=x_hat.view(C, B, D).clone(),
        accept_rate=accept_rate().to(device),
        ess=chain_ess(trace) if n_kept >= 4 else torch.zeros(B, L, device=device, dtype=torch.float64),
        method=cfg.method,
        steps_done=done,
        stopped=stopped,
        seconds=seconds,
    )


def chain_ess(trace: torch.Tensor) -> torch.Tensor:
    """Multi-chain effective sample size of each coordinate of trace (T, chains, ...) -> (...), float64.

    ρ̂_t = 1 − (W − mean_c γ̂_{c,t}) / var̂⁺ with W the mean within-chain variance and
    var̂⁺ = (T−1)/T · W + B/T (Gelman et al., BDA3 2013, §11.5, eqs. 11.3 and 11.7; Stan's form);
    τ̂ = −1 + 2 Σ_k P̂_k over Geyer's (1992) initial monotone sequence of pair sums
    P̂_k = ρ̂_{2k} + ρ̂_{2k+1}; ESS = T · chains / τ̂. Autocovariances by FFT.
    """
    T, C = trace.shape[:2]
    x = trace.double()
    mean_c = x.mean(0)  # (chains, ...)
    xc = x - mean_c
    f = torch.fft.rfft(xc, n=2 * T, dim=0)
    acov = torch.fft.irfft(f * f.conj(), n=2 * T, dim=0)[:T] / T  # (T, chains, ...) biased γ̂_{c,t}
    W = (acov[0] * T / (T - 1)).mean(0)  # (...) within-chain variance
    between = mean_c.var(0) if C > 1 else torch.zeros_like(W)  # B / T
    var_plus = (T - 1) / T * W + between
    var_plus = torch.where(var_plus > 0, var_plus, torch.ones_like(var_plus))
    rho = 1.0 - (W - acov.mean(1)) / var_plus  # (T, ...)
    rho[0] = 1.0
    n_pairs = T // 2
    pairs = rho[: 2 * n_pairs].reshape(n_pairs, 2, *rho.shape[1:]).sum(1)  # (n_pairs, ...) P̂_k
    positive = torch.cumprod((pairs > 0).to(pairs.dtype), 0)  # the initial positive sequence
    monotone = torch.cummin(torch.where(positive > 0, pairs, torch.zeros_like(pairs)), 0).values
    tau = (-1.0 + 2.0 * (monotone * positive).sum(0)).clamp_min(1.0 / math.log10(max(T * C, 10)))
    return T * C / tau


@torch.no_grad()
def rao_blackwell_log_predictive(
    model, x_true, missing, z_trace: torch.Tensor, max_rows: int = 1 << 14
) -> torch.Tensor:
    """log p̂(x_m | x_o) = log (1/N) Σ_n p(x_m | z_n) over the chains' states z_n (kept, chains, batch, latent):
    the Rao-Blackwellised estimate (the exact conditional p(x_m | z) averaged over the chains, rather
    than the chains' own draws of x_m; Gelfand & Smith 1990, §2.3). nats per digit, (batch,)."""
    x, missing = _prepare(x_true, missing, z_trace.device)
    B, L = x.shape[0], z_trace.shape[-1]
    z = z_trace.reshape(-1, B, L)  # (N, batch, latent)
    miss_f = missing.to(x.dtype)
    step = max(1, max_rows // B)
    parts = []
    for s in range(0, z.shape[0], step):
        lp = model.log_px_given_z_pixels(x, z[s : s + step])  # (c, batch, 784)
        parts.append(torch.logsumexp((lp * miss_f).sum(-1), 0))  # (batch,)
    return torch.logsumexp(torch.stack(parts), 0) - math.log(z.shape[0])
