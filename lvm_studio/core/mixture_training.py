"""Training a mixture-prior VAE as VaDE does (Jiang et al. 2017, §3.3 and §4.1), in core.Trainer:

1. pre-training as an autoencoder: the loss is −log p(x | z = μ_φ(x)), no prior, no sampling;
2. the prior initialised by the project's own EM (core/gmm.py, diagonal covariances, k-means++
   seeds, the best of a few restarts by log-likelihood) on the codes μ_φ(x) of the training images;
3. joint training of the ELBO with the mixture prior's closed-form KL (core/mixture_prior.py).

Labels play no part in any of this: they only score (core.mixture_prior.cluster_scores).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


@torch.no_grad()
def init_prior_by_em(
    model, x: torch.Tensor, seed: int = 0, restarts: int = 10, max_iter: int = 300, tol: float = 1e-5
) -> PriorInit:
    """Fit a diagonal Gaussian mixture to the codes μ_φ(x) by EM and copy it into model.mixture.

    EM in float64 (PRML §9.2.2); `restarts` k-means++ seeds (seed, seed + 1, ...), the one with the
    highest log-likelihood kept, as scikit-learn's n_init.
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
    for r in range(max(1, restarts)):
        gmm = GaussianMixture(
            GMMConfig(n_components=mixture.n_components, covariance="diag", ridge=1e-6, seed=seed + r)
        )
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
