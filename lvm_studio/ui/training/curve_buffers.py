"""The curves panel's data side: growable point buffers, the smoothing, and range arithmetic.

No Qt here: plain numpy, so the buffers can be tested and reused without a plot.
"""

from __future__ import annotations

import numpy as np

SMOOTHING = 0.9  # EMA weight of the past in the smoothed training curves (one record = log_every steps)


class Series:
    """Growable x/y buffers. Views of the filled part stay valid: values are only ever appended."""

    __slots__ = ("x", "y", "n")

    def __init__(self, capacity: int = 256):
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            self.x = np.concatenate([self.x, np.empty(len(self.x))])
            self.y = np.concatenate([self.y, np.empty(len(self.y))])
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1

    def clear(self) -> None:
        self.n = 0

    @property
    def xs(self) -> np.ndarray:
        return self.x[: self.n]

    @property
    def ys(self) -> np.ndarray:
        return self.y[: self.n]

    def nearest(self, x: float) -> int:
        """The index of the point whose x is nearest `x`, or -1 if there is none."""
        if self.n == 0:
            return -1
        xs = self.xs
        i = int(np.searchsorted(xs, x))
        if i >= self.n:
            return self.n - 1
        if i > 0 and abs(xs[i - 1] - x) <= abs(xs[i] - x):
            return i - 1
        return i


class Ema:
    """Exponential moving average with the start-up bias removed (Kingma & Ba 2015, §3)."""

    __slots__ = ("a", "m", "t")

    def __init__(self, a: float = SMOOTHING):
        self.a, self.m, self.t = a, 0.0, 0

    def update(self, y: float) -> float:
        self.t += 1
        self.m = self.a * self.m + (1.0 - self.a) * y  # m_t = a m_{t−1} + (1 − a) y_t
        return self.m / (1.0 - self.a**self.t)  # m̂_t = m_t / (1 − a^t)

    def reset(self) -> None:
        self.m, self.t = 0.0, 0


def nice_step(v: float) -> float:
    """The smallest of 1, 2, 5 × 10^n not below v."""
    e = 10.0 ** np.floor(np.log10(v))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * e >= v:
            return m * e
    return 10.0 * e


def range_after(group, x_from: float):
    """(min, max) of the y values at x ≥ x_from over several series, or None if there are none."""
    lo, hi = np.inf, -np.inf
    for s in group:
        if s.n == 0:
            continue
        i = min(int(np.searchsorted(s.xs, x_from)), s.n - 1)
        ys = s.ys[i:]
        lo, hi = min(lo, float(ys.min())), max(hi, float(ys.max()))
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None


class CurveBuffers:
    """Every curve's points, filled from a History by pull(): only the records new since the last call.

    Training records give the raw and smoothed ELBO and the smoothed reconstruction and KL terms;
    evaluations give the validation ELBO, log p̂(x) (IWAE-k), the validation terms and the IW-k
    bounds, one series per k. train_changed / evals_changed say which curves need new data; the
    panel clears them once it has drawn.
    """

    def __init__(self):
        self.train_raw = Series(1024)
        self.train_smooth = Series(1024)
        self.recon_smooth = Series(1024)
        self.kl_smooth = Series(1024)
        self.steps = Series(1024)  # x: epoch, y: step (for the hover read-out)
        self.val_elbo = Series()
        self.log_px = Series()
        self.val_recon = Series()
        self.val_kl = Series()
        self.iw: dict[int, Series] = {}
        self.eval_k = 0  # the k of the latest log p̂(x)
        self.train_changed = self.evals_changed = False  # new data since the last redraw
        self._ema = (Ema(SMOOTHING), Ema(SMOOTHING), Ema(SMOOTHING))
        self._history = None  # the History object the buffers were built from
        self._n_train = 0  # records of it already in the buffers
        self._n_evals = 0

    def reset(self, history=None) -> None:
        """Empty every series; the next pull starts from `history`'s first record."""
        for s in (
            self.train_raw,
            self.train_smooth,
            self.recon_smooth,
            self.kl_smooth,
            self.steps,
            self.val_elbo,
            self.log_px,
            self.val_recon,
            self.val_kl,
            *self.iw.values(),
        ):
            s.clear()
        for e in self._ema:
            e.reset()
        self._n_train = self._n_evals = 0
        self.train_changed = self.evals_changed = True
        self.eval_k = 0
        self._history = history

    def pull(self, history) -> bool:
        """Append the records of `history` that arrived since the last call; True if any did."""
        if history is not self._history:
            self.reset(history)
        new = False
        train = history.train
        if len(train) > self._n_train:
            ema_elbo, ema_recon, ema_kl = self._ema
            for r in train[self._n_train :]:
                e = r.epoch
                self.train_raw.append(e, r.elbo)
                self.train_smooth.append(e, ema_elbo.update(r.elbo))
                self.recon_smooth.append(e, ema_recon.update(r.recon))
                self.kl_smooth.append(e, ema_kl.update(r.kl))
                self.steps.append(e, r.step)
            self._n_train = len(train)
            self.train_changed = new = True
        evals = history.evals
        if len(evals) > self._n_evals:
            for r in evals[self._n_evals :]:
                self.val_elbo.append(r.epoch, r.elbo)
                self.log_px.append(r.epoch, r.log_px)
                self.val_recon.append(r.epoch, r.recon)
                self.val_kl.append(r.epoch, r.kl)
                self.eval_k = r.k
                for k, bound in r.iw_bounds:
                    series = self.iw.get(k)
                    if series is None:
                        series = self.iw[k] = Series()
                    series.append(r.epoch, bound)
            self._n_evals = len(evals)
            self.evals_changed = new = True
        return new
