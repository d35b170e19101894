"""Estimators of the ELBO and log p(x) against closed forms.

The linear-Gaussian model (p(z) = N(0, I), p(x|z) = N(Wz + b, σ²I)) has log p(x), the
posterior and the expected ELBO in closed form, so every estimator is checked against
exact numbers. Its q(z|x) is the posterior's mean and marginal scales, shifted and widened
so that q ≠ p(z|x) and every bound is strict.
"""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from lvm_studio.core import estimators as E
from lvm_studio.core.linear_gaussian import LinearGaussian
from lvm_studio.core.vae import VAE, VAEConfig


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def lg():
    """A 2-D latent, 5-D observation linear-Gaussian model with a deliberately imperfect q."""
    return LinearGaussian.random(
        x_dim=5, latent_dim=2, noise_scale=0.5, seed=0, posterior_loc_shift=0.1, posterior_scale_factor=1.3
    )


@pytest.fixture(scope="module")
def lg_x(lg):
    return lg.sample(16, generator=gen(1))  # (16, 5) float64


def expected_elbo(model: LinearGaussian, x: torch.Tensor) -> torch.Tensor:
    """E_q[log p(x|z)] − KL(q ‖ p(z)) in closed form for the linear-Gaussian model; (batch,).

    With z ~ N(m, diag s²): E‖x − Wz − b‖² = ‖x − Wm − b‖² + Σ_dl W_dl² s_l².
    """
    m, s = model.encode(x)  # (batch, latent)
    W, b, sigma = model.W, model.b, model.noise_scale
    D = W.shape[0]
    sq_residual = ((x - m @ W.T - b) ** 2).sum(-1)  # (batch,)
    spread = (s**2 @ (W**2).T).sum(-1)  # (batch,)
    recon = -0.5 * (sq_residual + spread) / sigma**2 - D * math.log(sigma) - 0.5 * D * math.log(2 * math.pi)
    kl = kl_divergence(Normal(m, s), Normal(torch.zeros_like(m), torch.ones_like(s))).sum(-1)
    return recon - kl


# --- closed-form references agree with each other -------------------------------------


def test_closed_form_gap_is_kl_to_exact_posterior(lg, lg_x):
    """log p(x) − E[ELBO] = KL(q ‖ p(z|x)), all three in closed form: checks the reference itself."""
    m, s = lg.encode(lg_x)
    post_loc, post_cov = lg.exact_posterior(lg_x)
    kl_q_post = kl_divergence(
        MultivariateNormal(m, torch.diag_embed(s**2)), MultivariateNormal(post_loc, post_cov.expand(len(lg_x), -1, -1))
    )
    gap = lg.exact_log_px(lg_x) - expected_elbo(lg, lg_x)
    torch.testing.assert_close(gap, kl_q_post, rtol=1e-9, atol=1e-9)
    assert (gap > 0.05).all(), "q must differ from the posterior, or the bounds are not strict"


# --- importance sampling ---------------------------------------------------------------


def test_iw_estimate_converges_to_exact_log_px(lg, lg_x):
    exact = lg.exact_log_px(lg_x)  # (16,)
    ks = (1, 10, 100, 1000, 20000)
    errors = []
    for k in ks:
        est = torch.stack([E.iwae_log_px(lg, lg_x, k, generator=gen(100 + r)) for r in range(3)])  # (3, 16)
        errors.append((est - exact).abs().mean().item())
    assert all(a > b for a, b in zip(errors, errors[1:])), f"error does not shrink with k: {errors}"
    assert errors[-1] < 0.02, errors


def test_iw_at_k1_is_the_one_sample_elbo_same_seed(lg, lg_x):
    """With one sample, log w = log p(x|z) + log p(z) − log q(z|x) for exactly the z the ELBO draws."""
    log_w = E.log_importance_weights(lg, lg_x, 1, generator=gen(5))  # (1, 16)
    assert log_w.shape == (1, len(lg_x))
    z_loc, z_scale = lg.encode(lg_x)
    z = E.reparameterize(z_loc, z_scale, generator=gen(5))  # (16, 2), the same draw
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qz = Normal(z_loc, z_scale).log_prob(z).sum(-1)
    recon = lg.log_px_given_z(lg_x, z)
    torch.testing.assert_close(log_w[0], recon + log_pz - log_qz)

    terms = E.elbo(lg, lg_x, generator=gen(5))
    torch.testing.assert_close(terms.recon, recon)
    torch.testing.assert_close(terms.elbo, terms.recon - terms.kl)
    torch.testing.assert_close(E.iwae_log_px(lg, lg_x, 1, generator=gen(5)), log_w[0])
    torch.testing.assert_close(E.iwae_bound(lg, lg_x, 1, generator=gen(5)), log_w[0])


def test_k1_weights_and_elbo_average_to_closed_form_elbo(lg, lg_x):
    """E_q[log w] = E[one-sample ELBO] = the closed-form ELBO, within Monte Carlo error."""
    target = expected_elbo(lg, lg_x)  # (16,)
    n = 20000
    log_w = E.log_importance_weights(lg, lg_x, n, generator=gen(6))  # (n, 16): n one-sample draws
    se = log_w.std(0) / math.sqrt(n)
    assert ((log_w.mean(0) - target).abs() < 5 * se).all()

    reps = 2000
    terms = E.elbo(lg, lg_x.repeat(reps, 1), generator=gen(7))
    one_sample = terms.elbo.reshape(reps, len(lg_x))  # (reps, 16)
    se = one_sample.std(0) / math.sqrt(reps)
    assert ((one_sample.mean(0) - target).abs() < 5 * se).all()


def test_iw_estimate_exceeds_elbo_on_average(lg, lg_x):
    target_elbo = expected_elbo(lg, lg_x)
    exact = lg.exact_log_px(lg_x)
    est = torch.stack([E.iwae_log_px(lg, lg_x, 50, generator=gen(200 + r)) for r in range(20)]).mean(0)  # (16,)
    gap = exact - target_elbo
    # IW-50 closes most of the gap to log p(x) and stays below it, on average
    assert (est > target_elbo + 0.5 * gap).all()
    assert est.mean() < exact.mean()


def test_iwae_bound_is_differentiable_and_matches_iwae_log_px(lg, lg_x):
    W = lg.W.clone().requires_grad_(True)
    model = LinearGaussian(W, lg.b, lg.noise_scale, 0.1, 1.3)
    bound = E.iwae_bound(model, lg_x, 8, generator=gen(9))
    bound.sum().backward()
    assert W.grad is not None and torch.isfinite(W.grad).all() and W.grad.abs().sum() > 0
    torch.testing.assert_close(bound.detach(), E.iwae_log_px(lg, lg_x, 8, generator=gen(9)))


# --- naive Monte Carlo ----------------------------------------------------------------


def test_naive_mc_converges_to_exact_log_px(lg, lg_x):
    exact = lg.exact_log_px(lg_x)
    errors = []
    for k in (100, 3000, 200000):
        est = E.naive_mc_log_px(lg, lg_x, k, generator=gen(11))
        errors.append((est - exact).abs().mean().item())
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[-1] < 0.1, errors


def test_prior_proposal_weights_are_the_naive_estimate(lg, lg_x):
    log_w = E.sample_log_weights(lg, lg_x, 500, proposal="prior", generator=gen(12))  # (500, 16)
    torch.testing.assert_close(
        torch.logsumexp(log_w, 0) - math.log(500), E.naive_mc_log_px(lg, lg_x, 500, generator=gen(12))
    )
    with pytest.raises(ValueError):
        E.sample_log_weights(lg, lg_x, 10, proposal="nonsense")


# --- exact inference on a 2-D grid ----------------------------------------------------


def test_grid_posterior_matches_closed_form(lg, lg_x):
    grid = E.grid_posterior(lg, lg_x, n=201, extent=(-6, 6, -6, 6))
    exact = lg.exact_log_px(lg_x)
    torch.testing.assert_close(grid.log_px, exact, rtol=0, atol=1e-8)

    p = grid.log_post.exp() * grid.cell_area  # (16, n, n) probability per cell
    torch.testing.assert_close(p.sum((1, 2)), torch.ones(len(lg_x), dtype=p.dtype))
    # the grid's posterior moments are the closed-form ones
    z = torch.stack(torch.meshgrid(grid.z1, grid.z2, indexing="ij"), -1)  # (n, n, 2)
    mean = torch.einsum("bij,ijd->bd", p, z)  # (16, 2)
    centred = z[None] - mean[:, None, None]  # (16, n, n, 2)
    cov = torch.einsum("bij,bijd,bije->bde", p, centred, centred)  # (16, 2, 2)
    post_loc, post_cov = lg.exact_posterior(lg_x)
    torch.testing.assert_close(mean, post_loc, rtol=0, atol=1e-6)
    torch.testing.assert_close(cov, post_cov.expand_as(cov), rtol=0, atol=1e-6)

    torch.testing.assert_close(E.exact_log_px_2d(lg, lg_x), exact, rtol=0, atol=1e-8)


@pytest.fixture(scope="module")
def small_vae():
    torch.manual_seed(0)
    return VAE(VAEConfig(latent_dim=2, hidden=(16,))).eval()


def test_grid_log_px_agrees_with_large_k_iw_for_a_vae(small_vae, binarized_batch):
    x = binarized_batch[:2]
    grid = E.grid_posterior(small_vae, x, n=121, extent=(-6, 6, -6, 6))
    p = grid.log_post.exp() * grid.cell_area
    torch.testing.assert_close(p.sum((1, 2)), torch.ones(len(x)), rtol=0, atol=1e-4)

    exact = E.exact_log_px_2d(small_vae, x)
    torch.testing.assert_close(grid.log_px, exact, rtol=0, atol=2e-3)

    iw = E.iwae_log_px(small_vae, x, 10000, generator=gen(13))
    torch.testing.assert_close(iw, exact, rtol=0, atol=0.05)

    # log p(x) = ELBO + KL(q ‖ p(z|x)) with KL ≥ 0: the expected ELBO sits below the grid value
    elbo = E.elbo(small_vae, x.repeat(500, 1), generator=gen(14)).elbo.reshape(500, len(x)).mean(0)
    assert (elbo < exact).all()


def test_grid_posterior_refuses_other_latent_sizes(binarized_batch):
    model = VAE(VAEConfig(latent_dim=3, hidden=(8,)))
    with pytest.raises(ValueError, match="2-D latent"):
        E.grid_posterior(model, binarized_batch[:1])


# --- KL and reparameterization --------------------------------------------------------


def test_kl_matches_torch_distributions():
    g = gen(15)
    z_loc = 2 * torch.randn(64, 8, generator=g)
    z_scale = torch.rand(64, 8, generator=g) * 3 + 0.01
    reference = kl_divergence(Normal(z_loc, z_scale), Normal(torch.zeros(()), torch.ones(())))  # (64, 8)
    torch.testing.assert_close(E.kl_per_dimension(z_loc, z_scale), reference)
    torch.testing.assert_close(E.kl_normal_standard(z_loc, z_scale), reference.sum(-1))


def test_log_densities_match_torch_distributions():
    g = gen(16)
    z = torch.randn(3, 5, 4, generator=g)
    loc, scale = torch.randn(5, 4, generator=g), torch.rand(5, 4, generator=g) + 0.1
    torch.testing.assert_close(E.log_normal(z, loc, scale), Normal(loc, scale).log_prob(z).sum(-1))
    torch.testing.assert_close(E.log_standard_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_reparameterize_shapes_and_moments():
    z_loc, z_scale = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 2.0]])
    assert E.reparameterize(z_loc, z_scale).shape == (1, 2)
    z = E.reparameterize(z_loc, z_scale, k=40000, generator=gen(17))  # (40000, 1, 2)
    assert z.shape == (40000, 1, 2)
    torch.testing.assert_close(z.mean(0), z_loc, rtol=0, atol=0.05)
    torch.testing.assert_close(z.std(0), z_scale, rtol=0.02, atol=0)


# --- chunking -------------------------------------------------------------------------


class RowCounter:
    """Wraps a model and records how many decoder rows each call evaluates."""

    def __init__(self, model):
        self.model = model
        self.latent_dim = model.latent_dim
        self.rows: list[int] = []

    def encode(self, x):
        return self.model.encode(x)

    def prior_log_prob(self, z):
        return self.model.prior_log_prob(z)

    def sample_prior(self, shape, generator=None):
        return self.model.sample_prior(shape, generator)

    def log_px_given_z(self, x, z):
        self.rows.append(z[..., 0].numel())
        return self.model.log_px_given_z(x, z)


def test_chunked_iw_combines_chunks_exactly(lg, lg_x):
    """Chunks of k are merged by a logsumexp of logsumexps: exactly the unchunked formula on the same draws."""
    k, tiny = 1000, 100  # 100 rows per chunk: 6 samples of 16 images at a time
    counter = RowCounter(lg)
    chunked = E.iwae_log_px(counter, lg_x, k, generator=gen(20), max_rows=tiny)
    assert len(counter.rows) > 100 and max(counter.rows) <= tiny, "max_rows does not bound the work per call"
    # the same chunked draws, returned whole, then combined in one logsumexp
    log_w = E.sample_log_weights(lg, lg_x, k, generator=gen(20), max_rows=tiny)  # (k, 16)
    assert log_w.shape == (k, len(lg_x))
    torch.testing.assert_close(chunked, torch.logsumexp(log_w, 0) - math.log(k), rtol=0, atol=1e-10)


def test_chunked_and_unchunked_iw_agree_statistically(lg, lg_x):
    """Chunking may change the order of random draws but not the estimator's distribution."""
    k, reps = 100, 30
    big = torch.stack([E.iwae_log_px(lg, lg_x, k, generator=gen(300 + r)) for r in range(reps)])  # (reps, 16)
    tiny = torch.stack([E.iwae_log_px(lg, lg_x, k, generator=gen(400 + r), max_rows=7) for r in range(reps)])
    se = torch.sqrt((big.var(0) + tiny.var(0)) / reps)
    assert ((big.mean(0) - tiny.mean(0)).abs() < 5 * se + 1e-9).all()
    # same seed: different chunking, yet both close to log p(x)
    exact = lg.exact_log_px(lg_x)
    a = E.iwae_log_px(lg, lg_x, 10000, generator=gen(21))
    b = E.iwae_log_px(lg, lg_x, 10000, generator=gen(21), max_rows=400)
    assert (a - exact).abs().max() < 0.1 and (b - exact).abs().max() < 0.1


def test_chunked_naive_mc_bounds_rows(lg, lg_x):
    counter = RowCounter(lg)
    E.naive_mc_log_px(counter, lg_x, 300, generator=gen(22), max_rows=64)
    assert sum(counter.rows) == 300 * len(lg_x) and max(counter.rows) <= 64


def test_k_must_be_positive(lg, lg_x):
    with pytest.raises(ValueError):
        E.iwae_log_px(lg, lg_x, 0)
    with pytest.raises(ValueError):
        E.naive_mc_log_px(lg, lg_x, 0)


# --- bounds from one set of weights, effective sample size ----------------------------


def test_iw_bounds_from_weights_grow_with_k(lg, lg_x):
    K = 1 << 14
    log_w = E.sample_log_weights(lg, lg_x, K, generator=gen(23))  # (K, 16)
    ks = [1, 2, 4, 8, 16, 32, 64]  # at least 256 disjoint groups each
    bounds = E.iw_bounds_from_weights(log_w, ks + [K + 1])
    assert sorted(bounds) == ks, "a k larger than the number of weights must be skipped"
    means = [bounds[k].mean().item() for k in ks]
    assert all(a < b for a, b in zip(means, means[1:])), means
    exact = lg.exact_log_px(lg_x).mean().item()
    assert means[-1] < exact
    torch.testing.assert_close(bounds[1], log_w.mean(0))
    whole = E.iw_bounds_from_weights(log_w, [K])[K]
    torch.testing.assert_close(whole, torch.logsumexp(log_w, 0) - math.log(K))


def test_effective_sample_size_lies_between_one_and_k(lg, lg_x):
    k = 1000
    log_w = E.sample_log_weights(lg, lg_x, k, generator=gen(24))  # (k, 16)
    ess = E.effective_sample_size(log_w)
    assert ess.shape == (len(lg_x),)
    assert (ess >= 1 - 1e-9).all() and (ess <= k + 1e-6).all()
    # the extremes: equal weights give k, one dominant weight gives 1
    equal = torch.full((k, 3), -700.0, dtype=torch.float64)
    torch.testing.assert_close(E.effective_sample_size(equal), torch.full((3,), float(k), dtype=torch.float64))
    one = torch.full((k, 3), -1e4, dtype=torch.float64)
    one[17] = 0.0
    torch.testing.assert_close(E.effective_sample_size(one), torch.ones(3, dtype=torch.float64))
    # a better proposal gives a larger ESS: the exact-marginal q (unperturbed) beats the widened one
    sharp = LinearGaussian(lg.W, lg.b, lg.noise_scale, 0.0, 1.0)
    assert E.effective_sample_size(E.sample_log_weights(sharp, lg_x, k, generator=gen(25))).mean() > ess.mean()
