"""The model protocol (lvm_studio.core.model) and the prior behind it.

The estimators must use the model's own prior, never N(0, I) by assumption. The check: a
linear-Gaussian model with prior N(m, I) and offset b − W m has the same marginal p(x) as the
one with prior N(0, I) and offset b (z' = z + m), so every estimate of log p(x) must agree with
the closed form, and with the same random draws it must agree with the unshifted model's estimate
to rounding (the draws for z' are those for z moved by m).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from lvm_studio.core import estimators as E
from lvm_studio.core.data import MNIST
from lvm_studio.core.evaluation import evaluate
from lvm_studio.core.linear_gaussian import LinearGaussian
from lvm_studio.core.model import LatentVariableModel, StandardNormalPrior
from lvm_studio.core.posterior_grid import posterior_grid
from lvm_studio.core.q_elbo import elbo_for_q, importance_samples, iw_log_px_for_q, optimise_phi
from lvm_studio.core.training import TrainConfig, Trainer
from lvm_studio.core.vae import VAE, VAEConfig

M = torch.tensor([1.5, -1.0], dtype=torch.float64)  # the prior's mean in the shifted model


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ShiftedPriorLG:
    """p(z) = N(m, I), p(x|z) = N(W z + b − W m, σ² I): `base` (prior N(0, I), offset b) with z
    moved by m. Same p(x) as base; q(z|x) is base's q moved by m."""

    def __init__(self, base: LinearGaussian, m: torch.Tensor):
        self.base, self.m = base, m
        self.likelihood = LinearGaussian(base.W, base.b - base.W @ m, base.noise_scale)
        self.latent_dim = base.latent_dim

    def encode(self, x):
        z_loc, z_scale = self.base.encode(x)  # (batch, latent)
        return z_loc + self.m, z_scale

    def log_px_given_z(self, x, z):
        return self.likelihood.log_px_given_z(x, z)

    def log_px_given_z_pixels(self, x, z):
        return self.likelihood.log_px_given_z_pixels(x, z)

    def prior_log_prob(self, z):
        return E.log_standard_normal(z - self.m)  # log N(z; m, I)

    def sample_prior(self, shape, generator=None):
        return self.m + self.base.sample_prior(shape, generator)  # (*shape, latent)

    def kl_to_prior(self, z_loc, z_scale):
        return E.kl_normal_standard(z_loc - self.m, z_scale)  # KL(N(μ, σ²) ‖ N(m, I))


@pytest.fixture(scope="module")
def base() -> LinearGaussian:
    # q(z|x) ≠ p(z|x) (shifted, widened), so the bounds are strict and the IW estimates noisy
    return LinearGaussian.random(x_dim=5, latent_dim=2, seed=3, posterior_loc_shift=0.3, posterior_scale_factor=1.3)


@pytest.fixture(scope="module")
def shifted(base) -> ShiftedPriorLG:
    return ShiftedPriorLG(base, M)


@pytest.fixture(scope="module")
def x(base) -> torch.Tensor:
    return base.sample(6, gen(0))  # (6, 5)


# --- the protocol ---------------------------------------------------------------------


def test_the_vae_and_the_linear_gaussian_model_satisfy_the_protocol(base, shifted):
    assert isinstance(VAE(VAEConfig(latent_dim=2, hidden=(8,))), LatentVariableModel)
    assert isinstance(base, LatentVariableModel)
    assert isinstance(shifted, LatentVariableModel)

    class EncoderOnly:
        latent_dim = 2

        def encode(self, x):
            return x, x

    assert not isinstance(EncoderOnly(), LatentVariableModel)


def test_standard_normal_prior_members_on_the_models_device_and_dtype(base):
    z = base.sample_prior((4, 3), gen(1))
    assert z.shape == (4, 3, 2) and z.dtype == torch.float64
    torch.testing.assert_close(base.prior_log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))
    vae = VAE(VAEConfig(latent_dim=3, hidden=(8,)))
    assert vae.sample_prior((5,)).shape == (5, 3) and vae.sample_prior((5,)).dtype == torch.float32


def test_kl_to_prior_is_the_closed_form_kl_to_n01(base):
    z_loc = torch.randn(7, 2, generator=gen(2), dtype=torch.float64)
    z_scale = torch.rand(7, 2, generator=gen(3), dtype=torch.float64) + 0.1
    expected = kl_divergence(Normal(z_loc, z_scale), Normal(0.0, 1.0)).sum(-1)  # (7,)
    torch.testing.assert_close(base.kl_to_prior(z_loc, z_scale), expected)
    torch.testing.assert_close(
        StandardNormalPrior.kl_to_prior(base, z_loc, z_scale), E.kl_normal_standard(z_loc, z_scale)
    )


def test_linear_gaussian_per_pixel_likelihood_sums_to_the_total(base, x):
    z = base.sample_prior((3, len(x)), gen(4))  # (3, 6, 2)
    pixels = base.log_px_given_z_pixels(x, z)  # (3, 6, 5)
    assert pixels.shape == (3, 6, 5)
    expected = Normal(z @ base.W.T + base.b, base.noise_scale).log_prob(x)
    torch.testing.assert_close(pixels, expected)
    torch.testing.assert_close(base.log_px_given_z(x, z), expected.sum(-1))


def test_log_weights_is_the_hand_formula(shifted, x):
    z_loc, z_scale = shifted.encode(x)  # (6, 2)
    z = E.reparameterize(z_loc, z_scale, 11, gen(5))  # (11, 6, 2)
    log_lik = shifted.log_px_given_z(x, z)  # (11, 6)
    by_hand = (
        log_lik
        + Normal(M, 1.0).log_prob(z).sum(-1)  # log p(z), p = N(m, I)
        - Normal(z_loc, z_scale).log_prob(z).sum(-1)  # log q(z|x)
    )
    torch.testing.assert_close(E.log_weights(log_lik, z, z_loc, z_scale, shifted), by_hand)


# --- the estimators use the model's prior -----------------------------------------------


def test_iw_estimates_with_a_shifted_prior_match_the_closed_form(base, shifted, x):
    exact = base.exact_log_px(x)  # (6,) p(x) = N(b, W Wᵀ + σ² I) for both models
    # same draws: z' = z + m, so every log-weight is the base model's, up to rounding
    torch.testing.assert_close(E.iwae_log_px(shifted, x, 500, gen(6)), E.iwae_log_px(base, x, 500, gen(6)))
    torch.testing.assert_close(
        E.sample_log_weights(shifted, x, 40, "q", gen(7)), E.sample_log_weights(base, x, 40, "q", gen(7))
    )
    # and against the closed form: mean and standard error over independent runs
    runs = torch.stack([E.iwae_log_px(shifted, x, 200, gen(100 + r)) for r in range(20)])  # (20, 6)
    se = runs.std(0) / math.sqrt(len(runs))
    assert ((runs.mean(0) - exact).abs() < 5 * se + 0.02).all()
    # with the wrong prior (N(0, I) with the shifted likelihood) the estimate is far off
    wrong = E.iwae_log_px(shifted.likelihood, x, 2000, gen(8))
    assert ((wrong - exact).abs() > 0.5).any()


def test_naive_mc_draws_from_the_models_prior(base, shifted, x):
    exact = base.exact_log_px(x)
    torch.testing.assert_close(E.naive_mc_log_px(shifted, x, 300, gen(9)), E.naive_mc_log_px(base, x, 300, gen(9)))
    torch.testing.assert_close(
        E.sample_log_weights(shifted, x, 30, "prior", gen(10)), E.sample_log_weights(base, x, 30, "prior", gen(10))
    )
    naive = E.naive_mc_log_px(shifted, x, 100_000, gen(11))
    torch.testing.assert_close(naive, exact, rtol=0, atol=0.1)


def test_elbo_uses_the_models_kl_to_its_prior(base, shifted, x):
    a, b = E.elbo(shifted, x, gen(12)), E.elbo(base, x, gen(12))
    torch.testing.assert_close(a.kl, b.kl)
    torch.testing.assert_close(a.recon, b.recon)
    z_loc, z_scale = shifted.encode(x)
    expected = kl_divergence(Normal(z_loc, z_scale), Normal(M, 1.0)).sum(-1)
    torch.testing.assert_close(a.kl, expected)
    # its expectation (quadrature, same KL) is a strict lower bound on the exact log p(x): q ≠ p(z|x)
    assert (elbo_for_q(shifted, x, z_loc, z_scale).elbo < base.exact_log_px(x)).all()


def test_grid_integrals_use_the_models_prior(base, shifted, x):
    exact = base.exact_log_px(x[:2])
    torch.testing.assert_close(E.exact_log_px_2d(shifted, x[:2], extent=8.0), exact, rtol=0, atol=1e-6)
    extent = (M[0] - 5.0, M[0] + 5.0, M[1] - 5.0, M[1] + 5.0)
    grid = E.grid_posterior(shifted, x[:2], 121, tuple(float(e) for e in extent))
    torch.testing.assert_close(grid.log_px, exact, rtol=0, atol=1e-4)
    one = posterior_grid(shifted, x[:1])
    torch.testing.assert_close(one.log_px, exact[:1], rtol=0, atol=1e-4)


def test_latent_views_use_the_models_prior(base, shifted, x):
    x1 = x[:1]
    z_loc, z_scale = shifted.encode(x1)
    zb_loc, zb_scale = base.encode(x1)
    a = elbo_for_q(shifted, x1, z_loc, z_scale)
    b = elbo_for_q(base, x1, zb_loc, zb_scale)
    torch.testing.assert_close(a.elbo, b.elbo)
    z, log_w, w = importance_samples(shifted, x1, z_loc, z_scale, 50, gen(13))
    zb, log_wb, _ = importance_samples(base, x1, zb_loc, zb_scale, 50, gen(13))
    torch.testing.assert_close(z, zb + M)
    torch.testing.assert_close(log_w, log_wb)
    torch.testing.assert_close(
        iw_log_px_for_q(shifted, x1, z_loc, z_scale, 64, gen(14)),
        iw_log_px_for_q(base, x1, zb_loc, zb_scale, 64, gen(14)),
    )
    phi = optimise_phi(shifted, x1, steps=30)
    phi_base = optimise_phi(base, x1, steps=30)
    torch.testing.assert_close(phi.elbo_trace, phi_base.elbo_trace)
    torch.testing.assert_close(phi.z_loc, phi_base.z_loc + M)


def test_evaluate_with_a_shifted_prior(base, shifted, x):
    a = evaluate(shifted, x, k=100, iw_ks=(1, 10), seed=3)
    b = evaluate(base, x, k=100, iw_ks=(1, 10), seed=3)
    for key in ("elbo", "recon", "kl", "log_px"):
        assert a[key] == pytest.approx(b[key], rel=1e-9), key
    assert a["iw_bounds"] == pytest.approx(b["iw_bounds"], rel=1e-9)


# --- the Trainer's objective --------------------------------------------------------------


class ShiftedPriorVAE(VAE):
    """A VAE whose prior is N(m, I) (m = 1 in every dimension): only the prior members change."""

    def prior_log_prob(self, z):
        return E.log_standard_normal(z - 1.0)

    def sample_prior(self, shape, generator=None):
        return 1.0 + super().sample_prior(shape, generator)

    def kl_to_prior(self, z_loc, z_scale):
        return E.kl_normal_standard(z_loc - 1.0, z_scale)


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_the_trainers_objective_uses_the_models_prior(mnist, objective):
    torch.manual_seed(0)
    model = ShiftedPriorVAE(VAEConfig(latent_dim=2, hidden=(8,)))
    data = MNIST(
        x_train=mnist.x_train[:64],
        y_train=mnist.y_train[:64],
        x_val=mnist.x_val[:16],
        y_val=mnist.y_val[:16],
        x_test=mnist.x_test[:16],
        y_test=mnist.y_test[:16],
        source="slice",
    )
    trainer = Trainer(model, data, TrainConfig(objective=objective, k=4, eval_n=10, eval_k=5))
    x = torch.bernoulli(data.float_images("val")[:8], generator=gen(15))  # (8, 784)
    z_loc, z_scale = model.encode(x)
    _, elbo, recon, kl = trainer._loss(x)
    torch.testing.assert_close(kl, model.kl_to_prior(z_loc, z_scale).mean().detach())
    assert not torch.allclose(kl, E.kl_normal_standard(z_loc, z_scale).mean())
    if objective == "iwae":
        trainer.generator.manual_seed(16)
        loss = trainer._loss(x)[0]
        z = E.reparameterize(z_loc, z_scale, 4, gen(16))  # the same draws
        log_w = model.log_px_given_z(x, z) + E.log_standard_normal(z - 1.0) - E.log_normal(z, z_loc, z_scale)
        torch.testing.assert_close(loss, -(torch.logsumexp(log_w, 0) - math.log(4)).mean())
