"""Training throughput and log p(x) evaluation speed, each against a baseline in the same run.

    python -m bench.core_speed [--steps 200] [--rounds 2] [--k 1000] [--n 50] [--only training log_px adam]

(bench.run runs both as its 'training' and 'log_px' sections.) Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from lvm_studio.core.data import MNIST, N_PIXELS, load_mnist
from lvm_studio.core.estimators import iwae_log_px
from lvm_studio.core.history import StepRecord
from lvm_studio.core.training import TrainConfig, Trainer
from lvm_studio.core.vae import VAE, VAEConfig

BENCH_CONFIG = VAEConfig(latent_dim=32, hidden=(512, 512), activation="elu")


def plain_training_loop(x_train: torch.Tensor, steps: int, batch_size: int = 128, seed: int = 0) -> float:
    """A minimal VAE loop of the same architecture, as in pytorch/examples vae/main.py; images/s."""
    torch.manual_seed(seed)
    d, h, latent = N_PIXELS, 512, BENCH_CONFIG.latent_dim
    enc = nn.Sequential(nn.Linear(d, h), nn.ELU(), nn.Linear(h, h), nn.ELU(), nn.Linear(h, 2 * latent))
    dec = nn.Sequential(nn.Linear(latent, h), nn.ELU(), nn.Linear(h, h), nn.ELU(), nn.Linear(h, d))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    n = len(x_train)
    perm = torch.randperm(n)
    t0 = None
    for step in range(steps + 5):
        if step == 5:  # the first steps warm up allocator and kernels
            t0 = time.perf_counter()
        idx = perm[(step * batch_size) % (n - batch_size) :][:batch_size]
        x = torch.bernoulli(x_train[idx])
        mu, raw = enc(x).chunk(2, -1)
        sd = F.softplus(raw) + 1e-3
        z = mu + sd * torch.randn_like(sd)
        rec = -F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mu**2 + sd**2 - 1 - 2 * sd.log()).sum(-1)
        loss = -(rec - kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch_size / (time.perf_counter() - t0)


def core_training_loop(data: MNIST, steps: int, batch_size: int = 128, seed: int = 0) -> float:
    """The project's Trainer on the same architecture with its default logging (a StepRecord every
    10 steps), evaluation and snapshots off; images/s over the timed steps."""
    torch.manual_seed(seed)
    config = TrainConfig(epochs=10**6, batch_size=batch_size, eval_every=10**9, snapshot_interval_s=0, seed=seed)
    trainer = Trainer(VAE(BENCH_CONFIG), data, config)
    warm = config.log_every
    t0 = None
    for event in trainer.run():
        if not isinstance(event, StepRecord):
            continue
        if t0 is None and trainer.step >= warm:
            t0, step0 = time.perf_counter(), trainer.step
        elif t0 is not None and trainer.step - step0 >= steps:
            trainer.stop()
            break
    return (trainer.step - step0) * batch_size / (time.perf_counter() - t0)


def bench_training(data: MNIST, steps: int = 200, rounds: int = 2) -> dict:
    """Interleaved rounds so both loops see the same machine load; the best round of each."""
    x_train = data.float_images("train")
    plain, core = [], []
    for _ in range(rounds):
        plain.append(plain_training_loop(x_train, steps))
        core.append(core_training_loop(data, steps))
    return {
        "train_images_per_s": max(core),
        "train_plain_images_per_s": max(plain),
        "train_ratio_vs_plain": max(core) / max(plain),
        "train_steps": steps,
        "train_batch": 128,
    }


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def decoder_flops_per_row(config: VAEConfig) -> int:
    sizes = [config.latent_dim, *reversed(config.hidden), config.x_dim]
    return 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def bench_log_px(data: MNIST, k: int = 1000, n: int = 50, model: VAE | None = None) -> dict:
    """IWAE-k log p(x) throughput in images/s, and its GFLOP/s against a large matmul."""
    model = (model or VAE(BENCH_CONFIG)).eval()
    x = data.binarized("test")[:n]
    iwae_log_px(model, x[:2], 64)  # warm-up
    t0 = time.perf_counter()
    iwae_log_px(model, x, k)
    seconds = time.perf_counter() - t0
    flops = n * k * decoder_flops_per_row(model.config)  # the encoder runs once per image: negligible
    achieved = flops / seconds / 1e9
    peak = matmul_gflops()
    return {
        "log_px_k": k,
        "log_px_images_per_s": n / seconds,
        "log_px_gflops": achieved,
        "matmul_gflops": peak,
        "log_px_fraction_of_matmul": achieved / peak,
    }


def bench_adam(steps: int = 40, rounds: int = 4, batch_size: int = 128) -> dict:
    """core.adam.Adam against torch.optim.Adam(fused=True) on the same model and batches, interleaved:
    the optimizer step's CPU time (median, first 5 steps left out), and whether both end bit-identical."""
    import numpy as np

    from lvm_studio.core import estimators as est
    from lvm_studio.core.adam import Adam

    x = torch.bernoulli(torch.full((batch_size, N_PIXELS), 0.2), generator=torch.Generator().manual_seed(0))

    def run(make):
        torch.manual_seed(0)
        model = VAE(BENCH_CONFIG)
        opt = make(list(model.parameters()))
        times = []
        for _ in range(steps):
            loss = -est.elbo(model, x, generator=torch.Generator().manual_seed(1)).elbo.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t = time.process_time()
            opt.step()
            times.append(time.process_time() - t)
        return 1e3 * float(np.median(times[5:])), [p.detach().clone() for p in model.parameters()]

    ours, theirs, identical = [], [], True
    for _ in range(rounds):
        a, pa = run(lambda ps: Adam(ps, lr=1e-3))
        b, pb = run(lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True))
        ours.append(a)
        theirs.append(b)
        identical = identical and all(torch.equal(u, v) for u, v in zip(pa, pb, strict=True))
    return {
        "adam_step_cpu_ms": {
            "core.adam": round(float(np.median(ours)), 3),
            "torch.optim fused": round(float(np.median(theirs)), 3),
        },
        "adam_identical_parameters": identical,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200, help="timed training steps per round")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds of both training loops")
    p.add_argument("--k", type=int, default=1000, help="importance samples per image for log p(x)")
    p.add_argument("--n", type=int, default=50, help="test images for log p(x)")
    p.add_argument("--only", nargs="*", default=None, choices=("training", "log_px", "adam"))
    a = p.parse_args(argv)
    data = load_mnist()
    out = {}
    if a.only is None or "training" in a.only:
        out.update(bench_training(data, a.steps, a.rounds))
    if a.only is None or "log_px" in a.only:
        out.update(bench_log_px(data, a.k, a.n))
    if a.only is None or "adam" in a.only:
        out.update(bench_adam())
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
