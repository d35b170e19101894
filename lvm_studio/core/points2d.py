"""Built-in 2-D point sets for the EM playground.

Every generator takes (n, seed) and returns (x, labels): x (N, 2) float64, labels (N,) int64
for the component or class each point came from, or None where no labelling is meaningful
(the ring). Same arguments, same points. ``POINT_SETS`` maps display names to generators and
``SUGGESTED_COMPONENTS`` gives a sensible K for each. The sets live roughly in [-6, 6]².
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lvm_studio.core.gaussian import covariance_root, sample_gaussian

PointSet = tuple[np.ndarray, "np.ndarray | None"]


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def from_mixture(weights, means, covs, n: int = 300, seed: int = 0) -> PointSet:
    """n points from Σ_k π_k N(μ_k, Σ_k): z ~ Cat(π), x | z ~ N(μ_z, Σ_z).

    weights (K,) (renormalised), means (K, 2), covs (K, 2, 2). Returns (x (n, 2), z (n,)).
    Works in any dimension D, though the playground uses D = 2.
    """
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    means = np.asarray(means, dtype=np.float64)
    covs = np.asarray(covs, dtype=np.float64)
    k = weights.shape[0]
    if means.ndim != 2 or means.shape[0] != k:
        raise ValueError(f"means must be (K, D) with K = {k}")
    d = means.shape[1]
    if covs.shape != (k, d, d):
        raise ValueError(f"covs must be {(k, d, d)}, got {covs.shape}")
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    rng = np.random.default_rng(seed)
    z = rng.choice(k, size=int(n), p=weights / weights.sum())  # (n,)
    roots = covariance_root(covs)  # (K, D, D) eigen-roots: a singular (degenerate) Σ_k is fine
    x = sample_gaussian(means, roots, z, rng)  # (n, D)
    return x, z.astype(np.int64)


def well_separated_blobs(n: int = 300, seed: int = 0) -> PointSet:
    """Three round, equally weighted, far-apart clusters: EM's easy case."""
    means = [[-3.5, -2.0], [3.5, -2.0], [0.0, 3.5]]
    covs = [0.45 * np.eye(2)] * 3
    return from_mixture([1, 1, 1], means, covs, n, seed)


def overlapping_blobs(n: int = 300, seed: int = 0) -> PointSet:
    """Three clusters with different sizes and weights that overlap: responsibilities are soft."""
    means = [[-1.2, -0.4], [1.3, 0.2], [0.0, 1.6]]
    covs = [0.6 * np.eye(2), 0.9 * np.eye(2), 0.35 * np.eye(2)]
    return from_mixture([0.4, 0.35, 0.25], means, covs, n, seed)


def anisotropic_blobs(n: int = 300, seed: int = 0) -> PointSet:
    """Three elongated, rotated clusters: full covariances fit them, diagonal ones cannot."""
    base = np.diag([2.2, 0.08])
    covs = [_rotation(a) @ base @ _rotation(a).T for a in (math.pi / 5, -math.pi / 4, math.pi / 2.2)]
    means = [[-2.5, 1.5], [2.5, 1.0], [0.0, -2.5]]
    return from_mixture([1, 1, 1], means, covs, n, seed)


def two_moons(n: int = 300, seed: int = 0, noise: float = 0.1) -> PointSet:
    """Two interleaved half circles (label = moon): not Gaussian, so K > 2 components are needed."""
    rng = np.random.default_rng(seed)
    n_upper = int(n) // 2
    n_lower = int(n) - n_upper
    t_upper = rng.uniform(0.0, math.pi, n_upper)
    t_lower = rng.uniform(0.0, math.pi, n_lower)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], 1)  # (n_upper, 2)
    lower = np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], 1)  # (n_lower, 2)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((int(n), 2))
    x = 2.5 * (x - np.array([0.5, 0.25]))  # centred and scaled to the playground
    labels = np.concatenate([np.zeros(n_upper, np.int64), np.ones(n_lower, np.int64)])
    order = rng.permutation(int(n))
    return x[order], labels[order]


def ring(n: int = 300, seed: int = 0, radius: float = 3.0, width: float = 0.25) -> PointSet:
    """Points around a circle: one class, no Gaussian shape; labels None."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0.0, 2.0 * math.pi, int(n))
    r = radius + width * rng.standard_normal(int(n))
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], 1)  # (n, 2)
    return x, None


POINT_SETS: dict[str, Callable[..., PointSet]] = {
    "well-separated blobs": well_separated_blobs,
    "overlapping blobs": overlapping_blobs,
    "anisotropic blobs": anisotropic_blobs,
    "two moons": two_moons,
    "ring": ring,
}

SUGGESTED_COMPONENTS: dict[str, int] = {
    "well-separated blobs": 3,
    "overlapping blobs": 3,
    "anisotropic blobs": 3,
    "two moons": 6,
    "ring": 8,
}


def make_point_set(name: str, n: int = 300, seed: int = 0) -> PointSet:
    """POINT_SETS[name](n, seed), with a helpful error for an unknown name."""
    try:
        fn = POINT_SETS[name]
    except KeyError:
        raise KeyError(f"unknown point set {name!r}; choose one of {', '.join(POINT_SETS)}") from None
    return fn(n=n, seed=seed)
