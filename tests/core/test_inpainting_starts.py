"""The multi-start fit finds the mode a one-start fit misses (issue 16): with the shipped 2-D model and
the top half hidden, its observed-pixel ELBO comes within 0.5 nats of a fit started at the exact
posterior's mode (found on a grid). The digits: test indices 0, 2 and 5 (labels 7, 1, 1: the issue's
"test digits 0, 2 and 5", where the one-start fit ends 12–19 nats below log p(x_o)) and the first
test digits of the classes 0, 2 and 5 (indices 3, 1, 8). The claim on 200 (and 1,000) test digits
is measured by `python -m bench.inpainting_mwg` (docs/benchmarks.md), too slow for a unit test."""

from __future__ import annotations

import pytest
import torch

from lvm_studio.core import inpainting as ip
from lvm_studio.core import masks
from lvm_studio.core.checkpoint import load_checkpoint, model_from_checkpoint
from lvm_studio.core.data import load_mnist
from lvm_studio.core.inpainting_starts import (
    StartsConfig,
    StartsReport,
    grid_mode_2d,
    mode_representatives,
    multi_start_fit,
)
from lvm_studio.core.inpainting_task import ObservedModel
from lvm_studio.core.pretrained import pretrained_dir
from lvm_studio.core.q_elbo import elbo_for_q

ISSUE_DIGITS = [0, 2, 5]  # test indices (labels 7, 1, 1)
FIRST_OF_CLASSES = [3, 1, 8]  # the first test digits of the classes 0, 2, 5


@pytest.fixture(scope="module")
def vae2():
    path = pretrained_dir() / "vae2.pt"
    if not path.is_file():
        pytest.skip("the shipped 2-D model is missing")
    model = model_from_checkpoint(load_checkpoint(path))
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def fits(vae2):
    data = load_mnist()
    idx = ISSUE_DIGITS + FIRST_OF_CLASSES
    assert [int(data.y_test[i]) for i in FIRST_OF_CLASSES] == [0, 2, 5]
    x = data.binarized("test")[idx]  # (6, 784)
    missing = torch.from_numpy(masks.top_half().reshape(1, -1))
    cfg = ip.InpaintConfig()
    guess = ip.amortized_guess(vae2, x, missing)
    mode = grid_mode_2d(vae2, x, missing)  # (6, 2)
    at_mode = ip.fit_q(vae2, x, missing, cfg, init=(mode, guess[1]))
    one = ip.fit_q(vae2, x, missing, cfg, init=guess)
    multi = multi_start_fit(vae2, x, missing, cfg, StartsConfig(), guess=guess)
    om = ObservedModel(vae2, x, missing)

    def elbo(loc, scale):  # deterministic: Gauss–Hermite quadrature of the observed-pixel ELBO
        return elbo_for_q(om, x, loc, scale, method="quadrature", n=24).elbo

    return {
        "at_mode": elbo(at_mode.z_loc, at_mode.z_scale),
        "one": elbo(one.z_loc, one.z_scale),
        "multi": elbo(multi.result.z_loc, multi.result.z_scale),
        "multi_result": multi,
    }


def test_multi_start_reaches_the_mode_where_one_start_does_not(fits):
    gap_multi = fits["at_mode"] - fits["multi"]  # (6,)
    assert torch.all(gap_multi < 0.5), gap_multi
    gap_one = fits["at_mode"] - fits["one"]
    assert torch.all(gap_one[:3] > 5.0), gap_one  # the failure the issue measured, on its three digits


def test_the_report_keeps_the_best_start(fits):
    res = fits["multi_result"]
    rep = res.starts
    S = len(rep.labels)
    assert rep.labels[:2] == ("encoder", "MwG") and S == 2 + StartsConfig().n_prior
    assert rep.elbo.shape == (S, 6) and rep.z_loc.shape == (S, 6, 2)
    assert torch.equal(rep.best, rep.elbo.argmax(0))
    b = torch.arange(6)
    assert torch.allclose(res.result.z_loc, rep.z_loc[rep.best, b])
    assert res.result.completion.mean.shape == (6, 784) and res.result.elbo_trace.shape[1] == 6
    assert all(rep.summary(i).startswith(f"best of {S} starts") for i in range(6))


def test_distinct_optima_close_in_elbo_are_reported_as_ambiguous():
    z_loc = torch.tensor([[[0.0, 0.0]], [[0.05, 0.0]], [[2.0, 1.0]], [[-3.0, 0.0]]])  # (4, 1, 2)
    rep = StartsReport(
        labels=("encoder", "MwG", "draw 1", "draw 2"),
        elbo=torch.tensor([[-50.0], [-50.1], [-52.0], [-80.0]]),
        z_loc=z_loc,
        z_scale=torch.full_like(z_loc, 0.1),
        best=torch.tensor([0]),
        n_modes=torch.tensor([2]),
    )
    assert mode_representatives(rep) == [0, 2]  # MwG's is the same optimum; draw 2's is 30 nats below
    assert rep.disagree() and "ambiguous" in rep.summary() and "draw 1 -52.0" in rep.summary()


def test_live_reports_show_one_q_per_digit(vae2):
    x = load_mnist().binarized("test")[:1]
    seen = []
    cfg = ip.InpaintConfig(steps=20, report_every=10, n_completion_samples=4)
    multi_start_fit(vae2, x, masks.top_half(), cfg, StartsConfig(n_prior=2, mwg_steps=3), callback=seen.append)
    assert [p.step for p in seen] == [10, 20]
    p = seen[-1]
    assert p.z_loc.shape == (1, 2) and p.elbo_trace.shape == (21, 1)
    assert p.completion.samples.shape == (4, 1, 784) and p.completion.mean.shape == (1, 784)
