"""Gaussian draws and contours, in numpy or torch: one square root of Σ, one x = μ + A ε.

    Σ = V Λ Vᵀ  →  A = V Λ₊^½, so A Aᵀ = Σ                  (eigen-root; Λ₊ = max(Λ, 0))
    ε ~ N(0, I)  →  x = μ + A ε ~ N(μ, Σ)                   (Bishop, PRML 2006, §11.1.1, eq. 11.1 ff.)

The eigen-root rather than Cholesky: it exists for every positive semi-definite Σ, so a singular
(degenerate) covariance yields points on its subspace instead of an error. Each function takes
numpy arrays or torch tensors and answers in the same kind (the 2-D point sets are numpy, the
mixtures torch); the arithmetic is written once, against either namespace.
"""

from __future__ import annotations

import numpy as np
import torch


def _namespace(a):
    return np if isinstance(a, np.ndarray) else torch


def covariance_root(cov, diagonal: bool = False):
    """A with A Aᵀ = Σ for each symmetric positive semi-definite Σ.

    cov (…, D, D) full matrices → (…, D, D) eigen-roots V Λ₊^½ (columns: the axes, scaled);
    with diagonal, cov (…, D) variances → (…, D) standard deviations. numpy in, numpy out;
    torch in, torch out.
    """
    xp = _namespace(cov)
    if diagonal:
        return xp.sqrt(cov.clip(min=0.0))  # (…, D)
    eigval, eigvec = xp.linalg.eigh(0.5 * (cov + cov.swapaxes(-1, -2)))  # symmetrised: rounding can skew Σ
    return eigvec * xp.sqrt(eigval.clip(min=0.0))[..., None, :]  # (…, D, D) column j scaled by √λ_j


def sample_gaussian(means, roots, z, generator=None):
    """x_n = μ_{z_n} + A_{z_n} ε_n with ε_n ~ N(0, I): draw n from component z_n of each row.

    means (K, D); roots (K, D, D) from covariance_root, or (K, D) standard deviations for
    diagonal covariances; z (n,) integer component ids. generator: a numpy.random.Generator
    (then means, roots and z are numpy arrays and ε = generator.standard_normal((n, D))), or a
    torch.Generator / None (tensors; ε drawn on the means' device and dtype). Returns (n, D).
    """
    n, d = int(z.shape[0]), int(means.shape[-1])
    if isinstance(generator, np.random.Generator):
        if not isinstance(means, np.ndarray):
            raise TypeError("a numpy generator draws for numpy arrays; pass a torch.Generator for tensors")
        eps = generator.standard_normal((n, d))  # (n, D)
    else:
        eps = torch.randn(n, d, generator=generator, device=means.device, dtype=means.dtype)  # (n, D)
    if roots.ndim == means.ndim:  # diagonal: A = diag(σ)
        return means[z] + roots[z] * eps  # (n, D)
    return means[z] + _namespace(means).einsum("nij,nj->ni", roots[z], eps)  # (n, D) μ + A ε


def ellipse_points(mean2, cov2x2, n_sigma: float = 1.0, n: int = 64) -> np.ndarray:
    """Points (n + 1, 2) of the n_sigma contour of N(mean2, cov2x2), closed (last = first).

    {μ + n_sigma · A u : ‖u‖ = 1} with A = covariance_root(Σ), which copes with a singular Σ
    (a segment). In 2-D, 1σ holds 39.3 % of the mass and 2σ 86.5 %.
    """
    mean2 = np.asarray(mean2, dtype=np.float64).reshape(2)
    root = covariance_root(np.asarray(cov2x2, dtype=np.float64).reshape(2, 2))  # (2, 2) columns: axes
    angle = np.linspace(0.0, 2.0 * np.pi, int(n) + 1)
    circle = np.stack([np.cos(angle), np.sin(angle)])  # (2, n+1)
    pts = mean2[:, None] + n_sigma * root @ circle  # (2, n+1)
    pts[:, -1] = pts[:, 0]
    return pts.T.copy()
