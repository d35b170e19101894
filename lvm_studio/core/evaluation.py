"""Evaluation on a fixed set of images: ELBO and the importance-sampled log p(x), in nats per image.

One routine, `evaluation_steps`, used by the Trainer (which yields its progress events between
chunks and stops on a queued stop), by `evaluate` (the CLI's eval), and by anything else.
The model is any core.model.LatentVariableModel (see that module for the protocol).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field

import torch

from lvm_studio.core import estimators as est
from lvm_studio.core.data import MNIST
from lvm_studio.core.model import LatentVariableModel


@dataclass(frozen=True)
class EvalProgress:
    fraction: float  # of the running evaluation, 0..1


@dataclass(frozen=True)
class Evaluation:
    """Averages over the n images evaluated (fewer than asked if stopped), nats per image."""

    elbo: float  # one-sample ELBO
    recon: float  # E_q[log p(x|z)], one sample
    kl: float  # KL(q(z|x) ‖ p(z)), the model's kl_to_prior
    log_px: float  # IWAE-k estimate of log p(x)
    k: int
    n: int
    seconds: float
    iw_bounds: dict[int, float] = field(default_factory=dict)  # IW-j bounds from the same weights
    stopped: bool = False  # should_stop() ended it early

    @property
    def gap(self) -> float:
        """log p̂(x) − ELBO: an estimate of the average KL(q(z|x) ‖ p(z|x))."""
        return self.log_px - self.elbo

    @property
    def images_per_s(self) -> float:
        return self.n / max(self.seconds, 1e-9)


def eval_images(data: MNIST, split: str, likelihood: str, device="cpu") -> torch.Tensor:
    """The images every evaluation uses: one fixed binarization for Bernoulli models, grey levels otherwise."""
    if likelihood == "bernoulli":
        return data.binarized(split, device=device)  # (N, 784)
    return data.float_images(split, device)


class EvalImages:
    """eval_images of one dataset, made once per (split, likelihood) and shared, from any thread.

    Binarizing the 10,000 test digits takes 0.1-0.4 s on this machine: the app's panels ask for
    them from background tasks, so the GUI thread does not pay it at start-up."""

    def __init__(self, data: MNIST):
        self.data = data
        self._cache: dict[tuple[str, str], torch.Tensor] = {}
        self._lock = threading.Lock()

    def get(self, split: str, likelihood: str) -> torch.Tensor:
        """(N, side²) float32, the same tensor on every call: treat it as read-only."""
        key = (split, likelihood)
        with self._lock:
            x = self._cache.get(key)
            if x is None:
                x = self._cache[key] = eval_images(self.data, split, likelihood)
        return x


@torch.no_grad()  # on a generator function: grad is off while it runs, and back on whenever it yields
def evaluation_steps(
    model: LatentVariableModel,
    x: torch.Tensor,
    k: int,
    iw_ks: Iterable[int] = (),
    seed: int = 0,
    max_rows: int = est.DEFAULT_MAX_ROWS,
    batch_size: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[EvalProgress, None, Evaluation]:
    """Evaluate the rows of x (N, 784) in chunks, yielding EvalProgress after each; returns the
    Evaluation (`result = yield from evaluation_steps(...)`).

    Per chunk: the one-sample ELBO, then K = max(k, *iw_ks) log-weights from q(z|x) (one generator
    seeded with `seed`, so the same seed gives the same numbers). log p̂(x) is the IWAE-k estimate from
    the first k of them (Burda et al. 2016, eq. 8); the IW-j bounds come from the same K weights in
    disjoint groups (est.iw_bounds_from_weights). max_rows bounds the decoder rows per call; batch_size
    (images per chunk) defaults to max_rows // K. should_stop() is asked after each chunk's progress.
    """
    iw_ks = tuple(int(j) for j in iw_ks if int(j) >= 1)
    k_all = max([k, *iw_ks])  # K log-weights per image
    n = x.shape[0]
    batch = max(1, min(n, batch_size or max_rows // k_all))
    is_module = isinstance(model, torch.nn.Module)
    was_training = is_module and model.training
    if is_module:
        model.eval()
    g = torch.Generator(device=x.device).manual_seed(seed)
    totals = {"elbo": 0.0, "recon": 0.0, "kl": 0.0, "log_px": 0.0}
    iw_totals = dict.fromkeys(iw_ks, 0.0)
    t0 = time.perf_counter()
    done, stopped = 0, False
    try:
        for start in range(0, n, batch):
            xb = x[start : start + batch]  # (b, 784)
            terms = est.elbo(model, xb, generator=g)
            totals["elbo"] += terms.elbo.sum().item()
            totals["recon"] += terms.recon.sum().item()
            totals["kl"] += terms.kl.sum().item()
            log_w = est.sample_log_weights(model, xb, k_all, "q", generator=g, max_rows=max_rows)  # (K, b)
            totals["log_px"] += (torch.logsumexp(log_w[:k], 0) - math.log(k)).sum().item()  # Burda et al., eq. 8
            for j, bound in est.iw_bounds_from_weights(log_w, iw_ks).items():
                iw_totals[j] += bound.sum().item()
            done += xb.shape[0]
            yield EvalProgress(done / n)
            if should_stop is not None and should_stop():
                stopped = done < n
                break
    finally:
        if is_module:
            model.train(was_training)
    seconds = time.perf_counter() - t0
    done_ = max(done, 1)
    return Evaluation(
        **{key: v / done_ for key, v in totals.items()},
        k=k,
        n=done,
        seconds=seconds,
        iw_bounds={j: iw_totals[j] / done_ for j in iw_ks},
        stopped=stopped,
    )


def evaluate(
    model: LatentVariableModel,
    x: torch.Tensor,
    k: int = 5000,
    iw_ks=(),
    seed: int = 0,
    max_rows: int = est.DEFAULT_MAX_ROWS,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """evaluation_steps run to the end, as a plain dict (the CLI's JSON): elbo, recon, kl, log_px, k,
    n, seconds, images_per_s, gap, and iw_bounds {"j": bound} when iw_ks asks for bounds at j ≤ k."""
    iw_ks = tuple(int(j) for j in iw_ks if int(j) <= k)
    steps = evaluation_steps(model, x, k, iw_ks, seed, max_rows, should_stop=should_stop)
    while True:
        try:
            event = next(steps)
        except StopIteration as finished:
            result: Evaluation = finished.value
            break
        if progress is not None:
            progress(event.fraction)
    out = {
        "elbo": result.elbo,
        "recon": result.recon,
        "kl": result.kl,
        "log_px": result.log_px,
        "k": result.k,
        "n": result.n,
        "seconds": result.seconds,
        "images_per_s": result.images_per_s,
        "gap": result.gap,
    }
    if iw_ks:
        out["iw_bounds"] = {str(j): v for j, v in result.iw_bounds.items()}
    return out
