"""A Gaussian-mixture prior for the VAE: the lecture's two latent variable models in one.

    c ~ Cat(π),  z | c ~ N(μ_c, diag σ_c²),  x | z ~ p_θ(x | z)        (Jiang et al. 2017, VaDE, §3.1)
    log p(z) = logsumexp_c [log π_c + log N(z; μ_c, diag σ_c²)]          (Bishop, PRML 2006, eq. 9.7)
    p(c | z) = π_c N(z; μ_c, σ_c²) / Σ_c' π_c' N(z; μ_c', σ_c'²)          (Bayes' rule, PRML eq. 9.13)

q(c | x) is taken as p(c | z) as in VaDE (Jiang et al. 2017, eq. 16), here evaluated at the
encoder's mean z = μ_φ(x): q(c | x) is then a deterministic function of x, the same one that
clusters a digit, and the ELBO's KL term has no sampling noise. Any q(c | x) gives a lower bound
on log p(x), so the ELBO stays a bound (it sits below the ELBO with the marginal prior by
E_q[KL(q(c|x) ‖ p(c|z))]); the importance-sampled log p(x) uses the marginal log p(z) above.

Collapse guard: a floor on the mixing weights, π_c = f/K + (1 − f) softmax(ℓ)_c with f =
`weight_floor` (0.25 by default, so every π_c ≥ 0.025 for K = 10). A component whose weight
heads for zero keeps a prior mass that still pulls codes near it, and log π_c stays finite;
σ_c ≥ min_scale keeps a component from shrinking onto one code. f = 1 fixes π_c = 1/K: the
prior then says the clusters are of equal size (MNIST's ten digits are each 9–11 % of the
data), and neither EM (core/mixture_training.py) nor the joint training may trade a small
cluster's weight for a second component on a large one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def _inverse_softplus(y: float) -> float:
    return math.log(math.expm1(y))


class MixturePrior(nn.Module):
    """p(z) = Σ_c π_c N(z; μ_c, diag σ_c²) with learnable π (through logits), μ_c and σ_c."""

    def __init__(self, n_components: int, latent_dim: int, min_scale: float = 1e-3, weight_floor: float = 0.25):
        super().__init__()
        if n_components < 1:
            raise ValueError(f"a mixture prior needs at least one component, got {n_components}")
        if not 0.0 <= weight_floor <= 1.0:
            raise ValueError(f"weight_floor must lie in [0, 1], got {weight_floor}")
        self.n_components = int(n_components)
        self.min_scale = float(min_scale)
        self.weight_floor = float(weight_floor)
        self.logits = nn.Parameter(torch.zeros(n_components))  # (K,)
        # spread means so that an untrained model's components differ; EM replaces them before training
        g = torch.Generator().manual_seed(0)
        self.loc = nn.Parameter(torch.randn(n_components, latent_dim, generator=g))  # (K, D)
        self.scale_raw = nn.Parameter(torch.full((n_components, latent_dim), _inverse_softplus(1.0 - min_scale)))

    # --- parameters --------------------------------------------------------------------
    def log_pi(self) -> torch.Tensor:
        """log π_c with the floor: π = f/K + (1 − f) softmax(ℓ), (K,); f = 1: log(1/K), ℓ unused."""
        k, f = self.n_components, self.weight_floor
        if f == 0.0:
            return F.log_softmax(self.logits, -1)
        if f == 1.0:  # equal weights: no gradient reaches ℓ
            return torch.full_like(self.logits, -math.log(k))
        return torch.log(f / k + (1.0 - f) * F.softmax(self.logits, -1))

    def scale(self) -> torch.Tensor:
        """σ_c = softplus(raw) + min_scale, (K, D)."""
        return F.softplus(self.scale_raw) + self.min_scale

    @torch.no_grad()
    def set_parameters(self, weights: torch.Tensor, loc: torch.Tensor, variances: torch.Tensor) -> None:
        """Take π (K,), μ (K, D) and diagonal variances σ² (K, D), e.g. from an EM fit.

        π is first raised to the floor (then renormalised) so that it can be represented; σ to min_scale.
        With weight_floor = 1, π stays 1/K whatever is given.
        """
        k, f = self.n_components, self.weight_floor
        if f == 1.0:
            self.logits.zero_()
        w = weights.to(self.logits).clamp_min(0)
        w = w / w.sum()
        w = torch.maximum(w, torch.full_like(w, f / k + 1e-6))
        w = w / w.sum()
        if f < 1.0:
            soft = ((w - f / k) / (1.0 - f)).clamp_min(1e-12)  # softmax(ℓ) that gives w
            self.logits.copy_(soft.log() - soft.log().mean())
        self.loc.copy_(loc.to(self.loc))
        s = variances.to(self.loc).clamp_min(0).sqrt() - self.min_scale
        s = s.clamp_min(1e-4)
        self.scale_raw.copy_(s + torch.log(-torch.expm1(-s)))  # inverse softplus, stable for large s

    # --- densities ---------------------------------------------------------------------
    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """log π_c + log N(z; μ_c, diag σ_c²) for every component: z (..., D) -> (..., K)."""
        scale = self.scale()  # (K, D)
        d = (z.unsqueeze(-2) - self.loc) / scale  # (..., K, D)
        log_n = -0.5 * d.square().sum(-1) - scale.log().sum(-1) - 0.5 * z.shape[-1] * LOG_2PI  # (..., K)
        return log_n + self.log_pi()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = logsumexp_c [log π_c + log N(z; μ_c, σ_c²)] (PRML eq. 9.7): (..., D) -> (...)."""
        return torch.logsumexp(self.log_joint(z), -1)

    def log_resp(self, z: torch.Tensor) -> torch.Tensor:
        """log p(c | z) by Bayes' rule (PRML eq. 9.13): (..., D) -> (..., K), rows sum to one in exp."""
        return torch.log_softmax(self.log_joint(z), -1)

    def sample(
        self, shape: tuple[int, ...], generator: torch.Generator | None = None, component: int | None = None
    ) -> torch.Tensor:
        """z ~ p(z) (c ~ Cat(π), then z ~ N(μ_c, σ_c²)), or z ~ p(z | c = component): (*shape, D)."""
        n = math.prod(shape)
        ref = self.loc
        if component is None:
            pi = self.log_pi().exp()  # (K,)
            c = torch.multinomial(pi.to(ref.device), n, replacement=True, generator=generator)  # (n,)
        else:
            if not 0 <= component < self.n_components:
                raise ValueError(f"component must lie in [0, {self.n_components}), got {component}")
            c = torch.full((n,), int(component), device=ref.device, dtype=torch.long)
        eps = torch.randn((n, ref.shape[1]), generator=generator, device=ref.device, dtype=ref.dtype)
        z = self.loc[c] + self.scale()[c] * eps  # (n, D)
        return z.reshape(*shape, ref.shape[1])

    def kl(self, z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) q(c|x) ‖ p(z, c)) in closed form, q(c|x) = p(c | z_loc); (batch,).

        = Σ_c γ_c KL(N(μ̃, σ̃²) ‖ N(μ_c, σ_c²)) + Σ_c γ_c log(γ_c / π_c): the negative of
        Jiang et al. 2017, eq. 12 without its reconstruction term (the ½ log 2π's cancel).
        """
        log_gamma = self.log_resp(z_loc)  # (batch, K) log q(c|x)
        gamma = log_gamma.exp()  # (batch, K)
        return (gamma * self.component_kl(z_loc, z_scale)).sum(-1) + (gamma * (log_gamma - self.log_pi())).sum(-1)

    def component_kl(self, z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
        """KL(N(μ̃, diag σ̃²) ‖ N(μ_c, diag σ_c²)) for every component (Jiang et al. 2017, eq. 12's
        Gaussian terms): (batch, D) each -> (batch, K)."""
        var_c = self.scale().square()  # (K, D)
        var_q = z_scale.square().unsqueeze(-2)  # (batch, 1, D)
        diff2 = (z_loc.unsqueeze(-2) - self.loc).square()  # (batch, K, D)
        return 0.5 * (var_c.log() - var_q.log() + (var_q + diff2) / var_c - 1.0).sum(-1)  # (batch, K)


@dataclass(frozen=True)
class ClusterScores:
    """Clustering of labelled digits by the model's own q(c | x): labels only score."""

    accuracy: float  # Hungarian-matched accuracy
    nmi: float  # normalised mutual information
    n: int
    assignments: torch.Tensor  # (n,) argmax_c q(c|x), int64 on the CPU


@torch.no_grad()
def cluster_probs(model, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """q(c | x) = p(c | z = μ_φ(x)) for a mixture-prior model, (N, K) on the CPU."""
    mixture = getattr(model, "mixture", None)
    if mixture is None:
        raise ValueError("the model has no mixture prior")
    out = []
    for start in range(0, x.shape[0], batch_size):
        z_loc, _ = model.encode(x[start : start + batch_size])  # (b, D)
        out.append(mixture.log_resp(z_loc).exp().cpu())  # (b, K)
    return torch.cat(out)


@torch.no_grad()
def responsibilities_at(model, codes) -> np.ndarray:
    """p(c | z) at given codes (N, latent), e.g. the latent map's μ(x): (N, K) numpy float32."""
    mixture = model.mixture
    z = torch.as_tensor(codes).to(mixture.loc)  # (N, latent)
    return mixture.log_resp(z).exp().cpu().numpy()


@torch.no_grad()
def cluster_scores(model, x: torch.Tensor, labels) -> ClusterScores:
    """Hungarian accuracy and NMI of argmax_c q(c | x) against the labels (which never train)."""
    from lvm_studio.core.clustering import hungarian_accuracy, normalized_mutual_info

    was_training = model.training
    model.eval()
    try:
        assignments = cluster_probs(model, x).argmax(1)  # (N,)
    finally:
        model.train(was_training)
    labels = torch.as_tensor(labels).reshape(-1)[: len(assignments)]
    return ClusterScores(
        accuracy=hungarian_accuracy(labels, assignments),
        nmi=normalized_mutual_info(labels, assignments),
        n=len(assignments),
        assignments=assignments,
    )
