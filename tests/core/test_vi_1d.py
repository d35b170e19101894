"""core.vi_1d: the 1-D latent with an exact posterior on a grid, against closed forms."""

import math

import numpy as np
import pytest

from lvm_studio.core import vi_1d


def kl_gauss(m1, s1, m2, s2):
    """KL(N(m1, s1²) ‖ N(m2, s2²)) in closed form."""
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


@pytest.mark.parametrize(("x", "d", "s"), [(2.0, -1.0, 1.0), (0.5, 0.0, 0.4), (-3.0, 1.0, 2.0)])
def test_a_gaussian_likelihood_gives_the_closed_form_posterior_elbo_and_kl(x, d, s):
    model = vi_1d.Model1D(x=x, offsets=(d,), scales=(s,), weights=(1.0,))
    # x = z + d + ε: p(x) = N(x; d, 1 + s²); p(z|x) = N((x − d)/(1 + s²), s²/(1 + s²))  (Bishop 2006, eq. 2.116)
    log_px = -0.5 * math.log(2 * math.pi * (1 + s * s)) - (x - d) ** 2 / (2 * (1 + s * s))
    post_m, post_s = (x - d) / (1 + s * s), s / math.sqrt(1 + s * s)
    assert model.log_px_closed_form() == pytest.approx(log_px, abs=1e-12)
    post = vi_1d.posterior(model)
    assert post.log_px == pytest.approx(log_px, abs=1e-6)
    dens = np.exp(post.log_post)
    assert float(np.sum(dens * post.z) * (post.z[1] - post.z[0])) == pytest.approx(post_m, abs=1e-6)
    for mu, sigma in ((0.0, 1.0), (post_m + 0.7, 0.5), (-2.0, 2.0)):
        q = vi_1d.score_q(model, mu, sigma)
        # the midpoint rule's error, O(Δz²) with Δz ≈ 0.007, is well below 10⁻³ nats
        assert q.kl == pytest.approx(kl_gauss(mu, sigma, post_m, post_s), abs=5e-4)
        assert q.elbo == pytest.approx(log_px - kl_gauss(mu, sigma, post_m, post_s), abs=5e-4)
        assert q.elbo + q.kl == pytest.approx(log_px, abs=1e-6)
    best = vi_1d.best_q(model)  # the posterior itself is Gaussian: φ* recovers it and the bound is tight
    assert best.mu == pytest.approx(post_m, abs=1e-3)
    assert best.sigma == pytest.approx(post_s, abs=1e-3)
    assert best.kl == pytest.approx(0.0, abs=1e-5)


def test_elbo_plus_kl_is_log_px_for_the_lectures_bimodal_posterior():
    model = vi_1d.Model1D()  # x = 3, offsets 0 and 7: likelihood bumps at z = 3 and z = −4
    log_px = model.log_px_closed_form()
    assert vi_1d.posterior(model).log_px == pytest.approx(log_px, abs=1e-6)
    for mu, sigma in ((2.0, math.sqrt(2.0)), (-4.0, 0.75), (0.0, 3.0), (1.5, 0.7)):
        q = vi_1d.score_q(model, mu, sigma)
        assert q.kl >= 0
        assert q.elbo + q.kl == pytest.approx(log_px, abs=1e-6)
        assert q.elbo <= log_px
        assert q.entropy == pytest.approx(0.5 * math.log(2 * math.pi * math.e * sigma**2))
        assert q.gap == pytest.approx(q.kl, abs=1e-6)
    # the lecture's figure: N(2, 2) (variance 2) is the better q, N(−4, 0.75²) much worse
    a = vi_1d.score_q(model, 2.0, math.sqrt(2.0))
    b = vi_1d.score_q(model, -4.0, 0.75)
    assert a.kl < b.kl and a.elbo > b.elbo
    best = vi_1d.best_q(model)
    assert best.elbo >= a.elbo and best.kl < a.kl


def test_bad_models_are_refused():
    with pytest.raises(ValueError, match="sum to 1"):
        vi_1d.Model1D(weights=(0.5, 0.6))
    with pytest.raises(ValueError, match="same"):
        vi_1d.Model1D(offsets=(0.0,), scales=(1.0, 1.0), weights=(1.0,))
    with pytest.raises(ValueError, match="sigma"):
        vi_1d.score_q(vi_1d.Model1D(), 0.0, 0.0)
