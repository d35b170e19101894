"""A linear-Gaussian latent variable model whose log p(x) is known in closed form.

p(z) = N(0, I), p(x|z) = N(W z + b, σ² I). Then p(x) = N(b, W Wᵀ + σ² I) and the exact
posterior is p(z|x) = N(M⁻¹ Wᵀ (x − b) / σ², M⁻¹) with M = I + Wᵀ W / σ² (Bishop, PRML §12.2).
It implements core.model.LatentVariableModel, like the VAE, so every estimator can be checked against it.
"""

from __future__ import annotations

import math

import torch

from lvm_studio.core.estimators import LOG_2PI
from lvm_studio.core.model import StandardNormalPrior


class LinearGaussian(StandardNormalPrior):
    def __init__(
        self,
        W: torch.Tensor,
        b: torch.Tensor,
        noise_scale: float,
        posterior_loc_shift: float = 0.0,
        posterior_scale_factor: float = 1.0,
    ):
        self.W = W  # (D, latent)
        self.b = b  # (D,)
        self.noise_scale = float(noise_scale)
        self.latent_dim = W.shape[1]
        # q(z|x) is the exact posterior's mean and marginal scales, optionally perturbed so
        # that q ≠ p(z|x) and the bounds are strict.
        self.posterior_loc_shift = posterior_loc_shift
        self.posterior_scale_factor = posterior_scale_factor

    @classmethod
    def random(
        cls, x_dim: int = 5, latent_dim: int = 2, noise_scale: float = 0.5, seed: int = 0, dtype=torch.float64, **kw
    ) -> LinearGaussian:
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(x_dim, latent_dim, generator=g, dtype=dtype)
        b = torch.randn(x_dim, generator=g, dtype=dtype)
        return cls(W, b, noise_scale, **kw)

    def prior_reference(self) -> torch.Tensor:
        return self.W

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.sample_prior((n,), generator)  # (n, latent)
        eps = torch.randn(n, self.W.shape[0], generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.b + self.noise_scale * eps  # (n, D)

    def exact_posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (batch, latent) and covariance (latent, latent) of p(z|x)."""
        s2 = self.noise_scale**2
        M = torch.eye(self.latent_dim, dtype=self.W.dtype) + self.W.T @ self.W / s2
        cov = torch.linalg.inv(M)
        loc = (x - self.b) @ self.W @ cov.T / s2  # (batch, latent)
        return loc, cov

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, cov = self.exact_posterior(x)
        scale = cov.diagonal().sqrt().expand_as(loc)
        return loc + self.posterior_loc_shift, scale * self.posterior_scale_factor

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z] = W z + b, (..., D)."""
        return z @ self.W.T + self.b

    def sample_x(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ N(W z + b, σ² I), (..., D): the missing coordinates' draw of a Gibbs sweep (core.mwg)."""
        mean = self.decode_mean(z)
        return mean + self.noise_scale * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; W z + b, σ² I), (..., batch) for z (..., batch, latent)."""
        return self.log_px_given_z_pixels(x, z).sum(-1)

    def log_px_given_z_pixels(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x_i; (W z + b)_i, σ²) per coordinate, (..., batch, D)."""
        mean = z @ self.W.T + self.b  # (..., batch, D)
        s = self.noise_scale
        return -0.5 * ((x - mean) / s) ** 2 - math.log(s) - 0.5 * LOG_2PI

    def exact_log_px(self, x: torch.Tensor) -> torch.Tensor:
        D = self.W.shape[0]
        cov = self.W @ self.W.T + self.noise_scale**2 * torch.eye(D, dtype=self.W.dtype)
        return torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x)
