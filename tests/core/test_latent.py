"""lvm_studio.core.latent, traversal, q_elbo, posterior_grid and estimator_sweep against closed forms.

The linear-Gaussian model has log p(x), p(z|x) and the ELBO of any Gaussian q in closed form;
its log p(x|z) is quadratic in z, so Gauss–Hermite quadrature of E_q[log p(x|z)] is exact and
the best diagonal q is known: the posterior mean, with σ_d² = 1/Λ_dd (Λ the posterior precision;
Bishop 2006, eq. 10.13–10.14 for the mean-field Gaussian).
"""

import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.estimator_sweep import _running_log_mean, estimator_sweep, log_spaced_ks
from lvm_studio.core.estimators import elbo as encoder_elbo
from lvm_studio.core.estimators import exact_log_px_2d, grid_posterior
from lvm_studio.core.latent import latent_stats, latent_stats_from_codes, order_by_kl
from lvm_studio.core.linear_gaussian import LinearGaussian
from lvm_studio.core.posterior_grid import kl_q_posterior_on_grid, posterior_grid, posterior_numbers
from lvm_studio.core.q_elbo import elbo_for_q, gauss_hermite, importance_samples, iw_log_px_for_q, optimise_phi
from lvm_studio.core.traversal import interpolate, slerp, tile_images, traversal_grid, traversal_values
from lvm_studio.core.vae import VAE, VAEConfig


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def lg():
    return LinearGaussian.random(
        x_dim=5, latent_dim=2, noise_scale=0.7, seed=3, posterior_loc_shift=0.3, posterior_scale_factor=1.5
    )


@pytest.fixture(scope="module")
def lg_x(lg):
    return lg.sample(4, generator=gen(1))  # (4, 5) float64


def closed_form_elbo(model, x, m, s):
    """E_q[log p(x|z)] − KL(q ‖ p(z)) for q = N(m, diag s²) under the linear-Gaussian model."""
    W, b, sigma = model.W, model.b, model.noise_scale
    D = W.shape[0]
    recon = (
        -0.5 * (((x - m @ W.T - b) ** 2).sum(-1) + (s**2 @ (W**2).T).sum(-1)) / sigma**2
        - D * math.log(sigma)
        - 0.5 * D * math.log(2 * math.pi)
    )
    kl = kl_divergence(Normal(m, s), Normal(torch.zeros_like(m), torch.ones_like(s))).sum(-1)
    return recon - kl


def tiny_vae(latent_dim, seed=0):
    torch.manual_seed(seed)
    return VAE(VAEConfig(latent_dim=latent_dim, hidden=(32,))).eval()


# --- which dimensions are used ---------------------------------------------------------


def test_stats_from_codes_match_closed_form_kl_and_activity():
    g = gen(0)
    z_loc = torch.randn(500, 4, generator=g) * torch.tensor([0.0, 2.0, 0.5, 0.05])  # (N, 4)
    z_scale = torch.ones(500, 4) * torch.tensor([1.0, 0.1, 0.6, 0.99])
    s = latent_stats_from_codes(z_loc, z_scale)
    expected = 0.5 * (z_loc**2 + z_scale**2 - 1 - 2 * z_scale.log()).mean(0)
    torch.testing.assert_close(s.mean_kl, expected)
    torch.testing.assert_close(s.activity, z_loc.var(0, unbiased=False))
    assert s.order.tolist() == [1, 2, 3, 0]
    assert s.active.tolist() == [False, True, True, False]  # dim 3: KL ≈ 0.5·0.05² + ~1e-4 < 0.01
    assert s.n_active == 2
    # order is a permutation sorted by KL
    assert torch.all(s.mean_kl[s.order][:-1] >= s.mean_kl[s.order][1:])


def test_latent_stats_orders_dimensions_of_a_model_by_kl(mnist):
    """A VAE whose encoder ignores x in some dimensions: those have the KL of a constant q."""
    model = tiny_vae(6)
    last = model.encoder[-1]  # Linear(32, 12): rows 0..5 give z_loc, 6..11 the raw scale
    with torch.no_grad():
        last.weight[[0, 2, 5]] = 0.0  # z_loc of dims 0, 2, 5 is the bias
        last.bias[[0, 2, 5]] = torch.tensor([0.0, 0.3, 0.0])
        last.weight[[6, 8, 11]] = 0.0
        last.bias[[6, 8, 11]] = torch.tensor([0.5413, 0.5413, -1.0])  # softplus: ≈ 1.0, 1.0, 0.313
        last.weight[[1, 3, 4]] *= 20.0  # the others carry (a lot of) information about x
    x = mnist.binarized("val")[:300]
    s = latent_stats(model, x, batch_size=128)
    sc = torch.nn.functional.softplus(last.bias[[6, 8, 11]]) + model.config.min_scale
    mu = last.bias[[0, 2, 5]]
    const_kl = 0.5 * (mu**2 + sc**2 - 1 - 2 * sc.log())
    torch.testing.assert_close(s.mean_kl[[0, 2, 5]], const_kl.detach(), rtol=1e-5, atol=1e-6)
    assert torch.all(s.activity[[0, 2, 5]] < 1e-10)  # E_q[z] does not move with x: Burda's inactive
    assert set(s.order[:3].tolist()) == {1, 3, 4}
    assert s.active[[1, 3, 4]].all() and not s.active[0] and s.active[5]  # dim 5 has KL ≈ 0.7 from σ alone
    assert s.order.tolist() == order_by_kl(s.mean_kl).tolist()


# --- where to look ------------------------------------------------------------------------


def test_traversal_grid_varies_only_the_chosen_dimensions():
    z = torch.arange(5, dtype=torch.float32)
    va, vb = traversal_values(-2, 2, 5), traversal_values(-1, 1, 3)
    one = traversal_grid(z, [3], va)
    assert one.shape == (5, 5)
    torch.testing.assert_close(one[:, 3], va)
    torch.testing.assert_close(one[:, [0, 1, 2, 4]], z[[0, 1, 2, 4]].expand(5, -1))
    two = traversal_grid(z, [1, 4], va, vb)
    assert two.shape == (3, 5, 5)
    torch.testing.assert_close(two[..., 1], va.expand(3, -1))
    torch.testing.assert_close(two[..., 4], vb[:, None].expand(-1, 5))
    torch.testing.assert_close(two[..., [0, 2, 3]], z[[0, 2, 3]].expand(3, 5, -1))
    with pytest.raises(ValueError):
        traversal_grid(z, [2, 2], va, vb)


def test_slerp_keeps_the_norm_and_steps_evenly_in_angle():
    g = gen(2)
    z0 = torch.randn(8, generator=g, dtype=torch.float64)
    z1 = torch.randn(8, generator=g, dtype=torch.float64)
    z1 = z1 / z1.norm() * z0.norm()  # equal norms: slerp stays on the sphere
    path = interpolate(z0, z1, 7, "spherical")
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(path.norm(dim=1), z0.norm().expand(7))
    cos = (path[:-1] * path[1:]).sum(1) / z0.norm() ** 2
    torch.testing.assert_close(cos, cos[0].expand(6))  # equal angular steps
    lin = interpolate(z0, z1, 7, "linear")
    torch.testing.assert_close(lin[3], (z0 + z1) / 2)
    assert torch.all(lin.norm(dim=1)[1:-1] < z0.norm())  # the straight line cuts inside the shell
    # parallel codes and a zero code fall back to the straight line
    torch.testing.assert_close(slerp(z0, 2 * z0, torch.tensor([0.5])), 1.5 * z0[None])
    torch.testing.assert_close(slerp(torch.zeros(8, dtype=torch.float64), z0, torch.tensor([0.25])), 0.25 * z0[None])


def test_tile_images_places_digits_in_rows_and_columns():
    imgs = torch.zeros(2, 3, N_PIXELS)
    imgs[1, 2] = 1.0
    out = tile_images(imgs, gap=1, fill=0.5)
    assert out.shape == (2 * 29 - 1, 3 * 29 - 1)
    assert np.all(out[29:, 58:] == 1.0) and np.all(out[:28, :28] == 0.0) and out[28, 0] == 0.5


# --- the ELBO of a hand-set q and the exact posterior --------------------------------------


def test_gauss_hermite_integrates_gaussian_moments_exactly():
    u, w = gauss_hermite(6, 2, torch.float64)
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close((w * u[:, 0] ** 2).sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close((w * u[:, 1] ** 4).sum(), torch.tensor(3.0, dtype=torch.float64))
    torch.testing.assert_close((w * u[:, 0] ** 2 * u[:, 1] ** 2).sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close((w * u[:, 0] ** 3 * u[:, 1]).sum(), torch.tensor(0.0, dtype=torch.float64))


def test_elbo_of_a_hand_set_q_is_exact_by_quadrature(lg, lg_x):
    m = torch.tensor([[0.5, -1.0]], dtype=torch.float64).expand(4, -1)
    s = torch.tensor([[0.3, 1.2]], dtype=torch.float64).expand(4, -1)
    terms = elbo_for_q(lg, lg_x, m, s, method="quadrature", n=4)
    torch.testing.assert_close(terms.elbo, closed_form_elbo(lg, lg_x, m, s))
    mc = elbo_for_q(lg, lg_x, m, s, method="mc", n=20000, generator=gen(0))
    torch.testing.assert_close(mc.elbo, terms.elbo, atol=0.75, rtol=0)  # ≈ 5 standard errors (0.12–0.16)


def test_posterior_numbers_gap_is_kl_to_the_exact_posterior(lg, lg_x):
    """log p(x) − ELBO(q) from the grid equals KL(q ‖ p(z|x)) in closed form, and the grid's own
    ∫ q log(q / p(z|x)) agrees."""
    x = lg_x[:1]
    m, s = lg.encode(x)  # the shifted, widened q
    grid = posterior_grid(lg, x, n=161, display_tail=20.0, include=(m, s))  # wide: ∫ q on the grid
    torch.testing.assert_close(grid.log_px, lg.exact_log_px(x), atol=1e-6, rtol=0)
    num = posterior_numbers(lg, x, m, s, grid.log_px, k=2000, generator=gen(0))
    post_loc, post_cov = lg.exact_posterior(x)
    kl = kl_divergence(MultivariateNormal(m[0], torch.diag(s[0] ** 2)), MultivariateNormal(post_loc[0], post_cov))
    assert num.kl_post == pytest.approx(float(kl), abs=1e-6)
    assert num.kl_post > 0.1
    assert num.elbo == pytest.approx(float(closed_form_elbo(lg, x, m, s)), abs=1e-8)
    assert num.log_px - num.elbo == pytest.approx(num.kl_post)
    assert num.kl_prior + num.elbo == pytest.approx(num.recon)
    assert float(kl_q_posterior_on_grid(grid, m, s)[0]) == pytest.approx(float(kl), abs=1e-3)
    assert num.elbo < num.iw_log_px < num.log_px + 0.05


def test_iw_estimate_with_a_hand_set_q_approaches_log_px(lg, lg_x):
    x = lg_x[:2]
    m, s = lg.encode(x)
    exact = lg.exact_log_px(x)
    iw = iw_log_px_for_q(lg, x, m, s, 20000, generator=gen(5), max_rows=4096)
    torch.testing.assert_close(iw, exact, atol=0.02, rtol=0)
    z, log_w, w = importance_samples(lg, x[:1], m[:1], s[:1], 500, generator=gen(6))
    assert z.shape == (500, 2) and log_w.shape == (500,)
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.all(w >= 0)


def test_optimised_phi_is_the_best_diagonal_gaussian(lg, lg_x):
    """The optimum of the ELBO over diagonal Gaussians: posterior mean, σ_d² = 1 / Λ_dd; it beats
    the encoder's q and any hand-moved q."""
    x = lg_x[:2]
    opt = optimise_phi(lg, x, steps=400, lr=0.05, n=4)
    post_loc, post_cov = lg.exact_posterior(x)
    precision = torch.linalg.inv(post_cov)
    torch.testing.assert_close(opt.z_loc, post_loc, atol=2e-3, rtol=0)
    torch.testing.assert_close(opt.z_scale, (1 / precision.diagonal()).sqrt().expand(2, -1), atol=2e-3, rtol=0)
    best = closed_form_elbo(lg, x, opt.z_loc, opt.z_scale)
    m, s = lg.encode(x)
    assert torch.all(best > closed_form_elbo(lg, x, m, s))
    for dm, ds in [(0.2, 1.0), (0.0, 1.5), (-0.1, 0.7)]:
        assert torch.all(best > closed_form_elbo(lg, x, opt.z_loc + dm, opt.z_scale * ds))
    assert opt.elbo_trace.shape == (401, 2) and opt.elbo_trace[-1].gt(opt.elbo_trace[0]).all()


def test_vae_posterior_view_numbers_against_the_core_grid(mnist):
    """A random 2-D VAE: the zoomed grid's log p(x) is the core's exact_log_px_2d; KL ≥ 0 for the
    encoder's q, for φ* and for a hand-moved q, and φ* has the highest ELBO."""
    model = tiny_vae(2, seed=1)
    x = mnist.binarized("test")[:2]
    exact = exact_log_px_2d(model, x)
    for b in range(2):
        xb = x[b : b + 1]
        grid = posterior_grid(model, xb, n=121)
        assert float(grid.log_px[0]) == pytest.approx(float(exact[b]), abs=0.02)
        m, s = model.encode(xb)
        enc = posterior_numbers(model, xb, m, s, exact[b], k=100, generator=gen(0))
        opt = optimise_phi(model, xb, steps=150)
        best = posterior_numbers(model, xb, opt.z_loc, opt.z_scale, exact[b], k=100, generator=gen(0))
        moved = posterior_numbers(model, xb, opt.z_loc + 0.3, opt.z_scale * 2, exact[b], k=100, generator=gen(0))
        for num in (enc, best, moved):
            assert num.kl_post >= -1e-3
            assert num.log_px - num.elbo == pytest.approx(num.kl_post)
        assert best.elbo >= enc.elbo - 1e-4 and best.elbo > moved.elbo
        # quadrature ELBO agrees with the core's sampled ELBO on average
        with torch.no_grad():
            mc = encoder_elbo(model, xb.expand(4000, -1), generator=gen(b)).elbo.mean()
        assert float(mc) == pytest.approx(enc.elbo, abs=0.3)


def test_posterior_grid_includes_q_and_integrates_to_one(mnist):
    model = tiny_vae(2, seed=2)
    x = mnist.binarized("test")[5:6]
    far = (torch.tensor([[3.0, -3.0]]), torch.tensor([[0.2, 0.2]]))
    grid = posterior_grid(model, x, n=64, include=far)
    assert grid.z1[0] < 3.0 - 0.4 < 3.0 + 0.4 < grid.z1[-1] and grid.z2[0] < -3.4
    mass = float(grid.log_post.exp().sum() * grid.cell_area)  # 1 minus the mass outside the zoomed box
    assert 0.995 < mass < 1.0 + 1e-4
    with pytest.raises(ValueError):
        grid_posterior(tiny_vae(3), x)


# --- estimators as k grows -------------------------------------------------------------------


def test_running_log_mean_matches_direct_logsumexp():
    log_w = torch.randn(1000, generator=gen(3), dtype=torch.float64) * 5
    ks = log_spaced_ks(1000, 4)
    assert ks[0] == 1 and ks[-1] == 1000 and torch.all(ks[1:] > ks[:-1])
    direct = torch.stack([torch.logsumexp(log_w[:k], 0) - math.log(k) for k in ks.tolist()])
    torch.testing.assert_close(_running_log_mean(log_w, ks), direct)


def test_estimator_sweep_importance_sampling_beats_the_prior(lg, lg_x):
    x = lg_x[:1]
    seen = []
    sweep = estimator_sweep(lg, x, k_max=3000, runs=4, generator=gen(8), callback=seen.append)
    assert [s.runs_done for s in seen] == [1, 2, 3, 4]
    m = len(sweep.ks)
    assert sweep.naive.shape == sweep.importance.shape == (4, m)
    exact = float(lg.exact_log_px(x)[0])
    # with q the estimate at k_max is tight and has a small spread ...
    assert abs(float(sweep.importance[:, -1].mean()) - exact) < 0.05
    assert float(sweep.importance[:, -1].std()) < float(sweep.naive[:, -1].std()) + 1e-9
    # ... and the IW bound grows with k on average (Burda et al. 2016, Thm 1)
    assert float(sweep.importance[:, 0].mean()) < float(sweep.importance[:, -1].mean())
    assert 1.0 <= sweep.ess_prior <= 3000 and 1.0 <= sweep.ess_q <= 3000
    assert sweep.ess_q > sweep.ess_prior
    assert sweep.log_w_q.shape == (3000,)
    stopped = estimator_sweep(lg, x, k_max=100, runs=5, should_stop=lambda: True)
    assert stopped.runs_done == 0
