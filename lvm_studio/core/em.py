"""What both mixtures (core.gmm, core.bernoulli_mixture) share: the EM driver loop, k-means++
seeding and the ``MixtureModel`` base class (bookkeeping, data checks, step, fit).

    repeat: E-step (responsibilities and ℓ_t = mean log p(x) of the current θ), M-step (new θ)
    until |ℓ_t − ℓ_{t−1}| < tol, max_iter M-steps, or should_stop()    (Bishop, PRML 2006, §9.2.2)

EM never decreases the log-likelihood (PRML §9.4), so the trace it returns rises monotonically
up to rounding (for the MAP Bernoulli mixture: its log posterior, see core.bernoulli_mixture).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def as_tensor(a) -> torch.Tensor:
    """A tensor from a tensor, array or nested list; Python floats stay float64 (torch.as_tensor
    would round a list of floats to float32 before any later cast to float64)."""
    if isinstance(a, torch.Tensor):
        return a
    return torch.from_numpy(np.array(a, copy=True))


@dataclass(frozen=True)
class EMRun:
    trace: list[float]  # [ℓ_0, …, ℓ_T], ℓ_t = mean log p(x) after t M-steps
    n_iter: int  # M-steps taken: T
    converged: bool  # stopped because |ℓ_T − ℓ_{T−1}| < tol


def run_em(
    e_step: Callable[[], tuple[Any, float]],
    m_step: Callable[[Any], object],
    max_iter: int = 100,
    tol: float = 1e-4,
    callback: Callable[[int, float], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EMRun:
    """Alternate e_step() → (statistics, ℓ_t) and m_step(statistics) until converged.

    Ends after an E-step, so trace[-1] belongs to the parameters left behind and len(trace) =
    n_iter + 1. callback(t, ℓ_t) is called for every entry; should_stop() is asked before each
    M-step (a cancelled fit keeps its last complete parameters).
    """
    trace: list[float] = []
    n_iter, converged = 0, False
    for t in range(max_iter + 1):
        stats, ll = e_step()
        trace.append(ll)
        if callback is not None:
            callback(t, ll)
        if t > 0 and abs(ll - trace[-2]) < tol:
            converged = True
            break
        if t == max_iter or (should_stop is not None and should_stop()):
            break
        m_step(stats)
        n_iter = t + 1
    return EMRun(trace, n_iter, converged)


@torch.no_grad()
def kmeans_plusplus_indices(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007, §2.2): the first centre uniformly, each
    next one with probability D(x)² / Σ D(x)², D the distance to the nearest chosen centre.

    Draws on the CPU generator, so the indices are the same on any device. Returns K distinct
    indices (int64, CPU): chosen points have D = 0; when every remaining D is 0 (duplicates),
    the next centre is drawn uniformly among the points not chosen yet.
    """
    n = x.shape[0]
    if k > n:
        raise ValueError(f"cannot choose {k} centres from {n} points")
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    dist2 = (x - x[chosen[0]]).square().sum(1)  # (N,)
    for _ in range(1, k):
        weights = dist2.to(device="cpu", dtype=torch.float64)  # (N,)
        total = float(weights.sum())
        if not math.isfinite(total) or total <= 0:
            weights = torch.ones(n, dtype=torch.float64)
            weights[chosen] = 0
        nxt = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(nxt)
        dist2 = torch.minimum(dist2, (x - x[nxt]).square().sum(1))
    return torch.tensor(chosen, dtype=torch.int64)


class MixtureModel:
    """What a K-component mixture fitted by EM keeps and checks, whatever its components.

    A subclass sets the class attributes below and defines initialize, e_step, m_step,
    log_prob and _log_joint(x) → log π_k + log p(x_n | z = k), (N, K).
    """

    location = "means"  # the (K, D) parameter tensor whose presence means "initialised"
    integer_dtype = torch.float64  # dtype taken for integer or bool data
    unit = "features"  # what one of the D columns is, for error messages

    def __init__(self, config, device=None, dtype: torch.dtype | None = None):
        self.config = config
        self.device = torch.device(device) if device is not None else None
        self.dtype = dtype
        self.weights: torch.Tensor | None = None  # (K,)
        self.n_iter = 0  # M-steps taken by the last fit
        self.converged = False

    @property
    def n_components(self) -> int:
        return int(self.config.n_components)

    @property
    def is_initialized(self) -> bool:
        return getattr(self, self.location) is not None

    @property
    def dim(self) -> int:
        self._require_init()
        return int(getattr(self, self.location).shape[1])

    def _require_init(self):
        if getattr(self, self.location) is None:
            raise RuntimeError("the mixture has no parameters yet: call initialize(x) or set_parameters(...)")

    def _adopt(self, t) -> torch.Tensor:
        """t as a tensor on the model's device and dtype, fixing them from t on first use."""
        t = as_tensor(t)
        if self.device is None:
            self.device = t.device
        if self.dtype is None:
            self.dtype = t.dtype if t.is_floating_point() else self.integer_dtype
        return t.to(device=self.device, dtype=self.dtype)

    def _as_data(self, x, check_dim: bool = True) -> torch.Tensor:
        """x as a (N, D) tensor on the model's device and dtype (fixing them on first use)."""
        x = self._adopt(x)
        if x.dim() != 2:
            raise ValueError(f"x must be (N, D), got shape {tuple(x.shape)}")
        location = getattr(self, self.location)
        if check_dim and location is not None and x.shape[1] != location.shape[1]:
            raise ValueError(f"x has {x.shape[1]} {self.unit}, the mixture {location.shape[1]}")
        return x

    @torch.no_grad()
    def step(self, x) -> float:
        """One EM iteration (E then M). Returns the mean log-likelihood of the parameters
        *before* this M-step, the number the E-step computes for free."""
        log_resp, ll = self.e_step(x)
        self.m_step(x, log_resp)
        return ll

    @torch.no_grad()
    def fit(self, x, max_iter: int = 100, tol: float = 1e-4, callback=None, should_stop=None) -> list[float]:
        """Run EM until |Δ mean log-likelihood| < tol, max_iter M-steps, or should_stop() is true.

        Initialises first when the mixture has no parameters. Returns the trace
        [ℓ_0, ℓ_1, …, ℓ_T], ℓ_t = mean log p(x) after t M-steps (ℓ_0: the starting point),
        so len(trace) = T + 1 and trace[-1] belongs to the parameters left in the model.
        callback(t, ℓ_t) is called for each entry; should_stop() is asked before each M-step.
        """
        x = self._as_data(x)
        if not self.is_initialized:
            self.initialize(x)
        self.n_iter, self.converged = 0, False
        run = run_em(
            lambda: self.e_step(x), lambda log_resp: self.m_step(x, log_resp), max_iter, tol, callback, should_stop
        )
        self.n_iter, self.converged = run.n_iter, run.converged
        return run.trace

    @torch.no_grad()
    def log_likelihood(self, x) -> float:
        """Mean log p(x_n) over the rows of x, nats per row."""
        log_px = self.log_prob(x)  # (N,)
        return float(log_px.sum(dtype=torch.float64)) / log_px.shape[0]

    @torch.no_grad()
    def predict(self, x) -> torch.Tensor:
        """The most responsible component per row, (N,) int64."""
        self._require_init()
        return self._log_joint(self._as_data(x)).argmax(1)
