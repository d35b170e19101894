"""Mixture of Bernoulli distributions fitted by EM, for binary images (N, 784).

    p(x) = Σ_k π_k Π_d μ_kd^x_d (1 − μ_kd)^(1 − x_d)            (Bishop, PRML 2006, eqs. 9.44–9.47)

The M-step is the MAP estimate under a Beta(1 + a, 1 + a) prior on every pixel probability
(a = ``smoothing`` pseudo-counts on each side; a = 1 is Laplace's rule of succession), so
μ_kd ∈ (0, 1) and log 0 never happens, and under an optional symmetric Dirichlet(1 + b) prior
on π (b = ``weight_smoothing``). EM then never decreases the log posterior
Σ_n log p(x_n) + log p(μ) + log p(π) (``log_prior``); the log-likelihood itself rises in
practice, but the prior is what the theory guarantees. Log-likelihoods are means over
images, in nats per image; ``log_prob`` is the exact per-image log p(x).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from lvm_studio.core.em import MixtureModel, as_tensor, kmeans_plusplus_indices

BERNOULLI_INIT_METHODS = ("kmeans++", "random")


@dataclass
class BernoulliMixtureConfig:
    n_components: int = 10  # K
    smoothing: float = 1.0  # Beta pseudo-counts a added to the ones and the zeros of each pixel; > 0
    weight_smoothing: float = 0.0  # Dirichlet pseudo-counts b added to each component's count
    init: str = "kmeans++"  # 'kmeans++': seed images, blended with the mean image; 'random': μ ~ U(0.25, 0.75)
    seed: int = 0  # seeds the initialisation's torch.Generator

    def __post_init__(self):
        if int(self.n_components) < 1:
            raise ValueError("n_components must be at least 1")
        if not self.smoothing > 0:
            raise ValueError("smoothing must be positive (it keeps log μ and log(1 − μ) finite)")
        if self.weight_smoothing < 0:
            raise ValueError("weight_smoothing must be non-negative")
        if self.init not in BERNOULLI_INIT_METHODS:
            raise ValueError(f"init must be one of {BERNOULLI_INIT_METHODS}, not {self.init!r}")


class BernoulliMixture(MixtureModel):
    """K-component Bernoulli mixture; parameters weights π (K,) and probs μ (K, D).

    dtype: taken from float data, float32 for integer or bool images (log p(x) of an MNIST
    digit is a few hundred nats; float32 keeps it to ~1e-4), unless given here.
    Not thread-safe: a worker owns the model it fits; others use ``copy()``.
    """

    location = "probs"
    integer_dtype = torch.float32
    unit = "pixels"

    def __init__(self, config: BernoulliMixtureConfig | None = None, *, device=None, dtype: torch.dtype | None = None):
        super().__init__(config if config is not None else BernoulliMixtureConfig(), device=device, dtype=dtype)
        self.probs: torch.Tensor | None = None

    # --- parameters ----------------------------------------------------------------------

    def set_parameters(self, weights, probs) -> BernoulliMixture:
        """Set π (K,) (renormalised) and μ (K, D), every μ_kd strictly inside (0, 1)."""
        probs = self._adopt(probs)
        weights = as_tensor(weights).to(device=self.device, dtype=self.dtype).reshape(-1)
        if probs.dim() != 2 or probs.shape[0] != self.n_components:
            raise ValueError(f"probs must be (K, D) with K = {self.n_components}")
        if bool(((probs <= 0) | (probs >= 1)).any()):
            raise ValueError("pixel probabilities must lie strictly between 0 and 1")
        if weights.shape != (self.n_components,) or bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError("weights must be K non-negative numbers with a positive sum")
        self.weights = weights / weights.sum()
        self.probs = probs.clone()
        return self

    def copy(self) -> BernoulliMixture:
        other = BernoulliMixture(replace(self.config), device=self.device, dtype=self.dtype)
        if self.is_initialized:
            other.weights, other.probs = self.weights.clone(), self.probs.clone()
        return other

    @torch.no_grad()
    def initialize(self, x) -> BernoulliMixture:
        """Uniform weights; μ from config.init, deterministic under config.seed.

        'kmeans++': K seed images chosen by k-means++ (Arthur & Vassilvitskii 2007), each
        averaged half-and-half with the mean image so that no μ_kd starts at 0 or 1.
        'random': μ_kd ~ U(0.25, 0.75) (Bishop, PRML §9.3.3).
        """
        x = self._as_data(x)
        n, d = x.shape
        k = self.n_components
        generator = torch.Generator().manual_seed(int(self.config.seed))
        if self.config.init == "kmeans++":
            if n < k:
                raise ValueError(f"cannot seed {k} components from {n} images")
            index = kmeans_plusplus_indices(x, k, generator).to(self.device)
            a = self.config.smoothing
            mean_image = (x.sum(0) + a) / (n + 2 * a)  # (D,) smoothed, strictly inside (0, 1)
            probs = 0.5 * x[index] + 0.5 * mean_image  # (K, D)
            probs = probs.clamp(0.5 * mean_image.min(), 1 - 0.5 * (1 - mean_image.max()))
        else:
            probs = 0.25 + 0.5 * torch.rand(k, d, generator=generator, dtype=torch.float64)
            probs = probs.to(device=self.device, dtype=self.dtype)  # (K, D)
        self.weights = torch.full((k,), 1.0 / k, device=self.device, dtype=self.dtype)
        self.probs = probs
        self.n_iter, self.converged = 0, False
        return self

    # --- EM ----------------------------------------------------------------------------

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log π_k + Σ_d [x_d log μ_kd + (1 − x_d) log(1 − μ_kd)], (N, K), as one product:
        x (log μ − log(1 − μ))ᵀ + Σ_d log(1 − μ_kd)  (PRML eq. 9.47 inside the log)."""
        log_mu = self.probs.log()  # (K, D)
        log_1m_mu = torch.log1p(-self.probs)  # (K, D)
        return torch.addmm(log_1m_mu.sum(1) + self.weights.log(), x, (log_mu - log_1m_mu).T)  # (N, K)

    @torch.no_grad()
    def e_step(self, x):
        """log γ_nk = log p(z = k | x_n) (PRML eq. 9.56), and the mean log-likelihood
        (nats per image) of the current parameters. Returns (log_resp (N, K), float)."""
        self._require_init()
        x = self._as_data(x)
        log_joint = self._log_joint(x)  # (N, K)
        log_px = torch.logsumexp(log_joint, 1)  # (N,)
        return log_joint - log_px.unsqueeze(1), float(log_px.sum(dtype=torch.float64)) / x.shape[0]

    @torch.no_grad()
    def m_step(self, x, log_resp) -> BernoulliMixture:
        """MAP M-step (PRML eqs. 9.57–9.60 with Beta and Dirichlet pseudo-counts):
        μ_kd = (Σ_n γ_nk x_nd + a) / (N_k + 2a),  π_k = (N_k + b) / (N + K b)."""
        self._require_init()
        x = self._as_data(x)
        resp = as_tensor(log_resp).to(device=self.device, dtype=self.dtype).exp()  # (N, K)
        if tuple(resp.shape) != (x.shape[0], self.n_components):
            raise ValueError(f"log_resp must be {(x.shape[0], self.n_components)}, got {tuple(resp.shape)}")
        a, b = self.config.smoothing, self.config.weight_smoothing
        nk = resp.sum(0)  # (K,)
        ones = resp.T @ x  # (K, D) Σ_n γ_nk x_nd
        self.probs = (ones + a) / (nk.unsqueeze(1) + 2 * a)  # (K, D), in (0, 1) for a > 0
        self.weights = (nk + b) / (nk.sum() + self.n_components * b)  # (K,)
        return self

    def log_prior(self) -> float:
        """log p(μ) + log p(π) up to constants: Σ_kd a [log μ_kd + log(1 − μ_kd)] + b Σ_k log π_k.

        EM is monotone in (N · mean log-likelihood + log_prior()); with a → 0, b = 0 it is ML.
        """
        self._require_init()
        a, b = self.config.smoothing, self.config.weight_smoothing
        value = a * float((self.probs.log() + torch.log1p(-self.probs)).sum(dtype=torch.float64))
        if b > 0:
            value += b * float(self.weights.log().sum(dtype=torch.float64))
        return value

    @torch.no_grad()
    def log_prob(self, x) -> torch.Tensor:
        """Exact log p(x_n) = logsumexp_k [log π_k + log p(x_n | z = k)], nats per image, (N,)."""
        self._require_init()
        return torch.logsumexp(self._log_joint(self._as_data(x)), 1)

    @torch.no_grad()
    def responsibilities(self, x) -> torch.Tensor:
        """γ_nk = p(z = k | x_n), (N, K)."""
        return self.e_step(x)[0].exp()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None):
        """z ~ Cat(π), x_d | z ~ Bernoulli(μ_zd). Returns (x (n, D) in {0, 1}, z (n,) int64)."""
        self._require_init()
        z = torch.multinomial(self.weights, int(n), replacement=True, generator=generator)  # (n,)
        x = torch.bernoulli(self.probs[z], generator=generator)  # (n, D)
        return x, z
