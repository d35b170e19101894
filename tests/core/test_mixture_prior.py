"""The mixture-prior VAE (core/mixture_prior.py, VaDE): its prior against torch.distributions and
Bayes' rule by hand, its closed-form KL against Monte Carlo, the one-component case against the
standard VAE, and the bounds ELBO ≤ IW-k ≤ exact log p(x) on a 2-D latent.

Tiny models in float64, fixed seeds.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from lvm_studio.core import estimators as est
from lvm_studio.core.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from lvm_studio.core.gmm import GaussianMixture, GMMConfig
from lvm_studio.core.mixture_prior import MixturePrior, cluster_probs, cluster_scores
from lvm_studio.core.mixture_training import EqualWeightsGaussianMixture, init_prior_by_em
from lvm_studio.core.posterior_grid import posterior_grid
from lvm_studio.core.vae import VAE, VAEConfig


def mixture_model(latent_dim=2, components=3, hidden=(8,), seed=0, floor=0.25) -> VAE:
    torch.manual_seed(seed)
    model = VAE(
        VAEConfig(latent_dim=latent_dim, hidden=hidden, prior="mixture", components=components, weight_floor=floor)
    ).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        model.mixture.logits.copy_(torch.randn(components, generator=g, dtype=torch.float64))
        model.mixture.loc.copy_(2.0 * torch.randn(components, latent_dim, generator=g, dtype=torch.float64))
        model.mixture.scale_raw.copy_(torch.randn(components, latent_dim, generator=g, dtype=torch.float64) * 0.5)
    return model.eval()


def torch_mixture(prior: MixturePrior) -> D.MixtureSameFamily:
    """The same prior built from torch.distributions alone (an independent implementation)."""
    return D.MixtureSameFamily(
        D.Categorical(logits=prior.log_pi()),
        D.Independent(D.Normal(prior.loc, prior.scale()), 1),
    )


def test_prior_log_prob_is_the_logsumexp_over_components_as_torch_distributions():
    model = mixture_model(latent_dim=3, components=4)
    z = torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # (5, 7, 3)
    with torch.no_grad():
        ours = model.prior_log_prob(z)  # (5, 7)
        ref = torch_mixture(model.mixture).log_prob(z)
    assert ours.shape == (5, 7)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_p_c_given_z_sums_to_one_and_is_bayes_rule_by_hand():
    model = mixture_model(latent_dim=2, components=3)
    prior = model.mixture
    z = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-3.0, 4.0]], dtype=torch.float64)
    with torch.no_grad():
        resp = prior.log_resp(z).exp()  # (3, K)
        pi = prior.log_pi().exp().tolist()
        loc, scale = prior.loc.tolist(), prior.scale().tolist()
    torch.testing.assert_close(resp.sum(1), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    for n, zn in enumerate(z.tolist()):
        joint = []
        for c in range(3):  # π_c Π_j N(z_j; μ_cj, σ_cj²), written out
            density = pi[c]
            for j in range(2):
                s = scale[c][j]
                density *= math.exp(-0.5 * ((zn[j] - loc[c][j]) / s) ** 2) / (s * math.sqrt(2 * math.pi))
            joint.append(density)
        for c in range(3):
            assert resp[n, c].item() == pytest.approx(joint[c] / sum(joint), rel=1e-10, abs=1e-300)


def test_the_weight_floor_keeps_every_component_alive():
    prior = MixturePrior(10, 2, weight_floor=0.25).double()
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([50.0] + [-50.0] * 9, dtype=torch.float64))
    pi = prior.log_pi().exp()
    assert pi.sum().item() == pytest.approx(1.0)
    assert pi.min().item() >= 0.025 - 1e-12


def test_a_floor_of_one_fixes_equal_weights_whatever_the_logits_or_em_say():
    prior = MixturePrior(4, 2, weight_floor=1.0).double()
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64))
    assert torch.equal(prior.log_pi(), torch.full((4,), -math.log(4), dtype=torch.float64))
    w = torch.tensor([0.7, 0.1, 0.1, 0.1], dtype=torch.float64)
    loc = torch.arange(8, dtype=torch.float64).view(4, 2)
    prior.set_parameters(w, loc, torch.ones(4, 2, dtype=torch.float64))
    torch.testing.assert_close(prior.log_pi().exp(), torch.full((4,), 0.25, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(prior.loc.detach(), loc)
    z = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    prior.log_prob(z).sum().backward()
    assert prior.logits.grad is None or torch.all(prior.logits.grad == 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MixturePrior(4, 2, weight_floor=1.5)


def test_equal_weights_em_keeps_pi_at_one_over_k_and_climbs_its_own_likelihood():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(300, 2, generator=g) * 0.5, torch.randn(100, 2, generator=g) * 0.5 + 4.0]).double()
    gmm = EqualWeightsGaussianMixture(GMMConfig(n_components=2, covariance="diag", seed=0))
    trace = gmm.fit(x, max_iter=200, tol=1e-10)
    assert all(b >= a - 1e-12 for a, b in zip(trace[:-1], trace[1:]))  # EM never lowers the likelihood
    torch.testing.assert_close(gmm.weights, torch.full((2,), 0.5, dtype=torch.float64), rtol=0, atol=0)
    # its likelihood is log(½ N(x; μ₁, σ₁²) + ½ N(x; μ₂, σ₂²)) from its own parameters, by hand
    p = gmm.get_parameters()
    comps = D.Independent(D.Normal(p.means, p.covariances.sqrt()), 1)
    by_hand = torch.logsumexp(comps.log_prob(x.unsqueeze(1)) + math.log(0.5), 1).mean()
    assert trace[-1] == pytest.approx(float(by_hand), abs=1e-9)
    found = p.means[torch.argsort(p.means[:, 0])]
    torch.testing.assert_close(found, torch.tensor([[0.0, 0.0], [4.0, 4.0]], dtype=torch.float64), rtol=0, atol=0.15)
    free = GaussianMixture(GMMConfig(n_components=2, covariance="diag", seed=0))
    free_trace = free.fit(x, max_iter=200, tol=1e-10)
    assert free_trace[-1] > trace[-1]  # the free weights (¾, ¼) fit these unequal clusters better
    # and the prior of a model with weight_floor = 1 is initialised by that EM
    model = VAE(VAEConfig(latent_dim=2, hidden=(4,), prior="mixture", components=2, weight_floor=1.0))
    model.encode = lambda xs: (x[xs[:, 0].long()].float(), torch.ones(len(xs), 2))
    rows = torch.zeros(400, 784)
    rows[:, 0] = torch.arange(400, dtype=torch.float32)
    fit = init_prior_by_em(model, rows, seed=0, restarts=2)
    assert fit.weights == (0.5, 0.5)
    assert fit.log_likelihood == pytest.approx(trace[-1], abs=1e-4)


def test_set_parameters_round_trips_weights_means_and_variances():
    prior = MixturePrior(3, 2).double()
    w = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    loc = torch.tensor([[0.0, 1.0], [2.0, -1.0], [5.0, 5.0]], dtype=torch.float64)
    var = torch.tensor([[0.5, 2.0], [1.0, 1.0], [0.01, 9.0]], dtype=torch.float64)
    prior.set_parameters(w, loc, var)
    torch.testing.assert_close(prior.log_pi().exp(), w, rtol=0, atol=1e-6)
    torch.testing.assert_close(prior.loc.detach(), loc)
    torch.testing.assert_close(prior.scale().detach().square(), var, rtol=1e-6, atol=1e-8)


def test_component_samples_have_the_components_moments_and_the_prior_samples_its_weights():
    prior = MixturePrior(3, 2, weight_floor=0.0).double()
    prior.set_parameters(
        torch.tensor([0.2, 0.5, 0.3]), torch.tensor([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]]), torch.full((3, 2), 0.25)
    )
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        z = prior.sample((20000,), g, component=1)  # (20000, 2)
        torch.testing.assert_close(z.mean(0), torch.tensor([0.0, 6.0], dtype=torch.float64), rtol=0, atol=0.02)
        torch.testing.assert_close(z.std(0), torch.tensor([0.5, 0.5], dtype=torch.float64), rtol=0, atol=0.02)
        c = prior.log_resp(prior.sample((4, 5000), g)).argmax(-1)  # (4, 5000): the components are far apart
    share = torch.bincount(c.reshape(-1), minlength=3).double() / c.numel()
    torch.testing.assert_close(share, torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), rtol=0, atol=0.015)


def test_closed_form_kl_matches_monte_carlo_with_mixture_same_family():
    """VaDE's KL(q(z|x) q(c|x) ‖ p(z, c)) = E_q[log q(z|x) − log p(z)] + E_q[KL(q(c|x) ‖ p(c|z))]:
    the right side by Monte Carlo with torch.distributions (MixtureSameFamily for p(z), its parts for p(c|z))."""
    model = mixture_model(latent_dim=2, components=3)
    prior = model.mixture
    z_loc = torch.tensor([[0.5, -0.5], [1.5, 2.0], [-2.0, 0.0]], dtype=torch.float64)
    z_scale = torch.tensor([[0.7, 0.4], [0.3, 1.1], [1.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        closed = prior.kl(z_loc, z_scale)  # (3,)
        mix = torch_mixture(prior)
        q = D.Independent(D.Normal(z_loc, z_scale), 1)
        z = q.sample((100000,))  # (S, 3, 2)
        log_pi = mix.mixture_distribution.logits  # (K,) normalised log π
        log_gamma = torch.log_softmax(log_pi + mix.component_distribution.log_prob(z_loc[:, None]), -1)  # (3, K)
        log_pz = mix.log_prob(z)  # (S, 3)
        log_pcz = log_pi + mix.component_distribution.log_prob(z[..., None, :]) - log_pz[..., None]  # (S, 3, K)
        f = q.log_prob(z) - log_pz + (log_gamma.exp() * (log_gamma - log_pcz)).sum(-1)  # (S, 3)
        mc, se = f.mean(0), f.std(0) / math.sqrt(f.shape[0])
        # the Gaussian terms alone against torch's own closed form
        comp = D.Normal(prior.loc, prior.scale())
        by_torch = D.kl_divergence(D.Normal(z_loc[:, None], z_scale[:, None]), comp).sum(-1)  # (3, K)
    torch.testing.assert_close(prior.component_kl(z_loc, z_scale), by_torch, rtol=1e-12, atol=1e-12)
    assert ((closed - mc).abs() < 4 * se).all(), (closed, mc, se)  # within 4 standard errors
    assert (closed > 0).all()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


def test_one_component_at_the_standard_normal_is_exactly_the_standard_vae():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(latent_dim=3, hidden=(8,))).double().eval()
    mix = VAE(VAEConfig(latent_dim=3, hidden=(8,), prior="mixture", components=1)).double().eval()
    missing, unexpected = mix.load_state_dict(vae.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("mixture.") for k in missing)
    mix.mixture.set_parameters(torch.ones(1), torch.zeros(1, 3), torch.ones(1, 3))
    with torch.no_grad():
        mix.mixture.scale_raw.fill_(math.log(math.expm1(1.0 - mix.config.min_scale)))
    torch.testing.assert_close(mix.mixture.scale(), torch.ones(1, 3, dtype=torch.float64), rtol=0, atol=1e-15)
    x = torch.bernoulli(torch.full((4, 784), 0.3, dtype=torch.float64), generator=torch.Generator().manual_seed(5))
    results = []
    for model in (vae, mix):
        with torch.no_grad():
            e = est.elbo(model, x, generator=torch.Generator().manual_seed(9))
            iw = est.iwae_log_px(model, x, 50, generator=torch.Generator().manual_seed(9))
        results.append((e.elbo, e.kl, iw))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_elbo_below_iw_k_below_the_exact_grid_log_px_on_a_2d_latent():
    """A 16-pixel model with a 2-D latent and a three-component prior: the expected ELBO and E[IW-5] (means
    of many draws) lie below the grid's exact log p(x) (which integrates p(x|z) times the mixture prior),
    and naive Monte Carlo with z ~ the mixture prior agrees with the grid."""
    torch.manual_seed(4)
    model = VAE(VAEConfig(latent_dim=2, hidden=(16,), x_dim=16, prior="mixture", components=3)).double().eval()
    with torch.no_grad():
        model.decoder[-1].weight.mul_(4.0)  # a likelihood that depends on z: a posterior far from the prior
        model.mixture.set_parameters(
            torch.tensor([0.3, 0.3, 0.4]), torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]]), torch.full((3, 2), 0.5)
        )
    x = torch.bernoulli(torch.full((3, 16), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(6))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        z_loc, z_scale = model.encode(x)  # (3, 2)
        z = est.reparameterize(z_loc, z_scale, 20000, g)  # (20000, 3, 2)
        elbo = model.log_px_given_z(x, z).mean(0) - model.kl_to_prior(z_loc, z_scale)  # (3,) expected ELBO
        log_w = est.sample_log_weights(model, x, 5 * 4000, generator=g).reshape(4000, 5, 3)
        iw5_draws = torch.logsumexp(log_w, 1) - math.log(5)  # (4000, 3) Burda et al. 2016, eq. 8
        iw5, iw5_se = iw5_draws.mean(0), iw5_draws.std(0) / math.sqrt(4000)
        naive = est.naive_mc_log_px(model, x, 20000, g)  # z ~ the mixture prior itself
    exact = torch.cat([posterior_grid(model, x[i : i + 1], n=96).log_px for i in range(3)])  # (3,)
    assert (elbo < iw5 - 4 * iw5_se).all() and (iw5 + 4 * iw5_se < exact).all(), (elbo, iw5, exact)
    torch.testing.assert_close(naive, exact, rtol=0, atol=0.05)


def test_config_and_checkpoints_stay_backward_compatible(tmp_path):
    assert set(VAEConfig().to_dict()) == {"latent_dim", "hidden", "likelihood", "activation", "x_dim", "min_scale"}
    old = {
        "latent_dim": 2,
        "hidden": [4],
        "likelihood": "bernoulli",
        "activation": "elu",
        "x_dim": 784,
        "min_scale": 1e-3,
    }
    assert VAEConfig.from_dict(old).prior == "normal" and VAE(VAEConfig.from_dict(old)).mixture is None
    config = VAEConfig(latent_dim=2, hidden=(4,), prior="mixture", components=5)
    assert VAEConfig.from_dict(config.to_dict()) == config
    model = VAE(config)
    path = save_checkpoint(tmp_path / "m.pt", make_checkpoint(model))
    back = model_from_checkpoint(load_checkpoint(path))
    assert back.mixture is not None and back.mixture.n_components == 5
    torch.testing.assert_close(back.mixture.loc, model.mixture.loc)
    with pytest.raises(ValueError, match="prior"):
        VAEConfig(prior="dirichlet")
    with pytest.raises(ValueError, match="components"):
        VAEConfig(prior="mixture", components=0)


def test_em_initialisation_finds_separated_clusters_of_codes_and_scores_them():
    model = VAE(VAEConfig(latent_dim=2, hidden=(4,), prior="mixture", components=3))
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    labels = torch.arange(3).repeat_interleave(200)  # (600,)
    codes = centres[labels] + 0.3 * torch.randn(600, 2, generator=g)  # (600, 2)
    model.encode = lambda x: (codes[x[:, 0].long()], torch.ones(len(x), 2))  # x's first pixel: the row index
    x = torch.zeros(600, 784)
    x[:, 0] = torch.arange(600, dtype=torch.float32)
    fit = init_prior_by_em(model, x, seed=0)
    assert fit.n == 600 and fit.restarts == 10
    found = model.mixture.loc.detach()[
        torch.argsort(model.mixture.loc.detach()[:, 0] + 0.1 * model.mixture.loc.detach()[:, 1])
    ]
    torch.testing.assert_close(found, centres, rtol=0, atol=0.1)
    torch.testing.assert_close(model.mixture.scale().detach(), torch.full((3, 2), 0.3), rtol=0, atol=0.05)
    probs = cluster_probs(model, x)
    assert probs.shape == (600, 3)
    scores = cluster_scores(model, x, labels)
    assert scores.accuracy == 1.0 and scores.nmi == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no mixture"):
        cluster_probs(VAE(VAEConfig(latent_dim=2, hidden=(4,))), x)
