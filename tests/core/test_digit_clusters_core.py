"""The digit clusters pipeline without Qt (core.digit_clusters), the one Gaussian sampler
(core.gaussian) and the one EM driver (core.em).

A tiny VAE and a few hundred digits: scores lie in [0, 1], responsibilities sum to one, the
images shown are the model's decodings / PCA back-projections, the density is the mixture's
exact log p(x), and a cancelled context stops the task with its exception. The sampler's draws
have the mean and covariance they should (50,000 draws), a singular Σ included.
"""

import numpy as np
import pytest
import torch

from lvm_studio.core import digit_clusters as dc
from lvm_studio.core.bernoulli_mixture import BernoulliMixture, BernoulliMixtureConfig
from lvm_studio.core.clustering import hungarian_accuracy, pca
from lvm_studio.core.data import MNIST, N_PIXELS
from lvm_studio.core.em import run_em
from lvm_studio.core.gaussian import covariance_root, sample_gaussian
from lvm_studio.core.gmm import GaussianMixture, GMMConfig, GMMParameters
from lvm_studio.core.vae import VAE, VAEConfig

N_DRAWS = 50000
SIGMA = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
SINGULAR = np.array([[1.0, 2.0], [2.0, 4.0]])  # rank 1: all mass on the line y = 2x


class Cancelled(Exception):
    """Stands in for workers.tasks.TaskCancelled (core knows the context only by its methods)."""


class Context:
    """The workers.tasks context's interface: report / cancelled / check; cancels itself after
    `cancel_after` EM trace reports (None: never)."""

    def __init__(self, cancel_after=None):
        self.reports = []
        self.cancel_after = cancel_after
        self._cancelled = False

    def report(self, fraction, payload=None):
        self.reports.append((fraction, payload))
        traces = sum(1 for _, p in self.reports if p is not None)
        if self.cancel_after is not None and traces >= self.cancel_after:
            self._cancelled = True

    def cancelled(self):
        return self._cancelled

    def check(self):
        if self._cancelled:
            raise Cancelled()


@pytest.fixture(scope="module")
def data(mnist):
    return MNIST(
        mnist.x_train[:600],
        mnist.y_train[:600],
        mnist.x_val[:100],
        mnist.y_val[:100],
        mnist.x_test[:200],
        mnist.y_test[:200],
        source="first digits of the shipped MNIST",
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VAE(VAEConfig(latent_dim=2, hidden=(32,)))


# --- the pipeline ---------------------------------------------------------------------------------


def test_clusters_on_vae_codes(model, data):
    ctx = Context()
    r = dc.fit_clusters_task(ctx, model, data, "vae", "10k", k=4, seed=0, restarts=2, max_iter=30)
    n_test = data.x_test.shape[0]
    assert 0.0 <= r.accuracy <= 1.0 and 0.0 <= r.nmi <= 1.0
    assert r.n_fit == 600 and r.dim == 2 and r.restarts == 2 and len(r.traces) == 2
    assert r.resp_test.shape == (n_test, 4)
    np.testing.assert_allclose(r.resp_test.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(r.pred_test, r.resp_test.argmax(1))
    assert r.confusion.shape == (dc.N_LABELS, 4) and r.confusion.sum() == n_test
    assert r.accuracy == pytest.approx(hungarian_accuracy(data.y_test, r.pred_test))
    assert r.train_ll == max(t[-1] for t in r.traces) == r.traces[r.best_restart][-1]
    with torch.no_grad():
        decoded = model.decode_mean(torch.as_tensor(r.means, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(r.mean_images, decoded, atol=1e-6)
    assert r.sample_images.shape == (4, dc.N_SAMPLES, N_PIXELS)
    fractions = [f for f, _ in ctx.reports]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    traces = [p for _, p in ctx.reports if p is not None]
    assert {p.run for p in traces} == {0, 1} and all(p.kind == "trace" for p in traces)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_responsibilities_at_new_codes_are_the_fitted_mixtures_e_step(model, data, covariance):
    """Weights that moved on: the same mixture, γ_nk at the new codes (Bishop 2006, eq. 9.23), in closed form."""
    from lvm_studio.core.training import eval_images

    r = dc.fit_clusters_task(Context(), model, data, "vae", "10k", k=3, covariance=covariance, max_iter=20)
    x = eval_images(data, "test", model.config.likelihood)
    # at the codes it was fitted to, the task gives back the fit's own responsibilities
    same = dc.code_responsibilities_task(Context(), model, x, r, data.y_test)
    np.testing.assert_allclose(same.resp_test, r.resp_test, atol=1e-5)
    assert same.accuracy == pytest.approx(r.accuracy)
    # another set of weights: π_k N(z; μ_k, Σ_k) / Σ_j π_j N(z; μ_j, Σ_j) at its codes, written out
    torch.manual_seed(5)
    moved = VAE(model.config)
    out = dc.code_responsibilities_task(Context(), moved, x, r, data.y_test)
    with torch.no_grad():
        z = moved.encode(x)[0].double().numpy()  # (N, 2)
    cov = r.covariances if covariance == "full" else np.stack([np.diag(v) for v in r.covariances])
    log_p = np.stack(
        [
            np.log(r.weights[k])
            - 0.5 * np.einsum("nd,de,ne->n", z - r.means[k], np.linalg.inv(cov[k]), z - r.means[k])
            - 0.5 * np.log(np.linalg.det(2 * np.pi * cov[k]))
            for k in range(3)
        ],
        1,
    )  # (N, K)
    gamma = np.exp(log_p - log_p.max(1, keepdims=True))
    gamma /= gamma.sum(1, keepdims=True)
    np.testing.assert_allclose(out.resp_test, gamma, atol=1e-5)
    np.testing.assert_array_equal(out.pred_test, gamma.argmax(1))
    assert out.accuracy == pytest.approx(hungarian_accuracy(data.y_test, out.pred_test))
    with pytest.raises(ValueError):
        dc.code_responsibilities_task(Context(), VAE(VAEConfig(latent_dim=3, hidden=(8,))), x, r)
    pca_fit = dc.fit_clusters_task(Context(), model, data, "pca", "10k", k=2, pca_dim=3, max_iter=5)
    with pytest.raises(ValueError):
        dc.code_responsibilities_task(Context(), model, x, pca_fit)


def test_clusters_on_pca_with_diagonal_covariances(model, data):
    r = dc.fit_clusters_task(Context(), model, data, "pca", "10k", k=3, covariance="diag", pca_dim=6, max_iter=20)
    assert r.space == "pca" and r.dim == 6 and 0 < r.explained_variance < 1
    assert r.covariances.shape == (3, 6) and 0.0 <= r.accuracy <= 1.0
    np.testing.assert_allclose(r.resp_test.sum(1), 1.0, atol=1e-5)
    proj = pca(data.float_images("train"), 6)
    back = proj.inverse_transform(torch.as_tensor(r.means, dtype=proj.mean.dtype)).clamp(0, 1).numpy()
    np.testing.assert_allclose(r.mean_images, back, atol=1e-4)
    assert r.sample_images.min() >= 0 and r.sample_images.max() <= 1


def test_density_is_the_exact_mixture_log_px(model, data):
    r = dc.fit_density_task(Context(), model, data, "trainval", k=3, max_iter=5, n_vae=20, vae_k=5)
    x_test = data.binarized("test")
    bmm = BernoulliMixture(BernoulliMixtureConfig(n_components=3)).set_parameters(r.weights, r.probs)
    assert r.n_fit == 700 and r.n_test == 200
    assert r.test_log_px == pytest.approx(float(bmm.log_prob(x_test).double().mean()), abs=1e-3)
    assert r.test_log_px_subset == pytest.approx(float(bmm.log_prob(x_test[:20]).double().mean()), abs=1e-3)
    assert r.n_vae == 20 and np.isfinite(r.vae_log_px) and r.vae_log_px < 0
    assert r.sample_images.shape == (3, 2, N_PIXELS) and set(np.unique(r.sample_images)) <= {0.0, 1.0}
    skipped = dc.fit_density_task(Context(), None, data, "10k", k=2, max_iter=3)
    assert skipped.vae_log_px is None and skipped.n_vae == 0


@pytest.mark.parametrize("space", ["vae", "pca"])
def test_cancel_raises_the_contexts_exception(model, data, space):
    ctx = Context(cancel_after=2)
    with pytest.raises(Cancelled):
        dc.fit_clusters_task(ctx, model, data, space, "10k", k=3, pca_dim=4, max_iter=1000, tol=0.0)
    assert sum(1 for _, p in ctx.reports if p is not None) == 2  # EM stopped at the next should_stop
    with pytest.raises(Cancelled):
        dc.fit_density_task(Context(cancel_after=1), model, data, "10k", k=2, max_iter=1000, tol=0.0)


def test_fit_images_sets(data):
    assert dc.fit_images(data, "10k", "grey").shape == (600, N_PIXELS)
    both = dc.fit_images(data, "trainval", "binary")
    assert both.shape == (700, N_PIXELS)
    torch.testing.assert_close(both[:600], data.binarized("train"))
    torch.testing.assert_close(dc.fit_images(data, "train", "eval", "bernoulli"), data.binarized("train"))
    assert {key for key, _ in dc.FIT_SETS} == {"10k", "train", "trainval"}


# --- the one Gaussian sampler -----------------------------------------------------------------------


def test_covariance_root_squares_to_sigma_in_numpy_and_torch():
    for cov in (SIGMA, SINGULAR):
        a = covariance_root(cov)
        np.testing.assert_allclose(a @ a.T, cov, atol=1e-12)
        t = covariance_root(torch.as_tensor(cov))
        assert isinstance(t, torch.Tensor)
        torch.testing.assert_close(t @ t.T, torch.as_tensor(cov), atol=1e-12, rtol=0)
    np.testing.assert_allclose(covariance_root(np.array([[4.0, 0.25]]), diagonal=True), [[2.0, 0.5]])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sampler_matches_mean_and_covariance(backend):
    means = np.array([[1.0, -2.0, 0.5], [10.0, 10.0, 10.0]])
    covs = np.stack([SIGMA, np.eye(3)])
    z = np.zeros(N_DRAWS, dtype=np.int64)  # all from component 0
    if backend == "numpy":
        x = sample_gaussian(means, covariance_root(covs), z, np.random.default_rng(0))
    else:
        t = torch.as_tensor(means)
        x = sample_gaussian(
            t, covariance_root(torch.as_tensor(covs)), torch.as_tensor(z), torch.Generator().manual_seed(0)
        )
        assert x.dtype == torch.float64
        x = x.numpy()
    assert x.shape == (N_DRAWS, 3)
    np.testing.assert_allclose(x.mean(0), means[0], atol=0.03)
    np.testing.assert_allclose(np.cov(x.T), SIGMA, atol=0.05)


def test_sampler_with_a_singular_covariance_stays_on_its_line():
    x = sample_gaussian(
        np.zeros((1, 2)), covariance_root(SINGULAR[None]), np.zeros(N_DRAWS, np.int64), np.random.default_rng(1)
    )
    np.testing.assert_allclose(x[:, 1], 2.0 * x[:, 0], atol=1e-9)
    np.testing.assert_allclose(np.cov(x.T), SINGULAR, rtol=0.03)
    gmm = GaussianMixture(GMMConfig(1), dtype=torch.float64)
    # a rank-1 Σ as EM never leaves it (set_parameters would refuse it: no Cholesky factor exists)
    gmm.weights, gmm.means = torch.ones(1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    gmm.covariances = torch.as_tensor(SINGULAR)[None]
    xt, _ = gmm.sample(1000, generator=torch.Generator().manual_seed(0))  # no Cholesky needed
    torch.testing.assert_close(xt[:, 1], 2.0 * xt[:, 0], atol=1e-9, rtol=0)


def test_sampler_diagonal_and_type_errors():
    sd = np.array([[3.0, 0.1]])
    x = sample_gaussian(np.zeros((1, 2)), sd, np.zeros(N_DRAWS, np.int64), np.random.default_rng(2))
    np.testing.assert_allclose(x.std(0), sd[0], rtol=0.02)
    with pytest.raises(TypeError):
        sample_gaussian(
            torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(3, dtype=torch.int64), np.random.default_rng(0)
        )


def test_component_samples_draw_from_each_component():
    means = torch.tensor([[0.0, 0.0], [5.0, -5.0]], dtype=torch.float64)
    covs = torch.stack([torch.as_tensor(SIGMA[:2, :2]), torch.as_tensor(SINGULAR)])
    params = GMMParameters(torch.tensor([0.5, 0.5]), means, covs, "full")
    s = dc.component_samples(params, 20000, torch.Generator().manual_seed(0))  # (K, n, D)
    assert s.shape == (2, 20000, 2) and s.dtype == torch.float64
    for k in range(2):
        np.testing.assert_allclose(s[k].mean(0).numpy(), means[k].numpy(), atol=0.05)
        np.testing.assert_allclose(np.cov(s[k].numpy().T), covs[k].numpy(), atol=0.08)
    diag = GMMParameters(torch.tensor([1.0]), torch.zeros(1, 2), torch.tensor([[4.0, 0.25]]), "diag")
    np.testing.assert_allclose(
        dc.component_samples(diag, 20000, torch.Generator()).std(1).numpy(), [[2.0, 0.5]], rtol=0.03
    )


# --- the one EM driver --------------------------------------------------------------------------------


def test_run_em_stops_on_tolerance_iterations_or_request():
    # ℓ_t = −2^(−t): rises by 2^(−t−1) per M-step; with tol 0.01 it stops at the first step below it
    state = {"t": 0}

    def e_step():
        return state["t"], -(2.0 ** -state["t"])

    def m_step(t):
        state["t"] = t + 1

    seen = []
    run = run_em(e_step, m_step, max_iter=100, tol=0.01, callback=lambda t, ll: seen.append((t, ll)))
    assert run.converged and run.n_iter == 7 and len(run.trace) == 8 and seen == list(enumerate(run.trace))
    state["t"] = 0
    run = run_em(e_step, m_step, max_iter=3, tol=0.0)
    assert not run.converged and run.n_iter == 3 and len(run.trace) == 4
    state["t"] = 0
    run = run_em(e_step, m_step, max_iter=100, tol=0.0, should_stop=lambda: state["t"] >= 2)
    assert run.n_iter == 2 and len(run.trace) == 3
