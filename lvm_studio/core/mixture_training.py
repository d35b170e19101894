"""Training a mixture-prior VAE as VaDE does (Jiang et al. 2017, §3.3 and §4.1), in core.Trainer:

1. pre-training as an autoencoder: the loss is −log p(x | z = μ_φ(x)), no prior, no sampling;
   optionally (TrainConfig.pretrain_augment) on randomly shifted and rotated digits, as DEC-DA
   pre-trains its autoencoder (Guo et al. 2018, "Deep Embedded Clustering with Data Augmentation":
   shifts of up to 10 % of the side, rotations of up to 10°): a digit moved by two pixels is the
   same digit, so codes that ignore the move cluster by shape (no labels: the prior knowledge is
   the invariance);
2. the prior initialised by the project's own EM (core/gmm.py, diagonal covariances, k-means++
   seeds, the best of a few restarts by log-likelihood) on the codes μ_φ(x) of the training images;
   for a prior with equal weights (weight_floor = 1) EM fits that model: π stays 1/K and the
   M-step updates μ and σ² only (PRML §9.2.2; each M-step still raises the likelihood);
3. joint training of the ELBO with the mixture prior's closed-form KL (core/mixture_prior.py).

Labels play no part in any of this: they only score (core.mixture_prior.cluster_scores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lvm_studio.core.gmm import GaussianMixture, GMMConfig


def autoencoder_loss(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """VaDE's pre-training: (loss, elbo, recon, kl), each a 0-d per-image average, loss = −log p(x | μ_φ(x)).

    The ELBO and KL are reported (with the prior as it stands) so that the curves keep their meaning.
    """
    z_loc, z_scale = model.encode(x)  # (b, latent)
    recon = model.log_px_given_z(x, z_loc)  # (b,)
    with torch.no_grad():
        kl = model.kl_to_prior(z_loc, z_scale)  # (b,)
    return -recon.mean(), (recon - kl).mean().detach(), recon.mean().detach(), kl.mean()


MAX_SHIFT = 0.1  # of the image side (DEC-DA, Guo et al. 2018: Keras width/height_shift_range=0.1)
MAX_ROTATION_DEG = 10.0  # DEC-DA's rotation_range=10


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Output pixel p of each square image reads the input at θ (p, 1) (affine_grid's coordinates:
    the side spans 2, pixel centres at (2i + 1)/side − 1, align_corners=False); bilinear, zeros
    outside. x (b, side²), θ (b, 2, 3) -> (b, side²)."""
    b, n = x.shape
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"augmentation needs square images, got {n} pixels")
    grid = F.affine_grid(theta, (b, 1, side, side), align_corners=False)  # (b, side, side, 2)
    out = F.grid_sample(x.view(b, 1, side, side), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(b, n).clamp(0.0, 1.0)  # (b, side²)


def _theta(angle: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """θ = (R(angle) | t): (b,) and (b, 2) -> (b, 2, 3)."""
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([torch.stack([cos, -sin, t[:, 0]], -1), torch.stack([sin, cos, t[:, 1]], -1)], 1)


def affine(x: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Square images (b, side²) rotated by `angle` (b,) radians about their centre (clockwise on the
    screen, where y points down), then moved by `shift` (b, 2) pixels (x to the right, y down).

    The output point p reads the input at R(−a)(p − s) with s = 2·shift/side in affine_grid's
    coordinates, θ = (R(−a) | −R(−a) s).
    """
    side = math.isqrt(x.shape[1])
    s = 2.0 * shift / side  # (b, 2)
    cos, sin = angle.cos(), angle.sin()
    t = -torch.stack([cos * s[:, 0] + sin * s[:, 1], -sin * s[:, 0] + cos * s[:, 1]], -1)  # (b, 2) −R(−a) s
    return _warp(x, _theta(-angle, t))


def augment(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    max_shift: float = MAX_SHIFT,
    max_rotation_deg: float = MAX_ROTATION_DEG,
) -> torch.Tensor:
    """Each square image moved by up to ±max_shift of its side along each axis, then turned about
    its centre by up to ±max_rotation_deg, uniformly and independently per image (DEC-DA's
    pre-training): (b, side²) -> (b, side²).

    With u ~ U(−1, 1)³ the output point p reads the input at R(a) p + t, a = u₀·max_rotation,
    t = 2·max_shift·(u₁, u₂): the content at q goes to R(−a)(q − t), a move by −t·side/2 pixels
    and then a turn by −a, which are distributed as a move by +t·side/2 and a turn by +a.
    """
    b = x.shape[0]
    u = torch.rand((b, 3), generator=generator, device=x.device, dtype=x.dtype) * 2 - 1  # (b, 3) in [-1, 1]
    angle = u[:, 0] * math.radians(max_rotation_deg)  # (b,)
    return _warp(x, _theta(angle, 2 * max_shift * u[:, 1:]))


@dataclass(frozen=True)
class PriorInit:
    """What the EM initialisation of the prior found (no labels involved)."""

    n: int  # codes fitted
    log_likelihood: float  # mean log p(z) of the codes under the fitted mixture, nats per code
    n_iter: int  # EM iterations of the best restart
    restarts: int
    weights: tuple[float, ...]  # π after the floor


@torch.no_grad()
def encode_means(model, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """μ_φ(x) for every row, (N, latent)."""
    return torch.cat([model.encode(x[s : s + batch_size])[0] for s in range(0, x.shape[0], batch_size)])


class EqualWeightsGaussianMixture(GaussianMixture):
    """A Gaussian mixture with π fixed at 1/K: EM's M-step for μ and Σ (which do not depend on π),
    then π reset to 1/K. The model the mixture prior is when weight_floor = 1."""

    def m_step(self, x, log_resp) -> GaussianMixture:
        super().m_step(x, log_resp)
        self.weights = torch.full_like(self.weights, 1.0 / self.n_components)  # (K,)
        self._update_cache()
        return self


@torch.no_grad()
def init_prior_by_em(
    model, x: torch.Tensor, seed: int = 0, restarts: int = 10, max_iter: int = 300, tol: float = 1e-5
) -> PriorInit:
    """Fit a diagonal Gaussian mixture to the codes μ_φ(x) by EM and copy it into model.mixture.

    EM in float64 (PRML §9.2.2); `restarts` k-means++ seeds (seed, seed + 1, ...), the one with the
    highest log-likelihood kept, as scikit-learn's n_init. A prior with equal weights
    (weight_floor = 1) is fitted as such (EqualWeightsGaussianMixture).
    """
    mixture = model.mixture
    if mixture is None:
        raise ValueError("the model has no mixture prior to initialise")
    was_training = model.training
    model.eval()
    try:
        codes = encode_means(model, x).to("cpu", torch.float64)  # (N, latent)
    finally:
        model.train(was_training)
    best: tuple[float, GaussianMixture] | None = None
    mixture_class = EqualWeightsGaussianMixture if mixture.weight_floor >= 1.0 else GaussianMixture
    for r in range(max(1, restarts)):
        gmm = mixture_class(GMMConfig(n_components=mixture.n_components, covariance="diag", ridge=1e-6, seed=seed + r))
        trace = gmm.fit(codes, max_iter=max_iter, tol=tol)
        if best is None or trace[-1] > best[0]:
            best = (trace[-1], gmm)
    ll, gmm = best
    p = gmm.get_parameters()
    mixture.set_parameters(p.weights, p.means, p.covariances)
    return PriorInit(
        n=codes.shape[0],
        log_likelihood=float(ll),
        n_iter=gmm.n_iter,
        restarts=max(1, restarts),
        weights=tuple(float(w) for w in mixture.log_pi().exp()),
    )
