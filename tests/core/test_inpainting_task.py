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
    assert kinds[0] is GuessReport and kinds[-2:] == [FitOutcome, FitOutcome]
    assert all(k is ip.InpaintProgress for k in kinds[1:-2]) and len(kinds) - 3 == 20 // 5
    fractions = [f for f, _ in ctx.reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert isinstance(out, FitOutcome) and out.model_version == 7
    fitted, with_samples = ctx.reports[-2][1], ctx.reports[-1][1]
    # the fit is shown at once, its importance samples and then the grid follow
    assert fitted.importance is None and fitted.importance_pending and fitted.grid is None
    assert with_samples.importance is not None and not with_samples.importance_pending and with_samples.grid is None
    assert out.grid is not None and out.importance is with_samples.importance and not out.importance_pending
    np.testing.assert_array_equal(out.x, digit.reshape(-1))
    np.testing.assert_array_equal(out.missing, masks.top_half().reshape(-1))
    assert out.importance.completions.shape == (SAMPLE_ROWS * SAMPLE_ROWS, 1, 784)
    assert out.result.steps_done == 20 and np.isfinite([out.elbo_guess, out.elbo_fitted]).all()


def test_no_grid_for_other_latents_or_when_not_wanted(model, digit):
    ctx = Ctx()
    out = fit_task(ctx, model, digit, masks.left_half(), config(), 0, False, 0)
    assert out.grid is None and out.importance is None and not out.importance_pending
    assert not any(isinstance(p, FitOutcome) for _, p in ctx.reports)  # nothing follows the outcome: not reported


def test_the_fit_is_reported_before_its_importance_samples_with_the_same_numbers(model, digit):
    """The outcome reported as soon as the fit is done carries the ELBOs the final one has: the
    importance proposals start with the ELBO's own noise, so their first ELBO_K log-likelihoods are
    the ELBO's samples (common random numbers)."""
    ctx = Ctx()
    out = fit_task(ctx, model, digit, masks.top_half(), config(), 200, False, 0)
    shown = [p for _, p in ctx.reports if isinstance(p, FitOutcome)]
    assert len(shown) == 1 and shown[0].importance_pending and shown[0].importance is None
    assert out.importance is not None and not out.importance_pending
    assert shown[0].elbo_fitted == out.elbo_fitted and shown[0].elbo_guess == out.elbo_guess
    kl = model.kl_to_prior(out.result.z_loc, out.result.z_scale)
    from lvm_studio.core.inpainting_task import ELBO_K

    from_samples = out.importance.log_lik[:ELBO_K].double().mean(0) - kl.double()  # (1,)
    assert float(from_samples[0]) == pytest.approx(out.elbo_fitted, rel=1e-4)  # float32 sums against float64
    assert torch.equal(shown[0].result.completion.mean, out.result.completion.mean)


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


def test_a_placement_fits_the_centred_drawing_and_reports_on_the_canvas(model):
    """Centring for the model only: fitted in MNIST's frame, every completion carried back onto the canvas."""
    from lvm_studio.core.images import apply_placement, find_placement, unapply_placement

    canvas = np.zeros((28, 28), np.float32)
    canvas[16:24, 3:11] = 0.9  # the bottom of a digit, small and at the left
    missing = masks.top_half()
    p = find_placement(canvas)
    assert (p.top, p.left) != (p.r0, p.c0)  # it does move
    config = ip.InpaintConfig(steps=12, n_completion_samples=SAMPLE_ROWS * SAMPLE_ROWS, report_every=4, seed=0)
    ctx = Ctx()
    out = fit_task(ctx, model, canvas, missing, config, 50, False, 7, p)
    x, m = canvas.reshape(-1), missing.reshape(-1)
    np.testing.assert_array_equal(out.x, x)
    np.testing.assert_array_equal(out.missing, m)
    assert out.placement == p
    placed_x, placed_m = apply_placement(p, canvas, missing)
    np.testing.assert_array_equal(out.model_missing, placed_m.reshape(-1))
    # observed canvas pixels come back exactly, in every image reported
    res = out.result
    reported = [r.result.completion if isinstance(r, FitOutcome) else r.completion for _, r in ctx.reports]
    for c in [res.completion, res.amortized, *reported]:
        assert torch.equal(c.mean[0][~m], torch.from_numpy(x)[~m])
        assert torch.equal(c.samples[:, 0][:, ~m], torch.from_numpy(x)[~m].expand(c.samples.shape[0], -1))
        assert (c.pixel_std[0][~m] == 0).all()
    assert torch.equal(out.importance.completions[:, 0][:, ~m], torch.from_numpy(x)[~m].expand(16, -1))
    # the missing ones are the same fit, in the model's frame, carried back
    ref = fit_task(Ctx(), model, placed_x, placed_m, config, 50, False, 7)
    back = unapply_placement(p, ref.result.completion.mean[0].numpy().reshape(28, 28)).reshape(-1)
    np.testing.assert_allclose(res.completion.mean[0][m].numpy(), np.clip(back, 0, 1)[m], atol=1e-5)
    assert out.elbo_fitted == pytest.approx(ref.elbo_fitted)
