"""The app while it trains: event-loop stalls, and training throughput against headless training.

    python -m bench.app_smoke [--seconds 30] [--rounds 1] [--json]

Each round runs, back to back and in alternating order (so a drifting machine load hits both
alike), each in a fresh process with the same environment:
  * headless: the Trainer loop exactly as `lvm-studio train` drives it (main thread, no
    snapshots, evaluation per epoch), on the model the app opens and the same batch size;
  * app: `lvm-studio --smoke SECONDS` (the full window, offscreen without a display).
Throughput is the median of the Trainer's own images/s records, after the first, in both; the
ratio is taken between the medians over rounds. Goals (issue 3): max_event_loop_stall_ms ≤ 50
over a 30 s run; app/headless ≥ 0.90.

On a shared machine, run several rounds: with other processes busy, libgomp's spinning barriers
make 2-thread CPU training swing by 2-5x from one minute to the next (OMP_WAIT_POLICY=PASSIVE,
set for both, narrows it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bench.common import load_model, run_module


def headless_images_per_s(seconds: float, batch_size: int = 128) -> dict:
    import torch

    from lvm_studio.core.data import load_mnist
    from lvm_studio.core.history import StepRecord
    from lvm_studio.core.pretrained import default_checkpoint_path
    from lvm_studio.core.training import TrainConfig, Trainer
    from lvm_studio.core.vae import VAE, VAEConfig

    path = default_checkpoint_path()
    if path is not None:
        model, name = load_model(path)[0], path.name
    else:
        torch.manual_seed(0)
        model, name = VAE(VAEConfig()), "untrained " + VAEConfig().describe()
    # the settings cmd_train gives a fresh run
    config = TrainConfig(epochs=1000, batch_size=batch_size, snapshot_interval_s=0.0)
    trainer = Trainer(model, load_mnist(), config, "cpu")
    rates, t0 = [], time.perf_counter()
    for event in trainer.run():
        if isinstance(event, StepRecord):
            rates.append(event.images_per_s)
        if time.perf_counter() - t0 >= seconds:
            break
    rates = rates[1:] or rates
    return {
        "images_per_s": round(statistics.median(rates), 1) if rates else 0.0,
        "steps": trainer.step,
        "model": name,
        "torch_threads": torch.get_num_threads(),
    }


def headless(seconds: float) -> dict:
    proc = run_module("bench.app_smoke", "--headless", str(seconds), timeout_s=seconds + 180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"headless run failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return json.loads(lines[-1])


def app_smoke(seconds: float) -> dict:
    env = dict(os.environ)
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    proc = run_module("lvm_studio", "--smoke", str(seconds), env=env, timeout_s=seconds + 180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"smoke run failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return json.loads(lines[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--headless", type=float, metavar="SECONDS", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    if args.headless:
        print(json.dumps(headless_images_per_s(args.headless)))
        return 0
    rounds = []
    for r in range(args.rounds):
        order = ("headless", "app") if r % 2 == 0 else ("app", "headless")
        result = {}
        for which in order:
            result[which] = headless(args.seconds) if which == "headless" else app_smoke(args.seconds)
            if not args.json:
                print(f"round {r + 1} {which}: {json.dumps(result[which])}", file=sys.stderr)
        result["throughput_ratio"] = round(
            result["app"]["images_per_s"] / max(1e-9, result["headless"]["images_per_s"]), 3
        )
        rounds.append(result)
    app_rates = [r["app"]["images_per_s"] for r in rounds]
    headless_rates = [r["headless"]["images_per_s"] for r in rounds]
    summary = {
        "seconds": args.seconds,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "throughput_ratio_of_medians": round(
            statistics.median(app_rates) / max(1e-9, statistics.median(headless_rates)), 3
        ),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "max_event_loop_stall_ms": [r["app"]["max_event_loop_stall_ms"] for r in rounds],
        "app_images_per_s": app_rates,
        "headless_images_per_s": headless_rates,
        "throughput_ratio": [r["throughput_ratio"] for r in rounds],
        "evals": [r["app"]["evals"] for r in rounds],
        "rounds": rounds,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
