"""EM one half-step at a time, for the 2-D playground: the state a GUI shows between clicks.

    session = EMSession(GMMConfig(n_components=3))
    session.set_points(x)          # (N, 2)
    session.reset()                # initialise θ_0 (k-means++, random, or given means)
    session.e_step()               # q = p(z | x, θ): the responsibilities γ_nk
    session.m_step()               # θ = argmax_θ F(q, θ)
    session.iterate()              # E (if q is stale) then M, as GaussianMixture.step

Every half-step appends a HalfStep to ``trace`` with the free energy (Neal & Hinton 1998, eq. 5)

    F(q, θ) = (1/N) Σ_n Σ_k q_nk [log π_k + log N(x_n; μ_k, Σ_k) − log q_nk]
            = (1/N) Σ_n log p(x_n | θ) − (1/N) Σ_n KL(q_n ‖ p(z | x_n, θ))

and the mean log-likelihood ℓ(θ) = (1/N) Σ_n log p(x_n | θ), in nats per point. The E-step makes the
KL zero, so afterwards F = ℓ(θ); the M-step raises F with q held fixed, and ℓ(θ) ≥ F. Both half-steps
raise F, which is why the log-likelihood never falls from one iteration to the next.

Pure torch + numpy (no Qt); not thread-safe (the playground steps it on the GUI thread: a few hundred
points cost well under a millisecond per half-step).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from lvm_studio.core.gmm import GaussianMixture, GMMConfig


@dataclass(frozen=True)
class HalfStep:
    kind: str  # 'init' (θ_0, no q yet), 'E' or 'M'
    iteration: int  # E and M of iteration t (t = 1, 2, …) share t; 'init' is 0
    free_energy: float  # F(q, θ) after this half-step, nats per point; NaN for 'init'
    log_likelihood: float  # ℓ(θ) of the parameters after this half-step, nats per point

    @property
    def x(self) -> float:
        """Where the playground plots it: init at 0, the E-step of iteration t at t − ½, its M-step at t."""
        return {"init": 0.0, "E": self.iteration - 0.5, "M": float(self.iteration)}[self.kind]


def free_energy(gmm: GaussianMixture, x: torch.Tensor, log_q: torch.Tensor) -> tuple[float, float]:
    """(F(q, θ), ℓ(θ)), nats per point, for the mixture's current θ and log q (N, K).

    log p(x_n, z = k | θ) = log γ_nk(θ) + log p(x_n | θ) from the E-step's quantities; terms with
    q_nk = 0 contribute nothing (0 log 0 = 0). Neal & Hinton (1998), eq. 5; Bishop PRML eq. 9.70.
    """
    log_resp, ll = gmm.e_step(x)  # (N, K), mean log p(x | θ)
    log_px = gmm.log_prob(x)  # (N,)
    log_joint = log_resp + log_px.unsqueeze(1)  # (N, K) log π_k N(x_n; μ_k, Σ_k)
    log_q = log_q.to(log_joint.dtype)
    q = log_q.exp()  # (N, K)
    terms = torch.where(q > 0, q * (log_joint - log_q), torch.zeros_like(q))  # (N, K)
    return float(terms.sum(dtype=torch.float64)) / x.shape[0], ll


class EMSession:
    """The playground's model: points x (N, 2), a GaussianMixture θ, the responsibilities q, the trace.

    ``q_fresh``: q was computed from the current θ (the last half-step was an E-step), so another
    E-step would change nothing and an M-step is the next move.
    """

    def __init__(self, config: GMMConfig | None = None):
        self.config = replace(config) if config is not None else GMMConfig()
        self.x = torch.zeros(0, 2, dtype=torch.float64)
        self.gmm: GaussianMixture | None = None
        self.log_q: torch.Tensor | None = None  # (N, K)
        self.q_fresh = False
        self.trace: list[HalfStep] = []
        self.iteration = 0

    # --- state ---------------------------------------------------------------------------
    @property
    def n_points(self) -> int:
        return int(self.x.shape[0])

    @property
    def ready(self) -> bool:
        """θ exists and there are points to fit."""
        return self.gmm is not None and self.gmm.is_initialized and self.n_points > 0

    def can_reset(self, means=None) -> tuple[bool, str]:
        """Whether reset() can initialise now, and if not, why (in words)."""
        k = int(self.config.n_components)
        if self.n_points == 0:
            return False, "no points: add some or choose a data set"
        if means is None and self.config.init == "given":
            return False, f"place the {k} starting means by clicking"
        if means is None and self.n_points < k:
            return False, f"{k} components need at least {k} points (there are {self.n_points})"
        return True, ""

    def responsibilities(self) -> np.ndarray | None:
        """q as (N, K) float64, or None before the first E-step (and after the points changed)."""
        return None if self.log_q is None else self.log_q.exp().numpy()

    def posterior(self, x) -> np.ndarray:
        """p(z | x, θ) for points x (M, 2) under the current parameters, (M, K)."""
        return self.gmm.responsibilities(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()

    def log_density(self, x) -> np.ndarray:
        """log p(x | θ) for points x (M, 2), (M,)."""
        return self.gmm.log_prob(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()

    def log_likelihood(self) -> float:
        return self.gmm.log_likelihood(self.x)

    # --- changes -------------------------------------------------------------------------
    def set_config(self, config: GMMConfig) -> None:
        """A new K, covariance type, initialisation or seed: θ is dropped until reset()."""
        self.config = replace(config)
        self.gmm = None
        self._forget()

    def set_points(self, x) -> None:
        """New data (N, 2). θ is kept (EM carries on from it); q and the trace start afresh, since
        neither means anything for other points."""
        self.x = torch.as_tensor(np.array(x, dtype=np.float64, copy=True).reshape(-1, 2))
        self._forget()
        if self.ready:
            self.trace.append(HalfStep("init", 0, float("nan"), self.log_likelihood()))

    def _forget(self) -> None:
        self.log_q = None
        self.q_fresh = False
        self.trace = []
        self.iteration = 0

    def reset(self, means=None) -> None:
        """θ_0 from config.init (or the given (K, 2) means); q and the trace are cleared."""
        ok, why = self.can_reset(means)
        if not ok:
            raise ValueError(why)
        self.gmm = GaussianMixture(replace(self.config), dtype=torch.float64)
        if means is not None:
            means = np.asarray(means, dtype=np.float64).reshape(int(self.config.n_components), 2)
        self.gmm.initialize(self.x, means=means)
        self._forget()
        self.trace.append(HalfStep("init", 0, float("nan"), self.log_likelihood()))

    # --- the algorithm -------------------------------------------------------------------
    def _require(self) -> None:
        if not self.ready:
            raise RuntimeError("no parameters or no points: reset() first")

    def e_step(self) -> HalfStep:
        """q_nk = p(z = k | x_n, θ) (PRML eq. 9.23). Afterwards F(q, θ) = ℓ(θ)."""
        self._require()
        self.log_q, ll = self.gmm.e_step(self.x)
        self.q_fresh = True
        self.iteration += 1
        f, _ = free_energy(self.gmm, self.x, self.log_q)
        step = HalfStep("E", self.iteration, f, ll)
        self.trace.append(step)
        return step

    def m_step(self) -> HalfStep:
        """θ = argmax_θ F(q, θ) for the current q (PRML eqs. 9.24–9.26). Needs a q."""
        self._require()
        if self.log_q is None:
            raise RuntimeError("no responsibilities yet: take an E-step first")
        self.gmm.m_step(self.x, self.log_q)
        self.q_fresh = False
        f, ll = free_energy(self.gmm, self.x, self.log_q)
        step = HalfStep("M", self.iteration, f, ll)
        self.trace.append(step)
        return step

    def iterate(self) -> HalfStep:
        """One EM iteration: an E-step unless q is already fresh, then an M-step."""
        if not self.q_fresh:
            self.e_step()
        return self.m_step()

    def converged(self, tol: float) -> bool:
        """ℓ rose by less than tol (nats per point) over the last iteration (two M-steps apart)."""
        lls = [s.log_likelihood for s in self.trace if s.kind in ("init", "M")]
        return len(lls) >= 2 and abs(lls[-1] - lls[-2]) < tol
