"""Joints over complete binary images, for the lecture's example where the hidden pixels are the latents.

The lecture's closing example (issue 15) hides part of a digit and treats the missing pixels x_m
themselves as the latent variable z; the observed pixels x_o are the data. All it needs of the
model is the joint p(x) = p(x_o, x_m) of a complete binary image, "e.g. PixelCNN". A
``PixelJoint`` offers:

    n_pixels                      D
    log_prob(x)                   exact log p(x), x (batch, D) in {0, 1} → (batch,)
    name                          for labels

Two joints implement it:

* ``MixtureJoint``: the project's mixture of Bernoullis (core/bernoulli_mixture.py),
  p(x) = Σ_k π_k Π_d μ_kd^x_d (1 − μ_kd)^(1−x_d) (Bishop, PRML eq. 9.47). Given the component the
  pixels are independent, so any marginal is exact: log p(x_o) = logsumexp_k [log π_k +
  Σ_{d∈o} log p(x_d | k)], and so are p(k | x_o), the posterior marginals
  p(x_i = 1 | x_o) = Σ_k p(k | x_o) μ_ki and exact samples of p(x_m | x_o).
* ``core.made.MADE``: an autoregressive joint with exact log p(x) whose log p(x_o) is not
  tractable when the hidden pixels come first in its order.

Masks follow core.masks: True = MISSING. Here they are flat boolean tensors (D,).
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch

from lvm_studio.core.bernoulli_mixture import BernoulliMixture


@runtime_checkable
class PixelJoint(Protocol):
    @property
    def n_pixels(self) -> int: ...

    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...


def joint_name(joint) -> str:
    if isinstance(joint, MixtureJoint):
        return f"Bernoulli mixture (K = {joint.n_components})"
    config = getattr(joint, "config", None)
    return config.describe() if config is not None and hasattr(config, "describe") else type(joint).__name__


def is_exact(joint) -> bool:
    """True when log p(x_o), the posterior marginals and p(x_m | x_o) are exact (the mixture)."""
    return isinstance(joint, MixtureJoint)


class MixtureJoint:
    """A fitted BernoulliMixture as a PixelJoint, with its exact marginals. Parameters are copied
    (float64, CPU), so a fit that goes on elsewhere never changes this joint."""

    def __init__(self, weights: torch.Tensor, probs: torch.Tensor):
        probs = torch.as_tensor(probs).detach().to("cpu", torch.float64)  # (K, D)
        weights = torch.as_tensor(weights).detach().to("cpu", torch.float64).reshape(-1)  # (K,)
        if probs.dim() != 2 or weights.shape != (probs.shape[0],):
            raise ValueError("a mixture joint needs weights (K,) and probs (K, D)")
        if bool(((probs <= 0) | (probs >= 1)).any()):
            raise ValueError("pixel probabilities must lie strictly between 0 and 1")
        self.log_pi = (weights / weights.sum()).log()  # (K,)
        self.log_mu = probs.log()  # (K, D)
        self.log_1m_mu = torch.log1p(-probs)  # (K, D)
        self.probs = probs

    @classmethod
    def from_mixture(cls, mixture: BernoulliMixture) -> MixtureJoint:
        if not mixture.is_initialized:
            raise ValueError("the mixture has no parameters yet (fit it first)")
        return cls(mixture.weights, mixture.probs)

    @property
    def n_pixels(self) -> int:
        return int(self.probs.shape[1])

    @property
    def n_components(self) -> int:
        return int(self.probs.shape[0])

    def _log_lik_pixels(self, x: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """Σ_{d ∈ pixels} log p(x_d | k), (batch, K), for x (batch, |pixels|) (all pixels when None)."""
        log_mu = self.log_mu if pixels is None else self.log_mu[:, pixels]  # (K, P)
        log_1m = self.log_1m_mu if pixels is None else self.log_1m_mu[:, pixels]  # (K, P)
        x = x.to(torch.float64)
        return x @ (log_mu - log_1m).T + log_1m.sum(1)  # (batch, K)  PRML eq. 9.47 inside the log

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x), (batch, D) → (batch,)."""
        return torch.logsumexp(self._log_lik_pixels(x) + self.log_pi, 1).to(x.dtype)

    def log_prob_completions(self, x: torch.Tensor, missing: torch.Tensor, x_m: torch.Tensor) -> torch.Tensor:
        """log p(x_o, x_m) for many completions x_m (k, M) of one image x (D,), (k,), or of each of
        the images x (n, D) with the same mask, (k, n): the observed pixels' part is computed once
        (the fast path of pixel_inference.log_joint)."""
        observed = ~missing
        log_o = self._log_lik_pixels(x.reshape(-1, self.n_pixels)[:, observed], observed)  # (n, K)
        log_m = self._log_lik_pixels(x_m, missing)  # (k, K)
        lp = torch.logsumexp(log_o[None] + log_m[:, None] + self.log_pi, -1)  # (k, n)
        return lp[:, 0] if x.dim() == 1 else lp

    def log_responsibilities_observed(self, x: torch.Tensor, missing: torch.Tensor) -> tuple[torch.Tensor, float]:
        """log p(k | x_o) (K,) and log p(x_o) for one image x (D,): the missing pixels marginalise
        out exactly because, given k, they are independent of the rest."""
        observed = ~missing
        log_joint = self._log_lik_pixels(x[observed][None], observed)[0] + self.log_pi  # (K,)
        log_px_o = torch.logsumexp(log_joint, 0)
        return log_joint - log_px_o, float(log_px_o)

    def log_marginal(self, x: torch.Tensor, missing: torch.Tensor) -> float:
        """Exact log p(x_o) = logsumexp_k [log π_k + Σ_{d∈o} log p(x_d | k)] for one image (D,)."""
        return self.log_responsibilities_observed(x, missing)[1]

    def posterior_marginals(self, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        """p(x_i = 1 | x_o) = Σ_k p(k | x_o) μ_ki for the missing pixels, (M,)."""
        log_r, _ = self.log_responsibilities_observed(x, missing)
        return log_r.exp() @ self.probs[:, missing]  # (M,)

    def sample_conditional(
        self, x: torch.Tensor, missing: torch.Tensor, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Exact samples x_m ~ p(x_m | x_o): k ~ p(k | x_o), then x_m ~ Π Bernoulli(μ_k,m); (n, M)."""
        log_r, _ = self.log_responsibilities_observed(x, missing)
        k = torch.multinomial(log_r.exp(), int(n), replacement=True, generator=generator)  # (n,)
        return torch.bernoulli(self.probs[k][:, missing], generator=generator).to(x.dtype)  # (n, M)


@torch.no_grad()
def tiny_log_normaliser(joint: PixelJoint) -> float:
    """log Σ_x p(x) over all 2^D images, for tiny D (a test of a joint's normalisation)."""
    d = joint.n_pixels
    if d > 20:
        raise ValueError(f"{d} pixels: 2^{d} images are too many to enumerate")
    x = all_binary(d)  # (2^D, D)
    return float(torch.logsumexp(joint.log_prob(x).to(torch.float64), 0))


def all_binary(m: int, dtype=torch.float32) -> torch.Tensor:
    """Every binary vector of length m, (2^m, m), in counting order."""
    if m == 0:
        return torch.zeros(1, 0, dtype=dtype)
    bits = torch.arange(2**m)[:, None] >> torch.arange(m - 1, -1, -1)[None, :]  # (2^m, m)
    return (bits & 1).to(dtype)


LOG2 = math.log(2.0)
