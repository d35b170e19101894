"""Inpainting speed and quality: `python -m bench.inpainting [--checkpoint PATH] [--n 1000] [--threads N]`.

`--fit-task [--rounds 15] [--before GIT_REF]`: the panel's whole background task (fit_task: the
multi-start fit, ELBO numbers, importance resampling at k = 2,000) against one fit_q, interleaved,
optionally beside an older revision's code in the same rounds (bench_fit_task).

Prints one JSON object. Speed: a 200-step fit of one digit (top half missing), median wall time,
beside a plain autograd + torch.optim.Adam fit of the same objective measured in the same run.
Quality: the first n binarized test digits with the top half missing; the log-likelihood of the
true missing pixels, nats per digit (mean and standard error over digits), for
    train_mean   each missing pixel Bernoulli(its training-set mean)          (baseline)
    encoder      the encoder's guess q(z|x̃), x̃ = x with the hole filled by the model's
                 prior mean image (also reported: black, training mean)       (mean-field completion)
    fitted_q     q(z; φ) after the fit                                         (mean-field completion)
    importance   self-normalised importance weights with the fitted q as proposal (≈ log p(x_m|x_o))
See lvm_studio.core.inpainting_scores.MissingPixelScores for the exact definitions.

The model: --checkpoint, by default the shipped 32-D model (pretrained/manifest.json); without it,
a VAE trained here for about three minutes (default architecture), cached in the system's temp folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.common import add_model_argument, load_model, median_ms, pretrained_path
from lvm_studio.core import inpainting as ip
from lvm_studio.core import masks
from lvm_studio.core.data import MNIST, load_mnist
from lvm_studio.core.inpainting_completion import prepare
from lvm_studio.core.inpainting_scores import mean_field_log_likelihood, missing_pixel_scores
from lvm_studio.core.inpainting_task import GuessReport, fit_task, panel_config

OWN_MODEL = Path(tempfile.gettempdir()) / "lvm_studio_bench_inpainting_vae.pt"


def _log(msg: str):
    print(msg, file=sys.stderr, flush=True)


# --- the model ------------------------------------------------------------------------------


def train_own_model(data: MNIST, seconds: float = 170.0, seed: int = 0):
    """The default VAE (32-D latent, 512-512, ELU, Bernoulli) trained by the core Trainer for a time budget."""
    from lvm_studio.core.checkpoint import make_checkpoint, save_checkpoint
    from lvm_studio.core.training import TrainConfig, Trainer
    from lvm_studio.core.vae import VAE, VAEConfig

    torch.manual_seed(seed)
    model = VAE(VAEConfig())
    trainer = Trainer(
        model,
        data,
        TrainConfig(epochs=1000, lr=1e-3, eval_every=10**9, eval_n=500, eval_k=10, snapshot_interval_s=0, seed=seed),
    )
    t0 = time.perf_counter()
    for _ in trainer.run():
        if time.perf_counter() - t0 > seconds:
            trainer.stop()
    model.eval()
    name = f"bench VAE, {trainer.epoch:.1f} epochs in {time.perf_counter() - t0:.0f} s"
    save_checkpoint(OWN_MODEL, make_checkpoint(model, name=name, step=trainer.step, epoch=trainer.epoch))
    return model, name


def find_model(data: MNIST, checkpoint: str | None = None, train_seconds: float = 170.0):
    """(model, description): the checkpoint, else the shipped 32-D model, else the cached or a freshly
    trained bench model."""
    path = Path(checkpoint) if checkpoint else pretrained_path(32)
    if path is None and OWN_MODEL.is_file():
        path = OWN_MODEL
    if path is None:
        _log(f"no checkpoint found; training the default VAE for {train_seconds:.0f} s")
        return train_own_model(data, train_seconds)
    if not path.is_file():
        raise FileNotFoundError(path)
    model, ckpt = load_model(path)
    desc = (
        f"{path.name}: {ckpt.get('name')} ({model.config.describe()}), epoch {ckpt.get('epoch')}, "
        f"metrics {ckpt.get('metrics')}"
    )
    return model, desc


def _freeze(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# --- speed ----------------------------------------------------------------------------------


def autograd_fit(model, x, missing, steps: int = 200, n_samples: int = 4, lr: float = 0.05, seed: int = 0):
    """The straightforward implementation, for comparison: autograd through the decoder, torch.optim.Adam."""
    x, m = prepare(x, missing)
    observed = (~m).to(x.dtype)
    g = torch.Generator().manual_seed(seed)
    z_loc, z_scale = ip.amortized_guess(model, x, m)
    mu = z_loc.clone().requires_grad_(True)
    log_sigma = z_scale.log().requires_grad_(True)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr, foreach=True)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        sigma = log_sigma.exp()
        z = mu + sigma * torch.randn((n_samples, *mu.shape), generator=g)  # (S, batch, latent)
        lp = (model.log_px_given_z_pixels(x, z) * observed).sum(-1).mean(0)  # (batch,)
        kl = 0.5 * (mu**2 + sigma**2 - 1 - 2 * log_sigma).sum(-1)
        (-(lp - kl).sum()).backward()
        opt.step()
    return mu.detach(), log_sigma.detach().exp()


def bench_fit_time(
    model,
    data: MNIST | None = None,
    steps: int = 200,
    repeats: int = 11,
    config: ip.InpaintConfig | None = None,
    baseline: bool = True,
) -> dict:
    """Median time (ms) of a `steps`-step fit of one test digit with the top half missing.

    fit_ms: fit_q as the app calls it (encoder guess, the Adam loop, final completions, no callback),
    wall time, and fit_cpu_ms its process CPU time; loop_ms: the Adam loop alone (wall);
    with_reports_ms: with a callback every 10 steps (live completions); autograd_ms: autograd_fit
    with the same steps and samples, and the ratio autograd_ms / fit_ms.
    """
    model = _freeze(model)
    data = data or load_mnist()
    x = data.binarized("test")[:1]
    missing = masks.top_half()
    cfg = config or ip.InpaintConfig()
    cfg = ip.InpaintConfig(**{**cfg.__dict__, "steps": steps})
    loops = []

    def run():
        loops.append(ip.fit_q(model, x, missing, cfg).seconds)

    fit_ms, fit_cpu_ms = median_ms(run, repeats)
    reports_cfg = ip.InpaintConfig(**{**cfg.__dict__, "report_every": 10})
    with_reports_ms, _ = median_ms(lambda: ip.fit_q(model, x, missing, reports_cfg, callback=lambda p: None), repeats)
    out = {
        "steps": steps,
        "n_samples": cfg.n_samples,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "fit_ms": round(fit_ms, 1),
        "fit_cpu_ms": round(fit_cpu_ms, 1),
        "loop_ms": round(1000 * statistics.median(loops[1:]), 1),
        "with_reports_ms": round(with_reports_ms, 1),
    }
    if baseline:
        auto_ms, auto_cpu_ms = median_ms(
            lambda: autograd_fit(model, x, missing, steps, cfg.n_samples, cfg.lr), max(3, repeats // 2)
        )
        out.update(
            autograd_ms=round(auto_ms, 1),
            autograd_cpu_ms=round(auto_cpu_ms, 1),
            speedup_vs_autograd=round(auto_ms / fit_ms, 2),
        )
    return out


class _TimedCtx:
    """A TaskRunner ctx for fit_task headless: records when the guess and the last Adam step were reported."""

    def __init__(self, steps: int):
        self.steps, self.t0 = steps, time.perf_counter()
        self.c0 = time.process_time()
        self.t_guess = self.t_last_step = self.c_last_step = None

    def report(self, fraction, payload):
        if isinstance(payload, GuessReport) and self.t_guess is None:
            self.t_guess = time.perf_counter() - self.t0
        if isinstance(payload, ip.InpaintProgress) and payload.step == self.steps:
            self.t_last_step = time.perf_counter() - self.t0
            self.c_last_step = time.process_time() - self.c0

    def cancelled(self) -> bool:
        return False

    def check(self):
        pass


def _stats(v: list[float]) -> dict:
    v = sorted(v)
    p95 = v[min(len(v) - 1, math.ceil(0.95 * len(v)) - 1)]
    return {"median": round(1000 * statistics.median(v), 1), "p95": round(1000 * p95, 1), "min": round(1000 * v[0], 1)}


_CORE = "lvm_studio/core/"
_OLD_MODULES = ("observed_likelihood", "inpainting_completion", "inpainting", "inpainting_starts", "inpainting_task")


def load_core_at(ref: str) -> dict:
    """The inpainting modules of git revision `ref` (observed_likelihood … inpainting_task), loaded beside
    the current ones under other names (their imports of each other rewired), for a before/after in one run."""
    import subprocess
    import types

    root = Path(__file__).resolve().parent.parent
    mods: dict = {}
    for name in _OLD_MODULES:
        src = subprocess.run(
            ["git", "show", f"{ref}:{_CORE}{name}.py"], cwd=root, check=True, capture_output=True, text=True
        ).stdout
        for other in _OLD_MODULES:
            src = src.replace(f"from lvm_studio.core.{other} import", f"from _before_{other} import")
            src = src.replace(f"from lvm_studio.core import {other} as", f"import _before_{other} as")
        mod = types.ModuleType(f"_before_{name}")
        sys.modules[mod.__name__] = mod
        exec(compile(src, f"{ref}:{_CORE}{name}.py", "exec"), mod.__dict__)
        mods[name] = mod
    return mods


def bench_fit_task(
    model, data: MNIST | None = None, rounds: int = 15, importance_k: int = 2000, before: str | None = None
) -> dict:
    """The inpainting panel's background task headless (core.inpainting_task.fit_task with the panel's
    InpaintConfig, importance k and the default StartsConfig), against one fit_q, interleaved.

    Per round (test digit r, top half hidden), in this order: fit_q from the encoder's guess with
    a callback every 10 steps (one start, as the panel reports it); multi_start_fit with the same
    callback; fit_task with one start; fit_task with the default multi-start. Wall and process CPU
    time of each (ms: median, p95, min over rounds), and for the multi-start task the time to its
    last Adam step's report (what the app's bench calls fit_ms). Ratios of medians, same run.
    before: a git revision whose fit_q, multi_start_fit and multi-start fit_task run in the same
    rounds too (load_core_at), for a before/after."""
    from lvm_studio.core.inpainting_starts import StartsConfig, multi_start_fit

    model = _freeze(model)
    data = data or load_mnist()
    xs = data.binarized("test")[:rounds]
    missing = masks.top_half()
    cfg = panel_config()  # the panel's
    runs = {
        "fit_q_one_start": lambda x: ip.fit_q(model, x, missing, cfg, callback=lambda p: None),
        "multi_start_fit": lambda x: multi_start_fit(model, x, missing, cfg, StartsConfig(), callback=lambda p: None),
        "fit_task_one_start": lambda x: fit_task(_TimedCtx(cfg.steps), model, x, missing, cfg, importance_k, False, 0),
        "fit_task_multi_start": None,
    }
    if before:
        old = load_core_at(before)
        old_starts = old["inpainting_starts"].StartsConfig
        runs["before:fit_q_one_start"] = lambda x: old["inpainting"].fit_q(
            model, x, missing, cfg, callback=lambda p: None
        )
        runs["before:multi_start_fit"] = lambda x: old["inpainting_starts"].multi_start_fit(
            model, x, missing, cfg, old_starts(), callback=lambda p: None
        )
        runs["before:fit_task_multi_start"] = lambda x: old["inpainting_task"].fit_task(
            _TimedCtx(cfg.steps), model, x, missing, cfg, importance_k, False, 0, None, old_starts()
        )
    wall: dict[str, list] = {k: [] for k in runs}
    cpu: dict[str, list] = {k: [] for k in runs}
    to_last_step, cpu_to_last_step = [], []
    fit_task(_TimedCtx(cfg.steps), model, xs[0], missing, cfg, importance_k, False, 0, None, StartsConfig())  # warm-up
    for r in range(rounds):
        for name, fn in runs.items():
            ctx = _TimedCtx(cfg.steps)
            c0, t0 = time.process_time(), time.perf_counter()
            if fn is None:
                fit_task(ctx, model, xs[r], missing, cfg, importance_k, False, 0, None, StartsConfig())
                to_last_step.append(ctx.t_last_step)
                cpu_to_last_step.append(ctx.c_last_step)
            else:
                fn(xs[r])
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    out = {
        "rounds": rounds,
        "steps": cfg.steps,
        "n_samples": cfg.n_samples,
        "importance_k": importance_k,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "wall_ms": {k: _stats(v) for k, v in wall.items()},
        "cpu_ms": {k: _stats(v) for k, v in cpu.items()},
        "multi_start_to_last_step_ms": {"wall": _stats(to_last_step), "cpu": _stats(cpu_to_last_step)},
    }
    one = statistics.median(cpu["fit_q_one_start"])
    out["cpu_ratio_to_one_fit_q"] = {
        k: round(statistics.median(v) / one, 2) for k, v in cpu.items() if not k.endswith("fit_q_one_start")
    }
    out["cpu_ratio_to_one_fit_q"]["multi_start_to_last_step"] = round(statistics.median(cpu_to_last_step) / one, 2)
    if before:
        old_one = statistics.median(cpu["before:fit_q_one_start"])
        out["before"] = before
        out["before_cpu_ratio_to_its_one_fit_q"] = {
            k: round(statistics.median(cpu[f"before:{k}"]) / old_one, 2)
            for k in ("multi_start_fit", "fit_task_multi_start")
        }
        out["cpu_speedup_over_before"] = {
            k: round(statistics.median(cpu[f"before:{k}"]) / statistics.median(cpu[k]), 2)
            for k in ("fit_q_one_start", "multi_start_fit", "fit_task_multi_start")
        }
    return out


# --- quality --------------------------------------------------------------------------------


def _summary(v: torch.Tensor) -> dict:
    v = v.double()
    return {"mean": round(v.mean().item(), 2), "se": round((v.std() / math.sqrt(len(v))).item(), 2)}


def training_mean(data: MNIST) -> torch.Tensor:
    """Per-pixel probability of ink in the (dynamically binarized) training set, (784,).

    E[binarized pixel] = its grey level, so the mean grey image is the expected frequency; add-one
    (Laplace) smoothing over the N training images keeps never-inked pixels away from p = 0.
    """
    x = data.float_images("train")  # (N, 784)
    return (x.sum(0) + 1) / (len(x) + 2)


def inpaint_quality(
    model,
    data: MNIST,
    n: int = 1000,
    k: int = 500,
    k_importance: int = 2000,
    chunk: int = 200,
    config: ip.InpaintConfig | None = None,
    seed: int = 0,
) -> dict:
    """nats per digit of the true missing pixels (top half missing) on the first n binarized test digits.

    The encoder's guess is scored for three fills of the hole (black, the training mean, the model's
    prior mean image — the default); the fit starts from the default guess. Mean-field scores use k
    samples (they converge fast); the fitted q's mixture and importance scores use k_importance
    (log-mean-exps: they grow with k, so k is reported beside them).
    """
    model = _freeze(model)
    x_all = data.binarized("test")[:n]  # (n, 784)
    missing = masks.top_half()
    p_mean = training_mean(data)
    cfg = config or ip.InpaintConfig(seed=seed)
    fills = {"black": 0.0, "train_mean": p_mean, "prior_mean": "prior_mean"}
    default_fill = next(name for name, f in fills.items() if isinstance(f, str) and f == ip.DEFAULT_FILL)
    parts: dict[str, list] = {}

    def add(key, v):
        parts.setdefault(key, []).append(v.detach().double())

    t0 = time.perf_counter()
    fit_seconds = 0.0
    for start in range(0, n, chunk):
        x = x_all[start : start + chunk]
        g = torch.Generator().manual_seed(seed + start)
        add("train_mean", mean_field_log_likelihood(x, missing, p_mean))
        guesses = {}
        for fill_name, fill in fills.items():
            guesses[fill_name] = guess = ip.amortized_guess(model, x, missing, fill=fill)
            s = missing_pixel_scores(model, x, missing, *guess, k=k, generator=g)
            add(f"encoder[{fill_name}].mean_field", s.mean_field)
        guess = guesses[default_fill]
        res = ip.fit_q(model, x, missing, cfg, init=guess)
        fit_seconds += res.seconds
        s = missing_pixel_scores(model, x, missing, res.z_loc, res.z_scale, k=k_importance, generator=g)
        add("fitted_q.mean_field", s.mean_field)
        add("fitted_q.mixture", s.mixture)
        add("fitted_q.importance", s.importance)
        add("fitted_q.ess", s.ess)
        elbo0 = ip.observed_elbo(model, x, missing, *guess, k=200, generator=g)
        elbo1 = ip.observed_elbo(model, x, missing, res.z_loc, res.z_scale, k=200, generator=g)
        add("observed_elbo.encoder", elbo0)
        add("observed_elbo.fitted_q", elbo1)
        add("observed_elbo.gain", elbo1 - elbo0)
        _log(f"  {min(start + chunk, n)}/{n} digits, {time.perf_counter() - t0:.0f} s")
    full = {key: _summary(torch.cat(v)) for key, v in parts.items() if key != "fitted_q.ess"}
    ess = torch.cat(parts["fitted_q.ess"])
    headline = {
        "train_mean_baseline": full["train_mean"]["mean"],
        "encoder_guess": full[f"encoder[{default_fill}].mean_field"]["mean"],
        "fitted_q": full["fitted_q.mean_field"]["mean"],
        "importance_weighted": full["fitted_q.importance"]["mean"],
    }
    return {
        "n": n,
        "mask": "top_half",
        "missing_pixels": int(missing.sum()),
        "k_mean_field": k,
        "k_importance": k_importance,
        "default_fill": default_fill,
        "fit": {"steps": cfg.steps, "n_samples": cfg.n_samples, "lr": cfg.lr, "lr_final": cfg.lr_final},
        "headline_nats_per_digit": headline,
        "all": full,
        "importance_ess": {
            "median": round(ess.median().item(), 1),
            "p10": round(ess.quantile(0.1).item(), 1),
            "of_k": k_importance,
        },
        "fit_seconds_total": round(fit_seconds, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(p, "--checkpoint", latent_dim=32, help="model to use (none shipped: train one)")
    p.add_argument("--n", type=int, default=1000, help="test digits for the quality figures")
    p.add_argument("--k", type=int, default=500, help="z samples per digit for the mean-field scores")
    p.add_argument("--k-importance", type=int, default=2000, help="z samples per digit for the importance score")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before measuring")
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument(
        "--fit-task",
        action="store_true",
        help="time the panel's whole fit task (multi-start, importance resampling) against one fit, then exit",
    )
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds of --fit-task")
    p.add_argument("--before", metavar="GIT_REF", help="--fit-task: also time this revision's code, same rounds")
    p.add_argument("--train-seconds", type=float, default=170.0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    data = load_mnist()
    model, desc = find_model(data, a.checkpoint, a.train_seconds)
    out = {"model": desc, "torch": torch.__version__, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if a.fit_task:
        out["fit_task"] = bench_fit_task(model, data, rounds=a.rounds, importance_k=a.k_importance, before=a.before)
        print(json.dumps(out, indent=2))
        return 0
    if not a.skip_speed:
        _log("speed ...")
        out["speed"] = bench_fit_time(model, data, repeats=a.repeats)
    if not a.skip_quality:
        _log("quality ...")
        out["quality"] = inpaint_quality(model, data, n=a.n, k=a.k, k_importance=a.k_importance)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
