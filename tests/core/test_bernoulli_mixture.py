"""BernoulliMixture: exact log p(x) against enumeration, EM's monotone MAP objective,
recovery of a known mixture, determinism, sampling."""

import itertools
import math

import numpy as np
import pytest
import torch

from lvm_studio.core.bernoulli_mixture import BernoulliMixture, BernoulliMixtureConfig
from lvm_studio.core.clustering import hungarian_accuracy

PROTOTYPES = torch.tensor(
    [  # three 12-pixel "images" with clearly different pixel probabilities
        [0.9] * 6 + [0.1] * 6,
        [0.1] * 6 + [0.9] * 6,
        [0.9, 0.1] * 6,
    ],
    dtype=torch.float64,
)
PROTO_WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)


def _brute_force_log_px(weights, probs, x):
    """log Σ_k π_k Π_d μ_kd^x_d (1 − μ_kd)^(1 − x_d), pixel by pixel in plain floats."""
    out = []
    for row in x:
        total = 0.0
        for w, mu in zip(weights, probs):
            term = w
            for xd, md in zip(row, mu):
                term *= md if xd == 1 else 1.0 - md
            total += term
        out.append(math.log(total))
    return out


def _sample_prototypes(n, seed):
    model = BernoulliMixture(BernoulliMixtureConfig(3)).set_parameters(PROTO_WEIGHTS, PROTOTYPES)
    return model.sample(n, generator=torch.Generator().manual_seed(seed))


def test_log_prob_equals_enumeration_on_a_tiny_model():
    weights = [0.3, 0.7]
    probs = [[0.2, 0.9, 0.5], [0.6, 0.1, 0.35]]  # D = 3, K = 2
    model = BernoulliMixture(BernoulliMixtureConfig(2)).set_parameters(
        weights, torch.tensor(probs, dtype=torch.float64)
    )
    patterns = list(itertools.product([0, 1], repeat=3))
    x = torch.tensor(patterns, dtype=torch.float64)  # all 8 binary images
    log_px = model.log_prob(x)
    np.testing.assert_allclose(log_px.numpy(), _brute_force_log_px(weights, probs, patterns), rtol=1e-13)
    # by hand for x = (1, 0, 1): 0.3·0.2·0.1·0.5 + 0.7·0.6·0.9·0.35
    assert float(log_px[patterns.index((1, 0, 1))]) == pytest.approx(math.log(0.003 + 0.1323), rel=1e-13)
    assert float(torch.logsumexp(log_px, 0)) == pytest.approx(0.0, abs=1e-13)  # a distribution over {0,1}³


def test_responsibilities_are_posteriors():
    x, _ = _sample_prototypes(50, 0)
    model = BernoulliMixture(BernoulliMixtureConfig(3)).set_parameters(PROTO_WEIGHTS, PROTOTYPES)
    resp = model.responsibilities(x)
    torch.testing.assert_close(resp.sum(1), torch.ones(50, dtype=torch.float64))
    # Bayes' rule for the first image, by enumeration
    row = x[0].tolist()
    joint = [
        w * math.prod(m if v == 1 else 1 - m for v, m in zip(row, mu))
        for w, mu in zip(PROTO_WEIGHTS.tolist(), PROTOTYPES.tolist())
    ]
    np.testing.assert_allclose(resp[0].numpy(), np.array(joint) / sum(joint), rtol=1e-12)


@pytest.mark.parametrize("weight_smoothing", [0.0, 2.0])
def test_em_never_decreases_the_map_objective(weight_smoothing):
    x, _ = _sample_prototypes(400, 1)
    model = BernoulliMixture(BernoulliMixtureConfig(4, smoothing=1.0, weight_smoothing=weight_smoothing, seed=0))
    model.initialize(x)
    values = []
    for _ in range(30):
        values.append(model.log_likelihood(x) * x.shape[0] + model.log_prior())
        model.step(x)
    steps = np.diff(values)
    assert steps.min() >= -1e-9 * abs(values[-1]), steps.min()
    assert values[-1] > values[0]


def test_em_recovers_prototypes_and_clusters():
    x, z = _sample_prototypes(1500, 2)
    model = BernoulliMixture(BernoulliMixtureConfig(3, seed=1))
    trace = model.fit(x, max_iter=100, tol=1e-9)
    assert model.converged and len(trace) == model.n_iter + 1
    assert hungarian_accuracy(z.numpy(), model.predict(x).numpy()) >= 0.95
    # match components to prototypes and compare
    dist = torch.cdist(model.probs, PROTOTYPES)  # (fitted, true)
    order = dist.argmin(0)
    assert sorted(order.tolist()) == [0, 1, 2]
    torch.testing.assert_close(model.probs[order], PROTOTYPES, atol=0.06, rtol=0)
    torch.testing.assert_close(model.weights[order], PROTO_WEIGHTS, atol=0.04, rtol=0)
    assert trace[-1] == pytest.approx(model.log_likelihood(x), rel=1e-12)


def test_smoothing_keeps_probabilities_off_zero_and_one():
    x = torch.zeros(20, 5, dtype=torch.float64)
    x[:10, 0] = 1  # pixel 0 on in half the images, the others always off
    model = BernoulliMixture(BernoulliMixtureConfig(2, smoothing=1.0, seed=0))
    model.fit(x, max_iter=20)
    assert torch.all(model.probs > 0) and torch.all(model.probs < 1)
    assert torch.isfinite(model.log_prob(torch.ones(1, 5, dtype=torch.float64))).all()
    nk = model.responsibilities(x).sum(0)
    # Laplace's rule: an always-off pixel has μ = a / (N_k + 2a)
    torch.testing.assert_close(model.probs[:, 4], 1.0 / (nk + 2.0), rtol=1e-6, atol=0)


def test_fit_is_deterministic_under_the_seed_and_accepts_uint8():
    x, _ = _sample_prototypes(300, 3)
    x8 = x.to(torch.uint8)
    a = BernoulliMixture(BernoulliMixtureConfig(3, seed=5))
    b = BernoulliMixture(BernoulliMixtureConfig(3, seed=5))
    assert a.fit(x8, max_iter=15) == b.fit(x8, max_iter=15)
    assert a.probs.dtype == torch.float32 and torch.equal(a.probs, b.probs)
    c = BernoulliMixture(BernoulliMixtureConfig(3, seed=6, init="random")).initialize(x8)
    d = BernoulliMixture(BernoulliMixtureConfig(3, seed=6, init="random")).initialize(x8)
    assert torch.equal(c.probs, d.probs) and bool(((c.probs >= 0.25) & (c.probs <= 0.75)).all())


def test_sampling_matches_weights_and_pixel_probabilities():
    x, z = _sample_prototypes(20000, 4)
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    freq = torch.bincount(z, minlength=3).double() / 20000
    torch.testing.assert_close(freq, PROTO_WEIGHTS, atol=0.015, rtol=0)
    for k in range(3):
        torch.testing.assert_close(x[z == k].mean(0), PROTOTYPES[k], atol=0.03, rtol=0)


def test_on_binarized_mnist_sample(mnist):
    x = mnist.binarized("test")[:300]
    model = BernoulliMixture(BernoulliMixtureConfig(5, seed=0))
    trace = model.fit(x, max_iter=10, tol=0.0)
    assert trace[-1] > trace[0]
    log_px = model.log_prob(x)
    assert log_px.shape == (300,) and torch.all(log_px < 0)
    assert -784 * math.log(2) < trace[-1] < 0  # better than coin flips per pixel


def test_shared_mixture_bookkeeping_keeps_each_models_wording_and_dtype():
    """core.em.MixtureModel: the Bernoulli mixture says 'pixels' and takes float32 for integer
    images, the Gaussian mixture says 'features' and takes float64; both refuse before init."""
    from lvm_studio.core.gmm import GaussianMixture, GMMConfig

    bern = BernoulliMixture(BernoulliMixtureConfig(n_components=2))
    gmm = GaussianMixture(GMMConfig(n_components=2))
    for model in (bern, gmm):
        assert not model.is_initialized
        with pytest.raises(RuntimeError, match="no parameters yet"):
            _ = model.dim
    x = torch.tensor([[0, 1, 1], [1, 0, 0], [1, 1, 0], [0, 0, 1]])  # int64
    bern.initialize(x)
    gmm.initialize(x)
    assert bern.dtype == torch.float32 and gmm.dtype == torch.float64
    assert bern.dim == gmm.dim == 3
    with pytest.raises(ValueError, match="x has 2 pixels, the mixture 3"):
        bern.predict(x[:, :2])
    with pytest.raises(ValueError, match="x has 2 features, the mixture 3"):
        gmm.predict(x[:, :2])
    assert bern.predict(x).shape == gmm.predict(x).shape == (4,)
