"""GaussianMixture: EM invariants (monotone log-likelihood, normalised responsibilities),
closed-form densities, recovery of known parameters, seeding, sampling, degenerate cases."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal

from lvm_studio.core.clustering import hungarian_accuracy
from lvm_studio.core.em import kmeans_plusplus_indices
from lvm_studio.core.gaussian import ellipse_points
from lvm_studio.core.gmm import GaussianMixture, GMMConfig
from lvm_studio.core.points2d import POINT_SETS, SUGGESTED_COMPONENTS, from_mixture, well_separated_blobs

TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_MEANS = np.array([[-3.0, 0.0], [3.0, 1.0], [0.0, 4.0]])
TRUE_COVS = np.array([[[1.0, 0.5], [0.5, 0.8]], [[0.6, -0.2], [-0.2, 0.4]], [[0.3, 0.0], [0.0, 1.2]]])


def _assert_monotone(trace, rel):
    trace = np.asarray(trace)
    steps = np.diff(trace)
    worst = (steps / np.maximum(1.0, np.abs(trace[1:]))).min()
    assert worst >= -rel, f"log-likelihood fell by {worst:.3g} (relative) somewhere in {trace}"


def _fitted(x, k=3, covariance="full", seed=0, dtype=torch.float64, max_iter=100, tol=0.0):
    gmm = GaussianMixture(GMMConfig(n_components=k, covariance=covariance, seed=seed))
    trace = gmm.fit(torch.as_tensor(x, dtype=dtype), max_iter=max_iter, tol=tol)
    return gmm, trace


@pytest.mark.parametrize("name", list(POINT_SETS))
@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_log_likelihood_never_decreases_on_every_point_set(name, covariance):
    x, _ = POINT_SETS[name](n=300, seed=0)
    _, trace = _fitted(x, SUGGESTED_COMPONENTS[name], covariance, max_iter=80)
    assert len(trace) == 81 and all(math.isfinite(t) for t in trace)
    assert trace[-1] > trace[0]
    _assert_monotone(trace, 1e-12)  # float64: EM's ascent holds to rounding (ridge effect is O(ridge²))


@pytest.mark.parametrize("name", ["overlapping blobs", "two moons"])
@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_float32_trace_is_monotone_up_to_single_precision(name, covariance):
    x, _ = POINT_SETS[name](n=300, seed=1)
    _, trace = _fitted(x, SUGGESTED_COMPONENTS[name], covariance, dtype=torch.float32, max_iter=80)
    _assert_monotone(trace, 1e-6)  # near convergence the steps are below float32 resolution


@pytest.mark.parametrize("covariance", ["full", "diag"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_responsibilities_sum_to_one_and_match_e_step(covariance, dtype):
    x, _ = POINT_SETS["overlapping blobs"](n=200, seed=2)
    gmm = GaussianMixture(GMMConfig(3, covariance, seed=3)).initialize(torch.as_tensor(x, dtype=dtype))
    gmm.step(x)
    resp = gmm.responsibilities(x)
    assert resp.shape == (200, 3) and resp.dtype == dtype
    assert torch.all(resp >= 0)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(resp.sum(1), torch.ones(200, dtype=dtype), atol=tol)
    log_resp, _ = gmm.e_step(x)
    assert torch.allclose(log_resp.exp(), resp, atol=tol)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_log_prob_matches_scipy_mixture_density(covariance):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * 2
    weights = np.array([0.2, 0.5, 0.3])
    means = rng.normal(size=(3, 3))
    if covariance == "full":
        a = rng.normal(size=(3, 3, 3))
        covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(3)
        dense = covs
    else:
        covs = rng.uniform(0.3, 2.0, size=(3, 3))
        dense = np.stack([np.diag(c) for c in covs])
    gmm = GaussianMixture(GMMConfig(3, covariance)).set_parameters(weights, means, covs)
    expected = np.log(sum(w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(weights, means, dense)))
    np.testing.assert_allclose(gmm.log_prob(x).numpy(), expected, rtol=1e-10)
    assert gmm.log_likelihood(x) == pytest.approx(expected.mean(), rel=1e-12)


def test_em_recovers_the_parameters_of_a_known_mixture():
    x, z = from_mixture(TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVS, n=4000, seed=5)
    gmm, trace = _fitted(x, 3, "full", seed=1, max_iter=200, tol=1e-8)
    assert gmm.converged
    # match fitted components to true ones by mean distance
    cost = np.linalg.norm(gmm.means.numpy()[:, None] - TRUE_MEANS[None], axis=-1)  # (fitted, true)
    row, col = linear_sum_assignment(cost)
    order = row[np.argsort(col)]  # fitted index for each true component
    np.testing.assert_allclose(gmm.means.numpy()[order], TRUE_MEANS, atol=0.1)
    np.testing.assert_allclose(gmm.weights.numpy()[order], TRUE_WEIGHTS, atol=0.03)
    np.testing.assert_allclose(gmm.covariances.numpy()[order], TRUE_COVS, atol=0.12)
    assert hungarian_accuracy(z, gmm.predict(x).numpy()) >= 0.95


def test_bic_prefers_the_true_number_of_components():
    x, _ = from_mixture(TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVS, n=1500, seed=2)
    bics = {k: _fitted(x, k, seed=0, max_iter=200, tol=1e-7)[0].bic(x) for k in (1, 2, 3, 5)}
    assert min(bics, key=bics.get) == 3
    gmm = GaussianMixture(GMMConfig(3, "diag")).initialize(x)
    assert gmm.n_free_parameters() == 2 + 6 + 6


def test_hungarian_accuracy_on_well_separated_blobs():
    x, labels = well_separated_blobs(n=600, seed=3)
    gmm, _ = _fitted(x, 3, "full", seed=0, max_iter=100, tol=1e-6)
    assert hungarian_accuracy(labels, gmm.predict(x).numpy()) >= 0.95


def test_fit_is_deterministic_under_the_seed():
    x, _ = POINT_SETS["two moons"](n=300, seed=0)
    a, trace_a = _fitted(x, 6, seed=7, max_iter=30)
    b, trace_b = _fitted(x, 6, seed=7, max_iter=30)
    assert trace_a == trace_b
    assert torch.equal(a.means, b.means) and torch.equal(a.covariances, b.covariances)
    c = GaussianMixture(GMMConfig(6, seed=8)).initialize(x)
    first = GaussianMixture(GMMConfig(6, seed=7)).initialize(x)
    assert not torch.equal(c.means, first.means)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_seeding_picks_distinct_points_even_with_duplicates(init):
    distinct = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [-3.0, 2.0]])
    x = np.repeat(distinct, 40, axis=0)  # every point 40 times
    gmm = GaussianMixture(GMMConfig(5, init=init, seed=2)).initialize(x)
    if init == "kmeans++":  # D(x) = 0 for copies of a chosen centre, so each distinct point once
        got = sorted(map(tuple, gmm.means.numpy()))
        assert got == sorted(map(tuple, distinct))
    idx = kmeans_plusplus_indices(torch.as_tensor(x), 5, torch.Generator().manual_seed(0))
    assert len(set(idx.tolist())) == 5
    assert len({tuple(x[i]) for i in idx.tolist()}) == 5


def test_kmeanspp_falls_back_to_uniform_when_all_points_coincide():
    x = torch.ones(10, 2)
    idx = kmeans_plusplus_indices(x, 4, torch.Generator().manual_seed(0))
    assert len(set(idx.tolist())) == 4  # distinct indices though the points are equal


def test_given_means_are_used_as_they_are():
    x, _ = well_separated_blobs(n=90, seed=0)
    means = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    gmm = GaussianMixture(GMMConfig(3, init="given")).initialize(x, means=means)
    np.testing.assert_array_equal(gmm.means.numpy(), means)
    np.testing.assert_allclose(gmm.weights.numpy(), 1 / 3)
    with pytest.raises(ValueError):
        GaussianMixture(GMMConfig(3, init="given")).initialize(x)


def test_sampling_follows_the_generative_process():
    gmm = GaussianMixture(GMMConfig(3)).set_parameters(TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVS)
    x, z = gmm.sample(20000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20000, 2) and z.shape == (20000,)
    freq = torch.bincount(z, minlength=3).double() / 20000
    np.testing.assert_allclose(freq.numpy(), TRUE_WEIGHTS, atol=0.015)
    for k in range(3):
        xk = x[z == k].numpy()
        np.testing.assert_allclose(xk.mean(0), TRUE_MEANS[k], atol=0.06)
        np.testing.assert_allclose(np.cov(xk.T), TRUE_COVS[k], atol=0.08)
    diag = GaussianMixture(GMMConfig(3, "diag")).set_parameters(TRUE_WEIGHTS, TRUE_MEANS, [[1, 4], [0.25, 1], [2, 2]])
    xd, zd = diag.sample(20000, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(xd[zd == 1].var(0).numpy(), [0.25, 1.0], rtol=0.08)


def test_step_returns_the_log_likelihood_before_its_m_step():
    x, _ = POINT_SETS["overlapping blobs"](n=150, seed=0)
    gmm = GaussianMixture(GMMConfig(3, seed=0)).initialize(x)
    before = gmm.log_likelihood(x)
    assert gmm.step(x) == pytest.approx(before, rel=1e-12)
    assert gmm.log_likelihood(x) >= before


def test_fit_trace_callback_and_should_stop():
    x, _ = POINT_SETS["overlapping blobs"](n=150, seed=0)
    seen = []
    gmm = GaussianMixture(GMMConfig(3, seed=0))
    trace = gmm.fit(x, max_iter=10, tol=0.0, callback=lambda t, ll: seen.append((t, ll)))
    assert len(trace) == 11 and gmm.n_iter == 10 and not gmm.converged
    assert seen == list(enumerate(trace))
    assert trace[-1] == pytest.approx(gmm.log_likelihood(x), rel=1e-12)  # last entry = final parameters
    calls = []
    stopper = GaussianMixture(GMMConfig(3, seed=0))
    short = stopper.fit(x, max_iter=50, tol=0.0, should_stop=lambda: calls.append(1) or len(calls) >= 3)
    assert len(short) == 3 and stopper.n_iter == 2
    converging = GaussianMixture(GMMConfig(3, seed=0))
    long = converging.fit(x, max_iter=500, tol=1e-6)
    assert converging.converged and abs(long[-1] - long[-2]) < 1e-6


def test_empty_component_stays_finite():
    x, _ = well_separated_blobs(n=120, seed=0)
    means = np.array([[-3.5, -2.0], [3.5, -2.0], [0.0, 3.5], [1e3, 1e3]])  # the last owns no point
    gmm = GaussianMixture(GMMConfig(4, init="given")).initialize(x, means=means)
    log_resp, _ = gmm.e_step(x)
    assert float(log_resp[:, 3].exp().sum()) == 0.0  # exactly empty: γ underflows to 0
    trace = gmm.fit(x, max_iter=20, tol=0.0)
    for tensor in (gmm.weights, gmm.means, gmm.covariances):
        assert torch.isfinite(tensor).all()
    assert float(gmm.weights[3]) == 0.0 and float(gmm.weights.sum()) == pytest.approx(1.0)
    np.testing.assert_array_equal(gmm.means[3].numpy(), means[3])  # frozen, not NaN
    assert all(math.isfinite(t) for t in trace)
    _assert_monotone(trace, 1e-12)
    assert torch.isfinite(gmm.responsibilities(x)).all()
    _, z = gmm.sample(500, generator=torch.Generator().manual_seed(0))
    assert int((z == 3).sum()) == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_component_collapsing_onto_one_point_stays_positive_definite(dtype):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(60, 2)), [[40.0, 40.0]]])  # one far outlier
    gmm = GaussianMixture(GMMConfig(2, init="given"), dtype=dtype)
    gmm.initialize(x, means=[[0.0, 0.0], [40.0, 40.0]])
    trace = gmm.fit(x, max_iter=10, tol=0.0)
    assert all(math.isfinite(t) for t in trace)
    assert torch.isfinite(gmm.covariances).all()
    assert torch.linalg.eigvalsh(gmm.covariances.double()).min() > 0
    assert float(gmm.weights[1]) == pytest.approx(1 / 61, rel=1e-4)


def test_one_component_m_step_is_the_sample_mean_and_covariance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3)) * [1.0, 2.0, 0.5] + [1.0, -1.0, 2.0]
    for covariance in ("full", "diag"):
        gmm, _ = _fitted(x, 1, covariance, max_iter=1)
        np.testing.assert_allclose(gmm.means.numpy()[0], x.mean(0), atol=1e-12)
        cov = np.cov(x.T, bias=True)
        expected = cov + 1e-6 * np.eye(3) if covariance == "full" else np.diag(cov) + 1e-6
        np.testing.assert_allclose(gmm.covariances.numpy()[0], expected, atol=1e-12)


def test_agrees_with_sklearn_from_the_same_start():
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    x, _ = POINT_SETS["anisotropic blobs"](n=300, seed=4)
    ours = GaussianMixture(GMMConfig(3, seed=0)).initialize(x)
    start = ours.get_parameters()
    trace = ours.fit(x, max_iter=25, tol=0.0)
    sk = sklearn_mixture.GaussianMixture(
        3,
        covariance_type="full",
        max_iter=25,
        tol=0.0,
        reg_covar=1e-6,
        init_params="random_from_data",
        weights_init=start.weights.numpy(),
        means_init=start.means.numpy(),
        precisions_init=np.linalg.inv(start.covariances.numpy()),
    )
    with pytest.warns(Warning):  # ConvergenceWarning: tol = 0 on purpose
        sk.fit(x)
    assert trace[-1] == pytest.approx(sk.score(x), abs=1e-9)
    np.testing.assert_allclose(ours.means.numpy(), sk.means_, atol=1e-8)
    np.testing.assert_allclose(ours.covariances.numpy(), sk.covariances_, atol=1e-8)


def test_parameters_snapshot_and_copy_are_independent():
    x, _ = POINT_SETS["overlapping blobs"](n=100, seed=0)
    gmm = GaussianMixture(GMMConfig(3, seed=0)).initialize(x)
    before = gmm.log_likelihood(x)
    snap = gmm.get_parameters()
    twin = gmm.copy()
    gmm.step(x)
    assert not torch.equal(snap.means, gmm.means)
    assert torch.equal(twin.means, snap.means)
    assert twin.log_likelihood(x) == before < gmm.log_likelihood(x)
    assert snap.covariance_matrices().shape == (3, 2, 2)
    rebuilt = GaussianMixture(GMMConfig(3)).set_parameters(snap.weights, snap.means, snap.covariances)
    assert rebuilt.log_likelihood(x) == pytest.approx(before, rel=1e-12)


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError):
        GMMConfig(covariance="spherical")
    with pytest.raises(ValueError):
        GMMConfig(n_components=0)
    gmm = GaussianMixture(GMMConfig(2))
    with pytest.raises(RuntimeError):
        gmm.e_step(np.zeros((3, 2)))
    with pytest.raises(ValueError):  # not positive definite
        gmm.set_parameters([0.5, 0.5], np.zeros((2, 2)), np.stack([np.eye(2), -np.eye(2)]))
    with pytest.raises(ValueError):
        gmm.set_parameters([0.5, 0.5], np.zeros((2, 2)), np.ones((2, 2)))  # diag-shaped for 'full'


@pytest.mark.parametrize("n_sigma", [1.0, 2.0])
def test_ellipse_points_lie_on_the_mahalanobis_contour(n_sigma):
    mean = np.array([1.0, -2.0])
    cov = np.array([[2.0, 0.7], [0.7, 0.5]])
    pts = ellipse_points(mean, cov, n_sigma, n=64)
    assert pts.shape == (65, 2) and np.allclose(pts[0], pts[-1])
    d = pts - mean
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    np.testing.assert_allclose(maha, n_sigma**2, rtol=1e-10)


def test_chunked_densities_equal_one_chunk():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(257, 4))
    big = GaussianMixture(GMMConfig(5, seed=0)).initialize(x)
    small = GaussianMixture(GMMConfig(5, seed=0, chunk_elements=400)).initialize(x)  # 20-row chunks
    torch.testing.assert_close(small.log_prob(x), big.log_prob(x), rtol=1e-12, atol=1e-12)
    big.step(x)
    small.step(x)
    torch.testing.assert_close(small.covariances, big.covariances, rtol=1e-11, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_and_matches_cpu():
    x, _ = POINT_SETS["anisotropic blobs"](n=300, seed=0)
    cpu, trace_cpu = _fitted(x, 3, max_iter=20)
    gpu = GaussianMixture(GMMConfig(3, seed=0), device="cuda")
    trace_gpu = gpu.fit(torch.as_tensor(x), max_iter=20, tol=0.0)
    assert gpu.means.device.type == "cuda"
    np.testing.assert_allclose(trace_gpu, trace_cpu, rtol=1e-9)
