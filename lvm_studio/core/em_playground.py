"""The EM playground's state as data, without Qt: the points, where they came from, and the EM session.

    play = EMPlayground()
    play.set_point_set("overlapping blobs")     # n points drawn with the data seed; K = 3; θ_0
    play.iterate()                               # E-step (unless q is fresh), then M-step
    play.set_true_value(0, "mu1", 4.0)           # edit the generating mixture: its points are redrawn
    play.add_point(1.0, 2.0)                     # θ kept: EM carries on with the new point

Everything the playground shows is here: the point set (its name, n, the data seed), the points x
(N, 2) with the component each was drawn from, the generating mixture the user set up (π, μ, σ₁,
σ₂ and angle per component), the chosen GMMConfig (K, covariance type, initialisation, seed), the
clicked starting means, and the EMSession with its trace of ℓ(θ) and F(q, θ) per half-step. A
view subscribes a callback and redraws on the event names in EVENTS; widgets are refreshed from
this state, never read back as its source.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields, replace

import numpy as np

from lvm_studio.core.em_session import EMSession
from lvm_studio.core.gaussian import covariance_root, sample_gaussian
from lvm_studio.core.gmm import GMMConfig
from lvm_studio.core.points2d import POINT_SETS, SUGGESTED_COMPONENTS, from_mixture, make_point_set

CUSTOM = "mixture you set up"
EMPTY = "empty (click to add points)"
CHOICES = (*POINT_SETS, CUSTOM, EMPTY)  # every point set the playground offers, in menu order
TOL = 1e-6  # a run stops when ℓ rises by less than this per iteration (nats per point)
MAX_RUN_ITERATIONS = 1000
SEED_MAX = 9999  # data and initialisation seeds offered: 0 … SEED_MAX

# what changed, as passed to the listeners:
#   'points'  the points (and their true labels) changed
#   'reset'   θ was re-initialised (θ_0)
#   'config'  the configuration changed and θ could not start yet (no θ now)
#   'mixture' the generating mixture changed
#   'placed'  a starting mean was placed (not yet all K)
#   'E', 'M'  a half-step was taken
EVENTS = ("points", "reset", "config", "mixture", "placed", "E", "M")


def true_covariance(s1: float, s2: float, angle_deg: float) -> np.ndarray:
    """Σ = R diag(σ₁², σ₂²) Rᵀ, R the rotation by the angle (eigen-decomposition of a 2 × 2 Σ)."""
    a = math.radians(angle_deg)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return r @ np.diag([s1 * s1, s2 * s2]) @ r.T


@dataclass(frozen=True)
class TrueComponent:
    """One component of the generating mixture, as the user enters it."""

    weight: float  # π_k before renormalising; negative counts as 0
    mu1: float  # μ_k
    mu2: float
    sigma1: float  # standard deviation along the first rotated axis (|σ| used, at least 1e-3)
    sigma2: float
    angle: float  # rotation of the axes, degrees

    def covariance(self) -> np.ndarray:
        """Σ_k (2, 2)."""
        return true_covariance(max(abs(self.sigma1), 1e-3), max(abs(self.sigma2), 1e-3), self.angle)


FIELDS = tuple(f.name for f in fields(TrueComponent))  # ('weight', 'mu1', 'mu2', 'sigma1', 'sigma2', 'angle')

DEFAULT_COMPONENTS = (
    TrueComponent(0.45, -2.0, -1.0, 1.2, 0.5, 30.0),
    TrueComponent(0.35, 2.0, 0.0, 0.6, 1.3, -20.0),
    TrueComponent(0.20, 0.0, 2.8, 0.8, 0.8, 0.0),
    TrueComponent(0.20, 3.5, 3.5, 0.5, 0.5, 0.0),
    TrueComponent(0.20, -3.5, 3.0, 1.0, 0.3, 60.0),
    TrueComponent(0.20, 0.0, -3.5, 1.5, 0.3, 0.0),
)
MAX_TRUE_K = len(DEFAULT_COMPONENTS)


@dataclass(frozen=True)
class GeneratingMixture:
    """Σ_k π_k N(μ_k, Σ_k) as the user set it up, one TrueComponent per component."""

    components: tuple[TrueComponent, ...]

    @classmethod
    def default(cls, k: int = 3) -> GeneratingMixture:
        return cls(DEFAULT_COMPONENTS[:k])

    @classmethod
    def from_rows(cls, rows) -> GeneratingMixture:
        """From (K, 6) numbers in FIELDS order (a table's rows)."""
        return cls(tuple(TrueComponent(*(float(v) for v in row)) for row in rows))

    @property
    def k(self) -> int:
        return len(self.components)

    def rows(self) -> tuple[tuple[float, ...], ...]:
        """(K, 6) numbers in FIELDS order."""
        return tuple(astuple(c) for c in self.components)

    def with_k(self, k: int) -> GeneratingMixture:
        """The first k components; new ones from DEFAULT_COMPONENTS (as a table that grows)."""
        if not 1 <= k <= MAX_TRUE_K:
            raise ValueError(f"the generating mixture has 1 to {MAX_TRUE_K} components, not {k}")
        return GeneratingMixture(self.components[:k] + DEFAULT_COMPONENTS[self.k : k])

    def with_value(self, k: int, field: str, value: float) -> GeneratingMixture:
        """Component k with one field changed."""
        if field not in FIELDS:
            raise KeyError(field)
        new = replace(self.components[k], **{field: float(value)})
        return GeneratingMixture(self.components[:k] + (new,) + self.components[k + 1 :])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights (K,) summing to 1 (uniform when none is positive), means (K, 2), covariances (K, 2, 2)."""
        weights = np.clip(np.array([c.weight for c in self.components], dtype=np.float64), 0.0, None)
        if weights.sum() <= 0:
            weights = np.ones_like(weights)
        means = np.array([[c.mu1, c.mu2] for c in self.components], dtype=np.float64).reshape(-1, 2)
        covs = np.stack([c.covariance() for c in self.components])  # (K, 2, 2)
        return weights / weights.sum(), means, covs


class EMPlayground:
    """The playground's whole state and its operations; ``session`` is the EM session proper.

    ``config`` is the configuration chosen (K, covariance, initialisation, seed); the session takes
    it on reset(). ``placed_means`` are the clicked starting means for init 'given'.
    """

    def __init__(self, config: GMMConfig | None = None, n: int = 300, data_seed: int = 0):
        self.config = replace(config) if config is not None else GMMConfig()
        self.session = EMSession(self.config)
        self.point_set = EMPTY
        self.n = int(n)
        self.data_seed = int(data_seed)
        self.mixture = GeneratingMixture.default(3)
        self.x = np.zeros((0, 2))  # (N, 2)
        self.true_labels: np.ndarray | None = None  # (N,) the component each point was drawn from
        self.placed_means: list[tuple[float, float]] = []
        self._sample_rng = np.random.default_rng(12345)
        self._listeners: list[Callable[[str], None]] = []

    # --- listeners -----------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call listener(event) after every change, event one of EVENTS."""
        self._listeners.append(listener)

    def _notify(self, event: str) -> None:
        for listener in self._listeners:
            listener(event)

    # --- what a view asks ----------------------------------------------------------------------
    @property
    def n_points(self) -> int:
        return int(self.x.shape[0])

    @property
    def can_e_step(self) -> bool:
        return self.session.ready and not self.session.q_fresh

    @property
    def can_m_step(self) -> bool:
        s = self.session
        return s.ready and s.log_q is not None and s.q_fresh

    def waiting_for(self) -> str:
        """Why there is no θ yet, in words ('' when there is one)."""
        if self.session.ready:
            return ""
        k = int(self.config.n_components)
        if self.config.init == "given" and len(self.placed_means) < k:
            placed = f"{len(self.placed_means)} of {k} placed"
            return f"click to place the starting means: {placed} (mouse mode 'place means')."  # the view's words
        return self.session.can_reset(None)[1] or "press Reset to initialise."

    def finished(self) -> bool:
        """A run stops here: ℓ rose by less than TOL, or MAX_RUN_ITERATIONS were taken."""
        return self.session.converged(TOL) or self.session.iteration >= MAX_RUN_ITERATIONS

    # --- the points ------------------------------------------------------------------------------
    def set_point_set(self, name: str) -> None:
        """Choose a point set (K becomes its suggested one) and draw it."""
        if name not in CHOICES:
            raise KeyError(name)
        self.point_set = name
        if name in SUGGESTED_COMPONENTS:
            self.config = replace(self.config, n_components=SUGGESTED_COMPONENTS[name])
        elif name == CUSTOM:
            self.config = replace(self.config, n_components=self.mixture.k)
        self.regenerate()

    def set_sampling(self, n: int | None = None, data_seed: int | None = None) -> None:
        """A new n or data seed; the points are redrawn (an empty canvas stays empty)."""
        if n is not None:
            self.n = int(n)
        if data_seed is not None:
            self.data_seed = int(data_seed)
        if self.point_set != EMPTY:
            self.regenerate()

    def new_points(self) -> None:
        """The next data seed (up to SEED_MAX)."""
        if self.data_seed < SEED_MAX:
            self.set_sampling(data_seed=self.data_seed + 1)

    def regenerate(self) -> None:
        """Draw the chosen point set with the current n and data seed, and restart EM from θ_0."""
        if self.point_set == EMPTY:
            x, labels = np.zeros((0, 2)), None
        elif self.point_set == CUSTOM:
            x, labels = from_mixture(*self.mixture.arrays(), self.n, self.data_seed)
        else:
            x, labels = make_point_set(self.point_set, self.n, self.data_seed)
        self._set_points(x, labels, restart=True)

    def set_points(self, x) -> None:
        """Replace the points (N, 2); EM carries on from the current parameters."""
        self._set_points(np.asarray(x, dtype=np.float64).reshape(-1, 2), None, restart=False)

    def add_point(self, x: float, y: float) -> None:
        self._set_points(np.vstack([self.x, [[x, y]]]), None, restart=False)

    def erase_within(self, x: float, y: float, rx: float, ry: float) -> int:
        """Remove the points inside the ellipse ((x_n − x)/rx)² + ((y_n − y)/ry)² ≤ 1; how many."""
        if self.n_points == 0:
            return 0
        d2 = ((self.x[:, 0] - x) / rx) ** 2 + ((self.x[:, 1] - y) / ry) ** 2  # (N,)
        keep = d2 > 1.0
        removed = int((~keep).sum())
        if removed:
            self._set_points(self.x[keep], None, restart=False)
        return removed

    def clear(self) -> None:
        self._set_points(np.zeros((0, 2)), None, restart=True)

    def sample_one(self) -> tuple[int, np.ndarray]:
        """The generative process once: z ~ Cat(π), then x ~ N(μ_z, Σ_z); the point is added."""
        weights, means, covs = self.mixture.arrays()
        z = int(self._sample_rng.choice(len(weights), p=weights))
        root = covariance_root(covs[z : z + 1])  # (1, 2, 2) eigen-root, as for every other draw
        x = sample_gaussian(means[z : z + 1], root, np.zeros(1, dtype=np.int64), self._sample_rng)[0]  # (2,)
        labels = None if self.true_labels is None else np.append(self.true_labels, z)
        self._set_points(np.vstack([self.x, x[None]]), labels, restart=False)
        return z, x

    def _set_points(self, x: np.ndarray, labels: np.ndarray | None, restart: bool) -> None:
        """New points: θ restarts from θ_0 when asked (or when there is none), else EM carries on."""
        self.x = np.array(x, dtype=np.float64, copy=True).reshape(-1, 2)
        self.true_labels = labels
        self.session.set_points(self.x)
        if restart or not self.session.ready:
            if restart and self.config.init == "given":
                self.placed_means = []
            self.reset()
        self._notify("points")

    # --- the generating mixture ------------------------------------------------------------------
    def set_generating_mixture(self, mixture: GeneratingMixture) -> None:
        """The mixture "mixture you set up" draws from; its points are redrawn (same seed)."""
        self.mixture = mixture
        self._notify("mixture")
        if self.point_set == CUSTOM:
            self.regenerate()

    def set_true_value(self, k: int, field: str, value: float) -> None:
        self.set_generating_mixture(self.mixture.with_value(k, field, value))

    def set_true_k(self, k: int) -> None:
        """k generating components, and K = k fitted ones (change K afterwards to see why not)."""
        self.config = replace(self.config, n_components=int(k))
        self.set_generating_mixture(self.mixture.with_k(int(k)))

    # --- the model -------------------------------------------------------------------------------
    def set_config(self, **changes) -> None:
        """New n_components, covariance, init or seed: θ restarts (or waits, see waiting_for)."""
        old = self.config
        self.config = replace(old, **changes)
        if self.config.init == "given" and old.init != "given":
            self.placed_means = []  # choosing 'click to place' starts the clicks afresh
        k = int(self.config.n_components)
        if self.config.init == "given" and len(self.placed_means) > k:
            self.placed_means = self.placed_means[:k]
        self.session.set_config(self.config)
        self.reset()

    def place_mean(self, x: float, y: float) -> None:
        """Click-to-place initialisation: the next of the K starting means (after K, start over)."""
        if self.config.init != "given":
            self.set_config(init="given")
        k = int(self.config.n_components)
        if len(self.placed_means) >= k:
            self.placed_means = []
        self.placed_means.append((float(x), float(y)))
        if len(self.placed_means) == k:
            self.reset()
        else:
            self._notify("placed")

    def reset(self) -> bool:
        """θ_0 from the chosen initialisation; False (θ dropped) when it cannot start yet."""
        if self.config != self.session.config:
            self.session.set_config(self.config)
        means = None
        if self.config.init == "given":
            if len(self.placed_means) != int(self.config.n_components):
                return self._not_ready()
            means = np.array(self.placed_means)
        if not self.session.can_reset(means)[0]:
            return self._not_ready()
        self.session.reset(means)
        self._notify("reset")
        return True

    def _not_ready(self) -> bool:
        self.session.set_config(self.config)  # no θ until it can start
        self._notify("config")
        return False

    def e_step(self) -> bool:
        if not self.session.ready:
            return False
        self.session.e_step()
        self._notify("E")
        return True

    def m_step(self) -> bool:
        if not (self.session.ready and self.session.log_q is not None):
            return False
        self.session.m_step()
        self._notify("M")
        return True

    def iterate(self) -> bool:
        """One EM iteration (an E-step unless q is fresh, then an M-step); one 'M' event."""
        if not self.session.ready:
            return False
        self.session.iterate()
        self._notify("M")
        return True
