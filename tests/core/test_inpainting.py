"""Inpainting: gradients, the fit, completions, importance sampling, missing-pixel scores.

Closed forms come from a linear-Gaussian model (exact posterior given the observed pixels,
exact p(x_m|x_o)); behaviour on digits from a tiny VAE trained for a second inside the module.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch

from lvm_studio.core import estimators as est
from lvm_studio.core import inpainting as ip
from lvm_studio.core import masks
from lvm_studio.core.inpainting_completion import complete, importance_resample, prepare
from lvm_studio.core.inpainting_scores import (
    mean_field_log_likelihood,
    missing_pixel_log_likelihood,
    missing_pixel_scores,
)
from lvm_studio.core.linear_gaussian import LinearGaussian
from lvm_studio.core.observed_likelihood import ObservedLikelihood
from lvm_studio.core.vae import VAE, VAEConfig

LOG_2PI = math.log(2 * math.pi)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # two OpenMP threads on a busy two-core machine wait on each other; results do not depend on this
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vae(mnist, one_thread):
    """A 2-D-latent VAE trained for a few epochs on 2,000 digits (about a second)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = mnist.float_images("train")[:2000]
    model = VAE(VAEConfig(latent_dim=2, hidden=(128,)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(8):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 100):
            xb = torch.bernoulli(x[perm[i : i + 100]], generator=g)
            loss = -est.elbo(model, xb, generator=g).elbo.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.binarized("test")[:8]  # (8, 784)


class PixelLinearGaussian(LinearGaussian):
    """The linear-Gaussian model over 784 'pixels', with the per-pixel terms inpainting needs."""

    def log_px_given_z_pixels(self, x, z):
        mean = z @ self.W.T + self.b  # (..., batch, 784)
        s = self.noise_scale
        return -0.5 * ((x - mean) / s) ** 2 - math.log(s) - 0.5 * LOG_2PI

    def decode_mean(self, z):
        return z @ self.W.T + self.b


@pytest.fixture(scope="module")
def linear():
    g = torch.Generator().manual_seed(3)
    W = 0.1 * torch.randn(784, 2, generator=g)
    b = torch.randn(784, generator=g)
    # a deliberately poor encoder: the fit has to do the work
    model = PixelLinearGaussian(W, b, noise_scale=1.0, posterior_loc_shift=0.7, posterior_scale_factor=2.0)
    x = model.sample(3, generator=g)  # (3, 784)
    return model, x


def exact_posterior_observed(model, x, missing):
    """p(z|x_o) = N(m, Λ⁻¹), Λ = I + W_oᵀW_o/σ², m = Λ⁻¹ W_oᵀ(x_o − b_o)/σ² (Bishop PRML §12.2)."""
    obs = ~torch.as_tensor(missing).reshape(-1)
    Wo, s2 = model.W[obs], model.noise_scale**2
    prec = torch.eye(2) + Wo.T @ Wo / s2  # (2, 2)
    cov = torch.linalg.inv(prec)
    loc = (x[:, obs] - model.b[obs]) @ Wo @ cov.T / s2  # (batch, 2)
    return loc, cov, prec


# --- the hand-written gradient ----------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("activation", ["elu", "relu", "tanh", "softplus"])
@pytest.mark.parametrize("mask", ["shared", "per_digit", "one_digit"])
def test_manual_gradient_matches_autograd(likelihood, activation, mask):
    """Every path of the hand-written backward: one mask for all (Bernoulli: x_oᵀl folded into the last
    layer), one per digit, and one digit (Bernoulli: x_oᵀl an extra output row)."""
    torch.manual_seed(1)
    model = VAE(VAEConfig(latent_dim=3, hidden=(16, 8), likelihood=likelihood, activation=activation))
    B = 1 if mask == "one_digit" else 4
    x = torch.rand(B, 784)
    if likelihood == "bernoulli":
        x = torch.bernoulli(x)
    missing = (
        np.stack([masks.random_pixels(0.3, seed=s) for s in range(B)]) if mask == "per_digit" else masks.top_half()
    )
    xb, m = prepare(x, missing)
    lik = ObservedLikelihood(model, xb, m)
    assert lik.manual and (lik.w_aug is not None) == (mask == "one_digit" and likelihood == "bernoulli")
    z = torch.randn(5, B, 3)  # (S, batch, latent)
    lp, g = lik.value_and_grad(z)

    zz = z.clone().requires_grad_(True)
    ref = (model.log_px_given_z_pixels(xb, zz) * (~m)).sum(-1)  # (S, batch)
    (g_ref,) = torch.autograd.grad(ref.sum(), zz)
    assert torch.allclose(lp, ref.detach(), atol=1e-4, rtol=1e-5)
    assert torch.allclose(g, g_ref, atol=1e-4, rtol=1e-4)
    assert torch.allclose(lik.value(z), ref.detach(), atol=1e-4, rtol=1e-5)


def test_prepare_shapes_and_shared_masks():
    x, m = prepare(np.zeros((28, 28)), masks.top_half())
    assert x.shape == (1, 784) and m.shape == (1, 784) and m.dtype == torch.bool
    x, m = prepare(torch.zeros(3, 784), np.stack([masks.top_half()] * 3))
    assert m.shape == (1, 784)  # identical masks collapse to one
    x, m = prepare(torch.zeros(3, 28, 28), np.stack([masks.top_half(), masks.left_half(), masks.empty()]))
    assert m.shape == (3, 784) and m[1].reshape(28, 28)[:, :14].all()
    with pytest.raises(ValueError):
        prepare(torch.zeros(3, 784), np.zeros((2, 28, 28), bool))
    with pytest.raises(ValueError):
        prepare(torch.zeros(3, 100), masks.top_half())


# --- closed forms on the linear-Gaussian model -----------------------------------------------


def test_fit_finds_the_exact_mean_field_optimum(linear):
    """For a Gaussian posterior, the best diagonal q under KL(q ‖ p) has the posterior mean and
    variances 1/Λ_ii (Bishop PRML §10.1.2, eq. 10.13–10.15)."""
    model, x = linear
    missing = masks.top_half()
    loc, _, prec = exact_posterior_observed(model, x, missing)
    res = ip.fit_q(model, x, missing, ip.InpaintConfig(steps=400, lr=0.05, lr_final=0.02, n_samples=16, seed=0))
    assert not torch.allclose(res.init_loc, loc, atol=0.3)  # the encoder was off
    assert torch.allclose(res.z_loc, loc, atol=0.03)
    assert torch.allclose(res.z_scale, prec.diagonal().rsqrt().expand_as(loc), rtol=0.05)
    # the ELBO of x_o is ≤ log p(x_o) and reaches it up to KL(q ‖ p(z|x_o)) of the diagonal approximation
    elbo = ip.observed_elbo(
        model, x, missing, res.z_loc, res.z_scale, k=4000, generator=torch.Generator().manual_seed(0)
    )
    elbo0 = ip.observed_elbo(
        model, x, missing, res.init_loc, res.init_scale, k=4000, generator=torch.Generator().manual_seed(0)
    )
    assert (elbo > elbo0 + 1.0).all()


def test_importance_estimate_of_missing_pixels_matches_the_exact_conditional(linear):
    """p(x_m|x_o) = N(W_m m + b_m, W_m Λ⁻¹ W_mᵀ + σ² I) for the linear-Gaussian model."""
    model, x = linear
    missing = masks.top_half()
    mv = torch.as_tensor(missing).reshape(-1)
    loc, cov, _ = exact_posterior_observed(model, x, missing)
    Wm = model.W[mv]
    mean = loc @ Wm.T + model.b[mv]  # (batch, n_m)
    C = Wm @ cov @ Wm.T + model.noise_scale**2 * torch.eye(int(mv.sum()))
    exact = torch.distributions.MultivariateNormal(mean.double(), C.double()).log_prob(x[:, mv].double())

    res = ip.fit_q(model, x, missing, ip.InpaintConfig(steps=300, n_samples=8, seed=1))
    # log p(x_m|z) varies by several nats over the posterior, so the average needs many samples
    scores = missing_pixel_scores(
        model, x, missing, res.z_loc, res.z_scale, k=30000, generator=torch.Generator().manual_seed(2)
    )
    assert torch.allclose(scores.importance.double(), exact, atol=0.1)
    # the q-mixture and mean-field both lose a little against the exact conditional (Jensen / lost correlations)
    assert (scores.mixture.double() <= exact + 0.05).all()


# --- behaviour on digits with a small trained VAE ---------------------------------------------


def test_fit_improves_the_observed_pixel_elbo_over_the_encoder(vae, digits):
    missing = masks.top_half()
    res = ip.fit_q(vae, digits, missing, ip.InpaintConfig(seed=0))
    g = torch.Generator().manual_seed(5)
    before = ip.observed_elbo(vae, digits, missing, res.init_loc, res.init_scale, k=2000, generator=g)
    after = ip.observed_elbo(vae, digits, missing, res.z_loc, res.z_scale, k=2000, generator=g)
    assert (after > before).all()
    assert (after - before).mean() > 1.0
    # the trace starts at the guess and ends higher (averaging the last steps tames the MC noise)
    assert res.elbo_trace.shape == (201, 8)
    assert (res.elbo_trace[-20:].mean(0) > res.elbo_trace[:5].mean(0)).all()


def test_observed_pixels_are_never_changed(vae, digits, mnist):
    grey = mnist.float_images("test")[8:12]
    x = torch.cat([digits[:4], grey])  # binary and grey digits
    missing = np.stack([masks.top_half(), masks.centre_box(), masks.random_pixels(0.6, 1), masks.left_half()] * 2)
    obs = ~torch.as_tensor(missing).reshape(8, 784)
    reports = []
    res = ip.fit_q(vae, x, missing, ip.InpaintConfig(steps=30, report_every=10), callback=reports.append)
    iw = importance_resample(
        vae, x, missing, res.z_loc, res.z_scale, k=200, n=6, generator=torch.Generator().manual_seed(0)
    )
    images = (
        [
            res.completion.mean[None],
            res.completion.samples,
            res.amortized.mean[None],
            res.amortized.samples,
            iw.completions,
            iw.mean[None],
        ]
        + [r.completion.mean[None] for r in reports]
        + [r.completion.samples for r in reports]
    )
    for imgs in images:
        assert torch.equal(torch.where(obs, imgs, 0.0), torch.where(obs, x, 0.0).expand_as(imgs))
    for c in (res.completion, res.amortized):
        assert torch.equal(c.pixel_std[obs], torch.zeros(int(obs.sum())))
        assert (c.mean[~obs] >= 0).all() and (c.mean[~obs] <= 1).all()


def test_progress_reports_and_cancel(vae, digits):
    reports = []
    res = ip.fit_q(
        vae,
        digits[0],
        masks.top_half(),
        ip.InpaintConfig(steps=50, report_every=10, n_completion_samples=9),
        callback=reports.append,
    )
    assert [r.step for r in reports] == [10, 20, 30, 40, 50]
    last = reports[-1]
    assert last.elbo_trace.shape == (51, 1) and last.completion.samples.shape == (9, 1, 784)
    assert torch.equal(last.z_loc, res.z_loc) and torch.allclose(last.z_scale, res.z_scale)
    assert not res.stopped and res.steps_done == 50
    for r in reports:  # every live trace is a prefix of the final one
        assert torch.equal(r.elbo_trace, res.elbo_trace[: r.step + 1])
    # watching does not change the fit
    quiet = ip.fit_q(vae, digits[0], masks.top_half(), ip.InpaintConfig(steps=50))
    assert torch.equal(quiet.z_loc, res.z_loc) and torch.equal(quiet.elbo_trace, res.elbo_trace)

    calls = []
    res = ip.fit_q(
        vae,
        digits[0],
        masks.top_half(),
        ip.InpaintConfig(steps=200, report_every=10),
        callback=calls.append,
        should_stop=lambda: len(calls) >= 2,
    )
    assert res.stopped and res.steps_done == 20 and res.elbo_trace.shape == (21, 1)
    assert calls[-1].step == 20  # the final report at the step where it stopped


def test_reports_come_no_closer_than_the_interval_and_the_last_always(vae, digits, monkeypatch):
    """report_interval_s thins the live reports by time (the clock here is a fake one that moves 30 ms
    per call); the last step is always reported, and the fit is the same as with every report."""
    clock = iter(0.03 * i for i in range(10_000))
    monkeypatch.setattr(ip.time, "perf_counter", lambda: next(clock))
    cfg = ip.InpaintConfig(steps=50, report_every=5, n_completion_samples=4, report_interval_s=0.1)
    reports = []
    res = ip.fit_q(vae, digits[0], masks.top_half(), cfg, callback=reports.append)
    steps = [r.step for r in reports]
    assert steps[-1] == 50 and len(steps) < 10  # of the 10 reports due, about one in four comes
    assert steps == sorted(set(steps)) and all(s % 5 == 0 for s in steps)
    every = ip.fit_q(vae, digits[0], masks.top_half(), dataclasses.replace(cfg, report_interval_s=0.0))
    assert torch.equal(every.z_loc, res.z_loc) and torch.equal(every.elbo_trace, res.elbo_trace)
    with pytest.raises(ValueError):
        ip.InpaintConfig(report_interval_s=-1.0)


def test_fit_is_seeded_and_leaves_the_model_alone(vae, digits):
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    a = ip.fit_q(vae, digits[:2], masks.bottom_half(), ip.InpaintConfig(steps=20, seed=4))
    b = ip.fit_q(vae, digits[:2], masks.bottom_half(), ip.InpaintConfig(steps=20, seed=4))
    assert torch.equal(a.z_loc, b.z_loc) and torch.equal(a.elbo_trace, b.elbo_trace)
    assert all(torch.equal(v, before[k]) for k, v in vae.state_dict().items())


def test_batched_fit_with_per_digit_masks_improves_each_digit(vae, digits):
    missing = np.stack([masks.preset(n) for n in ("top_half", "bottom_half", "left_half", "right_half")] * 2)
    res = ip.fit_q(vae, digits, missing, ip.InpaintConfig(seed=0))
    g = torch.Generator().manual_seed(5)
    before = ip.observed_elbo(vae, digits, missing, res.init_loc, res.init_scale, k=2000, generator=g)
    after = ip.observed_elbo(vae, digits, missing, res.z_loc, res.z_scale, k=2000, generator=g)
    assert (after > before).all()


def test_amortized_guess_fills_the_hole(vae, digits):
    missing = masks.top_half()
    mv = torch.as_tensor(missing).reshape(-1)
    prior_mean = ip.prior_mean_image(vae)
    assert prior_mean.shape == (784,) and 0 <= prior_mean.min() and prior_mean.max() <= 1
    for fill, image in ((0.0, torch.zeros(784)), (0.3, torch.full((784,), 0.3)), ("prior_mean", prior_mean)):
        loc, scale = ip.amortized_guess(vae, digits, missing, fill=fill)
        ref_loc, ref_scale = vae.encode(torch.where(mv, image, digits))
        assert torch.allclose(loc, ref_loc, atol=1e-6) and torch.allclose(scale, ref_scale, atol=1e-6)
    # what is seen is all the encoder gets: the true missing pixels make no difference
    scrambled = digits.clone()
    scrambled[:, mv] = 1 - scrambled[:, mv]
    assert torch.equal(ip.amortized_guess(vae, scrambled, missing)[0], ip.amortized_guess(vae, digits, missing)[0])
    with pytest.raises(ValueError):
        ip.amortized_guess(vae, digits, missing, fill="nope")


# --- importance sampling and scores -------------------------------------------------------------


def test_no_observed_pixels_and_prior_proposal_give_equal_weights(vae, digits):
    """With nothing observed and q = p(z), every weight p(z)/q(z) is 1: ESS = k."""
    everything = masks.invert(masks.empty())
    z0 = torch.zeros(2, 2)
    iw = importance_resample(
        vae, digits[:2], everything, z0, torch.ones(2, 2), k=300, n=4, generator=torch.Generator().manual_seed(0)
    )
    assert torch.allclose(iw.log_w, torch.zeros_like(iw.log_w), atol=1e-5)
    assert torch.allclose(iw.ess, torch.full((2,), 300.0), rtol=1e-4)
    assert iw.z.shape == (4, 2, 2) and iw.completions.shape == (4, 2, 784)


def test_ess_is_between_one_and_k(vae, digits):
    res = ip.fit_q(vae, digits, masks.top_half(), ip.InpaintConfig(steps=50))
    iw = importance_resample(vae, digits, masks.top_half(), res.z_loc, res.z_scale, k=500, n=0)
    assert ((iw.ess >= 1 - 1e-4) & (iw.ess <= 500 + 1e-3)).all()
    assert iw.completions.shape == (0, 8, 784)


def test_scores_agree_with_their_definitions(vae, digits):
    missing = masks.top_half()
    res = ip.fit_q(vae, digits, missing, ip.InpaintConfig(steps=50))
    k = 200
    scores = missing_pixel_scores(
        vae, digits, missing, res.z_loc, res.z_scale, k=k, generator=torch.Generator().manual_seed(9)
    )
    # the same z draws through complete(): mean-field = Σ_m log Bern(x_i; φ_i)
    comp = complete(
        vae, digits, missing, res.z_loc, res.z_scale, n=k, n_keep=0, generator=torch.Generator().manual_seed(9)
    )
    mf = mean_field_log_likelihood(digits, missing, comp.mean)
    assert torch.allclose(scores.mean_field, mf, atol=1e-2)
    # mixture and importance weights by brute force over the same draws
    z = res.z_loc + res.z_scale * torch.randn((k, 8, 2), generator=torch.Generator().manual_seed(9))
    lp = vae.log_px_given_z_pixels(digits, z)  # (k, 8, 784)
    mv = torch.as_tensor(missing).reshape(-1)
    lp_m, lp_o = lp[..., mv].sum(-1), lp[..., ~mv].sum(-1)
    log_w = lp_o + est.log_standard_normal(z) - est.log_normal(z, res.z_loc, res.z_scale)
    assert torch.allclose(scores.mixture, torch.logsumexp(lp_m, 0) - math.log(k), atol=1e-3)
    assert torch.allclose(scores.importance, torch.logsumexp(log_w + lp_m, 0) - torch.logsumexp(log_w, 0), atol=1e-3)
    assert torch.allclose(scores.ess, est.effective_sample_size(log_w), rtol=1e-3)
    assert torch.equal(
        missing_pixel_log_likelihood(
            vae,
            digits,
            missing,
            res.z_loc,
            res.z_scale,
            k=k,
            method="importance",
            generator=torch.Generator().manual_seed(9),
        ),
        scores.importance,
    )


def test_a_point_mass_q_makes_all_scores_equal(vae, digits):
    """q → δ(z − z0): the mixture, its mean-field and the importance estimate are all log p(x_m|z0)."""
    missing = masks.bottom_half()
    z0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    s = missing_pixel_scores(vae, digits, missing, z0, torch.full((8, 2), 1e-6), k=50)
    mv = torch.as_tensor(missing).reshape(-1)
    direct = vae.log_px_given_z_pixels(digits, z0)[:, mv].sum(-1)
    for v in (s.mean_field, s.mixture, s.importance):
        assert torch.allclose(v, direct, atol=1e-2)


def test_mean_field_baseline():
    x = torch.tensor([[1.0, 0.0] * 392])
    missing = torch.zeros(784, dtype=torch.bool)
    missing[:4] = True
    p = torch.full((784,), 0.25)
    expect = 2 * math.log(0.25) + 2 * math.log(0.75)
    assert math.isclose(mean_field_log_likelihood(x, missing, p).item(), expect, rel_tol=1e-5)
