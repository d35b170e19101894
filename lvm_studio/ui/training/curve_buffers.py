"""The curves panel's data side: growable point buffers, the smoothing, and range arithmetic.

No Qt here: plain numpy, so the buffers can be tested and reused without a plot.
"""

from __future__ import annotations

import numpy as np

SMOOTHING = 0.9  # EMA weight of the past in the smoothed training curves (one record = log_every steps)
ENVELOPE_BUCKETS = 1024  # a decimated series draws at most 2 points for each of 2 x this many buckets


class Series:
    """Growable x/y buffers. Views of the filled part stay valid: values are only ever appended.

    A dense series (envelope=True) also keeps a MinMaxEnvelope of its points, for drawing.
    """

    __slots__ = ("x", "y", "n", "envelope")

    def __init__(self, capacity: int = 256, envelope: bool = False):
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.n = 0
        self.envelope = MinMaxEnvelope() if envelope else None

    def append(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            self.x = np.concatenate([self.x, np.empty(len(self.x))])
            self.y = np.concatenate([self.y, np.empty(len(self.y))])
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1
        if self.envelope is not None:
            self.envelope.append(x, y)

    def clear(self) -> None:
        self.n = 0
        if self.envelope is not None:
            self.envelope.clear()

    def drawn(self, decimate: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The points to draw: every one, or the min–max envelope once it is coarser than the data."""
        if decimate and self.envelope is not None and self.envelope.size > 1:
            return self.envelope.points()
        return self.xs, self.ys

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


class MinMaxEnvelope:
    """A growing series decimated as it grows: buckets of `size` consecutive points, each kept as
    its first x and its largest and smallest y (min–max decimation keeps every peak a plot of the
    raw points would show).

    Appending is O(1) amortised: when the buckets reach 2 x max_buckets, neighbours merge and the
    bucket size doubles. points() then has at most 4 x max_buckets points whatever the length of
    the series, so a redraw of a long run costs what one of a short run does.
    """

    __slots__ = ("max_buckets", "size", "x", "y_max", "y_min", "k", "fill")

    def __init__(self, max_buckets: int = ENVELOPE_BUCKETS):
        self.max_buckets = max_buckets
        self.size = 1  # points per bucket
        self.x = np.empty(2 * max_buckets)
        self.y_max = np.empty(2 * max_buckets)
        self.y_min = np.empty(2 * max_buckets)
        self.k = 0  # buckets in use, the last one possibly part-filled
        self.fill = 0  # points in the last bucket

    def clear(self) -> None:
        self.size, self.k, self.fill = 1, 0, 0

    def append(self, x: float, y: float) -> None:
        if self.k and self.fill < self.size:
            i = self.k - 1
            self.y_max[i] = max(self.y_max[i], y)
            self.y_min[i] = min(self.y_min[i], y)
            self.fill += 1
            return
        if self.k == len(self.x):
            self._merge()
            self.append(x, y)
            return
        self.x[self.k], self.y_max[self.k], self.y_min[self.k] = x, y, y
        self.k += 1
        self.fill = 1

    def _merge(self) -> None:
        """Pairs of full buckets into one: half as many, twice the size."""
        h = self.k // 2  # k is even here (the array is full)
        self.x[:h] = self.x[0 : 2 * h : 2]
        self.y_max[:h] = np.maximum(self.y_max[0 : 2 * h : 2], self.y_max[1 : 2 * h : 2])
        self.y_min[:h] = np.minimum(self.y_min[0 : 2 * h : 2], self.y_min[1 : 2 * h : 2])
        self.k, self.size, self.fill = h, 2 * self.size, 2 * self.size

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) drawing the envelope: each bucket's maximum then its minimum, at its first x."""
        k = self.k
        x = np.repeat(self.x[:k], 2)  # (2k,)
        y = np.empty(2 * k)
        y[0::2], y[1::2] = self.y_max[:k], self.y_min[:k]
        return x, y


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
        env = s.envelope
        if env is not None and env.size > 1:  # a long series: its buckets (whole ones past x_from)
            xs, y_max, y_min = env.x[: env.k], env.y_max[: env.k], env.y_min[: env.k]
            i = min(int(np.searchsorted(xs, x_from)), env.k - 1)
            lo, hi = min(lo, float(y_min[i:].min())), max(hi, float(y_max[i:].max()))
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
        self.train_raw = Series(1024, envelope=True)
        self.train_smooth = Series(1024, envelope=True)
        self.recon_smooth = Series(1024, envelope=True)
        self.kl_smooth = Series(1024, envelope=True)
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
