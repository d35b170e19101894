"""The MADE's fast paths for many completions of one image (issue 15's benchmark at 1,000 digits):
each must give what log_prob of the completed images gives, on tiny MADEs of every shape."""

from __future__ import annotations

import pytest
import torch

from lvm_studio.core import pixel_inference as pi
from lvm_studio.core import pixel_phi as pp
from lvm_studio.core.made import MADE, MADEConfig

D = 10


def made(hidden=(12,), direct=True, seed=0) -> MADE:
    torch.manual_seed(seed)
    net = MADE(MADEConfig(n_pixels=D, hidden=hidden, direct=direct))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)  # peaked conditionals: far from uniform, so a wrong term shows
    return net.eval()


SHAPES = [((12,), True), ((12,), False), ((9, 7), True)]
X = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
MISSING = torch.tensor([True, False, True, True, False, False, True, False, True, False])  # scattered, M = 5


@pytest.mark.parametrize(("hidden", "direct"), SHAPES)
def test_log_prob_completions_equals_log_prob_of_the_completed_images(hidden, direct):
    net = made(hidden, direct)
    g = torch.Generator().manual_seed(1)
    x_m = torch.bernoulli(torch.full((37, 5), 0.5), generator=g)  # (k, M)
    with torch.no_grad():
        ref = net.log_prob(pi.complete(X, MISSING, x_m))  # (k,)
    fast = net.log_prob_completions(X, MISSING, x_m)
    assert fast.numpy() == pytest.approx(ref.numpy(), abs=1e-4)
    # chunked in products of 4 rows: the same values as one product
    assert torch.allclose(net.log_prob_completions(X, MISSING, x_m, rows=4), fast, atol=1e-5)
    # nothing missing, everything missing
    none = torch.zeros(D, dtype=torch.bool)
    assert net.log_prob_completions(X, none, torch.zeros(1, 0)).item() == pytest.approx(
        float(net.log_prob(X[None]).detach()), abs=1e-4
    )
    every = torch.ones(D, dtype=torch.bool)
    assert net.log_prob_completions(X, every, X[None]).item() == pytest.approx(
        float(net.log_prob(X[None]).detach()), abs=1e-4
    )


@pytest.mark.parametrize(("hidden", "direct"), SHAPES)
def test_log_prob_flips_equals_log_prob_of_each_flipped_image(hidden, direct):
    net = made(hidden, direct)
    m = int(MISSING.sum())
    x_m = torch.bernoulli(torch.full((3, m), 0.4), generator=torch.Generator().manual_seed(2))  # (s, M)
    flipped = x_m[:, None, :].repeat(1, m, 1)  # (s, M, M): row i has pixel i flipped
    i = torch.arange(m)
    flipped[:, i, i] = 1 - flipped[:, i, i]
    with torch.no_grad():
        ref = net.log_prob(pi.complete(X, MISSING, flipped.reshape(-1, m))).reshape(3, m)  # (s, M)
    assert net.log_prob_flips(X, MISSING, x_m).numpy() == pytest.approx(ref.numpy(), abs=1e-4)
    assert torch.allclose(net.log_prob_flips(X, MISSING, x_m, rows=1), net.log_prob_flips(X, MISSING, x_m), atol=1e-5)


def test_meanfield_target_is_the_same_with_and_without_the_flip_fast_path():
    net = made()

    class Plain:  # the same joint without its fast paths: pixel_phi's generic code runs
        n_pixels = D

        def log_prob(self, x):
            return net.log_prob(x)

    phi = torch.full((int(MISSING.sum()),), 0.3)
    fast, f_fast = pp.meanfield_target(net, X, MISSING, phi, 4, torch.Generator().manual_seed(3))
    slow, f_slow = pp.meanfield_target(Plain(), X, MISSING, phi, 4, torch.Generator().manual_seed(3))
    assert fast.numpy() == pytest.approx(slow.numpy(), abs=1e-4) and f_fast == pytest.approx(f_slow, abs=1e-4)


def test_log_prob_completions_of_several_images_share_the_completions():
    net = made()
    xs = torch.bernoulli(torch.full((4, D), 0.5), generator=torch.Generator().manual_seed(4))  # (n, D)
    x_m = torch.bernoulli(torch.full((9, 5), 0.5), generator=torch.Generator().manual_seed(5))  # (k, M)
    top = torch.arange(D) < 5  # a leading block hidden: its conditionals are shared by the images
    for missing in (MISSING, top):
        both = net.log_prob_completions(xs, missing, x_m, rows=4)  # (k, n)
        assert both.shape == (9, 4)
        for i, x in enumerate(xs):
            with torch.no_grad():
                ref = net.log_prob(pi.complete(x, missing, x_m))  # (k,)
            assert both[:, i].numpy() == pytest.approx(ref.numpy(), abs=1e-4)
