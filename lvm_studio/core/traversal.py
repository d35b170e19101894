"""Where to look in a latent space: traversal grids, linear and spherical interpolation between
codes, and the tiling of decoded digits into one image (no Qt). PCA of the codes is
lvm_studio.core.clustering.pca.

    slerp(z0, z1; t) = sin((1−t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1,  cos Ω = ⟨z0, z1⟩/(‖z0‖‖z1‖)
                                                   (Shoemake 1985; White 2016, §2.2)
"""

from __future__ import annotations

import numpy as np
import torch

from lvm_studio.core.images import image_side


def traversal_values(lo: float, hi: float, n: int) -> torch.Tensor:
    """n evenly spaced values from lo to hi inclusive (in prior standard deviations)."""
    return torch.linspace(float(lo), float(hi), int(n))


def traversal_grid(
    z: torch.Tensor, dims: tuple[int, ...] | list[int], values_a: torch.Tensor, values_b: torch.Tensor | None = None
) -> torch.Tensor:
    """Codes that vary one or two dimensions of z while the others stay fixed.

    One dimension: (n_a, latent), row i has z[dims[0]] = values_a[i].
    Two dimensions: (n_b, n_a, latent), [r, c] has z[dims[0]] = values_a[c] and z[dims[1]] = values_b[r]
    (columns follow the first dimension, rows the second, as on a plot's x and y axes).
    """
    z = torch.as_tensor(z).reshape(-1)
    values_a = torch.as_tensor(values_a, dtype=z.dtype)
    if len(dims) == 1 or values_b is None:
        out = z.expand(len(values_a), -1).clone()  # (n_a, latent)
        out[:, dims[0]] = values_a
        return out
    if dims[0] == dims[1]:
        raise ValueError("a two-dimensional traversal needs two different dimensions")
    values_b = torch.as_tensor(values_b, dtype=z.dtype)
    out = z.expand(len(values_b), len(values_a), -1).clone()  # (n_b, n_a, latent)
    out[:, :, dims[0]] = values_a[None, :]
    out[:, :, dims[1]] = values_b[:, None]
    return out


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 − t) z0 + t z1 for each t; (n, latent)."""
    t = torch.as_tensor(t, dtype=z0.dtype).reshape(-1, 1)  # (n, 1)
    return (1 - t) * z0.reshape(1, -1) + t * z1.reshape(1, -1)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985), as recommended for Gaussian latents by White (2016,
    "Sampling generative networks", §2.2): sin((1−t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1 with
    cos Ω = ⟨z0, z1⟩ / (‖z0‖‖z1‖). Endpoints are exact; near-parallel codes fall back to lerp. (n, latent)."""
    z0, z1 = z0.reshape(-1), z1.reshape(-1)
    t = torch.as_tensor(t, dtype=z0.dtype).reshape(-1, 1)  # (n, 1)
    n0, n1 = z0.norm(), z1.norm()
    if n0 < eps or n1 < eps:
        return lerp(z0, z1, t)
    cos_omega = torch.clamp(torch.dot(z0, z1) / (n0 * n1), -1.0, 1.0)
    omega = torch.arccos(cos_omega)
    sin_omega = torch.sin(omega)
    if sin_omega < 1e-4:
        return lerp(z0, z1, t)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / sin_omega


def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int, method: str = "linear") -> torch.Tensor:
    """n codes from z0 to z1 inclusive; method 'linear' or 'spherical'. (n, latent)."""
    t = torch.linspace(0.0, 1.0, int(n), dtype=z0.dtype)
    if method == "linear":
        return lerp(z0, z1, t)
    if method == "spherical":
        return slerp(z0, z1, t)
    raise ValueError(f"unknown interpolation {method!r}; use 'linear' or 'spherical'")


def tile_images(images: torch.Tensor | np.ndarray, gap: int = 1, fill: float = 0.0) -> np.ndarray:
    """(rows, cols, 784) or (rows, cols, 28, 28) digits -> one (rows·29 − 1, cols·29 − 1) float32 array,
    row r at the top; gaps of `gap` pixels filled with `fill`. Any square side works (side² pixels)."""
    a = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    rows, cols = a.shape[:2]
    side = a.shape[2] if a.ndim == 4 else image_side(a.shape[2])
    a = a.reshape(rows, cols, side, side).astype(np.float32, copy=False)
    step = side + gap
    out = np.full((rows * step - gap, cols * step - gap), fill, dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            out[r * step : r * step + side, c * step : c * step + side] = a[r, c]
    return out
