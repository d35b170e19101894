"""The inpainting panel's background task: guess, fit, numbers, importance resampling, latent grid.

fit_task runs on a workers.tasks TaskRunner (duck typed: ctx.report(fraction, payload),
ctx.cancelled(), ctx.check()); it is plain core code, so the bench times it headless. Its reports,
in order: a GuessReport (the encoder's guess and its completion), InpaintProgress every
config.report_every Adam steps (core.inpainting.fit_q), the FitOutcome as soon as the fit is done
(importance_pending: its importance samples follow) and, for a 2-D latent, the FitOutcome with them
before the exact grid of p(z|x_o) is computed; the return value is the whole FitOutcome.

Centring for the model only. Given a core.images.Placement, the model is fitted to the drawing as
that placement moves it (MNIST's frame: fit in 20 × 20, centre of mass in the middle), with the
mask carried along so the same pixels stay hidden; every completion it reports is carried back to
the canvas's frame (images.unapply_placement) before it leaves the task, observed pixels copied
from the canvas exactly. So what the user drew and the region they hid never move, and every
image reported is aligned with the canvas (docs/architecture.md: computations in core).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from lvm_studio.core import inpainting as ip
from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.estimators import GridPosterior
from lvm_studio.core.images import SIDE, Placement, apply_placement
from lvm_studio.core.inpainting_completion import Completion, ImportanceSamples, complete, importance_resample, prepare
from lvm_studio.core.inpainting_starts import StartsConfig, StartsReport, mode_representatives, multi_start_fit
from lvm_studio.core.observed_likelihood import ObservedLikelihood
from lvm_studio.core.posterior_grid import posterior_grid

REPORT_INTERVAL_S = 0.08  # the panel draws live reports at most this often (ui: VIEW_INTERVAL_MS)


def panel_config(steps: int = 200) -> ip.InpaintConfig:
    """The inpainting panel's fit settings (the benches time the same)."""
    return ip.InpaintConfig(
        steps=steps,
        n_completion_samples=SAMPLE_ROWS * SAMPLE_ROWS,
        report_every=10,
        report_interval_s=REPORT_INTERVAL_S,  # no more reports than the views draw
        seed=0,
    )


ELBO_K = 256  # z samples for the observed-pixel ELBO numbers (common random numbers for guess and fit)
GRID_N = 48  # latent-plane heat map cells per side (2-D latents)
GRID_COARSE = 25
SAMPLE_ROWS = 4  # sample grids are SAMPLE_ROWS × SAMPLE_ROWS completions


@dataclass(frozen=True)
class GuessReport:
    """The encoder's guess for the current input, reported before the fit starts."""

    completion: Completion
    z_loc: torch.Tensor  # (1, latent)
    z_scale: torch.Tensor  # (1, latent)


@dataclass(frozen=True)
class FitOutcome:
    x: np.ndarray  # (784,) the model's input
    missing: np.ndarray  # (784,) bool
    result: ip.InpaintResult
    elbo_guess: float  # observed-pixel ELBO of the encoder's guess, ELBO_K samples
    elbo_fitted: float  # the same for the fitted q, with the same noise
    importance: ImportanceSamples | None
    grid: GridPosterior | None  # p(z|x_o) on a grid (2-D latents), once computed
    model_version: int
    placement: Placement | None = None  # the frame the model saw (None: the canvas's own)
    model_missing: np.ndarray | None = None  # (784,) bool, the mask in that frame (None: `missing`)
    starts: StartsReport | None = None  # a multi-start fit's starts (None: one start, the encoder's guess)
    importance_pending: bool = False  # the fit's outcome, reported before its importance samples follow

    @property
    def n_missing_model(self) -> int:
        """Pixels the model treated as missing (its ELBO is over the others)."""
        return int((self.missing if self.model_missing is None else self.model_missing).sum())


class CanvasFrame:
    """Carries completions from the model's frame (a Placement) back to the canvas's.

    Missing canvas pixels take the area average of the model's completion over where they were
    moved to (images.unapply_placement); observed canvas pixels are the canvas's, exactly, and
    have no spread. pixel_std is carried back the same way (an average of spreads: a display aid).
    """

    def __init__(self, placement: Placement, x: np.ndarray, missing: np.ndarray):
        w_rows, w_cols = placement.back_weights()
        self._rows = torch.as_tensor(w_rows, dtype=torch.float32)  # (SIDE, SIDE)
        self._cols = torch.as_tensor(w_cols, dtype=torch.float32)
        self._x = torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(N_PIXELS))  # (784,)
        self._m = torch.as_tensor(np.asarray(missing, dtype=bool).reshape(N_PIXELS))  # (784,)

    def images(self, placed: torch.Tensor, observed: torch.Tensor | float) -> torch.Tensor:
        """(..., 784) in the model's frame -> (..., 784) on the canvas; observed pixels = `observed`."""
        shape = placed.shape
        back = self._rows @ placed.to(torch.float32).reshape(-1, SIDE, SIDE) @ self._cols.T  # (n, SIDE, SIDE)
        back = back.reshape(shape).clamp(0.0, 1.0)
        return torch.where(self._m, back, torch.as_tensor(observed, dtype=torch.float32))

    def completion(self, c: Completion) -> Completion:
        return Completion(
            mean=self.images(c.mean, self._x),
            samples=self.images(c.samples, self._x),
            pixel_std=self.images(c.pixel_std, 0.0),
        )

    def report(self, payload):
        """A fit report (GuessReport or InpaintProgress) with its completion on the canvas."""
        return dataclasses.replace(payload, completion=self.completion(payload.completion))

    def result(self, res: ip.InpaintResult) -> ip.InpaintResult:
        return dataclasses.replace(
            res, completion=self.completion(res.completion), amortized=self.completion(res.amortized)
        )

    def importance(self, imp: ImportanceSamples | None) -> ImportanceSamples | None:
        if imp is None:
            return None
        return dataclasses.replace(
            imp, completions=self.images(imp.completions, self._x), mean=self.images(imp.mean, self._x)
        )


class ObservedModel:
    """The model seen through the observed pixels: log_px_given_z(x, z) = log p(x_o|z), so the latent
    explorer's posterior_grid draws p(z|x_o) ∝ p(x_o|z) p(z). The prior is the model's own."""

    def __init__(self, model, x: torch.Tensor, missing: torch.Tensor):
        self.latent_dim = model.latent_dim
        self._model = model
        self._lik = ObservedLikelihood(model, x, missing)

    def log_px_given_z(self, x, z):  # z (c, 1, latent) -> (c, 1)
        return self._lik.value(z)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self._model.prior_log_prob(z)

    def sample_prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        return self._model.sample_prior(shape, generator)

    def kl_to_prior(self, z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
        """The model's own KL(q ‖ p(z)), so q_elbo.elbo_for_q gives the observed-pixel ELBO."""
        return self._model.kl_to_prior(z_loc, z_scale)


def covering(*qs: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A (loc, scale) whose 2σ box covers the 2σ boxes of all the given (loc, scale)."""
    lo = torch.stack([loc - 2 * scale for loc, scale in qs]).amin(0)
    hi = torch.stack([loc + 2 * scale for loc, scale in qs]).amax(0)
    return (lo + hi) / 2, (hi - lo) / 4


def fit_task(
    ctx,
    model,
    x: np.ndarray,
    missing: np.ndarray,
    config: ip.InpaintConfig,
    importance_k: int,
    want_grid: bool,
    model_version: int,
    placement: Placement | None = None,
    starts: StartsConfig | None = None,
) -> FitOutcome:
    """Encoder's guess (reported), the fit (reported every config.report_every steps), ELBO numbers,
    importance resampling, and for a 2-D latent the grid of p(z|x_o) (the outcome is reported before it).

    placement: fit the drawing as this placement moves it, and report every completion carried back
    onto x's frame (see the module's notes); None: fit x as it is.
    starts: fit from several starts at once and keep the best (core.inpainting_starts); None: one
    fit from the encoder's guess.
    A cancelled ctx ends the task through ctx.check() (the fit stops at its next step)."""
    canvas_x = np.array(x, dtype=np.float32).reshape(-1)
    canvas_missing = np.array(missing, dtype=bool).reshape(-1)
    frame = None
    if placement is not None:
        frame = CanvasFrame(placement, canvas_x, canvas_missing)
        x, missing = apply_placement(placement, canvas_x.reshape(SIDE, SIDE), canvas_missing.reshape(SIDE, SIDE))
    xt, mt = prepare(x, missing)
    g = torch.Generator().manual_seed(config.seed or 0)
    guess = ip.amortized_guess(model, xt, mt)
    amortized = complete(
        model, xt, mt, *guess, n=config.n_mean_samples, n_keep=config.n_completion_samples, generator=g
    )
    report = GuessReport(amortized, guess[0].clone(), guess[1].clone())
    ctx.report(0.0, report if frame is None else frame.report(report))
    steps = max(config.steps, 1)
    relay = lambda p: ctx.report(p.step / steps, p if frame is None else frame.report(p))
    starts_report = None
    if starts is not None:
        multi = multi_start_fit(
            model, xt, mt, config, starts, callback=relay, should_stop=ctx.cancelled, guess=guess, amortized=amortized
        )
        res, starts_report = multi.result, multi.starts
    else:
        res = ip.fit_q(
            model, xt, mt, config, callback=relay, should_stop=ctx.cancelled, init=guess, amortized=amortized
        )
    if res.stopped:
        ctx.check()  # should_stop is ctx.cancelled: this raises the runner's cancellation
    # common random numbers: the guess and the fit are scored with the same noise ε (ELBO_K draws)
    eps = torch.randn((max(importance_k, ELBO_K), 1, guess[0].shape[-1]), generator=torch.Generator().manual_seed(1))
    elbo_guess = ip.observed_elbo(model, xt, mt, *guess, k=ELBO_K, eps=eps[:ELBO_K])
    elbo_fit = ip.observed_elbo(model, xt, mt, res.z_loc, res.z_scale, k=ELBO_K, eps=eps[:ELBO_K])
    ctx.check()
    outcome = FitOutcome(
        x=canvas_x,
        missing=canvas_missing,
        result=res if frame is None else frame.result(res),
        elbo_guess=float(elbo_guess[0]),
        elbo_fitted=float(elbo_fit[0]),
        importance=None,
        grid=None,
        model_version=model_version,
        placement=placement,
        model_missing=None if frame is None else np.array(missing, dtype=bool).reshape(-1),
        starts=starts_report,
        importance_pending=importance_k > 0,
    )
    if importance_k > 0:
        # The fit is done: show it now; importance resampling (k decoder passes, about a third of a
        # 200-step fit's time at k = 2,000) follows. Its proposals z_j = μ + σ ε_j start with the ELBO's
        # noise, so its first ELBO_K log p(x_o|z_j) are the ELBO's samples: the numbers agree.
        ctx.report(1.0, outcome)
        imp = importance_resample(
            model, xt, mt, res.z_loc, res.z_scale, k=importance_k, n=SAMPLE_ROWS * SAMPLE_ROWS, generator=g, eps=eps
        )
        ctx.check()
        outcome = dataclasses.replace(
            outcome, importance=imp if frame is None else frame.importance(imp), importance_pending=False
        )
    if not want_grid or model.latent_dim != 2:
        return outcome
    ctx.report(1.0, outcome)
    include = covering((res.z_loc, res.z_scale), guess)
    if starts_report is not None:  # the competing optima stay on the latent plane
        reps = mode_representatives(starts_report)
        include = covering(include, *[(starts_report.z_loc[i], starts_report.z_scale[i]) for i in reps])
    grid = posterior_grid(ObservedModel(model, xt, mt), xt, n=GRID_N, n_coarse=GRID_COARSE, include=include)
    return dataclasses.replace(outcome, grid=grid)
