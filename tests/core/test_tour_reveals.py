"""core.tour_reveals: each reveal is the core computation it names, seeded (the same numbers twice)."""

import math

import numpy as np
import pytest
import torch

from lvm_studio.core import vi_1d
from lvm_studio.core.em_playground import EMPlayground, GeneratingMixture
from lvm_studio.core.estimators import exact_log_px_2d
from lvm_studio.core.tour_reveals import REVEALS, run_reveal
from lvm_studio.core.training import eval_images
from lvm_studio.core.vae import VAE, VAEConfig


@pytest.fixture(scope="module")
def tiny2():
    torch.manual_seed(0)
    return VAE(VAEConfig(latent_dim=2, hidden=(32,))).eval()


def test_every_reveal_declares_the_values_it_returns(mnist, tiny2):
    for name, spec in REVEALS.items():
        assert spec.outputs, name
        assert "env" not in spec.arguments() and "seed" not in spec.arguments()
    v = run_reveal("elbo_gap", tiny2, mnist, {"digit": 3}, 0).values
    assert set(v) == set(REVEALS["elbo_gap"].outputs)


def test_mixture_sampling_draws_z_from_pi(mnist):
    a = run_reveal("mixture_sampling", None, mnist, {"k": 3, "n": 1000}, 5).values
    b = run_reveal("mixture_sampling", None, mnist, {"k": 3, "n": 1000}, 5).values
    assert a == b  # seeded
    weights = GeneratingMixture.default(3).arrays()[0]
    z = np.random.default_rng(5).choice(3, size=1000, p=weights)
    assert a["counts"] == np.bincount(z, minlength=3).tolist()
    assert sum(a["counts"]) == 1000 and a["count_biggest"] == a["counts"][int(np.argmax(weights))]


def test_em_iterations_are_the_playgrounds_and_never_lower_the_likelihood(mnist):
    v = run_reveal("em_iterations", None, mnist, {"iterations": 5}, 3).values
    play = EMPlayground(n=300, data_seed=0)
    play.set_point_set("overlapping blobs")
    play.set_config(seed=3)
    lls = [play.session.log_likelihood()]
    for _ in range(5):
        play.iterate()
        lls.append(play.session.log_likelihood())
    assert v["log_lik"] == pytest.approx(lls, abs=1e-4)
    assert all(b >= a - 1e-9 for a, b in zip(lls, lls[1:]))
    assert v["answer"] == "no"


def test_pick_phi_is_core_vi_1d():
    v = run_reveal("pick_phi", None, None, {}, 0).values
    model = vi_1d.Model1D()
    a, b = vi_1d.score_q(model, 2.0, math.sqrt(2.0)), vi_1d.score_q(model, -4.0, 0.75)
    assert v["elbo_a"] == pytest.approx(a.elbo, abs=1e-4) and v["kl_b"] == pytest.approx(b.kl, abs=1e-4)
    assert v["log_px"] == pytest.approx(v["log_px_closed_form"], abs=1e-4)
    assert v["answer"] == "a"


def test_elbo_gap_and_tight_bound_satisfy_log_px_equals_elbo_plus_kl(mnist, tiny2):
    x = eval_images(mnist, "test", "bernoulli")[3][None]
    exact = float(exact_log_px_2d(tiny2, x)[0])  # the default, finer grid
    gap = run_reveal("elbo_gap", tiny2, mnist, {"digit": 3}, 0).values
    assert gap["log_px"] == pytest.approx(exact, abs=0.02)
    assert gap["expected_log_joint"] + gap["entropy"] == pytest.approx(gap["elbo"], abs=1e-3)
    assert gap["gap"] > 0
    tight = run_reveal("tight_bound", tiny2, mnist, {"digit": 3, "steps": 15, "n": 61}, 0).values
    assert tight["elbo_encoder"] == pytest.approx(gap["elbo"], abs=1e-3)
    for which in ("encoder", "optimised"):  # KL summed on the grid, not taken as a difference
        assert tight[f"sum_{which}"] == pytest.approx(exact, abs=0.05)
    assert tight["elbo_rise"] == pytest.approx(tight["kl_fall"], abs=0.05)
    assert tight["kl_optimised"] < tight["kl_encoder"]


def test_partial_observation_and_importance_bias_on_a_2d_model(mnist, tiny2):
    p = run_reveal("partial_observation", tiny2, mnist, {"digit": 1}, 0).values
    assert p["log_px_observed"] > p["log_px"] and p["answer"] == "larger"
    assert p["hidden_pixels"] == 392
    args = {"digit": 1, "ks": [1, 10], "runs": 30}
    v = run_reveal("importance_bias", tiny2, mnist, args, 2).values
    assert v == run_reveal("importance_bias", tiny2, mnist, args, 2).values  # seeded
    assert v["log_px"] == pytest.approx(p["log_px"], abs=1e-3)
    assert v["mean_log_k1"] <= v["log_mean_k1"]  # Jensen, for any sample
    assert v["bias_k1"] < v["bias_k10"] + 0.5  # more samples, less bias (up to noise)


def test_pixel_latents_uses_the_pixel_panels_core_and_its_joint(mnist):
    from lvm_studio.core import masks
    from lvm_studio.core import pixel_inference as pi
    from lvm_studio.core import pixel_phi as pp
    from lvm_studio.core.pixel_tasks import binarized_train_subset, fit_mixture_task

    joint = fit_mixture_task(None, binarized_train_subset(mnist, 500), k=4, iters=5)
    v = run_reveal("pixel_latents", joint, mnist, {"label": 9, "n": 200}, 0).values
    x = mnist.binarized("test")[v["digit"]]
    missing = pi.flat_mask(masks.preset("top_half"))
    assert int(mnist.y_test[v["digit"]]) == 9
    assert v["log_px_observed"] == pytest.approx(pi.exact_log_marginal(joint, x, missing), abs=1e-3)
    phi = pp.phi_preset("marginals", joint, x, missing)
    est = pi.elbo_phi(joint, x, missing, phi, 200, torch.Generator().manual_seed(0))  # the panel's numbers
    assert v["elbo_marginals"] == pytest.approx(est.elbo, abs=1e-3)
    # φ = 1 is one completion: its ELBO is log p(x_o, x_m = 1) exactly, below log p(x_o) (the others are
    # estimates: with this blurry 4-component joint, φ = ½ is nearly the posterior and within the noise)
    assert v["elbo_ones"] < v["log_px_observed"] and v["entropy_ones"] == 0
    assert v["entropy_half"] == pytest.approx(392 * math.log(2), abs=1e-3)
    assert v["answer"] == max(("half", "ones", "marginals"), key=lambda k: v[f"elbo_{k}"])
