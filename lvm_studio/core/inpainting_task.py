"""The inpainting panel's background task: guess, fit, numbers, importance resampling, latent grid.

fit_task runs on a workers.tasks TaskRunner (duck typed: ctx.report(fraction, payload),
ctx.cancelled(), ctx.check()); it is plain core code, so the bench times it headless. Its reports,
in order: a GuessReport (the encoder's guess and its completion), InpaintProgress every
config.report_every Adam steps (core.inpainting.fit_q), and, for a 2-D latent, the FitOutcome
before the exact grid of p(z|x_o) is computed; the return value is the FitOutcome with the grid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from lvm_studio.core import inpainting as ip
from lvm_studio.core.estimators import GridPosterior
from lvm_studio.core.inpainting_completion import Completion, ImportanceSamples, complete, importance_resample, prepare
from lvm_studio.core.observed_likelihood import ObservedLikelihood
from lvm_studio.core.posterior_grid import posterior_grid

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
) -> FitOutcome:
    """Encoder's guess (reported), the fit (reported every config.report_every steps), ELBO numbers,
    importance resampling, and for a 2-D latent the grid of p(z|x_o) (the outcome is reported before it).

    A cancelled ctx ends the task through ctx.check() (the fit stops at its next step)."""
    xt, mt = prepare(x, missing)
    g = torch.Generator().manual_seed(config.seed or 0)
    guess = ip.amortized_guess(model, xt, mt)
    amortized = complete(
        model, xt, mt, *guess, n=config.n_mean_samples, n_keep=config.n_completion_samples, generator=g
    )
    ctx.report(0.0, GuessReport(amortized, guess[0].clone(), guess[1].clone()))
    steps = max(config.steps, 1)
    res = ip.fit_q(
        model, xt, mt, config, callback=lambda p: ctx.report(p.step / steps, p), should_stop=ctx.cancelled, init=guess
    )
    if res.stopped:
        ctx.check()  # should_stop is ctx.cancelled: this raises the runner's cancellation
    # common random numbers: the guess and the fit are scored with the same noise
    elbo_guess = ip.observed_elbo(model, xt, mt, *guess, k=ELBO_K, generator=torch.Generator().manual_seed(1))
    elbo_fit = ip.observed_elbo(
        model, xt, mt, res.z_loc, res.z_scale, k=ELBO_K, generator=torch.Generator().manual_seed(1)
    )
    ctx.check()
    imp = None
    if importance_k > 0:
        imp = importance_resample(
            model, xt, mt, res.z_loc, res.z_scale, k=importance_k, n=SAMPLE_ROWS * SAMPLE_ROWS, generator=g
        )
        ctx.check()
    outcome = FitOutcome(
        x=np.array(x, dtype=np.float32).reshape(-1),
        missing=np.array(missing, dtype=bool).reshape(-1),
        result=res,
        elbo_guess=float(elbo_guess[0]),
        elbo_fitted=float(elbo_fit[0]),
        importance=imp,
        grid=None,
        model_version=model_version,
    )
    if not want_grid or model.latent_dim != 2:
        return outcome
    ctx.report(1.0, outcome)
    include = covering((res.z_loc, res.z_scale), guess)
    grid = posterior_grid(ObservedModel(model, xt, mt), xt, n=GRID_N, n_coarse=GRID_COARSE, include=include)
    return dataclasses.replace(outcome, grid=grid)
