"""The model protocol: what the estimators, the training loop and the evaluation need of a model.

This is the one written description of the protocol; other modules point here.

A latent variable model p(x, z) = p(x|z) p(z) with an amortised Gaussian q(z|x) is anything
that has these members (structural typing: no base class to inherit; `isinstance(m,
LatentVariableModel)` checks that the names exist):

    latent_dim                        the size of z
    encode(x) -> (z_loc, z_scale)     q(z|x) = N(z_loc, diag z_scale²); x (batch, D), each (batch, latent)
    log_px_given_z(x, z)              log p(x|z) summed over pixels; z (..., batch, latent) -> (..., batch)
    log_px_given_z_pixels(x, z)       the same per pixel, (..., batch, D): for the observed pixels only
    prior_log_prob(z)                 log p(z) summed over the latent dimensions; z (..., latent) -> (...)
    sample_prior(shape, generator)    z ~ p(z), (*shape, latent), on the model's device and dtype
    kl_to_prior(z_loc, z_scale)       KL(q(z|x) ‖ p(z)) for each row, (batch,): the ELBO's KL term

Every density keeps its normalising constants, so the estimators' numbers are real log-densities
in nats per image. The estimators (core/estimators.py) never assume a prior: the importance
weights go through `log_weights` (which calls prior_log_prob), naive Monte Carlo and exact grid
integrals through sample_prior and prior_log_prob, the ELBO through kl_to_prior.

The VAE (core/vae.py) and the linear-Gaussian model (core/linear_gaussian.py) take p(z) = N(0, I)
from StandardNormalPrior; the mixture-prior VAE (VAEConfig(prior="mixture")) gives its own prior
members from core/mixture_prior.py, its kl_to_prior VaDE's closed-form KL(q(z|x) q(c|x) ‖ p(z, c)),
an upper bound on KL(q(z|x) ‖ p(z)), so its ELBO stays a lower bound on log p(x).
See docs/architecture.md, "How to add a model".
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from lvm_studio.core.estimators import kl_normal_standard, log_standard_normal


@runtime_checkable
class LatentVariableModel(Protocol):
    latent_dim: int

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) = N(z_loc, diag z_scale²): x (batch, D) -> z_loc, z_scale, each (batch, latent)."""
        ...

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: x (batch, D), z (..., batch, latent) -> (..., batch)."""
        ...

    def log_px_given_z_pixels(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-pixel log p(x_i|z), (..., batch, D): for likelihoods of the observed pixels only."""
        ...

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over the latent dimensions: z (..., latent) -> (...)."""
        ...

    def sample_prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z), shape (*shape, latent), on the model's device and dtype."""
        ...

    def kl_to_prior(self, z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
        """KL(N(z_loc, diag z_scale²) ‖ p(z)) per row: (batch, latent) each -> (batch,)."""
        ...


class StandardNormalPrior:
    """p(z) = N(0, I): the prior half of the protocol for models that use it (the VAE, the
    linear-Gaussian model). The model gives `latent_dim` and `prior_reference()`, a tensor whose
    device and dtype the prior's samples take."""

    latent_dim: int

    def prior_reference(self) -> torch.Tensor:
        raise NotImplementedError

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) summed over the latent dimensions, (...) for z (..., latent)."""
        return log_standard_normal(z)

    def sample_prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), (*shape, latent), on the device and dtype of prior_reference()."""
        ref = self.prior_reference()
        return torch.randn((*shape, self.latent_dim), generator=generator, device=ref.device, dtype=ref.dtype)

    def kl_to_prior(self, z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
        """KL(N(μ, diag σ²) ‖ N(0, I)) in closed form (Kingma & Welling 2014, App. B), (batch,)."""
        return kl_normal_standard(z_loc, z_scale)
