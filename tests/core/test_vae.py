"""The VAE: config validation, shapes, likelihoods against torch.distributions, CPU snapshots."""

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.vae import VAE, VAEConfig, build_model, copy_state_to_cpu

LATENT = 3


def tiny(likelihood="bernoulli", latent_dim=LATENT, seed=0) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAEConfig(latent_dim=latent_dim, hidden=(16, 8), likelihood=likelihood))


# --- configuration --------------------------------------------------------------------


@pytest.mark.parametrize("latent_dim", [0, 65, -1])
def test_latent_size_out_of_range_is_rejected(latent_dim):
    with pytest.raises(ValueError, match="latent_dim"):
        VAEConfig(latent_dim=latent_dim)


@pytest.mark.parametrize("latent_dim", [1, 2, 64])
def test_latent_size_limits_are_accepted(latent_dim):
    assert VAEConfig(latent_dim=latent_dim, hidden=(8,)).latent_dim == latent_dim


@pytest.mark.parametrize(
    "field, value", [("likelihood", "poisson"), ("activation", "gelu"), ("hidden", (16, 0)), ("hidden", ())]
)
def test_other_bad_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        VAEConfig(**{field: value})


def test_config_round_trips_through_a_dict():
    config = VAEConfig(latent_dim=5, hidden=[32, 16], likelihood="gaussian", activation="tanh")
    assert config.hidden == (32, 16)
    d = config.to_dict()
    assert d["hidden"] == [32, 16]
    assert VAEConfig.from_dict({**d, "unknown_future_key": 1}) == config
    model = build_model(d)
    assert isinstance(model, VAE) and model.config == config and model.latent_dim == 5


# --- shapes ---------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_shapes_with_a_leading_k_dimension(binarized_batch, likelihood):
    model = tiny(likelihood)
    x = binarized_batch[:5]  # (5, 784)
    z_loc, z_scale = model.encode(x)
    assert z_loc.shape == z_scale.shape == (5, LATENT)
    assert (z_scale > 0).all()

    z = torch.randn(7, 5, LATENT)  # (k, batch, latent)
    out_width = N_PIXELS if likelihood == "bernoulli" else 2 * N_PIXELS
    assert model.decode(z).shape == (7, 5, out_width)
    mean = model.decode_mean(z)
    assert mean.shape == (7, 5, N_PIXELS) and mean.min() >= 0 and mean.max() <= 1
    assert model.sample_x(z).shape == (7, 5, N_PIXELS)
    assert model.log_px_given_z(x, z).shape == (7, 5)
    pixels = model.log_px_given_z_pixels(x, z)
    assert pixels.shape == (7, 5, N_PIXELS)
    torch.testing.assert_close(pixels.sum(-1), model.log_px_given_z(x, z))

    # the k samples are scored independently: each slice equals a call without the k dim
    torch.testing.assert_close(model.log_px_given_z(x, z)[3], model.log_px_given_z(x, z[3]))
    # two leading dims work too
    assert model.log_px_given_z(x, torch.randn(2, 7, 5, LATENT)).shape == (2, 7, 5)


# --- likelihoods ----------------------------------------------------------------------


def test_bernoulli_log_likelihood_is_minus_bce_with_logits(binarized_batch):
    model = tiny("bernoulli")
    x = binarized_batch[:6]
    z = torch.randn(4, 6, LATENT) * 3  # large logits too
    logits = model.decode(z)  # (4, 6, 784)
    expected = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    torch.testing.assert_close(model.log_px_given_z(x, z), expected)
    # a proper distribution over {0, 1}: p(x_i = 0) + p(x_i = 1) = 1 per pixel
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    total = model.log_px_given_z_pixels(zeros, z).exp() + model.log_px_given_z_pixels(ones, z).exp()
    torch.testing.assert_close(total, torch.ones_like(total))


def test_gaussian_log_likelihood_is_the_normal_log_prob(mnist):
    model = tiny("gaussian")
    x = mnist.float_images("test")[:6]  # grey levels
    z = torch.randn(4, 6, LATENT)
    loc = model.decode_mean(z)  # (4, 6, 784), the mean in [0, 1]
    scale = F.softplus(model.decode(z)[..., 784:]) + model.config.min_scale  # (4, 6, 784)
    expected = Normal(loc, scale).log_prob(x).sum(-1)
    torch.testing.assert_close(model.log_px_given_z(x, z), expected)


def test_gaussian_scale_floor_keeps_densities_finite():
    model = tiny("gaussian")
    with torch.no_grad():
        model.decoder[-1].bias[N_PIXELS:] = -1e4  # drive the decoder's σ to its floor
    x = torch.rand(2, N_PIXELS)
    assert torch.isfinite(model.log_px_given_z(x, torch.randn(2, LATENT))).all()


# --- snapshots for other threads ------------------------------------------------------


def test_copy_state_to_cpu_shares_no_storage():
    model = tiny()
    snapshot = copy_state_to_cpu(model)
    live = model.state_dict()
    assert snapshot.keys() == live.keys()
    for name, tensor in snapshot.items():
        assert tensor.device.type == "cpu" and not tensor.requires_grad
        assert tensor.untyped_storage().data_ptr() != live[name].untyped_storage().data_ptr(), name
        torch.testing.assert_close(tensor, live[name])

    before = {k: v.clone() for k, v in snapshot.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # the optimizer moves on ...
    for name, tensor in snapshot.items():
        assert torch.equal(tensor, before[name]), f"{name} changed with the live model"  # ... the snapshot does not

    replica = VAE(model.config)
    replica.load_state_dict(snapshot)
    z = torch.randn(3, LATENT)
    torch.testing.assert_close(replica.decode(z), tiny().decode(z))
