"""Which latent dimensions a model uses: the average KL(q(z_d|x) ‖ N(0, 1)) per dimension over a
data set, the active-unit test and Burda et al.'s activity statistic (no Qt).

    KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1 − log σ²)      (Kingma & Welling 2014, App. B)
    A_d = Cov_x(E_q[z_d])                                   (Burda et al. 2016, §5.2)

Functions take a model with the protocol of core/model.py (LatentVariableModel), never change it,
and return detached tensors. The KL statistics are to N(0, 1) whatever the model's prior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lvm_studio.core.estimators import kl_per_dimension
from lvm_studio.core.model import LatentVariableModel

# A unit is "active" when its average KL to the prior exceeds this many nats. Burda et al. (2016,
# §5.2) use instead the activity A_u = Cov_x(E_q[u]) > 1e-2; both are reported (LatentStats).
ACTIVE_KL_THRESHOLD = 0.01
ACTIVITY_THRESHOLD = 1e-2


# --- which dimensions are used -------------------------------------------------------------


@dataclass(frozen=True)
class LatentStats:
    """Per-dimension statistics of q(z|x) over a data set, each (latent,)."""

    mean_kl: torch.Tensor  # E_x KL(q(z_d|x) ‖ N(0, 1)), nats
    activity: torch.Tensor  # Cov_x(E_q[z_d]) (Burda et al. 2016, §5.2)
    order: torch.Tensor  # dimension indices by mean_kl, largest first (int64)
    active: torch.Tensor  # mean_kl > threshold (bool)
    threshold: float

    @property
    def n_active(self) -> int:
        return int(self.active.sum())


def order_by_kl(mean_kl: torch.Tensor) -> torch.Tensor:
    """Dimension indices sorted by average KL, largest first; ties keep index order (stable)."""
    return torch.sort(mean_kl, descending=True, stable=True).indices


@torch.no_grad()
def encode_loc_scale(
    model: LatentVariableModel,
    x: torch.Tensor,
    batch_size: int = 2000,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x) for many images in chunks: z_loc, z_scale each (N, latent). Returns partial results
    (the rows encoded so far) if should_stop() turns true."""
    locs, scales = [], []
    n = x.shape[0]
    for start in range(0, n, batch_size):
        if should_stop is not None and should_stop():
            break
        z_loc, z_scale = model.encode(x[start : start + batch_size])  # (b, latent)
        locs.append(z_loc)
        scales.append(z_scale)
        if progress is not None:
            progress(min(1.0, (start + batch_size) / n))
    if not locs:
        empty = torch.empty(0, model.latent_dim)
        return empty, empty.clone()
    return torch.cat(locs), torch.cat(scales)


def latent_stats_from_codes(
    z_loc: torch.Tensor, z_scale: torch.Tensor, threshold: float = ACTIVE_KL_THRESHOLD
) -> LatentStats:
    """LatentStats from encoded (N, latent) means and scales."""
    mean_kl = kl_per_dimension(z_loc, z_scale).mean(0)  # (latent,)
    activity = z_loc.var(0, unbiased=False) if z_loc.shape[0] > 1 else torch.zeros_like(mean_kl)  # (latent,)
    return LatentStats(
        mean_kl=mean_kl,
        activity=activity,
        order=order_by_kl(mean_kl),
        active=mean_kl > threshold,
        threshold=float(threshold),
    )


def latent_stats(
    model: LatentVariableModel, x: torch.Tensor, batch_size: int = 2000, threshold: float = ACTIVE_KL_THRESHOLD
) -> LatentStats:
    """Average KL per dimension over x (the validation set), the KL ordering and the active units."""
    z_loc, z_scale = encode_loc_scale(model, x, batch_size)
    return latent_stats_from_codes(z_loc, z_scale, threshold)


def latent_stats_task(ctx, model: LatentVariableModel, x_val: torch.Tensor | Callable[[], torch.Tensor]) -> LatentStats:
    """A background task (workers.tasks context `ctx`): the KL statistics of `model` on x_val, or on
    what x_val() returns (called here: making the images, e.g. binarizing, stays off the GUI thread)."""
    if callable(x_val):
        x_val = x_val()
    z_loc, z_scale = encode_loc_scale(model, x_val, 1000, should_stop=ctx.cancelled)
    ctx.check()
    return latent_stats_from_codes(z_loc, z_scale)
