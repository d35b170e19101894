"""The multi-start fit finds the mode a one-start fit misses (issue 16): with the shipped 2-D model and
the top half hidden, its observed-pixel ELBO comes within 0.5 nats of a fit started at the exact
posterior's mode (found on a grid) on at least 95 % of the first 200 test digits, and on each of
test indices 0, 2 and 5 (labels 7, 1, 1: the issue's "test digits 0, 2 and 5", where the one-start
fit ends 12–19 nats below) and the first test digits of the classes 0, 2 and 5 (indices 3, 1, 8).
All 200 digits go through one batched grid search, one batched mode-started fit and one batched
multi-start fit; the ELBOs are Gauss–Hermite quadratures (deterministic; 12 × 12 nodes agree with
24 × 24 on which of the 200 digits are within 0.5 nats)."""

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


N_DIGITS = 200  # the issue's "200 test digits": the first 200 of the test set


@pytest.fixture(scope="module")
def fits(vae2):
    data = load_mnist()
    assert [int(data.y_test[i]) for i in FIRST_OF_CLASSES] == [0, 2, 5]
    x = data.binarized("test")[:N_DIGITS]  # (200, 784)
    missing = torch.from_numpy(masks.top_half().reshape(1, -1))
    cfg = ip.InpaintConfig()
    guess = ip.amortized_guess(vae2, x, missing)
    mode = grid_mode_2d(vae2, x, missing)  # (200, 2)
    at_mode = ip.fit_q(vae2, x, missing, cfg, init=(mode, guess[1]))
    multi = multi_start_fit(vae2, x, missing, cfg, StartsConfig(), guess=guess)
    named = ISSUE_DIGITS + FIRST_OF_CLASSES
    one = ip.fit_q(vae2, x[named], missing, cfg, init=(guess[0][named], guess[1][named]))

    def elbo(x, loc, scale):  # deterministic: Gauss–Hermite quadrature of the observed-pixel ELBO
        return elbo_for_q(ObservedModel(vae2, x, missing), x, loc, scale, method="quadrature", n=12).elbo

    return {
        "at_mode": elbo(x, at_mode.z_loc, at_mode.z_scale),
        "multi": elbo(x, multi.result.z_loc, multi.result.z_scale),
        "one_named": elbo(x[named], one.z_loc, one.z_scale),
        "named": named,
        "multi_result": multi,
        "guess": guess,
    }


def test_multi_start_reaches_the_mode_on_95_percent_of_200_digits(fits):
    gap = fits["at_mode"] - fits["multi"]  # (200,) nats below the mode-started fit
    within = gap < 0.5
    assert within.sum() >= 0.95 * N_DIGITS, (int(within.sum()), gap.topk(12).values)
    assert torch.all(within[fits["named"]]), gap[fits["named"]]


def test_one_start_misses_the_mode_on_the_issues_digits(fits):
    gap_one = fits["at_mode"][fits["named"]] - fits["one_named"]  # (6,)
    assert torch.all(gap_one[:3] > 5.0), gap_one  # the failure the issue measured, on its three digits


def test_the_report_keeps_the_best_start(fits):
    res = fits["multi_result"]
    rep = res.starts
    S, B = len(rep.labels), N_DIGITS
    assert rep.labels[:2] == ("encoder", "MwG") and S == 2 + StartsConfig().n_prior
    assert rep.elbo.shape == (S, B) and rep.z_loc.shape == (S, B, 2)
    assert rep.ranked_at == StartsConfig().shared_steps
    assert torch.equal(rep.best, rep.elbo.argmax(0))
    # the kept start went on from where it was ranked: its final ELBO is not below its ELBO then
    assert torch.all(fits["multi"] > rep.elbo[rep.best, torch.arange(B)] - 1.0)
    assert torch.equal(res.result.init_scale, fits["guess"][1])  # every start begins at the guess's scale
    won_by_encoder = rep.best == 0
    assert torch.equal(res.result.init_loc[won_by_encoder], fits["guess"][0][won_by_encoder])
    assert res.result.completion.mean.shape == (B, 784) and res.result.elbo_trace.shape == (201, B)
    assert all(rep.summary(i).startswith(f"best of {S} starts after {rep.ranked_at} steps") for i in range(3))


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
