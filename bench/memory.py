"""Memory while training (issue 11, item 13): RSS every few seconds while the app trains.

    python -m bench.memory [--minutes 10] [--interval 5] [--objective elbo ...]

The real app (bench.app_driver: `lvm_studio.cli.main([])`, the default window layout, offscreen
without a display, a fresh settings folder) trains on the CPU with the app's settings (or those
given); the process's RSS (/proc/self/statm) is sampled every --interval seconds from the GUI
thread. Reports RSS before training, at 1 minute and at the end, and the growth after the first
minute (goal: at most +150 MB over 10 minutes). One JSON object, with the machine.
"""

from __future__ import annotations

import argparse
import json
import time


def memory_scenario(w, args) -> dict:
    from bench.app_driver import train_overrides
    from bench.common import rss_mb, run_loop_for, run_loop_until, thread_policy

    panel, c = w.training_panel, w.controller
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    rss_idle = rss_mb()
    started, failures = [], []
    c.started.connect(started.append)
    c.failed.connect(failures.append)
    overrides = train_overrides(args)
    if not w.start_training(**overrides):
        return {"error": "training did not start"}
    run_loop_until(lambda: started or failures, 120, what="training start")
    if failures:
        return {"error": failures[0]}
    t0, samples, step0 = time.perf_counter(), [], w.hub.step
    end = 60 * args.minutes
    while True:
        t = time.perf_counter() - t0
        samples.append((round(t, 1), round(rss_mb(), 1)))
        if t >= end:
            break
        run_loop_for(min(args.interval, end - t))

    def at(seconds: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - seconds))[1]

    rss_1min, rss_end = at(60.0), samples[-1][1]
    return {
        "minutes": args.minutes,
        "rss_idle_mb": round(rss_idle, 1),
        "rss_at_1min_mb": rss_1min,
        "rss_at_end_mb": rss_end,
        "growth_after_1min_mb": round(rss_end - rss_1min, 1),
        "rss_max_mb": max(s[1] for s in samples),
        "goal_growth_mb_max": 150,
        "steps": w.hub.step - step0,
        "device": started[0],
        "config": panel.train_config(start_epoch=w.hub.epoch, **overrides).to_dict(),
        "threads": thread_policy(),
        "samples": samples,  # (seconds since training started, MB)
    }


def main(argv=None) -> int:
    from bench.app_driver import _add_train_options

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples")
    _add_train_options(p)
    args = p.parse_args(argv)
    from bench.app_driver import drive
    from bench.common import load_average, machine_state

    machine = machine_state()
    result = drive(lambda w: memory_scenario(w, args))
    result["machine"] = machine
    result["load_average_end"] = load_average()
    print(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    raise SystemExit(main())
