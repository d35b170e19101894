"""Clustering scores and PCA, and the built-in 2-D point sets."""

import itertools
import math

import numpy as np
import pytest
import torch

from lvm_studio.core.clustering import confusion_matrix, hungarian_accuracy, match_clusters, normalized_mutual_info, pca
from lvm_studio.core.points2d import POINT_SETS, SUGGESTED_COMPONENTS, from_mixture, make_point_set


def _brute_force_accuracy(labels, clusters):
    """Best accuracy over every injective map clusters -> labels (tiny cases only)."""
    label_values, cluster_values = sorted(set(labels)), sorted(set(clusters))
    best = 0
    slots = label_values + [None] * max(0, len(cluster_values) - len(label_values))
    for perm in itertools.permutations(slots, len(cluster_values)):
        mapping = dict(zip(cluster_values, perm))
        best = max(best, sum(mapping[c] == y for y, c in zip(labels, clusters)))
    return best / len(labels)


def test_confusion_matrix_counts():
    labels = [0, 0, 1, 1, 1, 2]
    clusters = [5, 5, 7, 7, 5, 9]
    counts = confusion_matrix(labels, clusters)
    np.testing.assert_array_equal(counts, [[2, 0, 0], [1, 2, 0], [0, 0, 1]])
    fixed = confusion_matrix([0, 1, 1], [0, 0, 3], n_labels=2, n_clusters=4)
    np.testing.assert_array_equal(fixed, [[1, 0, 0, 0], [1, 0, 0, 1]])  # empty clusters keep a column
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError):
        confusion_matrix([0, 5], [0, 1], n_labels=3)


def test_hungarian_accuracy_is_invariant_to_renaming_and_matches_brute_force():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    assert hungarian_accuracy(labels, (labels + 1) % 3 + 10) == 1.0  # renamed clusters
    for trial in range(20):
        labels = rng.integers(0, 3, 15).tolist()
        clusters = rng.integers(0, 2 + trial % 3, 15).tolist()  # 2, 3 or 4 clusters
        assert hungarian_accuracy(labels, clusters) == pytest.approx(_brute_force_accuracy(labels, clusters))


def test_hungarian_accuracy_of_gmm_on_a_labelled_mixture():
    from lvm_studio.core.gmm import GaussianMixture, GMMConfig

    means = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]]
    x, z = from_mixture([0.25] * 4, means, [np.eye(2)] * 4, n=800, seed=1)
    gmm = GaussianMixture(GMMConfig(4, seed=0))
    gmm.fit(x, max_iter=100, tol=1e-6)
    assert hungarian_accuracy(z, gmm.predict(x)) >= 0.95  # tensors accepted too
    mapping = match_clusters(z, gmm.predict(x).numpy())
    assert sorted(mapping.values()) == [0, 1, 2, 3]


def test_nmi_known_cases():
    labels = [0, 0, 1, 1, 2, 2]
    assert normalized_mutual_info(labels, labels) == pytest.approx(1.0)
    assert normalized_mutual_info(labels, [7, 7, 3, 3, 5, 5]) == pytest.approx(1.0)  # renaming
    assert normalized_mutual_info([0] * 5, [1] * 5) == 1.0  # both trivial
    # independent: each cluster holds every label equally often
    assert normalized_mutual_info([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(0.0, abs=1e-15)
    assert normalized_mutual_info([0, 0, 1, 1], [0, 0, 0, 0]) == 0.0
    # by hand: U = {a a b b}, V = {x x x y}: H(U) = ln 2, H(V) = −(¾ ln ¾ + ¼ ln ¼),
    # I = H(U) − H(U|V) = ln 2 − ¾ H(⅓, ⅔)
    h_u = math.log(2)
    h_v = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    h_u_given_v = 0.75 * -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    expected = (h_u - h_u_given_v) / ((h_u + h_v) / 2)
    assert normalized_mutual_info([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(expected, rel=1e-12)


def test_nmi_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(10):
        labels = rng.integers(0, 5, 200)
        clusters = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 7, 200))
        assert normalized_mutual_info(labels, clusters) == pytest.approx(
            metrics.normalized_mutual_info_score(labels, clusters), rel=1e-10
        )


def test_pca_on_a_known_ellipsoid():
    rng = np.random.default_rng(0)
    stds = np.array([5.0, 2.0, 0.5])
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    x = rng.normal(size=(5000, 3)) * stds @ rotation.T + [1.0, -2.0, 3.0]
    fit = pca(torch.as_tensor(x), 2)
    assert fit.components.shape == (2, 3) and fit.n_components == 2
    torch.testing.assert_close(fit.components @ fit.components.T, torch.eye(2, dtype=torch.float64))
    # principal axes are the rotation's columns (up to sign), variances the squared stds
    overlap = (fit.components.numpy() @ rotation).__abs__()
    np.testing.assert_allclose(overlap[:, :2], np.eye(2), atol=0.02)
    np.testing.assert_allclose(fit.explained_variance.numpy(), stds[:2] ** 2, rtol=0.05)
    assert float(fit.explained_variance_ratio.sum()) == pytest.approx(29 / 29.25, rel=0.01)
    # equals numpy's covariance eigenvalues exactly (unbiased, N − 1)
    top = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1][:2]
    np.testing.assert_allclose(fit.explained_variance.numpy(), top, rtol=1e-10)
    signs = fit.components.gather(1, fit.components.abs().argmax(1, keepdim=True))
    assert torch.all(signs > 0)


def test_pca_round_trip_is_exact_at_full_rank_and_projects_below():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(size=(100, 4)))
    full = pca(x, 4)
    torch.testing.assert_close(full.inverse_transform(full.transform(x)), x)
    low = pca(x, 2)
    z = low.transform(x)
    assert z.shape == (100, 2)
    torch.testing.assert_close(z.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(z.var(0), low.explained_variance)
    recon = low.inverse_transform(z)
    torch.testing.assert_close(low.transform(recon), z)  # a projection: idempotent
    with pytest.raises(ValueError):
        pca(x, 5)


def test_pca_matches_sklearn_up_to_sign():
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    ours = pca(torch.as_tensor(x), 3)
    sk = decomposition.PCA(3).fit(x)
    np.testing.assert_allclose(np.abs(ours.components.numpy() @ sk.components_.T), np.eye(3), atol=1e-8)
    np.testing.assert_allclose(ours.explained_variance.numpy(), sk.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(ours.explained_variance_ratio.numpy(), sk.explained_variance_ratio_, rtol=1e-10)


# --- built-in point sets ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(POINT_SETS))
def test_point_sets_are_seeded_and_well_formed(name):
    x, labels = make_point_set(name, n=250, seed=4)
    again, labels_again = POINT_SETS[name](n=250, seed=4)
    other, _ = POINT_SETS[name](n=250, seed=5)
    assert x.shape == (250, 2) and x.dtype == np.float64 and np.isfinite(x).all()
    np.testing.assert_array_equal(x, again)
    assert not np.array_equal(x, other)
    assert np.abs(x).max() < 8.0  # inside the playground's view
    if labels is not None:
        assert labels.shape == (250,) and labels.dtype == np.int64
        np.testing.assert_array_equal(labels, labels_again)
    assert SUGGESTED_COMPONENTS[name] >= 2


def test_from_mixture_matches_its_parameters():
    weights = [0.7, 0.3]
    means = [[-2.0, 1.0], [3.0, 0.0]]
    covs = [[[1.0, 0.8], [0.8, 1.0]], [[0.2, 0.0], [0.0, 0.5]]]
    x, z = from_mixture(weights, means, covs, n=20000, seed=0)
    assert np.mean(z == 0) == pytest.approx(0.7, abs=0.015)
    for k in range(2):
        np.testing.assert_allclose(x[z == k].mean(0), means[k], atol=0.05)
        np.testing.assert_allclose(np.cov(x[z == k].T), covs[k], atol=0.05)
    with pytest.raises(ValueError):
        from_mixture([1.0], means, covs)
    with pytest.raises(KeyError):
        make_point_set("spiral")


def test_two_moons_labels_follow_the_moons():
    x, labels = POINT_SETS["two moons"](n=400, seed=0, noise=0.0)
    # without noise, the upper moon lies on a circle of radius 2.5 around the scaled origin
    centre_upper = 2.5 * (np.array([0.0, 0.0]) - [0.5, 0.25])
    r = np.linalg.norm(x[labels == 0] - centre_upper, axis=1)
    np.testing.assert_allclose(r, 2.5, rtol=1e-12)
    assert np.mean(labels) == pytest.approx(0.5)
