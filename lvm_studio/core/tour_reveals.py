"""What each step of a lecture tour computes when the student presses Reveal (no Qt).

A tour file (core/tour.py) names a reveal from REVEALS, its arguments and a seed; the lecture dock
runs `reveal_task(ctx, name, model, data, args, seed)` on a TaskRunner and shows the values. Every
reveal is a thin layer over the core functions the panels use (the estimators, the grid posterior,
EM, the mixtures, inpainting, core.vi_1d), so the numbers the student sees are the numbers those
functions give, with a seeded generator: a class sees the same numbers.

A reveal returns a RevealResult: `values`, a flat dict of JSON-friendly numbers, strings and lists
(what `lvm-studio --smoke-tour` prints, what the explanation's {placeholders} and the question's
`answer` key read), and `extra`, the objects a panel draws (an EstimatorSweep, a ClusterResult).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lvm_studio.core import masks, vi_1d
from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.estimator_sweep import estimator_sweep
from lvm_studio.core.estimators import elbo as elbo_estimate
from lvm_studio.core.estimators import exact_log_px_2d, grid_posterior, sample_log_weights
from lvm_studio.core.latent import latent_stats
from lvm_studio.core.posterior_grid import kl_q_posterior_on_grid
from lvm_studio.core.q_elbo import elbo_for_q, optimise_phi
from lvm_studio.core.training import eval_images


@dataclass(frozen=True)
class RevealResult:
    name: str
    values: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RevealSpec:
    fn: Callable[..., RevealResult]
    outputs: tuple[str, ...]  # the keys of `values`: a tour's answer and placeholders must be among them
    needs_model: bool = True

    def arguments(self) -> dict[str, inspect.Parameter]:
        """The keyword arguments a tour may give (everything after env and seed)."""
        params = list(inspect.signature(self.fn).parameters.values())[2:]
        return {p.name: p for p in params}


@dataclass(frozen=True)
class RevealEnv:
    """What a reveal may read: the step's model (None for reveals that need none), the data, and
    `check()` to end early when the dock moves on."""

    model: Any
    data: Any
    check: Callable[[], None] = lambda: None

    def test_image(self, i: int) -> torch.Tensor:
        """Test digit i as the hub evaluates it (the fixed binarization for a Bernoulli model), (1, 784)."""
        likelihood = getattr(getattr(self.model, "config", None), "likelihood", "bernoulli")
        return eval_images(self.data, "test", likelihood)[int(i)][None].clone()

    def first_test_index(self, label: int) -> int:
        """The first test digit with this label."""
        hits = np.flatnonzero(np.asarray(self.data.y_test) == int(label))
        if len(hits) == 0:
            raise ValueError(f"no test digit is labelled {label}")
        return int(hits[0])


def _r(v: float, nd: int = 4) -> float:
    return float(round(float(v), nd))


# a lighter two-stage grid than exact_log_px_2d's default (81² + 161² decoder rows per image): the coarse
# stage only finds the box holding the posterior, the fine one integrates it (to ~0.01 nat on the shipped model)
N_COARSE, N_FINE = 41, 101


def log_px_2d(model, x: torch.Tensor, n_fine: int = N_FINE) -> torch.Tensor:
    """log p(x) = log ∫ p(x|z) p(z) dz for a 2-D latent (core.estimators.exact_log_px_2d); (batch,)."""
    return exact_log_px_2d(model, x, n_coarse=N_COARSE, n_fine=n_fine)


# --- 1. latent variables as factors of variation -------------------------------------------------


@torch.no_grad()
def factor_of_variation(env: RevealEnv, seed: int, n_val: int = 2000, value: float = 2.0) -> RevealResult:
    """The dimensions with the highest and lowest average KL(q(z_d|x) ‖ N(0, 1)) on n_val validation
    digits, and how much the decoded image E[x|z] changes (mean |Δ pixel|) as each goes from −value
    to +value with every other dimension at 0."""
    model = env.model
    likelihood = model.config.likelihood
    stats = latent_stats(model, eval_images(env.data, "val", likelihood)[:n_val])
    top, bottom = int(stats.order[0]), int(stats.order[-1])
    changes = []
    for d in (top, bottom):
        z = torch.zeros(2, model.latent_dim)  # (2, latent)
        z[0, d], z[1, d] = -value, value
        x = model.decode_mean(z)  # (2, 784)
        changes.append(float((x[1] - x[0]).abs().mean()))
    z_shown = np.zeros(model.latent_dim)
    z_shown[top] = value
    return RevealResult(
        "factor_of_variation",
        {
            "top_dim": top + 1,  # named z1 … zD, as the sliders name them
            "top_kl": _r(stats.mean_kl[top]),
            "bottom_dim": bottom + 1,
            "bottom_kl": _r(stats.mean_kl[bottom]),
            "change_top": _r(changes[0]),
            "change_bottom": _r(changes[1]),
            "n_active": stats.n_active,
            "latent_dim": model.latent_dim,
            "answer": "top" if changes[0] > changes[1] else "bottom",
        },
        {"z": z_shown},
    )


# --- 2–3. the mixture of Gaussians: generative process and EM ------------------------------------


def mixture_sampling(env: RevealEnv, seed: int, k: int = 3, n: int = 1000) -> RevealResult:
    """The generative process n times with the playground's default mixture: z ~ Cat(π), then
    x ~ N(μ_z, Σ_z); how many points each component produced."""
    from lvm_studio.core.em_playground import GeneratingMixture

    weights, _means, _covs = GeneratingMixture.default(int(k)).arrays()
    rng = np.random.default_rng(seed)
    z = rng.choice(len(weights), size=int(n), p=weights)  # (n,) the component of each point
    counts = np.bincount(z, minlength=len(weights))
    biggest = int(np.argmax(weights))
    return RevealResult(
        "mixture_sampling",
        {
            "pi": [_r(w, 3) for w in weights],
            "counts": [int(c) for c in counts],
            "n": int(n),
            "biggest": biggest + 1,
            "pi_biggest": _r(weights[biggest], 3),
            "count_biggest": int(counts[biggest]),
            "expected_biggest": _r(n * weights[biggest], 1),
        },
    )


def em_iterations(
    env: RevealEnv,
    seed: int,
    point_set: str = "overlapping blobs",
    n: int = 300,
    data_seed: int = 0,
    iterations: int = 8,
) -> RevealResult:
    """EM on the playground's point set from θ₀ (initialisation seeded by `seed`): the mean
    log-likelihood ℓ(θ) per point after each iteration (Dempster et al. 1977: it never falls)."""
    play = em_playground_state(point_set, n, data_seed, seed)
    lls = [play.session.log_likelihood()]
    for _ in range(int(iterations)):
        play.iterate()
        lls.append(play.session.log_likelihood())
    rises = np.diff(lls)
    return RevealResult(
        "em_iterations",
        {
            "log_lik": [_r(v) for v in lls],
            "first": _r(lls[0]),
            "last": _r(lls[-1]),
            "smallest_rise": _r(float(rises.min()), 6),
            "iterations": int(iterations),
            "k": int(play.config.n_components),
            "answer": "no" if float(rises.min()) >= -1e-9 else "yes",
        },
    )


def em_playground_state(point_set: str, n: int, data_seed: int, seed: int):
    """The playground's state at iteration 0 (the same the panel builds for these settings)."""
    from lvm_studio.core.em_playground import EMPlayground

    play = EMPlayground(n=int(n), data_seed=int(data_seed))
    play.set_point_set(point_set)
    play.set_config(seed=int(seed))
    return play


# --- 4–5. digits: clusters and density -----------------------------------------------------------


class _Ctx:
    """A task context for core tasks called from inside a reveal."""

    def __init__(self, check):
        self._check = check

    def report(self, fraction, payload=None):
        pass

    def cancelled(self) -> bool:
        try:
            self._check()
        except Exception:
            return True
        return False

    def check(self) -> None:
        self._check()


def digit_clusters(
    env: RevealEnv,
    seed: int,
    space: str = "vae",
    fit_on: str = "10k",
    k: int = 10,
    covariance: str = "full",
    pca_dim: int = 50,
    restarts: int = 1,
    max_iter: int = 100,
) -> RevealResult:
    """A K-component Gaussian mixture fitted by EM without labels (core.digit_clusters), its test
    accuracy after matching components to labels (Hungarian) and the NMI."""
    from lvm_studio.core.digit_clusters import fit_clusters_task

    res = fit_clusters_task(
        _Ctx(env.check),
        env.model,
        env.data,
        space,
        fit_on,
        k=k,
        covariance=covariance,
        pca_dim=pca_dim,
        seed=seed,
        restarts=restarts,
        max_iter=max_iter,
    )
    return RevealResult(
        "digit_clusters",
        {
            "accuracy": _r(100 * res.accuracy, 2),
            "nmi": _r(res.nmi),
            "k": res.k,
            "iterations": int(res.iterations),
            "test_ll": _r(res.test_ll),
            "chance": _r(100 * float(np.bincount(np.asarray(env.data.y_test)).max()) / len(env.data.y_test), 2),
        },
        {"result": res},
    )


def mixture_density(
    env: RevealEnv, seed: int, ks: tuple[int, ...] = (1, 3, 10), fit_on: str = "10k", max_iter: int = 20
) -> RevealResult:
    """Mixtures of K product-of-Bernoulli components p(x) = Σ_k π_k Π_i μ_ki^{x_i} (1 − μ_ki)^{1 − x_i}
    fitted by EM (core.bernoulli_mixture, as the digit clusters' density tab does) on binarized
    training digits, each one's exact mean log p(x) of the binarized test digits."""
    from lvm_studio.core.bernoulli_mixture import BernoulliMixture, BernoulliMixtureConfig
    from lvm_studio.core.digit_clusters import BMM_TOL, fit_images

    x_fit = fit_images(env.data, fit_on, "binary")  # (N, 784), the density tab's fit set
    x_test = env.data.binarized("test")  # the evaluation binarization
    out, fits = {}, {}
    for k in ks:
        env.check()
        bmm = BernoulliMixture(BernoulliMixtureConfig(n_components=int(k), seed=int(seed)))
        bmm.fit(x_fit, max_iter=int(max_iter), tol=BMM_TOL)
        fits[int(k)] = float(bmm.log_prob(x_test).to(torch.float64).mean())
        out[f"log_px_k{k}"] = _r(fits[int(k)], 3)
    best = max(fits, key=fits.get)
    return RevealResult(
        "mixture_density", {**out, "ks": [int(k) for k in ks], "best_k": int(best), "answer": f"k{best}"}
    )


# --- 6–7. the VAE as an infinite mixture; partially observed data --------------------------------


@torch.no_grad()
def infinite_mixture(env: RevealEnv, seed: int, digit: int = 0, n: int = 101, top_percent: float = 1.0) -> RevealResult:
    """p(x) = ∫ p(x|z) p(z) dz on a grid over [−4, 4]² of a 2-D latent (each z a product of Bernoullis
    p(x|z) = Π_i θ_i(z)^{x_i} (1 − θ_i(z))^{1 − x_i}): log p(x), the share of the integral carried by
    the top_percent of cells, and the z that explains x best."""
    model = env.model
    x = env.test_image(digit)
    g = grid_posterior(model, x, n=n)  # midpoint rule
    log_mass = g.log_post[0].reshape(-1) + math.log(g.cell_area)  # (n*n,) log of each cell's share
    top = max(1, int(round(top_percent / 100 * log_mass.numel())))
    share = float(torch.logsumexp(torch.topk(log_mass, top).values, 0).exp())
    i = int(torch.argmax(log_mass))
    best = (float(g.z1[i // n]), float(g.z2[i % n]))
    z_best = torch.tensor([best], dtype=torch.float32)  # (1, 2)
    log_lik_best = float(model.log_px_given_z(x, z_best[:, None, :].expand(1, 1, 2))[0, 0])
    return RevealResult(
        "infinite_mixture",
        {
            "digit": int(digit),
            "log_px": _r(g.log_px[0]),
            "share_top": _r(100 * share, 2),
            "top_percent": float(top_percent),
            "cells": int(n * n),
            "best_z": [_r(best[0], 3), _r(best[1], 3)],
            "log_lik_best": _r(log_lik_best),
        },
    )


@torch.no_grad()
def partial_observation(env: RevealEnv, seed: int, digit: int = 0, mask: str = "top_half") -> RevealResult:
    """log p(x) of the whole digit and log p(x_o) = log Σ_{x_m} p(x_o, x_m) = log ∫ p(x_o|z) p(z) dz of
    its observed pixels, both exact for a 2-D latent (grid integrals; core.inpainting_task.ObservedModel)."""
    from lvm_studio.core.inpainting_task import ObservedModel

    model = env.model
    x = env.test_image(digit)
    missing = torch.as_tensor(masks.preset(mask)).reshape(1, N_PIXELS)  # (1, 784) bool
    log_px = float(log_px_2d(model, x)[0])
    log_pxo = float(log_px_2d(ObservedModel(model, x, missing), x)[0])
    hidden = int(missing.sum())
    return RevealResult(
        "partial_observation",
        {
            "digit": int(digit),
            "mask": mask,
            "log_px": _r(log_px),
            "log_px_observed": _r(log_pxo),
            "difference": _r(log_pxo - log_px),
            "hidden_pixels": hidden,
            "completions_log10": _r(hidden * math.log10(2), 1),
            "answer": "larger" if log_pxo > log_px else "smaller",
        },
    )


# --- 8–9. naive Monte Carlo and importance sampling -----------------------------------------------


def estimator_lab(env: RevealEnv, seed: int, digit: int = 0, k_max: int = 10000, runs: int = 2) -> RevealResult:
    """core.estimator_sweep: naive Monte Carlo (z ~ p(z)) beside importance sampling with q(z|x), for
    k = 1 … k_max over `runs` runs; the run-mean of each at every k. The reference is the exact
    log p(x) for a 2-D latent, else IW-k_max."""
    model = env.model
    x = env.test_image(digit)
    g = torch.Generator().manual_seed(seed)
    exact = float(log_px_2d(model, x)[0]) if model.latent_dim == 2 else None
    sweep = estimator_sweep(model, x, k_max=k_max, runs=runs, generator=g, should_stop=_stopper(env))
    ks = sweep.ks.tolist()
    naive = sweep.naive.double().mean(0).tolist()
    imp = sweep.importance.double().mean(0).tolist()
    ref = exact if exact is not None else imp[-1]
    i1000 = ks.index(1000) if 1000 in ks else len(ks) - 1
    return RevealResult(
        "estimator_lab",
        {
            "digit": int(digit),
            "ks": [int(k) for k in ks],
            "naive": [_r(v, 3) for v in naive],
            "importance": [_r(v, 3) for v in imp],
            "reference": _r(ref, 3),
            "reference_is_exact": exact is not None,
            "elbo": _r(sweep.elbo, 3),
            "naive_at_1000": _r(naive[i1000], 3),
            "importance_at_1000": _r(imp[i1000], 3),
            "naive_gap_at_1000": _r(ref - naive[i1000], 3),
            "ess_prior": _r(sweep.ess_prior, 2),
            "ess_q": _r(sweep.ess_q, 2),
            "answer": "below" if naive[i1000] < ref else "above",
        },
        {"sweep": sweep, "exact": exact},
    )


def _stopper(env: RevealEnv):
    def should_stop() -> bool:
        try:
            env.check()
        except Exception:
            return True
        return False

    return should_stop


@torch.no_grad()
def importance_bias(
    env: RevealEnv, seed: int, digit: int = 0, ks: tuple[int, ...] = (1, 10, 100), runs: int = 200
) -> RevealResult:
    """For a 2-D latent with its exact log p(x): `runs` independent importance-sampling estimates
    p̂ = (1/k) Σ_j p(x, z_j)/q(z_j|x), z_j ~ q(z|x), at each k. The mean of p̂ is p(x) (unbiased:
    log of the mean ≈ log p(x)); the mean of log p̂ is below log p(x) (Jensen; Burda et al. 2016)."""
    model = env.model
    x = env.test_image(digit)
    exact = float(log_px_2d(model, x)[0])
    g = torch.Generator().manual_seed(seed)
    out = {"digit": int(digit), "log_px": _r(exact), "ks": [int(k) for k in ks]}
    for k in ks:
        env.check()
        log_w = sample_log_weights(model, x, int(k) * int(runs), "q", g)[:, 0].double()  # (k·runs,)
        log_p_hat = torch.logsumexp(log_w.reshape(int(runs), int(k)), 1) - math.log(k)  # (runs,)
        out[f"mean_log_k{k}"] = _r(log_p_hat.mean())  # E[log p̂] ≤ log p(x)
        out[f"log_mean_k{k}"] = _r(torch.logsumexp(log_p_hat, 0) - math.log(runs))  # log E[p̂] ≈ log p(x)
        out[f"bias_k{k}"] = _r(log_p_hat.mean() - exact)
    k10 = 10 if 10 in ks else ks[0]
    out["answer"] = "below" if out[f"bias_k{k10}"] < 0 else "above"
    sweep_g = torch.Generator().manual_seed(seed)
    sweep = estimator_sweep(model, x, k_max=1000, runs=2, generator=sweep_g, should_stop=_stopper(env))
    return RevealResult("importance_bias", out, {"sweep": sweep, "exact": exact})


# --- 10–11. the ELBO and when it is tight ---------------------------------------------------------


@torch.no_grad()
def elbo_gap(env: RevealEnv, seed: int, digit: int = 0) -> RevealResult:
    """For the encoder's q(z|x) of one digit (2-D latent): ELBO = E_q[log p(x, z)] + H(q) by
    Gauss–Hermite quadrature (core.q_elbo), the exact log p(x) (grid), and the gap between them."""
    model = env.model
    x = env.test_image(digit)
    z_loc, z_scale = model.encode(x)  # (1, 2)
    terms = elbo_for_q(model, x, z_loc, z_scale, "quadrature")
    entropy = float((0.5 * math.log(2 * math.pi * math.e) + z_scale.log()).sum())  # H(N(μ, diag σ²))
    elbo_v = float(terms.elbo[0])
    log_px = float(log_px_2d(model, x)[0])
    return RevealResult(
        "elbo_gap",
        {
            "digit": int(digit),
            "elbo": _r(elbo_v),
            "log_px": _r(log_px),
            "gap": _r(log_px - elbo_v),
            "entropy": _r(entropy),
            "expected_log_joint": _r(elbo_v - entropy),
        },
    )


def tight_bound(env: RevealEnv, seed: int, digit: int = 0, steps: int = 100, n: int = 101) -> RevealResult:
    """log p(x) = ELBO(q) + KL(q ‖ p(z|x)) for the encoder's q and for φ* = argmax ELBO (core.q_elbo.
    optimise_phi), with the KL computed on the exact grid posterior, not as a difference."""
    model = env.model
    x = env.test_image(digit)
    with torch.no_grad():
        z_loc, z_scale = model.encode(x)  # (1, 2)
    opt = optimise_phi(model, x, steps=steps, init=(z_loc, z_scale))
    box = _covering_box(z_loc, z_scale, opt.z_loc, opt.z_scale)
    with torch.no_grad():
        g = grid_posterior(model, x, n=n, extent=box)  # covers both q's, so the KLs are sums over it
        log_px = float(log_px_2d(model, x)[0])
        rows = {}
        for name, loc, scale in (("encoder", z_loc, z_scale), ("optimised", opt.z_loc, opt.z_scale)):
            e = float(elbo_for_q(model, x, loc, scale, "quadrature").elbo[0])
            kl = float(kl_q_posterior_on_grid(g, loc, scale)[0])
            rows[name] = (e, kl, loc[0].tolist(), scale[0].tolist())
    (e0, kl0, loc0, sc0), (e1, kl1, loc1, sc1) = rows["encoder"], rows["optimised"]
    return RevealResult(
        "tight_bound",
        {
            "digit": int(digit),
            "log_px": _r(log_px),
            "elbo_encoder": _r(e0),
            "kl_encoder": _r(kl0),
            "sum_encoder": _r(e0 + kl0),
            "elbo_optimised": _r(e1),
            "kl_optimised": _r(kl1),
            "sum_optimised": _r(e1 + kl1),
            "elbo_rise": _r(e1 - e0),
            "kl_fall": _r(kl0 - kl1),
            "q_loc": [_r(v) for v in loc1],
            "q_scale": [_r(v) for v in sc1],
            "encoder_loc": [_r(v) for v in loc0],
            "encoder_scale": [_r(v) for v in sc0],
            "answer": "yes" if abs((e1 - e0) - (kl0 - kl1)) < 0.05 else "no",
        },
    )


def _covering_box(*locs_scales, n_sigma: float = 5.0) -> tuple[float, float, float, float]:
    """A box over every q's ±n_sigma·σ, within [−6, 6]² (where the grid posterior is evaluated)."""
    pairs = list(zip(locs_scales[::2], locs_scales[1::2]))
    lo = torch.stack([loc[0] - n_sigma * scale[0] for loc, scale in pairs]).amin(0).clamp(min=-6.0)
    hi = torch.stack([loc[0] + n_sigma * scale[0] for loc, scale in pairs]).amax(0).clamp(max=6.0)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


# --- 12. variational inference, "pick φ" ----------------------------------------------------------


def pick_phi(
    env: RevealEnv,
    seed: int,
    x: float = 3.0,
    offsets: tuple[float, ...] = (0.0, 7.0),
    scales: tuple[float, ...] = (1.0, 1.0),
    weights: tuple[float, ...] = (0.5, 0.5),
    q_a: tuple[float, float] = (2.0, 2.0),
    q_b: tuple[float, float] = (-4.0, 0.5625),
) -> RevealResult:
    """core.vi_1d: ELBO(q) and KL(q ‖ p(z|x)) of two candidates q = N(mean, variance) (q_a, q_b give the
    variance), the exact log p(x), and the best Gaussian φ* on a (μ, σ) grid."""
    model = vi_1d.Model1D(float(x), tuple(offsets), tuple(scales), tuple(weights))
    a = vi_1d.score_q(model, q_a[0], math.sqrt(q_a[1]))
    b = vi_1d.score_q(model, q_b[0], math.sqrt(q_b[1]))
    best = vi_1d.best_q(model)
    return RevealResult(
        "pick_phi",
        {
            "log_px": _r(a.log_px),
            "log_px_closed_form": _r(model.log_px_closed_form()),
            "elbo_a": _r(a.elbo),
            "kl_a": _r(a.kl),
            "elbo_b": _r(b.elbo),
            "kl_b": _r(b.kl),
            "best_mu": _r(best.mu, 3),
            "best_sigma": _r(best.sigma, 3),
            "best_elbo": _r(best.elbo),
            "best_kl": _r(best.kl),
            "answer": "a" if a.kl < b.kl else "b",
        },
        {"model": model},
    )


# --- 13. a variational approximation over missing pixels ---------------------------------------


PIXEL_PRESETS = ("half", "ones", "marginals")  # φ_i = ½, φ_i = 1, φ_i = p(x_i = 1 | x_o)


@torch.no_grad()
def pixel_latents(
    env: RevealEnv,
    seed: int,
    label: int = 9,
    mask: str = "top_half",
    k: int = 50,
    n_train: int = 10000,
    iters: int = 30,
    n: int = 500,
) -> RevealResult:
    """The missing pixels x_m of a digit's top half as the latent: q(x_m; φ) = Π_i φ_i^{x_i} (1 − φ_i)^{1 − x_i}
    for φ_i = ½, φ_i = 1 and φ_i = p(x_i = 1 | x_o) (near 1 on the digit's hidden strokes), with the
    "Missing pixels as latents" panel's joint p(x): a K-component Bernoulli mixture fitted by EM
    (core.pixel_tasks.fit_mixture_task; env.model when the panel has fitted it already), so that
    log p(x_o) is exact. ELBO(φ) = E_q[log p(x_o, x_m)] + H(q) ≤ log p(x_o) by n seeded samples of q
    (core.pixel_inference.elbo_phi, as the panel's numbers), gap = KL(q ‖ p(x_m | x_o))."""
    from lvm_studio.core import pixel_inference as pi
    from lvm_studio.core import pixel_phi as pp
    from lvm_studio.core import pixel_tasks as pt

    joint = env.model
    if joint is None:
        x_train = pt.binarized_train_subset(env.data, min(int(n_train), len(env.data.x_train)))
        joint = pt.fit_mixture_task(_Ctx(env.check), x_train, int(k), int(iters))
    digit = env.first_test_index(label)
    x = env.data.binarized("test")[digit].clone()  # (784,) the panel's binarization
    missing = pi.flat_mask(masks.preset(mask))  # (784,) bool
    log_pxo = float(pi.exact_log_marginal(joint, x, missing))
    out = {"digit": digit, "label": int(label), "mask": mask, "log_px_observed": _r(log_pxo), "samples": int(n)}
    for name in PIXEL_PRESETS:
        env.check()
        phi = pp.phi_preset(name, joint, x, missing)  # (M,)
        est = pi.elbo_phi(joint, x, missing, phi, int(n), torch.Generator().manual_seed(seed))
        out[f"elbo_{name}"] = _r(est.elbo)
        out[f"entropy_{name}"] = _r(est.entropy)
        out[f"gap_{name}"] = _r(log_pxo - est.elbo)
    out["answer"] = max(PIXEL_PRESETS, key=lambda name: out[f"elbo_{name}"])
    return RevealResult("pixel_latents", out, {"joint": joint})


# --- 14. learning θ and φ together ----------------------------------------------------------------


def train_together(
    env: RevealEnv, seed: int, latent_dim: int = 2, hidden: tuple[int, ...] = (64,), steps: int = 200, n_val: int = 500
) -> RevealResult:
    """A fresh VAE trained with the app's Trainer (core.training) for `steps` steps of the ELBO, θ and φ
    together; the validation ELBO (one seeded sample per digit) before and after."""
    from lvm_studio.core.training import TrainConfig, Trainer
    from lvm_studio.core.vae import VAE, VAEConfig

    with torch.random.fork_rng():  # the weights' initialisation seeded, the caller's RNG untouched
        torch.manual_seed(seed)
        model = VAE(VAEConfig(latent_dim=int(latent_dim), hidden=tuple(hidden)))
    x_val = eval_images(env.data, "val", "bernoulli")[:n_val]

    def val_elbo() -> float:
        with torch.no_grad():
            return float(elbo_estimate(model, x_val, torch.Generator().manual_seed(seed)).elbo.mean())

    before = val_elbo()
    config = TrainConfig(epochs=1, batch_size=100, eval_every=10**9, eval_n=10, snapshot_interval_s=0.0, seed=seed)
    trainer = Trainer(model, env.data, config)
    for _event in trainer.run():
        env.check()
        if trainer.step >= steps:
            trainer.stop()
    model.eval()
    after = val_elbo()
    return RevealResult(
        "train_together",
        {"steps": int(trainer.step), "elbo_before": _r(before), "elbo_after": _r(after), "rise": _r(after - before)},
    )


REVEALS: dict[str, RevealSpec] = {
    "factor_of_variation": RevealSpec(
        factor_of_variation,
        ("top_dim", "top_kl", "bottom_dim", "bottom_kl", "change_top", "change_bottom", "n_active", "latent_dim")
        + ("answer",),
    ),
    "mixture_sampling": RevealSpec(
        mixture_sampling,
        ("pi", "counts", "n", "biggest", "pi_biggest", "count_biggest", "expected_biggest"),
        needs_model=False,
    ),
    "em_iterations": RevealSpec(
        em_iterations, ("log_lik", "first", "last", "smallest_rise", "iterations", "k", "answer"), needs_model=False
    ),
    "digit_clusters": RevealSpec(digit_clusters, ("accuracy", "nmi", "k", "iterations", "test_ll", "chance")),
    "mixture_density": RevealSpec(
        mixture_density, ("log_px_k1", "log_px_k3", "log_px_k10", "ks", "best_k", "answer"), needs_model=False
    ),
    "infinite_mixture": RevealSpec(
        infinite_mixture, ("digit", "log_px", "share_top", "top_percent", "cells", "best_z", "log_lik_best")
    ),
    "partial_observation": RevealSpec(
        partial_observation,
        ("digit", "mask", "log_px", "log_px_observed", "difference", "hidden_pixels", "completions_log10", "answer"),
    ),
    "estimator_lab": RevealSpec(
        estimator_lab,
        ("digit", "ks", "naive", "importance", "reference", "reference_is_exact", "elbo", "naive_at_1000")
        + ("importance_at_1000", "naive_gap_at_1000", "ess_prior", "ess_q", "answer"),
    ),
    "importance_bias": RevealSpec(
        importance_bias,
        ("digit", "log_px", "ks", "mean_log_k1", "log_mean_k1", "bias_k1", "mean_log_k10", "log_mean_k10")
        + ("bias_k10", "mean_log_k100", "log_mean_k100", "bias_k100", "answer"),
    ),
    "elbo_gap": RevealSpec(elbo_gap, ("digit", "elbo", "log_px", "gap", "entropy", "expected_log_joint")),
    "tight_bound": RevealSpec(
        tight_bound,
        ("digit", "log_px", "elbo_encoder", "kl_encoder", "sum_encoder", "elbo_optimised", "kl_optimised")
        + ("sum_optimised", "elbo_rise", "kl_fall", "q_loc", "q_scale", "encoder_loc", "encoder_scale", "answer"),
    ),
    "pick_phi": RevealSpec(
        pick_phi,
        ("log_px", "log_px_closed_form", "elbo_a", "kl_a", "elbo_b", "kl_b", "best_mu", "best_sigma", "best_elbo")
        + ("best_kl", "answer"),
        needs_model=False,
    ),
    "pixel_latents": RevealSpec(
        pixel_latents,
        ("digit", "label", "mask", "log_px_observed", "samples", "elbo_half", "entropy_half", "gap_half")
        + ("elbo_ones", "entropy_ones", "gap_ones", "elbo_marginals", "entropy_marginals", "gap_marginals")
        + ("answer",),
        needs_model=False,
    ),
    "train_together": RevealSpec(train_together, ("steps", "elbo_before", "elbo_after", "rise"), needs_model=False),
}


def run_reveal(name: str, model, data, args: dict, seed: int, check: Callable[[], None] = lambda: None) -> RevealResult:
    """REVEALS[name] with the step's model, the data, its arguments and seed."""
    spec = REVEALS[name]
    return spec.fn(RevealEnv(model, data, check), int(seed), **args)


def reveal_task(ctx, name: str, model, data, args: dict, seed: int) -> RevealResult:
    """run_reveal as a background task (workers/tasks.py): ends early when the dock moves on."""
    ctx.report(0.0)
    return run_reveal(name, model, data, args, seed, ctx.check)
