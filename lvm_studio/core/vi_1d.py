"""Variational inference with a 1-D latent whose posterior is known exactly on a grid (no Qt).

The lecture's "pick φ" figure: a posterior p(z|x) and two candidates q(z; φ) = N(μ, σ²). Here

    p(z)   = N(0, 1)
    p(x|z) = Σ_m w_m N(x; z + d_m, s_m²)         x is z shifted by an offset d_m, plus noise

so, as a function of z, the likelihood is a sum of bumps centred at x − d_m, and the posterior
p(z|x) ∝ p(x|z) p(z) is a mixture of Gaussians (Bishop 2006, eq. 2.116 for each bump). With the
lecture's numbers (x = 3, d = (0, 7), s = (1, 1), w = (½, ½)) the likelihood has bumps at z = 3
and z = −4; the prior pulls the posterior's modes to 1.5 and −2. q = N(2, 2) (variance 2, σ = √2)
covers the larger mode and is the better q; N(−4, 0.75²) sits on the likelihood's bump, where the
posterior has almost no mass.

Everything is computed by quadrature on a fine grid (the midpoint rule over [−L, L]):

    log p(x)        = log ∫ p(x|z) p(z) dz
    ELBO(q)         = ∫ q(z) [log p(x, z) − log q(z)] dz          (Jordan et al. 1999; Kingma & Welling 2014, eq. 3)
    KL(q ‖ p(z|x))  = ∫ q(z) [log q(z) − log p(z|x)] dz           = log p(x) − ELBO(q)

and the closed forms used by the tests: log p(x) = log Σ_m w_m N(x; d_m, 1 + s_m²) (x = z + d_m + ε
is Gaussian with variance 1 + s_m²).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOG_2PI = math.log(2 * math.pi)


def log_normal(v, loc, scale) -> np.ndarray:
    """log N(v; loc, scale²), elementwise (float64)."""
    v = np.asarray(v, dtype=np.float64)
    return -0.5 * ((v - loc) / scale) ** 2 - np.log(scale) - 0.5 * LOG_2PI


@dataclass(frozen=True)
class Model1D:
    """p(z) = N(0, 1), p(x|z) = Σ_m w_m N(x; z + d_m, s_m²), with x observed."""

    x: float = 3.0
    offsets: tuple[float, ...] = (0.0, 7.0)  # d_m
    scales: tuple[float, ...] = (1.0, 1.0)  # s_m, standard deviations of the noise
    weights: tuple[float, ...] = (0.5, 0.5)  # w_m, sum to 1

    def __post_init__(self):
        n = len(self.offsets)
        if n == 0 or len(self.scales) != n or len(self.weights) != n:
            raise ValueError("offsets, scales and weights need the same, non-zero length")
        if any(s <= 0 for s in self.scales) or any(w <= 0 for w in self.weights):
            raise ValueError("scales and weights must be positive")
        if abs(sum(self.weights) - 1.0) > 1e-9:
            raise ValueError(f"the weights must sum to 1, not {sum(self.weights):g}")

    def log_likelihood(self, z) -> np.ndarray:
        """log p(x|z) for an array of z."""
        z = np.asarray(z, dtype=np.float64)
        terms = [math.log(w) + log_normal(self.x, z + d, s) for d, s, w in zip(self.offsets, self.scales, self.weights)]
        return np.logaddexp.reduce(np.stack(terms), axis=0)

    def log_joint(self, z) -> np.ndarray:
        """log p(x, z) = log p(x|z) + log p(z)."""
        return self.log_likelihood(z) + log_normal(z, 0.0, 1.0)

    def log_px_closed_form(self) -> float:
        """log p(x) = log Σ_m w_m N(x; d_m, 1 + s_m²)."""
        terms = [
            math.log(w) + float(log_normal(self.x, d, math.sqrt(1 + s * s)))
            for d, s, w in zip(self.offsets, self.scales, self.weights)
        ]
        return float(np.logaddexp.reduce(terms))


@dataclass(frozen=True)
class Grid1D:
    """Cell centres z (n,) of the midpoint rule over [−half_width, half_width], and the cell width."""

    z: np.ndarray
    dz: float


def grid(n: int = 6001, half_width: float = 20.0) -> Grid1D:
    dz = 2 * half_width / n
    z = np.linspace(-half_width + dz / 2, half_width - dz / 2, n)
    return Grid1D(z=z, dz=dz)


@dataclass(frozen=True)
class Posterior1D:
    z: np.ndarray  # (n,) grid
    log_post: np.ndarray  # (n,) log p(z|x), a density
    log_px: float


def posterior(model: Model1D, g: Grid1D | None = None) -> Posterior1D:
    """p(z|x) on the grid and log p(x) = log Σ_i p(x, z_i) Δz (midpoint rule)."""
    g = g or grid()
    log_joint = model.log_joint(g.z)  # (n,)
    log_px = float(np.logaddexp.reduce(log_joint) + math.log(g.dz))
    return Posterior1D(z=g.z, log_post=log_joint - log_px, log_px=log_px)


@dataclass(frozen=True)
class QScore:
    """How good q = N(mu, sigma²) is for p(z|x), in nats."""

    mu: float
    sigma: float  # standard deviation
    elbo: float  # E_q[log p(x, z)] + H(q)
    kl: float  # KL(q ‖ p(z|x)) by quadrature
    log_px: float  # log p(x), the same for every q
    entropy: float  # H(q) = ½ log(2πe σ²), closed form

    @property
    def gap(self) -> float:
        """log p(x) − ELBO(q), which equals the KL."""
        return self.log_px - self.elbo


def score_q(model: Model1D, mu: float, sigma: float, g: Grid1D | None = None) -> QScore:
    """ELBO(q) and KL(q ‖ p(z|x)) for q = N(mu, sigma²), both by quadrature on the grid."""
    if sigma <= 0:
        raise ValueError("sigma must be positive")
    g = g or grid()
    post = posterior(model, g)
    log_q = log_normal(g.z, mu, sigma)  # (n,)
    q = np.exp(log_q) * g.dz  # (n,) cell masses
    elbo = float(np.sum(q * (model.log_joint(g.z) - log_q)))
    kl = float(np.sum(q * (log_q - post.log_post)))
    entropy = 0.5 * math.log(2 * math.pi * math.e * sigma * sigma)
    return QScore(mu=float(mu), sigma=float(sigma), elbo=elbo, kl=kl, log_px=post.log_px, entropy=entropy)


def best_q(model: Model1D, g: Grid1D | None = None) -> QScore:
    """φ* = argmax_φ ELBO(q(z; φ)) over Gaussians q = N(μ, σ²): the closest one to p(z|x) in
    KL(q ‖ p). A coarse (μ, σ) grid finds the start, Nelder–Mead (scipy) refines it."""
    from scipy.optimize import minimize

    g = g or grid()
    log_joint = model.log_joint(g.z)  # (n,)

    def neg_elbo(phi) -> float:
        mu, log_sigma = float(phi[0]), float(phi[1])
        log_q = log_normal(g.z, mu, math.exp(log_sigma))  # (n,)
        return -float(np.sum(np.exp(log_q) * g.dz * (log_joint - log_q)))

    starts = [(m, math.log(s)) for m in np.linspace(-6, 6, 25) for s in (0.3, 1.0, 2.0)]
    start = min(starts, key=neg_elbo)
    res = minimize(neg_elbo, np.array(start), method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-9})
    return score_q(model, float(res.x[0]), math.exp(float(res.x[1])), g)
