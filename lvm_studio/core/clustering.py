"""Scoring clusterings against labels, and PCA for looking at high-dimensional codes.

hungarian_accuracy: the accuracy of the best one-to-one matching of clusters to labels
(Kuhn 1955, via scipy.optimize.linear_sum_assignment); normalized_mutual_info: MI / mean of
the two entropies (scikit-learn's default 'arithmetic' normalisation); pca in torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lvm_studio.core.gmm import as_tensor


def _as_labels(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


def confusion_matrix(labels, clusters, n_labels: int | None = None, n_clusters: int | None = None) -> np.ndarray:
    """Counts C[i, j] = #{n : labels_n = i-th label, clusters_n = j-th cluster}, int64.

    Without sizes, rows and columns are the sorted distinct values of each argument (as
    np.unique). With n_labels / n_clusters the values must be integers in [0, n) and the
    matrix has exactly that many rows / columns, so an empty cluster keeps its column.
    """
    labels = _as_labels(labels, "labels")
    clusters = _as_labels(clusters, "clusters")
    if labels.shape != clusters.shape:
        raise ValueError(f"labels and clusters differ in length: {labels.shape[0]} vs {clusters.shape[0]}")

    def codes(values, size, name):
        if size is None:
            uniq, inverse = np.unique(values, return_inverse=True)
            return inverse.reshape(-1), len(uniq)
        values = values.astype(np.int64)
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"{name} must lie in [0, {size})")
        return values, int(size)

    rows, n_rows = codes(labels, n_labels, "labels")
    cols, n_cols = codes(clusters, n_clusters, "clusters")
    counts = np.zeros((n_rows, n_cols), dtype=np.int64)
    np.add.at(counts, (rows, cols), 1)
    return counts


def match_clusters(labels, clusters) -> dict:
    """The one-to-one map cluster value -> label value that maximises the number of agreements.

    Clusters left over when there are more clusters than labels are not in the map.
    """
    from scipy.optimize import linear_sum_assignment

    labels = _as_labels(labels, "labels")
    clusters = _as_labels(clusters, "clusters")
    counts = confusion_matrix(labels, clusters)  # (labels, clusters)
    row, col = linear_sum_assignment(counts, maximize=True)
    label_values, cluster_values = np.unique(labels), np.unique(clusters)
    return {cluster_values[j].item(): label_values[i].item() for i, j in zip(row, col)}


def hungarian_accuracy(labels, clusters) -> float:
    """Fraction of points whose cluster maps to their label under the best one-to-one matching.

    max over injective maps m of (1/N) Σ_n [m(cluster_n) = label_n], solved as an assignment
    problem on the confusion matrix (linear_sum_assignment, maximize=True). Rectangular
    cases (more clusters than labels or the reverse) leave the extras unmatched.
    """
    from scipy.optimize import linear_sum_assignment

    counts = confusion_matrix(labels, clusters)
    if counts.sum() == 0:
        raise ValueError("no points to score")
    row, col = linear_sum_assignment(counts, maximize=True)
    return float(counts[row, col].sum()) / float(counts.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(labels, clusters) -> float:
    """NMI = I(U; V) / ((H(U) + H(V)) / 2), natural logs (Vinh, Epps & Bailey 2010, 'NMI_sum').

    Matches sklearn.metrics.normalized_mutual_info_score with its default arithmetic mean:
    1 for identical partitions (up to renaming), 1 when both put everything in one group,
    0 for independent ones.
    """
    counts = confusion_matrix(labels, clusters).astype(np.float64)  # (labels, clusters)
    n_rows, n_cols = counts.shape
    if n_rows == n_cols == 1 or n_rows == n_cols == 0:
        return 1.0  # both trivial partitions: perfectly (if vacuously) in agreement, as sklearn
    n = counts.sum()
    pi = counts.sum(1)  # (labels,)
    pj = counts.sum(0)  # (clusters,)
    nz = counts > 0
    # I = Σ_ij (n_ij / n) log(n n_ij / (a_i b_j))
    outer = np.outer(pi, pj)[nz]
    nij = counts[nz]
    mi = float((nij / n * (np.log(nij) + math.log(n) - np.log(outer))).sum())
    mi = max(mi, 0.0)  # rounding can leave -1e-17
    if mi == 0.0:
        return 0.0
    normaliser = 0.5 * (_entropy(pi) + _entropy(pj))
    return float(mi / max(normaliser, np.finfo(np.float64).eps))


@dataclass(frozen=True)
class PCA:
    """A fitted principal component analysis, in torch.

    components (n_components, D): orthonormal rows, sorted by decreasing variance, each signed so
    that its largest-magnitude entry is positive; mean (D,); explained_variance (n_components,)
    = s² / (N − 1); explained_variance_ratio = that over the total variance.
    """

    components: torch.Tensor
    mean: torch.Tensor
    explained_variance: torch.Tensor
    explained_variance_ratio: torch.Tensor

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def transform(self, x) -> torch.Tensor:
        """Coordinates (N, n_components) = (x − mean) Wᵀ."""
        x = as_tensor(x).to(device=self.mean.device, dtype=self.mean.dtype)
        return (x - self.mean) @ self.components.T

    def inverse_transform(self, z) -> torch.Tensor:
        """Back to data space, (N, D) = z W + mean; exact when n_components = rank."""
        z = as_tensor(z).to(device=self.mean.device, dtype=self.mean.dtype)
        return z @ self.components + self.mean


@torch.no_grad()
def pca(x, n_components: int) -> PCA:
    """PCA of x (N, D) by the thin SVD of the centred data, x − mean = U S Vᵀ (Bishop, PRML §12.1)."""
    x = as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.dim() != 2:
        raise ValueError(f"x must be (N, D), got shape {tuple(x.shape)}")
    n, d = x.shape
    if not 1 <= n_components <= min(n, d):
        raise ValueError(f"n_components must be in [1, {min(n, d)}], got {n_components}")
    mean = x.mean(0)  # (D,)
    centred = x - mean  # (N, D)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)  # s (min(N, D),), vh (min(N, D), D)
    components = vh[:n_components].clone()  # (n_components, D)
    # deterministic signs: largest |entry| of each component positive
    pivot = components.abs().argmax(1)  # (n_components,)
    signs = torch.sign(components.gather(1, pivot.unsqueeze(1)))  # (n_components, 1)
    components *= torch.where(signs == 0, torch.ones_like(signs), signs)
    variance = s.square() / max(n - 1, 1)  # (min(N, D),)
    total = variance.sum()
    ratio = variance[:n_components] / total if float(total) > 0 else torch.zeros_like(variance[:n_components])
    return PCA(components, mean, variance[:n_components].clone(), ratio)
