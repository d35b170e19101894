"""Training a MADE (core/made.py) by maximum likelihood, and its checkpoint.

The objective is the exact mean log p(x) on dynamically binarized training digits (a fresh
x ~ Bernoulli(grey level) each batch, core/data.py), Adam with a per-epoch decay, and early
stopping on the fixed-seed binarized validation set: the weights kept are those of the best
validation epoch (a single-order MADE overfits, Germain et al. 2015 §6). ``train_made`` is a
generator of plain ``MADEEpoch`` records so that a command line or a worker can drive it.

A MADE checkpoint is the project's self-describing dict (core/checkpoint.py) with
``"kind": "made"`` so that nothing takes it for a VAE.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch

from lvm_studio.core.checkpoint import CheckpointError, make_checkpoint
from lvm_studio.core.data import MNIST, binarize
from lvm_studio.core.made import KIND, MADE, MADEConfig


@dataclass(frozen=True)
class MADETrainConfig:
    epochs: int = 200
    batch_size: int = 100
    lr: float = 1e-3
    lr_decay: float = 0.98  # per epoch
    max_minutes: float = 0.0  # stop after this much wall time (0: no limit)
    patience: int = 20  # stop after this many epochs without a better validation log p(x)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MADEEpoch:
    epoch: int
    step: int
    train_log_px: float  # mean over the epoch's dynamically binarized batches, nats per image
    val_log_px: float  # exact, fixed binarization
    best_val_log_px: float
    lr: float
    seconds: float  # wall time since the start


@torch.no_grad()
def mean_log_prob(model: MADE, x: torch.Tensor, batch: int = 1000) -> float:
    """Exact mean log p(x) over binary images (N, D), nats per image."""
    model.eval()
    total = sum(float(model.log_prob(x[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return total / len(x)


def train_made(model: MADE, data: MNIST, config: MADETrainConfig, stop=lambda: False) -> Iterator[MADEEpoch]:
    """Maximise Σ log p(x) (Germain et al. 2015, eq. 1); after it returns, ``model`` holds the best
    validation epoch's weights."""
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    x_train = data.float_images("train")  # (N, D) grey levels in [0, 1]
    x_val = data.binarized("val")  # (N_val, D)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay)
    best, best_state, since_best, step = -math.inf, None, 0, 0
    t0 = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=g)
        total, seen = 0.0, 0
        for i in range(0, len(order), config.batch_size):
            x = binarize(x_train[order[i : i + config.batch_size]], g)  # (batch, D)
            log_px = model.log_prob(x)  # (batch,)
            loss = -log_px.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(log_px.detach().sum())
            seen += len(x)
            step += 1
            if stop():
                break
        sched.step()
        val = mean_log_prob(model, x_val)
        if val > best:
            best, best_state, since_best = val, copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
        elapsed = time.perf_counter() - t0
        yield MADEEpoch(epoch, step, total / max(seen, 1), val, best, sched.get_last_lr()[0], elapsed)
        if stop() or since_best >= config.patience or (config.max_minutes and elapsed > 60 * config.max_minutes):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()


def made_checkpoint(
    model: MADE,
    *,
    name: str | None = None,
    train_config: dict | None = None,
    step: int = 0,
    epoch: float = 0.0,
    metrics: dict | None = None,
    history: list[dict] | None = None,
) -> dict:
    """The project's checkpoint dict with kind "made" (saved by core.checkpoint.save_checkpoint)."""
    return make_checkpoint(
        model,
        kind=KIND,
        name=name,
        train_config=train_config,
        step=step,
        epoch=epoch,
        history={"epochs": list(history or [])},
        metrics=metrics,
    )


def made_from_checkpoint(ckpt: dict) -> MADE:
    """Build the MADE a checkpoint describes and load its weights strictly; CheckpointError otherwise."""
    if ckpt.get("kind") != KIND:
        raise CheckpointError(f"not a MADE checkpoint (kind {ckpt.get('kind', 'vae')!r})")
    try:
        model = MADE(MADEConfig.from_dict(dict(ckpt["model_config"])))
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"the weights do not fit a MADE ({msg})") from None
    if not all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()):
        raise CheckpointError("the weights contain NaN or infinite values")
    return model.eval()
