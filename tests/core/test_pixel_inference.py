"""The lecture's pixel-space example (issue 15): the missing pixels are the latents.

Checked against enumeration of every completion on tiny images (D ≤ 10)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lvm_studio.core import pixel_inference as pi
from lvm_studio.core import pixel_phi as pp
from lvm_studio.core.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from lvm_studio.core.made import MADE, MADEConfig
from lvm_studio.core.made_training import made_checkpoint, made_from_checkpoint
from lvm_studio.core.pixel_joint import MixtureJoint, all_binary, tiny_log_normaliser

D = 8


def tiny_mixture(k: int = 3, d: int = D, seed: int = 0) -> MixtureJoint:
    g = torch.Generator().manual_seed(seed)
    probs = 0.05 + 0.9 * torch.rand(k, d, generator=g, dtype=torch.float64)  # (K, D)
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.2  # (K,)
    return MixtureJoint(weights, probs)


def tiny_made(d: int = D, seed: int = 0) -> MADE:
    torch.manual_seed(seed)
    made = MADE(MADEConfig(n_pixels=d, hidden=(12,)))
    with torch.no_grad():
        for p in made.parameters():
            p.mul_(3.0)  # a peaked joint, far from uniform
    return made.eval()


X = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
MISSING = torch.tensor([True, True, False, True, False, False, True, False])  # M = 4


def test_the_joints_sum_to_one_over_all_tiny_images():
    assert tiny_log_normaliser(tiny_made()) == pytest.approx(0.0, abs=1e-5)
    assert tiny_log_normaliser(tiny_mixture()) == pytest.approx(0.0, abs=1e-6)


def test_mixture_marginal_posterior_marginals_and_samples_match_enumeration():
    joint = tiny_mixture()
    x_m = all_binary(int(MISSING.sum()))  # (16, 4)
    log_p = joint.log_prob(pi.complete(X, MISSING, x_m).to(torch.float64))  # (16,)
    assert pi.log_joint(joint, X, MISSING, x_m).numpy() == pytest.approx(log_p.numpy(), abs=1e-9)
    log_px_o = float(torch.logsumexp(log_p, 0))
    assert joint.log_marginal(X, MISSING) == pytest.approx(log_px_o, abs=1e-9)
    post = (log_p - log_px_o).exp()  # (16,) p(x_m | x_o)
    assert joint.posterior_marginals(X, MISSING).numpy() == pytest.approx((post @ x_m.double()).numpy(), abs=1e-9)
    draws = joint.sample_conditional(X, MISSING, 20000, torch.Generator().manual_seed(1))  # (n, 4)
    assert draws.mean(0).double().numpy() == pytest.approx((post @ x_m.double()).numpy(), abs=0.02)
    # a sum over any missing set: with nothing observed it is 0, with nothing missing log p(x)
    assert joint.log_marginal(X, torch.ones(D, dtype=torch.bool)) == pytest.approx(0.0, abs=1e-9)
    assert joint.log_marginal(X, torch.zeros(D, dtype=torch.bool)) == pytest.approx(float(joint.log_prob(X[None])))


@pytest.mark.parametrize("make", [tiny_mixture, tiny_made], ids=["mixture", "made"])
def test_elbo_is_below_log_px_o_and_the_gap_is_the_kl(make):
    joint = make()
    exact = pi.exact_log_marginal(joint, X, MISSING)
    g = torch.Generator().manual_seed(0)
    x_m = all_binary(4)
    log_post = pi.log_joint(joint, X, MISSING, x_m) - exact  # (16,)
    for _ in range(5):
        phi = torch.rand(4, generator=g)
        e = pi.elbo_phi(joint, X, MISSING, phi)  # enumerated (M ≤ ENUMERATE_MAX)
        assert e.exact and e.elbo <= exact + 1e-9
        log_q = pi.log_q(x_m, phi)
        kl = float((log_q.exp() * (log_q - log_post)).sum())
        assert exact - e.elbo == pytest.approx(kl, abs=1e-6)  # Kingma & Welling 2014, eq. 2
    # the Monte Carlo ELBO of a large M agrees with enumeration within its standard error
    import lvm_studio.core.pixel_inference as mod

    old = mod.ENUMERATE_MAX
    try:
        mod.ENUMERATE_MAX = 0
        phi = torch.full((4,), 0.3)
        mc = pi.elbo_phi(joint, X, MISSING, phi, n=4000, generator=g)
    finally:
        mod.ENUMERATE_MAX = old
    assert not mc.exact and mc.elbo <= exact + 4 * mc.se
    assert mc.elbo == pytest.approx(pi.elbo_phi(joint, X, MISSING, phi).elbo, abs=4 * mc.se)


def test_one_component_mixture_exact_marginals_close_the_gap():
    joint = tiny_mixture(k=1)
    phi = pp.phi_preset("marginals", joint, X, MISSING)
    assert phi.numpy() == pytest.approx(joint.probs[0, MISSING].numpy(), abs=1e-6)
    e = pi.elbo_phi(joint, X, MISSING, phi)
    assert e.elbo == pytest.approx(joint.log_marginal(X, MISSING), abs=1e-5)  # q = p(x_m | x_o): no gap


@pytest.mark.parametrize("make", [tiny_mixture, tiny_made], ids=["mixture", "made"])
def test_optimised_phi_beats_half_and_one_from_either_start(make):
    joint = make()
    exact = pi.exact_log_marginal(joint, X, MISSING)
    elbo = {
        name: pi.elbo_phi(joint, X, MISSING, pp.phi_preset(name, joint, X, MISSING)).elbo for name in ("half", "ones")
    }
    for start in ("half", "ones"):
        fit = pp.optimise_phi(None, joint, X, MISSING, pp.phi_preset(start, joint, X, MISSING))
        opt = pi.elbo_phi(joint, X, MISSING, fit.phi).elbo
        assert fit.done and opt > max(elbo.values()) and opt <= exact + 1e-9
    score = pp.optimise_phi(None, joint, X, MISSING, torch.full((4,), 0.5), pp.OptimiseConfig(method="score"))
    assert pi.elbo_phi(joint, X, MISSING, score.phi).elbo > max(elbo.values())
    assert len(score.trace) == pp.OptimiseConfig().steps + 1


def test_optimise_reports_and_cancels():
    class Ctx:
        def __init__(self, stop_after):
            self.reports, self.stop_after = [], stop_after

        def report(self, fraction, payload):
            self.reports.append((fraction, payload))

        def cancelled(self):
            return len(self.reports) >= self.stop_after

    ctx = Ctx(2)
    fit = pp.optimise_phi(ctx, tiny_made(), X, MISSING, torch.full((4,), 0.5), pp.OptimiseConfig(report_every=5))
    assert not fit.done and 2 <= len(ctx.reports) <= 3 and isinstance(ctx.reports[0][1], pp.PhiFit)
    assert len(fit.trace) < pp.OptimiseConfig().sweeps + 1  # it stopped early


def test_naive_monte_carlo_is_unbiased_in_p_of_x_o():
    joint = tiny_made()
    exact = pi.exact_log_marginal(joint, X, MISSING)
    g = torch.Generator().manual_seed(0)
    m, k, n_runs = int(MISSING.sum()), 4, 4000
    u = torch.bernoulli(torch.full((n_runs * k, m), 0.5), generator=g)  # (runs·k, M) uniform completions
    log_w = pi.log_joint(joint, X, MISSING, u).reshape(n_runs, k) + m * math.log(2)  # log |Z| p(x_o, u)
    runs = torch.logsumexp(log_w, 1) - math.log(k)  # (runs,) the naive estimates, as naive_log_marginal forms them
    g2 = torch.Generator().manual_seed(0)
    direct = pi.naive_log_marginal(joint, X, MISSING, k, g2)  # the same first draws
    assert direct == pytest.approx(float(runs[0]), abs=1e-9)
    p_hat = runs.exp()  # unbiased in p(x_o), not in log p(x_o)
    se = float(p_hat.std() / len(runs) ** 0.5)
    assert float(p_hat.mean()) == pytest.approx(math.exp(exact), abs=4 * se)
    assert float(runs.mean()) < exact  # Jensen: biased low in log space
    imp = pi.importance_log_marginal(joint, X, MISSING, torch.full((4,), 0.5), 4000, g)
    assert imp == pytest.approx(exact, abs=0.05)


@pytest.mark.parametrize("make", [tiny_mixture, tiny_made], ids=["mixture", "made"])
def test_naive_of_several_images_is_each_images_naive_and_the_chunks_combine_exactly(make):
    joint = make()
    xs = torch.stack([X, 1 - X, X.flip(0)])  # (n, D)
    k = pi.CHUNK_ROWS + 100  # two chunks of draws
    many = pi.naive_log_marginals(joint, xs, MISSING, k, torch.Generator().manual_seed(7))  # (n,)
    g = torch.Generator().manual_seed(7)
    u = torch.cat([torch.bernoulli(torch.full((c, 4), 0.5), generator=g) for c in (pi.CHUNK_ROWS, 100)])  # (k, M)
    for i, x in enumerate(xs):
        one = pi.naive_log_marginal(joint, x, MISSING, k, torch.Generator().manual_seed(7))
        unchunked = float(torch.logsumexp(pi.log_joint(joint, x, MISSING, u), 0)) - math.log(k) + 4 * math.log(2)
        assert float(many[i]) == pytest.approx(one, abs=1e-6) and one == pytest.approx(unchunked, abs=1e-6)


def test_sweep_and_conditional_samples():
    joint = tiny_made()
    sweep = pi.pixel_sweep(None, joint, X, MISSING, torch.full((4,), 0.5), k_max=2000, runs=2)
    assert sweep.naive.shape == sweep.importance.shape == (2, len(sweep.ks)) and sweep.exact is not None
    assert float(sweep.importance[:, -1].mean()) == pytest.approx(sweep.exact, abs=0.1)
    s = pi.conditional_samples(joint, X, MISSING, 8, torch.full((4,), 0.5), generator=torch.Generator().manual_seed(0))
    assert s.how == "importance-resampled" and s.x_m.shape == (8, 4)
    last = torch.zeros(D, dtype=torch.bool)
    last[5:] = True  # the missing pixels come after the seen ones: ancestral sampling is exact
    s = pi.conditional_samples(joint, X, last, 4000, torch.full((3,), 0.5), generator=torch.Generator().manual_seed(0))
    assert s.how == "ancestral"
    x_m = all_binary(3)
    post = (pi.log_joint(joint, X, last, x_m) - pi.exact_log_marginal(joint, X, last)).exp()
    assert s.x_m.mean(0).double().numpy() == pytest.approx((post @ x_m.double()).numpy(), abs=0.03)
    assert pi.conditional_samples(tiny_mixture(), X, MISSING, 3, torch.full((4,), 0.5)).how == "exact"


def test_made_checkpoint_round_trip_and_is_not_a_vae(tmp_path):
    made = tiny_made()
    path = save_checkpoint(tmp_path / "made.pt", made_checkpoint(made, train_config={"seed": 0}))
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] == "made"
    again = made_from_checkpoint(ckpt)
    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)))
    assert torch.equal(again.log_prob(x), made.log_prob(x))
    with pytest.raises(CheckpointError, match="not a VAE"):
        model_from_checkpoint(ckpt)
