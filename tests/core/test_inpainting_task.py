"""The inpainting panel's background task, headless: its reports in order, cancellation through ctx,
the observed-pixel model it hands to the latent grid, and the covering box of two q's."""

import numpy as np
import pytest
import torch

from lvm_studio.core import inpainting as ip
from lvm_studio.core import masks
from lvm_studio.core.inpainting_completion import prepare
from lvm_studio.core.inpainting_task import (
    SAMPLE_ROWS,
    FitOutcome,
    GuessReport,
    ObservedModel,
    covering,
    fit_task,
)
from lvm_studio.core.vae import VAE, VAEConfig


class Cancelled(Exception):
    pass


class Ctx:
    """A workers.tasks-style context: records reports; cancels after `cancel_after` reports."""

    def __init__(self, cancel_after: int | None = None):
        self.reports = []
        self.cancel_after = cancel_after

    def report(self, fraction, payload=None):
        self.reports.append((fraction, payload))

    def cancelled(self):
        return self.cancel_after is not None and len(self.reports) >= self.cancel_after

    def check(self):
        if self.cancelled():
            raise Cancelled()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VAE(VAEConfig(latent_dim=2, hidden=(16,))).eval()


@pytest.fixture(scope="module")
def digit():
    x = np.zeros((28, 28), np.float32)
    x[6:22, 12:16] = 1.0  # a "1"
    return x


def config(steps=20):
    return ip.InpaintConfig(steps=steps, n_completion_samples=SAMPLE_ROWS * SAMPLE_ROWS, report_every=5, seed=0)


def test_reports_come_in_order_and_the_outcome_holds_the_grid(model, digit):
    ctx = Ctx()
    out = fit_task(ctx, model, digit, masks.top_half(), config(), 50, True, 7)
    kinds = [type(p) for _, p in ctx.reports]
    assert kinds[0] is GuessReport and kinds[-1] is FitOutcome
    assert all(k is ip.InpaintProgress for k in kinds[1:-1]) and len(kinds) - 2 == 20 // 5
    fractions = [f for f, _ in ctx.reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert isinstance(out, FitOutcome) and out.model_version == 7
    assert ctx.reports[-1][1].grid is None and out.grid is not None  # reported before the grid, returned with it
    np.testing.assert_array_equal(out.x, digit.reshape(-1))
    np.testing.assert_array_equal(out.missing, masks.top_half().reshape(-1))
    assert out.importance.completions.shape == (SAMPLE_ROWS * SAMPLE_ROWS, 1, 784)
    assert out.result.steps_done == 20 and np.isfinite([out.elbo_guess, out.elbo_fitted]).all()


def test_no_grid_for_other_latents_or_when_not_wanted(model, digit):
    ctx = Ctx()
    out = fit_task(ctx, model, digit, masks.left_half(), config(), 0, False, 0)
    assert out.grid is None and out.importance is None
    assert not any(isinstance(p, FitOutcome) for _, p in ctx.reports)  # nothing follows the outcome: not reported


def test_a_cancelled_context_ends_the_task_through_check(model, digit):
    ctx = Ctx(cancel_after=2)  # after the guess and the first progress report
    with pytest.raises(Cancelled):
        fit_task(ctx, model, digit, masks.top_half(), config(steps=200), 50, True, 0)
    assert len(ctx.reports) <= 3


def test_the_observed_model_is_the_observed_pixel_likelihood(model, digit):
    x, m = prepare(digit, masks.bottom_half())
    om = ObservedModel(model, x, m)
    z = torch.randn(5, 1, 2, generator=torch.Generator().manual_seed(0))
    # log p(x_o|z): the per-pixel log-likelihoods summed over the observed pixels only
    expected = (model.log_px_given_z_pixels(x, z) * (~m).float()).sum(-1)  # (5, 1)
    torch.testing.assert_close(om.log_px_given_z(x, z), expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(om.prior_log_prob(z), model.prior_log_prob(z))
    assert om.latent_dim == 2 and om.sample_prior((3,)).shape == (3, 2)


def test_covering_box_of_two_gaussians():
    a = (torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.5]]))  # 2σ boxes [-2, 2] × [0, 2]
    b = (torch.tensor([[3.0, -1.0]]), torch.tensor([[0.5, 0.25]]))  # [2, 4] × [-1.5, -0.5]
    loc, scale = covering(a, b)  # [-2, 4] × [-1.5, 2]
    torch.testing.assert_close(loc, torch.tensor([[1.0, 0.25]]))
    torch.testing.assert_close(scale, torch.tensor([[1.5, 0.875]]))
    loc1, scale1 = covering(a)
    torch.testing.assert_close(loc1, a[0])
    torch.testing.assert_close(scale1, a[1])
