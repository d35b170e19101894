"""Headless training, measured in a fresh process each: the Trainer as `lvm-studio train` drives it,
the `train` command itself, and a plain loop of the same model.

    python -m bench.headless throughput --config JSON [--seconds 60] [--warmup 5]
    python -m bench.headless cli --epochs 2 [--latent-dim 20 --hidden 400 --activation relu]
    python -m bench.headless plain --epochs 2 --eval-steps JSON --eval-k K --eval-n N [same model options]

throughput: the default model (the one the app opens, with its optimizer state, step and epoch)
trained by core.training.Trainer on the main thread, no weight snapshots, with the TrainConfig
given as JSON (bench.app_smoke passes the app's own run config, so both sides train alike); the
median of the Trainer's images/s records after --warmup seconds, over --seconds.
cli: `lvm_studio.cli.main(["train", ...])` timed in this process (imports paid before the clock
starts; data loading, model building, training, evaluations and checkpoint writes inside it), and
from the checkpoint it wrote, the steps, k, n and seconds of each evaluation it ran.
plain: the same model built the same way (seed, architecture), Adam, the ELBO, dynamic
binarization, no checks, clipping, records or saves, and the same evaluations (core.evaluation,
the same k, n and validation images) at the same steps as the `cli` run.
Each prints one JSON line. All use lvm_studio.core.threads ("training" role) as the CLI does.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _threads() -> dict:
    from lvm_studio.core import threads

    threads.configure_process()  # before torch loads, as cli.main does
    threads.use("training")
    import torch

    from bench.common import thread_policy

    return {**thread_policy(), "torch_threads_here": torch.get_num_threads()}


def throughput(config: dict, seconds: float, warmup: float, nice: int = 0) -> dict:
    policy = _threads()
    if nice:  # as the app's training thread runs (workers.training_worker.TRAINING_NICENESS), to compare
        import os
        import threading

        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    from bench.app_driver import rates_summary
    from bench.common import CpuClock, load_model
    from lvm_studio.core.checkpoint import history_from_checkpoint
    from lvm_studio.core.data import load_mnist
    from lvm_studio.core.history import StepRecord
    from lvm_studio.core.pretrained import default_checkpoint_path
    from lvm_studio.core.training import TrainConfig, Trainer

    path = default_checkpoint_path()
    if path is None:
        raise SystemExit("no default checkpoint (pretrained/): the app and this bench would train different models")
    model, ckpt = load_model(path)
    config = TrainConfig.from_dict({**config, "epochs": 10**6, "snapshot_interval_s": 0.0})
    trainer = Trainer(
        model,
        load_mnist(),
        config,
        "cpu",
        optimizer_state=ckpt.get("optimizer"),
        history=history_from_checkpoint(ckpt),
        step=ckpt.get("step", 0),
        epoch=ckpt.get("epoch", 0.0),
        name=ckpt.get("name"),
    )
    records, t_a, t_b, clock = [], None, None, CpuClock()
    t0 = time.perf_counter()
    for event in trainer.run():
        now = time.perf_counter()
        if t_a is None and now - t0 >= warmup:
            t_a, step_a = now, trainer.step
            clock.start()
        if isinstance(event, StepRecord) and t_a is not None:
            records.append(event.images_per_s)
        if t_a is not None and now - t_a >= seconds:
            t_b, step_b = now, trainer.step
            cpu = clock.read()
            trainer.stop()
            break
    return {
        "mode": "headless",
        **rates_summary(records, (step_b - step_a) * config.batch_size / (t_b - t_a) if t_b else 0.0),
        "records": len(records),
        "seconds": round((t_b or time.perf_counter()) - (t_a or t0), 2),
        "process_cpu_percent": cpu["process_cpu_percent"] if t_b else None,
        "config": config.to_dict(),
        "model": ckpt.get("name") or path.name,
        "threads": policy,
        "nice": nice,
    }


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden", type=int, nargs="+", default=[400])
    p.add_argument("--activation", default="relu")
    p.add_argument("--seed", type=int, default=0)


def cli_train(args) -> dict:
    policy = _threads()
    from lvm_studio import cli
    from lvm_studio.core.checkpoint import history_from_checkpoint, load_checkpoint
    from lvm_studio.core.training import Trainer

    started: list[float] = []
    run = Trainer.run

    def timed_run(self):  # when the loop starts: data loading and model building are not training
        started.append(time.perf_counter())
        yield from run(self)

    Trainer.run = timed_run
    with tempfile.TemporaryDirectory(prefix="lvm-bench-cli-") as tmp:
        out = Path(tmp) / "model.pt"
        argv = ["train", "--latent-dim", str(args.latent_dim), "--hidden", *map(str, args.hidden)]
        argv += ["--activation", args.activation, "--epochs", str(args.epochs), "--seed", str(args.seed)]
        argv += ["--device", "cpu", "--quiet", "--out", str(out)]
        t0 = time.perf_counter()
        rc = cli.main(argv)
        t1 = time.perf_counter()
        wall, training = t1 - t0, t1 - (started[0] if started else t0)
        ckpt = load_checkpoint(out)
    history = history_from_checkpoint(ckpt)
    evals = [{"step": e.step, "k": e.k, "n": e.n, "seconds": round(e.seconds, 3)} for e in history.evals]
    eval_s = sum(e.seconds for e in history.evals)
    return {
        "mode": "cli",
        "rc": rc,
        "wall_s": round(wall, 3),
        "training_wall_s": round(training, 3),  # from the loop's start: training, evaluations, checkpoint writes
        "steps": ckpt.get("step"),
        "evals": evals,
        "eval_seconds": round(eval_s, 3),
        "eval_fraction": round(eval_s / training, 4),
        "train_config": {k: v for k, v in (ckpt.get("train_config") or {}).items() if k.startswith("eval")},
        "threads": policy,
    }


def plain_loop(args) -> dict:
    policy = _threads()
    import math

    import torch

    from lvm_studio.core import estimators as est
    from lvm_studio.core.data import load_mnist
    from lvm_studio.core.evaluation import evaluate
    from lvm_studio.core.training import eval_images
    from lvm_studio.core.vae import VAE, VAEConfig

    # torch.optim's first use imports torch._dynamo (3 s): paid before the clock, as the cli run's imports are
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    eval_steps = {int(s) for s in json.loads(args.eval_steps)}
    t0 = time.perf_counter()
    data = load_mnist()
    torch.manual_seed(args.seed)
    model = VAE(VAEConfig(latent_dim=args.latent_dim, hidden=tuple(args.hidden), activation=args.activation))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_train = data.float_images("train")  # (N, 784)
    x_eval = eval_images(data, "val", model.config.likelihood)[: args.eval_n]  # (n, 784)
    g = torch.Generator().manual_seed(args.seed)
    n, b = len(x_train), args.batch_size
    t_loop = time.perf_counter()
    step, eval_s = 0, 0.0
    for _epoch in range(args.epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(math.ceil(n / b)):
            x = torch.bernoulli(x_train[perm[i * b : (i + 1) * b]], generator=g)  # (b, 784)
            loss = -est.elbo(model, x, generator=g).elbo.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step in eval_steps:
                t_e = time.perf_counter()
                evaluate(model, x_eval, k=args.eval_k, seed=args.seed + 1)
                eval_s += time.perf_counter() - t_e
    wall = time.perf_counter() - t0
    return {
        "mode": "plain",
        "wall_s": round(wall, 3),
        "training_wall_s": round(time.perf_counter() - t_loop, 3),
        "steps": step,
        "evals": len(eval_steps),
        "eval_seconds": round(eval_s, 3),
        "threads": policy,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("throughput", help="the Trainer on the default model: images/s")
    t.add_argument("--config", required=True, help="TrainConfig fields as JSON")
    t.add_argument("--seconds", type=float, default=60.0)
    t.add_argument("--warmup", type=float, default=5.0)
    t.add_argument("--nice", type=int, default=0, help="raise this thread's nice value first (Linux)")
    c = sub.add_parser("cli", help="lvm-studio train, timed in-process")
    _model_args(c)
    pl = sub.add_parser("plain", help="a plain loop of the same model and evaluations")
    _model_args(pl)
    pl.add_argument("--batch-size", type=int, default=128)
    pl.add_argument("--eval-steps", required=True, help="JSON list of the steps to evaluate after")
    pl.add_argument("--eval-k", type=int, required=True)
    pl.add_argument("--eval-n", type=int, required=True)
    args = p.parse_args(argv)
    if args.mode == "throughput":
        result = throughput(json.loads(args.config), args.seconds, args.warmup, args.nice)
    elif args.mode == "cli":
        result = cli_train(args)
    else:
        result = plain_loop(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
