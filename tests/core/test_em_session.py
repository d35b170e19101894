"""The EM playground's state without Qt: core.em_session (EM one half-step at a time) and
core.em_playground (the points, the generating mixture, the settings).

EM never lowers the log-likelihood, the free energy equals it after every E-step (and lies below it
otherwise, by the KL), a seeded point set is drawn the same every time, and the generating mixture
entered as numbers comes back as the same numbers and as the closed-form covariances.
"""

import math

import numpy as np
import pytest
import torch

from lvm_studio.core.em_playground import (
    CUSTOM,
    DEFAULT_COMPONENTS,
    EMPTY,
    FIELDS,
    MAX_TRUE_K,
    EMPlayground,
    GeneratingMixture,
    TrueComponent,
    true_covariance,
)
from lvm_studio.core.em_session import EMSession, free_energy
from lvm_studio.core.gmm import GaussianMixture, GMMConfig
from lvm_studio.core.points2d import POINT_SETS, SUGGESTED_COMPONENTS, make_point_set


def recorder(play: EMPlayground) -> list[str]:
    events = []
    play.subscribe(events.append)
    return events


# --- EMSession ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POINT_SETS))
def test_free_energy_rises_at_every_half_step(name):
    """F(q, θ) = ℓ(θ) after each E-step, F never falls, ℓ(θ) ≥ F after each M-step, and so the
    log-likelihood is monotone, on every built-in point set."""
    x, _ = make_point_set(name, 300, 0)
    s = EMSession(GMMConfig(n_components=SUGGESTED_COMPONENTS[name], seed=0))
    s.set_points(x)
    s.reset()
    for _ in range(25):
        s.e_step()
        s.m_step()
    steps = [h for h in s.trace if h.kind != "init"]
    f = np.array([h.free_energy for h in steps])
    assert np.all(np.diff(f) >= -1e-10)
    for h in steps:
        if h.kind == "E":
            assert h.free_energy == pytest.approx(h.log_likelihood, abs=1e-10)
        else:
            assert h.log_likelihood >= h.free_energy - 1e-10
    lls = np.array([h.log_likelihood for h in s.trace if h.kind in ("init", "M")])
    assert np.all(np.diff(lls) >= -1e-10)


def test_free_energy_is_log_likelihood_minus_kl():
    """For any q: F(q, θ) = ℓ(θ) − (1/N) Σ_n KL(q_n ‖ p(z | x_n, θ)) (Neal & Hinton 1998, eq. 5),
    checked with a uniform q against the KL written out."""
    x = torch.as_tensor(make_point_set("overlapping blobs", 200, 1)[0])
    gmm = GaussianMixture(GMMConfig(n_components=3, seed=0), dtype=torch.float64).initialize(x)
    log_post, ll = gmm.e_step(x)  # (N, K)
    log_q = torch.full_like(log_post, -math.log(3.0))  # uniform q
    f, ll2 = free_energy(gmm, x, log_q)
    kl = (log_q.exp() * (log_q - log_post)).sum(1).mean().item()
    assert ll2 == pytest.approx(ll, abs=1e-12)
    assert f == pytest.approx(ll - kl, abs=1e-10)
    assert free_energy(gmm, x, log_post)[0] == pytest.approx(ll, abs=1e-10)  # q = posterior: KL = 0


def test_iterate_is_an_e_step_then_an_m_step():
    x, _ = make_point_set("two moons", 150, 0)
    a, b = EMSession(GMMConfig(n_components=4)), EMSession(GMMConfig(n_components=4))
    for s in (a, b):
        s.set_points(x)
        s.reset()
    for _ in range(5):
        a.iterate()
        b.e_step()
        b.m_step()
    assert [h.kind for h in a.trace] == [h.kind for h in b.trace] == ["init"] + ["E", "M"] * 5
    np.testing.assert_allclose(a.gmm.means.numpy(), b.gmm.means.numpy(), atol=1e-12)
    assert a.q_fresh is False and a.trace[-1].x == 5.0 and a.trace[-2].x == 4.5


# --- EMPlayground: EM --------------------------------------------------------------------------


def test_playground_log_likelihood_is_monotone_and_f_meets_it_after_e_steps():
    play = EMPlayground()
    play.set_point_set("anisotropic blobs")
    for _ in range(30):
        assert play.iterate()
    play.e_step()
    trace = play.session.trace
    lls = [h.log_likelihood for h in trace if h.kind in ("init", "M")]
    assert len(lls) == 31 and np.all(np.diff(lls) >= -1e-10)
    for h in trace:
        if h.kind == "E":
            assert h.free_energy == pytest.approx(h.log_likelihood, abs=1e-10)
    assert play.can_m_step and not play.can_e_step


def test_playground_starts_like_the_core():
    play = EMPlayground()
    events = recorder(play)
    play.set_point_set("overlapping blobs")
    assert events == ["reset", "points"]
    assert play.config.n_components == SUGGESTED_COMPONENTS["overlapping blobs"]
    x = torch.as_tensor(play.x)
    ref = GaussianMixture(GMMConfig(n_components=3, seed=0), dtype=torch.float64).initialize(x)
    np.testing.assert_allclose(play.session.gmm.means.numpy(), ref.means.numpy(), atol=1e-12)
    assert not play.can_m_step and play.can_e_step
    assert not play.m_step()  # no q yet: nothing happens
    assert play.e_step() and play.m_step() and events[-2:] == ["E", "M"]


def test_reset_goes_back_to_theta_0():
    play = EMPlayground()
    play.set_point_set("well-separated blobs")
    theta_0 = play.session.gmm.means.numpy().copy()
    for _ in range(4):
        play.iterate()
    assert play.reset()
    np.testing.assert_array_equal(play.session.gmm.means.numpy(), theta_0)
    assert play.session.log_q is None and len(play.session.trace) == 1


def test_configuration_changes_restart():
    play = EMPlayground()
    play.set_point_set("overlapping blobs")
    play.set_config(n_components=5, covariance="diag", seed=7)
    ref = GaussianMixture(GMMConfig(n_components=5, covariance="diag", seed=7), dtype=torch.float64)
    ref.initialize(torch.as_tensor(play.x))
    np.testing.assert_allclose(play.session.gmm.means.numpy(), ref.means.numpy(), atol=1e-12)
    assert play.session.config.covariance == "diag"


def test_finished_after_convergence():
    play = EMPlayground()
    play.set_point_set("well-separated blobs")
    while not play.finished():
        play.iterate()
    assert play.session.converged(1e-6) and play.session.iteration < 1000


# --- EMPlayground: the points ------------------------------------------------------------------


def test_regenerate_with_a_seed_is_deterministic():
    a, b = EMPlayground(), EMPlayground()
    for play in (a, b):
        play.set_point_set("two moons")
        play.set_sampling(n=120, data_seed=5)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.true_labels, b.true_labels)
    x5 = a.x.copy()
    a.add_point(9.0, 9.0)
    assert a.n_points == 121 and a.true_labels is None
    a.regenerate()
    np.testing.assert_array_equal(a.x, x5)  # the same seed: the same points again
    a.new_points()
    assert a.data_seed == 6 and not np.array_equal(a.x, x5)
    np.testing.assert_array_equal(a.x, make_point_set("two moons", 120, 6)[0])


def test_custom_points_follow_the_generating_mixture():
    a, b = EMPlayground(), EMPlayground()
    for play in (a, b):
        play.set_point_set(CUSTOM)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.config.n_components == 3 and a.n_points == 300
    a.set_true_value(0, "mu1", 40.0)  # move component 1 far away: exactly its points follow
    far = a.x[:, 0] > 30
    np.testing.assert_array_equal(far, a.true_labels == 0)
    events = recorder(a)
    a.set_true_k(4)
    assert a.mixture.k == 4 and a.config.n_components == 4 and a.session.gmm.n_components == 4
    assert events == ["mixture", "reset", "points"]
    assert set(np.unique(a.true_labels)) == {0, 1, 2, 3}


def test_edit_points():
    play = EMPlayground()
    play.set_point_set(EMPTY)
    assert play.n_points == 0 and not play.session.ready
    assert "no points" in play.waiting_for()
    for x, y in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]:
        play.add_point(x, y)
    assert play.session.ready and play.n_points == 3  # enough points for K = 3: initialised
    theta = play.session.gmm.means.numpy().copy()
    play.add_point(5.0, 5.0)
    np.testing.assert_array_equal(play.session.gmm.means.numpy(), theta)  # θ kept: EM carries on
    assert play.erase_within(0.9, 0.1, 0.3, 0.3) == 1
    np.testing.assert_array_equal(play.x, [[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    assert play.erase_within(-9.0, -9.0, 0.3, 0.3) == 0
    play.clear()
    assert play.n_points == 0 and not play.session.ready


def test_sample_one_adds_a_labelled_point():
    play = EMPlayground()
    play.set_point_set(CUSTOM)
    z, x = play.sample_one()
    assert play.n_points == 301 and np.array_equal(play.x[-1], x) and play.true_labels[-1] == z
    assert play.session.ready


def test_click_to_place_initialisation():
    play = EMPlayground()
    play.set_point_set("overlapping blobs")
    play.set_config(n_components=2)
    play.place_mean(-3.0, 3.0)  # switches to init 'given' and waits for K means
    assert play.config.init == "given" and not play.session.ready
    assert "1 of 2 placed" in play.waiting_for()
    play.place_mean(1.0, -1.0)
    assert play.session.ready
    np.testing.assert_allclose(play.session.gmm.means.numpy(), [[-3.0, 3.0], [1.0, -1.0]])
    play.set_config(n_components=1)  # fewer components: the first placed means are kept
    assert play.placed_means == [(-3.0, 3.0)] and play.session.ready


# --- the generating mixture ----------------------------------------------------------------------


def test_generating_mixture_round_trips():
    m = GeneratingMixture.default(3)
    assert m.rows() == tuple(tuple(getattr(c, f) for f in FIELDS) for c in DEFAULT_COMPONENTS[:3])
    assert GeneratingMixture.from_rows(m.rows()) == m
    edited = m.with_value(1, "sigma2", 0.25)
    assert edited.components[1].sigma2 == 0.25 and edited.components[0] == m.components[0]
    play = EMPlayground()
    play.set_generating_mixture(edited)
    assert play.mixture == edited and play.mixture.rows() == edited.rows()
    assert m.with_k(1).with_k(3) == m  # rows come back from the defaults
    assert m.with_k(MAX_TRUE_K).components == DEFAULT_COMPONENTS
    with pytest.raises(ValueError):
        m.with_k(MAX_TRUE_K + 1)
    with pytest.raises(KeyError):
        m.with_value(0, "nope", 1.0)


def test_generating_mixture_arrays_against_closed_forms():
    m = GeneratingMixture(
        (
            TrueComponent(2.0, 1.0, -1.0, 2.0, 0.5, 90.0),  # rotated a quarter turn: diag(σ₂², σ₁²)
            TrueComponent(-1.0, 0.0, 0.0, 1.0, 1.0, 0.0),  # negative weight: 0
            TrueComponent(2.0, 3.0, 4.0, -0.5, 0.0, 0.0),  # |σ| used, at least 1e-3
        )
    )
    w, mu, cov = m.arrays()
    np.testing.assert_allclose(w, [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(mu, [[1.0, -1.0], [0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(cov[0], np.diag([0.25, 4.0]), atol=1e-12)
    np.testing.assert_allclose(cov[2], np.diag([0.25, 1e-6]), atol=1e-15)
    s = true_covariance(1.5, 0.4, 30.0)
    np.testing.assert_allclose(np.linalg.eigvalsh(s), [0.16, 2.25], atol=1e-12)
    v = np.array([math.cos(math.radians(30.0)), math.sin(math.radians(30.0))])
    np.testing.assert_allclose(s @ v, 2.25 * v, atol=1e-12)  # σ₁ along the rotated first axis
    zero = GeneratingMixture((TrueComponent(0.0, 0, 0, 1, 1, 0), TrueComponent(0.0, 1, 1, 1, 1, 0)))
    np.testing.assert_allclose(zero.arrays()[0], [0.5, 0.5])  # no positive weight: uniform
