"""Metropolis-within-Gibbs (Mattei & Frellsen 2018) draws the exact p(z | x_o), whatever the encoder and
the start; pseudo-Gibbs (Rezende et al. 2014) does not when the encoder is off; the multi-chain ESS
matches an AR(1) process's known value (issue 16)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from lvm_studio.core.linear_gaussian import LinearGaussian
from lvm_studio.core.mwg import ChainConfig, chain_ess, rao_blackwell_log_predictive, run_chains

D = 6
MISSING = torch.tensor([[True, True, True, False, False, False]])  # the first three coordinates hidden
N_CHAINS = 1000


@pytest.fixture(scope="module")
def problem():
    """A linear-Gaussian model whose encoder is off (shifted by 0.4, 1.6 × too wide), one x, and the exact
    p(z | x_o) = the posterior of the model restricted to the observed coordinates (Bishop, PRML §12.2)."""
    model = LinearGaussian.random(
        x_dim=D, latent_dim=2, noise_scale=0.7, seed=0, posterior_loc_shift=0.4, posterior_scale_factor=1.6
    )
    x = model.sample(1, torch.Generator().manual_seed(1))  # (1, D)
    obs = ~MISSING[0]
    loc, cov = LinearGaussian(model.W[obs], model.b[obs], model.noise_scale).exact_posterior(x[:, obs])
    return model, x, loc[0], cov


def _ks_pvalues(z: torch.Tensor, loc: torch.Tensor, cov: torch.Tensor) -> list[float]:
    """KS p-values of the chains' final states (n, 2) against the exact marginals and one oblique projection."""
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, -0.8]], dtype=z.dtype)
    out = []
    for a in directions:
        u = (z @ a).numpy()
        sd = math.sqrt(float(a @ cov @ a))
        out.append(stats.kstest(u, stats.norm(float(a @ loc), sd).cdf).pvalue)
    return out


def _final_states(model, x, start: float, method: str = "mwg", steps: int = 200):
    init = torch.full((N_CHAINS, 1, 2), start, dtype=torch.float64)
    cfg = ChainConfig(n_chains=N_CHAINS, steps=steps, burn_in=steps // 2, method=method, seed=0, report_every=0)
    res = run_chains(model, x, MISSING, cfg, init_z=init)
    assert res.steps_done == steps and not res.stopped
    return res, res.z[:, 0]  # (chains, 2): independent chains, so the final states are iid draws


def test_mwg_draws_the_exact_posterior_from_any_start(problem):
    model, x, loc, cov = problem
    finals = []
    for start in (-2.5, 3.0):
        res, z = _final_states(model, x, start)
        assert min(_ks_pvalues(z, loc, cov)) > 0.01, f"start {start}: KS rejects p(z|x_o)"
        assert 0.05 < float(res.accept_rate[0]) < 0.95  # a real Metropolis step, neither stuck nor trivial
        finals.append(z)
    # invariance to the start: the two sets of chains agree with each other too
    for d in range(2):
        assert stats.ks_2samp(finals[0][:, d].numpy(), finals[1][:, d].numpy()).pvalue > 0.01


def test_pseudo_gibbs_with_an_inexact_encoder_is_biased(problem):
    """The same test has the power to reject: pseudo-Gibbs's stationary law is not p(z|x_o) here."""
    model, x, loc, cov = problem
    res, z = _final_states(model, x, 0.0, method="pseudo_gibbs", steps=60)
    assert float(res.accept_rate[0]) == 1.0
    assert min(_ks_pvalues(z, loc, cov)) < 1e-6


def test_chain_ess_matches_an_ar1_process():
    """AR(1) with coefficient a: the ESS of n draws is n (1 − a) / (1 + a)."""
    g = torch.Generator().manual_seed(0)
    T, C, a = 2000, 8, 0.8
    z = torch.zeros(T, C, 3, dtype=torch.float64)
    noise = torch.randn(T, C, 3, generator=g, dtype=torch.float64)
    z[0] = noise[0] / math.sqrt(1 - a * a)
    for t in range(1, T):
        z[t] = a * z[t - 1] + noise[t]
    ess = chain_ess(z)  # (3,)
    expected = T * C * (1 - a) / (1 + a)
    assert torch.all((ess / expected - 1).abs() < 0.2), (ess, expected)
    iid = chain_ess(torch.randn(T, C, 3, generator=g, dtype=torch.float64))
    assert torch.all((iid / (T * C) - 1).abs() < 0.2)


def test_rao_blackwell_predictive_is_the_mean_of_the_conditionals(problem):
    model, x, _, _ = problem
    z = torch.randn(5, 2, 1, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = rao_blackwell_log_predictive(model, x, MISSING, z)
    lp = (model.log_px_given_z_pixels(x, z.reshape(10, 1, 2)) * MISSING.double()).sum(-1)  # (10, 1)
    assert torch.allclose(got, torch.logsumexp(lp, 0) - math.log(10))


def test_progress_reports_and_stop(problem):
    model, x, _, _ = problem
    seen = []
    calls = iter(range(1000))
    res = run_chains(
        model,
        x,
        MISSING,
        ChainConfig(n_chains=4, steps=50, burn_in=5, report_every=10),
        init_z=torch.zeros(4, 1, 2, dtype=torch.float64),
        callback=seen.append,
        should_stop=lambda: next(calls) >= 25,
    )
    assert res.stopped and res.steps_done == 25
    assert [p.step for p in seen] == [10, 20, 25]
    assert seen[-1].completions.shape == (4, 1, D) and seen[-1].z.shape == (4, 1, 2)
    assert torch.equal(seen[-1].completions[:, 0, 3:], x[:, 3:].expand(4, 3))  # observed coordinates kept
    assert res.z_trace.shape == (20, 4, 1, 2)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="method"):
        ChainConfig(method="gibbs")
    with pytest.raises(ValueError):
        ChainConfig(n_chains=0)
