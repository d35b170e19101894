"""Whole-test-set evaluation: ELBO and the importance-sampled log p(x), in nats per image."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from lvm_studio.core import estimators as est


@torch.no_grad()
def evaluate(
    model,
    x: torch.Tensor,
    k: int = 5000,
    iw_ks=(),
    seed: int = 0,
    max_rows: int = est.DEFAULT_MAX_ROWS,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Average ELBO (one sample), KL, reconstruction and IWAE-k log p̂(x) over the rows of x (N, 784).

    Extra bounds for smaller k in iw_ks come from the same samples (disjoint groups).
    The batch is sized so that a chunk holds at most max_rows decoder rows.
    """
    model.eval()
    device = x.device
    g = torch.Generator(device=device).manual_seed(seed)
    n = x.shape[0]
    iw_ks = tuple(int(j) for j in iw_ks if int(j) <= k)
    batch = max(1, min(n, max_rows // max(1, min(k, max_rows))))
    totals = {"elbo": 0.0, "recon": 0.0, "kl": 0.0, "log_px": 0.0}
    iw_totals = dict.fromkeys(iw_ks, 0.0)
    t0 = time.perf_counter()
    done = 0
    for start in range(0, n, batch):
        xb = x[start : start + batch]  # (b, 784)
        terms = est.elbo(model, xb, generator=g)
        totals["elbo"] += terms.elbo.sum().item()
        totals["recon"] += terms.recon.sum().item()
        totals["kl"] += terms.kl.sum().item()
        if iw_ks:
            log_w = est.sample_log_weights(model, xb, k, "q", generator=g, max_rows=max_rows)  # (k, b)
            totals["log_px"] += (torch.logsumexp(log_w, 0) - math.log(k)).sum().item()
            for j, bound in est.iw_bounds_from_weights(log_w, iw_ks).items():
                iw_totals[j] += bound.sum().item()
        else:
            totals["log_px"] += est.iwae_log_px(model, xb, k, generator=g, max_rows=max_rows).sum().item()
        done += xb.shape[0]
        if progress is not None:
            progress(done / n)
        if should_stop is not None and should_stop():
            break
    seconds = time.perf_counter() - t0
    out = {key: v / done for key, v in totals.items()}
    out.update(k=k, n=done, seconds=seconds, images_per_s=done / max(seconds, 1e-9))
    out["gap"] = out["log_px"] - out["elbo"]
    if iw_ks:
        out["iw_bounds"] = {str(j): iw_totals[j] / done for j in iw_ks}
    return out
