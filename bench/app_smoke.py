"""The app while it trains, against headless training, in one JSON object (issue 12, "What it must show").

    python -m bench.app_smoke [--quick] [--competing] [--rounds 3] [--seconds 60] [--out FILE]

Every measurement runs in a fresh process; the training ones interleave (app, headless, app,
headless, ...) so a drifting machine load hits both alike. Figures, each with its goal:
  throughput   in-app (bench.app_driver train: the real app, default window layout, offscreen)
               vs headless (bench.headless throughput: the Trainer on the main thread as
               `lvm-studio train` drives it) images/s: the same model (the shipped default, its
               optimizer state and step), the same TrainConfig (the app's run config, passed to the
               headless side), the same thread policy (lvm_studio.core.threads, both processes).
               Per round the ratio app/headless; overall the ratio of the medians.      goal ≥ 0.90
  gui_thread   the GUI thread's own CPU time while training (time.thread_time on it), % of a core. ≤ 5 %
  stalls       gaps of a 10 ms QTimer on the GUI thread while training: count over 50 ms, max, p99. none
  idle         the process's CPU with the window open, no training, no input, --idle-seconds. ≤ 0.5 %
  inpainting   200-step fits through the inpainting panel's TaskRunner (its defaults: several starts,
               importance k = 2,000), wall ms p50/p95 from the request to the fit's outcome on
               screen (its importance samples follow: with_importance_samples):
               while training (in the training rounds)                                  p95 ≤ 300 ms
               with no training (in the idle run)                                       p95 ≤ 150 ms
  cli          `lvm-studio train` (bench.headless cli: in-process, imports excluded) vs a plain loop
               of the same model (784-400-20 ReLU, as in the issue) with the same evaluations at the
               same steps: plain / cli wall time from the loop's start                  goal ≥ 0.95
               and the share of the cli's wall time spent evaluating by default         goal ≤ 10 %
--competing runs `python -c "while True: pass"` for the whole benchmark (killed at the end, and by
the kernel if this process dies). --headless-nice 5 runs the headless trainer as nice as the app's
training thread (workers.training_worker.TRAINING_NICENESS): on a busy machine that niceness alone
moves the ratio. --quick proves the pipeline in a few minutes; its numbers are not figures.
Parts: --only training idle cli. `smoke_mode()` runs the app's own `lvm-studio --smoke` (bench.run uses it).
Each figure sits beside the machine: cores, load average at start and end, threads per role.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bench.common import competing_process, json_child, load_average, machine_state, percentiles

GOALS = {
    "throughput_ratio_min": 0.90,
    "gui_thread_cpu_percent_max": 5.0,
    "idle_cpu_percent_max": 0.5,
    "stalls_over_50ms_max": 0,
    "inpainting_while_training_p95_ms_max": 300.0,
    "inpainting_no_training_p95_ms_max": 150.0,
    "cli_vs_plain_min": 0.95,
    "eval_fraction_max": 0.10,
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _train_args(args) -> list[str]:
    out = []
    for name in ("objective", "k", "batch_size", "eval_every", "eval_k", "eval_n"):
        v = getattr(args, name)
        if v is not None:
            out += ["--" + name.replace("_", "-"), str(v)]
    return out


def _without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def training_rounds(args) -> dict:
    rounds, config = [], None
    for r in range(args.rounds):
        result = {}
        # with --app-nice A B ...: the rounds cycle through the training thread's niceness values
        nice = args.app_nice[r % len(args.app_nice)] if args.app_nice else None
        env = None if nice is None else {**os.environ, "LVM_STUDIO_TRAINING_NICE": str(nice)}
        for which in ("app", "headless"):
            if which == "app":
                cmd = ["train", "--seconds", str(args.seconds), "--warmup", str(args.warmup)]
                cmd += ["--fits", str(args.fits), *_train_args(args)]
                cmd += ["--single-start"] if args.single_start else []
                result["app"] = json_child("bench.app_driver", *cmd, timeout_s=args.seconds + 300, env=env)
                result["app"]["training_nice"] = nice
                config = config or result["app"]["config"]
            else:  # the app's own run config: same objective, k, batch, evaluation
                cmd = ["throughput", "--config", json.dumps(config), "--seconds", str(args.seconds)]
                cmd += ["--warmup", str(args.warmup), "--nice", str(args.headless_nice)]
                result["headless"] = json_child("bench.headless", *cmd, timeout_s=args.seconds + 300)
            _log(f"round {r + 1} {which}: {json.dumps({k: v for k, v in result[which].items() if k != 'config'})}")
        result["ratio"] = round(result["app"]["images_per_s"] / max(1e-9, result["headless"]["images_per_s"]), 3)
        rounds.append(result)
    app = [r["app"]["images_per_s"] for r in rounds]
    headless = [r["headless"]["images_per_s"] for r in rounds]
    stalls = [r["app"]["stalls"] for r in rounds]
    fit_ms = [ms for r in rounds for ms in r["app"]["inpainting_while_training"].get("ms", [])]
    fit_only = [ms for r in rounds for ms in r["app"]["inpainting_while_training"].get("fit_only_ms", [])]
    fit_total = [ms for r in rounds for ms in r["app"]["inpainting_while_training"].get("total_ms_each", [])]
    app_steps = [r["app"]["images_per_s_by_steps"] for r in rounds]
    headless_steps = [r["headless"]["images_per_s_by_steps"] or 0.0 for r in rounds]
    c = config or {}
    return {
        "throughput": {
            "app_images_per_s": app,
            "headless_images_per_s": headless,
            "ratio_per_round": [r["ratio"] for r in rounds],
            "ratio_of_medians": round(statistics.median(app) / max(1e-9, statistics.median(headless)), 3),
            "app_images_per_s_by_steps": app_steps,  # steps x batch / wall: evaluations and snapshots included
            "headless_images_per_s_by_steps": headless_steps,
            "ratio_by_steps": round(statistics.median(app_steps) / max(1e-9, statistics.median(headless_steps)), 3),
            "objective": c.get("objective"),
            "k": c.get("k"),
            "batch_size": c.get("batch_size"),
            "eval": {key: c.get(key) for key in ("eval_every", "eval_k", "eval_n", "eval_iw_ks")},
            "snapshot_interval_s_app": c.get("snapshot_interval_s"),
            "model": rounds[0]["app"].get("model"),
            "app_training_thread": rounds[0]["app"].get("device"),
            "headless_threads": rounds[0]["headless"].get("threads"),
            "headless_nice": args.headless_nice,
        },
        "gui_thread_cpu_percent": {
            "per_round": [r["app"]["gui_thread_cpu_percent"] for r in rounds],
            "median": _median([r["app"]["gui_thread_cpu_percent"] for r in rounds]),
            "app_process_cpu_percent": [r["app"]["process_cpu_percent"] for r in rounds],
            "training_thread_cpu_percent": [r["app"]["training_thread_cpu_percent"] for r in rounds],
            "headless_process_cpu_percent": [r["headless"]["process_cpu_percent"] for r in rounds],
        },
        "stalls": {
            "seconds_per_round": args.seconds / 2,  # the second half of each round (bench.app_driver)
            "over_50ms": [s.get("over_50ms") for s in stalls],
            "max_ms": [s.get("max_ms") for s in stalls],
            "p99_ms": [s.get("p99_ms") for s in stalls],
            "over_50ms_at": [s.get("over_50ms_at") for s in stalls],
        },
        "inpainting_while_training": {
            **(percentiles(fit_ms, suffix="_ms", digits=1, count=True) if fit_ms else {"n": 0}),
            "fit_only": percentiles(fit_only, suffix="_ms", digits=1, count=True) if fit_only else {"n": 0},
            "with_importance_samples": percentiles(fit_total, suffix="_ms", digits=1, count=True)
            if fit_total
            else {"n": 0},
            "per_round": [
                _without(r["app"]["inpainting_while_training"], "ms", "fit_only_ms", "total_ms_each") for r in rounds
            ],
        },
        "rounds": rounds,
    }


def idle_run(args) -> dict:
    result = json_child(
        "bench.app_driver", "idle", "--seconds", str(args.idle_seconds), "--fits", str(args.fits),
        "--settle", "3" if args.quick else "10", *(["--single-start"] if args.single_start else []),
        timeout_s=args.idle_seconds + 300,
    )  # fmt: skip
    _log(f"idle: {json.dumps(result)}")
    fits = result.get("inpainting_no_training", {})
    shown = fits.get("shown_ms", {"n": 0})
    return {
        "idle": {
            "seconds": result.get("seconds"),
            "process_cpu_percent": result.get("process_cpu_percent"),
            "gui_thread_cpu_percent": result.get("gui_thread_cpu_percent"),
            "settle_s": result.get("settle_s"),
            "process_cpu_percent_per_second": result.get("process_cpu_percent_per_second"),
        },
        "inpainting_no_training": {
            **shown,
            "fit_only": fits.get("fit_ms"),
            "with_importance_samples": fits.get("total_ms"),
            "detail": fits,
        },
    }


def cli_rounds(args) -> dict:
    """`lvm-studio train` against the plain loop, interleaved (cli, plain, plain, cli, ...)."""
    model = ["--epochs", str(args.cli_epochs)]
    cli_runs, plain_runs, evals = [], [], None
    for r in range(args.cli_rounds):
        for which in ("cli", "plain") if r % 2 == 0 else ("plain", "cli"):
            if which == "cli":
                run = json_child("bench.headless", "cli", *model, timeout_s=1800)
                cli_runs.append(run)
                evals = evals or run["evals"]
            else:
                first = evals[0] if evals else {"k": 1, "n": 1}
                steps = json.dumps([e["step"] for e in evals])
                plain_runs.append(
                    json_child(
                        "bench.headless",
                        "plain",
                        *model,
                        "--eval-steps",
                        steps,
                        "--eval-k",
                        str(first["k"]),
                        "--eval-n",
                        str(first["n"]),
                        timeout_s=1800,
                    )  # fmt: skip
                )
            _log(f"cli round {r + 1} {which}: {json.dumps((cli_runs if which == 'cli' else plain_runs)[-1])}")
    cli_wall = statistics.median(run["training_wall_s"] for run in cli_runs)
    plain_wall = statistics.median(run["training_wall_s"] for run in plain_runs)
    return {
        "cli": {
            "model": "784-400-20 relu, Bernoulli, as `lvm-studio train --latent-dim 20 --hidden 400 --activation relu`",
            "epochs": args.cli_epochs,
            "cli_training_wall_s": [run["training_wall_s"] for run in cli_runs],  # from the loop's start
            "plain_training_wall_s": [run["training_wall_s"] for run in plain_runs],
            "cli_wall_s": [run["wall_s"] for run in cli_runs],  # with data loading and model building
            "plain_wall_s": [run["wall_s"] for run in plain_runs],
            "plain_over_cli": round(plain_wall / max(1e-9, cli_wall), 3),
            "eval_fraction": [run["eval_fraction"] for run in cli_runs],
            "eval_fraction_median": _median([run["eval_fraction"] for run in cli_runs]),
            "evals_per_run": len(evals or []),
            "eval_defaults": cli_runs[0]["train_config"],
            "eval_seconds_cli": [run["eval_seconds"] for run in cli_runs],
            "eval_seconds_plain": [run["eval_seconds"] for run in plain_runs],
        }
    }


def smoke_mode(seconds: float) -> dict:
    """The app's own self-test, `lvm-studio --smoke SECONDS` (its JSON line), in a fresh process."""
    env = dict(os.environ)
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return json_child("lvm_studio", "--smoke", str(seconds), env=env, timeout_s=seconds + 180)


def verdicts(out: dict) -> dict:
    v = {}
    t = out.get("throughput")
    if t:
        v["throughput_ratio"] = t["ratio_of_medians"] >= GOALS["throughput_ratio_min"]
        g = out["gui_thread_cpu_percent"]["median"]
        v["gui_thread_cpu"] = g is not None and g <= GOALS["gui_thread_cpu_percent_max"]
        v["no_stalls_over_50ms"] = all((n or 0) <= GOALS["stalls_over_50ms_max"] for n in out["stalls"]["over_50ms"])
        p95 = out["inpainting_while_training"].get("p95_ms")
        v["inpainting_while_training"] = p95 is not None and p95 <= GOALS["inpainting_while_training_p95_ms_max"]
    if "idle" in out:
        cpu = out["idle"]["process_cpu_percent"]
        v["idle_cpu"] = cpu is not None and cpu <= GOALS["idle_cpu_percent_max"]
        p95 = out["inpainting_no_training"].get("p95_ms")
        v["inpainting_no_training"] = p95 is not None and p95 <= GOALS["inpainting_no_training_p95_ms_max"]
    if "cli" in out:
        v["cli_vs_plain"] = out["cli"]["plain_over_cli"] >= GOALS["cli_vs_plain_min"]
        f = out["cli"]["eval_fraction_median"]
        v["eval_overhead"] = f is not None and f <= GOALS["eval_fraction_max"]
    return v


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs to see that it works (not figures)")
    p.add_argument("--competing", action="store_true", help='one busy `python -c "while True: pass"` meanwhile')
    p.add_argument("--rounds", type=int, help="app/headless rounds (default 3; quick 1)")
    p.add_argument("--seconds", type=float, help="measured training seconds per run (default 60; quick 10)")
    p.add_argument("--warmup", type=float, help="training seconds before measuring (default 5; quick 3)")
    p.add_argument("--idle-seconds", type=float, help="idle window measurement (default 60; quick 5)")
    p.add_argument("--fits", type=int, help="inpainting fits per run (default 10; quick 3)")
    p.add_argument("--cli-epochs", type=int, help="epochs of the cli/plain comparison (default 2; quick 1)")
    p.add_argument("--cli-rounds", type=int, help="cli/plain pairs (default 2; quick 1)")
    p.add_argument("--only", nargs="+", choices=["training", "idle", "cli"], help="run only these parts")
    p.add_argument("--objective", choices=["elbo", "iwae"], help="default: the app's setting for its model")
    p.add_argument("--k", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--eval-k", type=int)
    p.add_argument("--eval-n", type=int)
    p.add_argument(
        "--headless-nice",
        type=int,
        default=0,
        help="run the headless trainer this much nicer (the app's training thread runs at +5): 0 compares "
        "with `lvm-studio train` as users run it, 5 isolates the GUI's own cost",
    )
    p.add_argument(
        "--single-start",
        action="store_true",
        help="time the inpainting fits with the panel's 'several starts' off (one fit, as before issue 16)",
    )
    p.add_argument(
        "--app-nice",
        type=int,
        nargs="+",
        metavar="N",
        help="the app's training thread niceness per round, cycled (default: the app's own, +5); "
        "e.g. --rounds 4 --app-nice 0 5 interleaves both",
    )
    p.add_argument("--out", metavar="JSON", help="also write the JSON object here")
    p.add_argument("--json", action="store_true", help="(kept for old commands: the output is always JSON)")
    args = p.parse_args(argv)
    defaults = dict(rounds=(1, 3), seconds=(10.0, 60.0), warmup=(3.0, 5.0), idle_seconds=(5.0, 60.0))
    defaults.update(fits=(3, 10), cli_epochs=(1, 2), cli_rounds=(1, 2))
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    parts = args.only or ["training", "idle", "cli"]
    out = {
        "quick": args.quick,
        "competing_process": args.competing,
        "machine": machine_state(),
        "goals": GOALS,
    }
    t0 = time.perf_counter()
    with competing_process(args.competing):
        if "training" in parts:
            out.update(training_rounds(args))
        if "idle" in parts:
            out.update(idle_run(args))
        if "cli" in parts:
            out.update(cli_rounds(args))
        out["load_average_end"] = load_average()
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["meets_goal"] = verdicts(out)
    text = json.dumps(out)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
