"""A mixture-prior VAE's own clusters: what the digit clusters panel's "Model's prior" tab shows (no Qt).

For a model with a Gaussian-mixture prior (core/mixture_prior.py) there is nothing to fit: its
components are the clusters. The lecture's generative process, through a neural decoder:

    pick a component c (or draw c ~ Cat(π)),  z ~ N(μ_c, diag σ_c²),  x ~ p_θ(x | z)

prior_clusters_task: each component's mean decoded (E[x | z = μ_c]) and a few samples per
component, and the clustering of the test digits by q(c | x) = p(c | z = μ_φ(x)) scored against
the labels (Hungarian accuracy, NMI, confusion matrix; labels only score).
component_samples: n decoded samples of one chosen component.
Background tasks take a workers.tasks-style ctx (duck-typed: ctx.report, ctx.check).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lvm_studio.core.clustering import confusion_matrix, hungarian_accuracy, match_clusters, normalized_mutual_info
from lvm_studio.core.mixture_prior import cluster_probs

N_LABELS = 10


@dataclass(frozen=True)
class PriorClusters:
    k: int
    weights: np.ndarray  # (K,) π_c
    mean_images: np.ndarray  # (K, D_x) E[x | z = μ_c]
    sample_images: np.ndarray  # (K, S, D_x) E[x | z], z ~ N(μ_c, σ_c²)
    resp: np.ndarray  # (N, K) q(c | x) of the test digits
    assignments: np.ndarray  # (N,) argmax_c q(c | x)
    accuracy: float  # Hungarian, against the labels (nan without labels)
    nmi: float
    confusion: np.ndarray  # (N_LABELS, K) labels × components (empty without labels)
    mapping: dict  # component -> matched digit


def _require_mixture(model):
    if getattr(model, "mixture", None) is None:
        raise ValueError("this model has the standard normal prior: no components to show")
    return model.mixture


@torch.no_grad()
def component_samples(model, component: int, n: int, seed: int = 0) -> np.ndarray:
    """n digits from one component: z ~ N(μ_c, σ_c²), then E[x | z]; (n, D_x) in [0, 1]."""
    mixture = _require_mixture(model)
    g = torch.Generator(device=mixture.loc.device).manual_seed(int(seed))
    z = mixture.sample((int(n),), g, component=int(component))  # (n, latent)
    return model.decode_mean(z).cpu().numpy()


@torch.no_grad()
def prior_clusters_task(ctx, model, x: torch.Tensor, labels=None, n_samples: int = 5, seed: int = 0) -> PriorClusters:
    """The components' means and samples, and q(c | x) of the test digits x (N, D_x) scored by the labels."""
    mixture = _require_mixture(model)
    k = mixture.n_components
    means = model.decode_mean(mixture.loc).cpu().numpy()  # (K, D_x)
    g = torch.Generator(device=mixture.loc.device).manual_seed(int(seed))
    samples = np.stack(
        [model.decode_mean(mixture.sample((n_samples,), g, component=c)).cpu().numpy() for c in range(k)]
    )  # (K, S, D_x)
    ctx.report(0.2, None)
    ctx.check()
    resp = cluster_probs(model, x).numpy()  # (N, K)
    ctx.report(0.9, None)
    assignments = resp.argmax(1)
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64)[: len(assignments)]
        accuracy = hungarian_accuracy(labels, assignments)
        nmi = normalized_mutual_info(labels, assignments)
        confusion = confusion_matrix(labels, assignments, n_labels=N_LABELS, n_clusters=k)
        mapping = match_clusters(labels, assignments)
    else:
        accuracy = nmi = float("nan")
        confusion, mapping = np.zeros((0, k), dtype=np.int64), {}
    return PriorClusters(
        k=k,
        weights=mixture.log_pi().exp().cpu().numpy(),
        mean_images=means,
        sample_images=samples,
        resp=resp,
        assignments=assignments,
        accuracy=float(accuracy),
        nmi=float(nmi),
        confusion=confusion,
        mapping={int(c): int(d) for c, d in mapping.items()},
    )
