"""Inpainting, the fit from several starts: no silent wrong modes (issue 16; no Qt).

One fit of q(z; φ) from the encoder's guess (core.inpainting.fit_q) can settle in a local optimum
of the observed-pixel ELBO far below log p(x_o) when p(z | x_o) has several modes (the bottom half
of a digit that could be a 1, a 4, a 7 or a 9). So the fit starts from several places at once:

    the encoder's guess q(z | x̃)                       (core.inpainting.amortized_guess)
    the best state of a short Metropolis-within-Gibbs run (core.mwg: draws of the exact p(z | x_o))
    a few draws from the prior (widened, to reach its tails): the most probable of K = 256, by p(x_o, z)

each with the guess's scale. All of them take the first `shared_steps` (100 of 200) Adam steps
together, in ONE batched fit (core.inpainting.AdamFit, starts × digits rows, `shared_samples` = 2
z samples per start and step, the same noise for the starts of a digit); then, per digit, the
start whose q has the best observed-pixel ELBO (common random numbers) continues alone with the
fit's own samples per step (its Adam moments restart, see AdamFit.keep). A step's cost is mostly
streaming the decoder's weights, so 6 starts × 2 samples cost little more per step than 1 × 4,
and the whole costs little more than one fit (docs/benchmarks.md, issue 16). Starts that are in
different places when ranked, with ELBOs close to the best, are reported: that is information,
the seen pixels are ambiguous. (Ranked after 20 steps the starts were still too far from their
optima: on the 32-D model 3 of 100 digits showed competing optima, against 31 when every start is
fitted all 200 steps; after 100 steps 33.)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lvm_studio.core import inpainting as ip
from lvm_studio.core.inpainting_completion import Completion, complete, model_device, prepare
from lvm_studio.core.mwg import ChainConfig, run_chains
from lvm_studio.core.observed_likelihood import ObservedLikelihood

MODE_NATS = 5.0  # a start's optimum within this many nats of the best one competes with it
SAME_MODE_SIGMAS = 3.0  # two fitted means closer than this many (combined) σ in every coordinate: one mode


@dataclass
class StartsConfig:
    n_prior: int = 4  # draws among the starts: the most probable (by p(x_o, z)) of prior_pool draws
    prior_pool: int = 256
    pool_scale: float = 2.0  # the pool is drawn from the prior widened by this factor (for N(0, I): N(0, 4 I))
    mwg_chains: int = 4  # the short MwG run that proposes one start
    mwg_steps: int = 8  # (15 measured the same on the 200-digit check, at twice the cost)
    shared_steps: int = 100  # Adam steps all starts take together before only the best one continues
    shared_samples: int = 2  # z samples per start and step in the shared phase (common to a digit's starts)
    elbo_k: int = 64  # z samples of the ELBO that ranks the starts after the shared phase
    seed: int = 0

    def __post_init__(self):
        if self.n_prior < 0 or self.mwg_chains < 0 or self.mwg_steps < 0 or self.shared_steps < 0:
            raise ValueError("n_prior, mwg_chains, mwg_steps and shared_steps ≥ 0 are required")
        if self.elbo_k < 1 or self.shared_samples < 1:
            raise ValueError("elbo_k ≥ 1 and shared_samples ≥ 1 are required")

    @property
    def uses_mwg(self) -> bool:
        return self.mwg_chains > 0 and self.mwg_steps > 0


@dataclass(frozen=True)
class StartsReport:
    """What the starts did, per digit, when they were ranked (after `ranked_at` Adam steps together)."""

    labels: tuple[str, ...]  # (starts,) "encoder", "MwG", "draw 1", ...
    elbo: torch.Tensor  # (starts, batch) observed-pixel ELBO of each start's q then (common random numbers)
    z_loc: torch.Tensor  # (starts, batch, latent) their means then
    z_scale: torch.Tensor  # (starts, batch, latent)
    best: torch.Tensor  # (batch,) index of the start kept
    n_modes: torch.Tensor  # (batch,) distinct optima within MODE_NATS of the best (1: the starts agree)
    ranked_at: int = 0  # Adam steps the starts took together before the best one continued alone

    def disagree(self, b: int = 0) -> bool:
        return int(self.n_modes[b]) > 1

    def summary(self, b: int = 0) -> str:
        """One line for digit b: which start won, and whether others found competing optima."""
        e = self.elbo[:, b]
        best = int(self.best[b])
        when = f" after {self.ranked_at} steps" if self.ranked_at else ""
        text = f"best of {len(self.labels)} starts{when}: {self.labels[best]} ({float(e[best]):.1f} nats)"
        if not self.disagree(b):
            return text + "; the starts agree"
        others = [i for i in mode_representatives(self, b) if i != best]
        rivals = ", ".join(f"{self.labels[i]} {float(e[i]):.1f}" for i in others)
        return text + f"; {int(self.n_modes[b])} different optima within {MODE_NATS:.0f} nats ({rivals}): ambiguous"


@dataclass(frozen=True)
class MultiStartResult:
    result: ip.InpaintResult  # the best start's fit, per digit, as fit_q returns it (init = that start)
    starts: StartsReport


def mode_representatives(report: StartsReport, b: int = 0) -> list[int]:
    """Start indices, one per distinct optimum within MODE_NATS of the best, best first (digit b)."""
    e = report.elbo[:, b]
    order = torch.argsort(e, descending=True).tolist()
    reps: list[int] = []
    for i in order:
        if float(e[order[0]] - e[i]) > MODE_NATS:
            break
        loc_i, sc_i = report.z_loc[i, b], report.z_scale[i, b]
        same = False
        for j in reps:
            d = (loc_i - report.z_loc[j, b]).abs() / (sc_i.square() + report.z_scale[j, b].square()).sqrt()
            if bool((d < SAME_MODE_SIGMAS).all()):
                same = True
                break
        if not same:
            reps.append(i)
    return reps


@torch.no_grad()
def _elbo_common_noise(lik: ObservedLikelihood, model, z_loc, z_scale, k: int, S: int, g) -> torch.Tensor:
    """E_q[log p(x_o|z)] − KL(q ‖ p(z)) for (starts·batch) rows of q with the same k noise draws for every
    start (common random numbers, so the ranking is not decided by noise); (starts, batch)."""
    SB, L = z_loc.shape
    B = SB // S
    eps = torch.randn((k, 1, B, L), generator=g, device=z_loc.device, dtype=z_loc.dtype).expand(k, S, B, L)
    total = torch.zeros(SB, device=z_loc.device, dtype=torch.float64)
    chunk = max(1, (1 << 14) // SB)
    for s in range(0, k, chunk):
        z = z_loc + z_scale * eps[s : s + chunk].reshape(-1, SB, L)  # (c, starts·batch, latent)
        total += lik.value(z).sum(0, dtype=torch.float64)
    kl = model.kl_to_prior(z_loc, z_scale)  # (starts·batch,) closed form for N(0, I), K&W 2014 App. B
    return ((total / k).to(z_loc.dtype) - kl).view(S, B)


def multi_start_fit(
    model,
    x,
    missing,
    config: ip.InpaintConfig | None = None,
    starts: StartsConfig | None = None,
    callback: Callable[[ip.InpaintProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    guess: tuple[torch.Tensor, torch.Tensor] | None = None,
    amortized: Completion | None = None,
) -> MultiStartResult:
    """fit_q from several starts (see the module's notes); the result is the best start's per digit.

    callback receives fit_q's InpaintProgress for one q per digit: during the shared phase the start
    that leads (by its latest ELBO estimate), then the one kept. guess: the encoder's guess if
    already computed; amortized: its completion, if computed (else it is)."""
    cfg = config or ip.InpaintConfig()
    sc = starts or StartsConfig()
    device = model_device(model)
    x, missing = prepare(x, missing, device)
    B = x.shape[0]
    g = torch.Generator(device=device).manual_seed(sc.seed)
    loc0, scale0 = guess if guess is not None else ip.amortized_guess(model, x, missing)
    locs, labels = [loc0], ["encoder"]
    # a cheap global look: K draws from the prior widened by pool_scale (its tails hold narrow modes a
    # plain prior draw rarely hits) ranked by log p(x_o, z) = log p(x_o | z) + log p(z), one forward pass
    # without gradients; the most probable start fits and chains
    lik0 = ObservedLikelihood(model, x, missing)
    K = max(sc.prior_pool, sc.n_prior, sc.mwg_chains)
    z_pool = sc.pool_scale * model.sample_prior((K, B), generator=g)  # (K, batch, latent)
    top = (lik0.value(z_pool) + model.prior_log_prob(z_pool)).argsort(0, descending=True)  # (K, batch)
    ranked = z_pool.gather(0, top[..., None].expand(-1, -1, z_pool.shape[-1]))  # (K, batch, latent) best first
    if sc.uses_mwg:
        # one chain from the encoder's guess, the others from the most likely prior draws
        init_z = torch.cat([loc0[None], ranked[: sc.mwg_chains - 1]])  # (chains, batch, latent)
        chains = run_chains(
            model,
            x,
            missing,
            ChainConfig(n_chains=sc.mwg_chains, steps=sc.mwg_steps, burn_in=0, report_every=0, seed=sc.seed),
            init_z=init_z,
            should_stop=should_stop,
        )
        if chains.steps_done > 0:
            lj = chains.log_joint_trace.reshape(-1, B)  # (steps·chains, batch) log p(x_o, z)
            best = lj.argmax(0)  # (batch,)
            z_all = chains.z_trace.reshape(-1, B, loc0.shape[-1])
            locs.append(z_all[best, torch.arange(B, device=device)])  # (batch, latent) the most probable state
            labels.append("MwG")
    if sc.n_prior > 0:
        locs.extend(ranked[: sc.n_prior].unbind(0))  # the most likely prior draws
        labels.extend(f"draw {i + 1}" for i in range(sc.n_prior))
    S = len(locs)
    init_loc = torch.cat(locs)  # (starts·batch, latent), start-major
    init_scale = scale0.repeat(S, 1)
    x_rep = x.repeat(S, 1)
    m_rep = missing if missing.shape[0] == 1 else missing.repeat(S, 1)
    digits = torch.arange(B, device=device)
    gen = ip._generator(cfg.seed, device)

    # the shared phase: all starts together, one noise draw per digit and step for all its starts
    shared = ip.AdamFit(model, x_rep, m_rep, init_loc, init_scale, cfg, gen, groups=S, n_samples=sc.shared_samples)

    def leader(t: int) -> torch.Tensor:  # (batch,) rows of the start with the best latest ELBO estimate
        last = shared.elbo_trace(t)[-1].view(S, B)  # (starts, batch)
        return last.argmax(0) * B + digits

    live = ip.LiveReports(shared, cfg, callback, rows=leader) if callback is not None else None
    t0 = time.perf_counter()
    n_shared = min(sc.shared_steps, cfg.steps)
    stopped = shared.run(n_shared, live, should_stop)
    # rank the starts' q now, with the same noise for all starts of a digit
    z_loc, z_scale = shared.q()  # (starts·batch, latent)
    elbo = _elbo_common_noise(shared.lik, model, z_loc, z_scale, sc.elbo_k, S, g)  # (starts, batch)
    best = elbo.argmax(0)  # (batch,)
    rows = best * B + digits
    # the best start per digit continues alone, with cfg.n_samples samples per step
    fit = shared.keep(rows, x, missing, n_samples=cfg.n_samples)
    if not stopped and fit.t < cfg.steps:
        live = ip.LiveReports(fit, cfg, callback, eps=live.eps, last_at=live.last_at) if live is not None else None
        stopped = fit.run(cfg.steps, live, should_stop)
    if amortized is None:
        n_keep = cfg.n_completion_samples
        amortized = complete(
            model, x, missing, loc0, scale0, n=max(cfg.n_mean_samples, n_keep), n_keep=n_keep, generator=gen
        )
    kept = ip.fit_result(fit, init_loc[rows], init_scale[rows], stopped, time.perf_counter() - t0, amortized)
    L = init_loc.shape[-1]
    report = StartsReport(
        labels=tuple(labels),
        elbo=elbo.cpu(),
        z_loc=z_loc.view(S, B, L).cpu(),
        z_scale=z_scale.view(S, B, L).cpu(),
        best=best.cpu(),
        n_modes=torch.zeros(B, dtype=torch.long),
        ranked_at=n_shared if n_shared < cfg.steps else 0,
    )
    n_modes = torch.tensor([len(mode_representatives(report, b)) for b in range(B)])
    return MultiStartResult(result=kept, starts=dataclasses.replace(report, n_modes=n_modes))


@torch.no_grad()
def grid_mode_2d(model, x, missing, n: int = 101, extent: float = 4.0) -> torch.Tensor:
    """argmax_z log p(x_o | z) + log p(z) on an n × n grid over [−extent, extent]² for a 2-D latent,
    (batch, 2): the exact posterior's mode to cell precision, for checks and benchmarks.

    The decoder runs once over the grid's cells; each digit's log p(x_o | z) is then one matrix
    product with its pixels (Bernoulli decoders: log p = x·l − softplus(l), summed over observed i)."""
    x, missing = prepare(x, missing, model_device(model))
    if model.latent_dim != 2 or getattr(getattr(model, "config", None), "likelihood", None) != "bernoulli":
        raise ValueError("grid_mode_2d needs a Bernoulli VAE with a 2-D latent")
    d = 2 * extent / n
    z1 = torch.linspace(-extent + d / 2, extent - d / 2, n, device=x.device)  # (n,)
    zz = torch.stack(torch.meshgrid(z1, z1, indexing="ij"), -1).reshape(-1, 2)  # (n², 2)
    logits = model.decode(zz)  # (n², 784)
    obs = (~missing).to(x.dtype)  # (batch | 1, 784)
    lp = (x * obs) @ logits.T - obs @ torch.nn.functional.softplus(logits).T  # (batch, n²) log p(x_o | z)
    log_joint = lp + model.prior_log_prob(zz)[None]
    return zz[log_joint.argmax(1)]
