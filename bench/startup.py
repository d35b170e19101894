"""Launch figures (issue 11, item 8): launch → window shown, launch → drawn and usable, median of N.

    python -m bench.startup [--launches 5] [--quick]

Each launch is a fresh `python -m bench.app_driver startup`: the app started by
`lvm_studio.cli.main([])` (the console script's path) with a fresh settings folder, offscreen
when there is no display. Launch is the wall-clock time just before the process is spawned;
the child stamps (time.time()) the first window shown, the main window shown, the first paint,
ready (the start-up model adopted, no loading state) and usable (painted after ready, and a 5 ms
timer tick of the event loop ran). Goals: shown ≤ 1.5 s, drawn and usable ≤ 4 s. With --settle S,
each window stays open S s after usable with a 10 ms gap meter: settled is the end of the last
event-loop stall over 50 ms (the panels docked behind tabs, the warm-up), after_usable their sizes.
Prints one JSON object, with the machine (cores, load average at start and end, threads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bench.common import ROOT, load_average, machine_state

MARKS = (
    "process",
    "qapplication",
    "first_window_shown",
    "main_window_shown",
    "first_paint",
    "ready",
    "usable",
    "settled",
)
GOALS_S = {"first_window_shown": 1.5, "usable": 4.0}  # a window with a visible loading state; usable


def launch(timeout_s: float = 180.0, settle_s: float = 0.0) -> dict:
    import subprocess

    t_launch = time.time()
    env = {**os.environ, "LVM_STUDIO_STARTUP_REPORT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.app_driver", "startup", "--settle", str(settle_s)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    t_exit = time.time()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"launch failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(lines[-1])
    marks = result["marks"]
    out = {name: round(marks[name] - t_launch, 3) for name in MARKS if name in marks}
    if result.get("after_usable"):
        stalls = result["after_usable"]["stalls"]
        out["after_usable"] = {k: stalls[k] for k in ("max_ms", "over_50ms", "over_50ms_at") if k in stalls}
    out["exit"] = round(t_exit - t_launch, 3)
    if len(lines) > 1:
        out["app_report"] = json.loads(lines[-2])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launches", type=int, help="default 5; quick 2")
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="keep each window open this many seconds after usable and time its stalls: 'settled' is the "
        "end of the last one over 50 ms",
    )
    args = p.parse_args(argv)
    n = args.launches or (2 if args.quick else 5)
    out = {"machine": machine_state(), "launches": n}
    runs = []
    for i in range(n):
        runs.append(launch(settle_s=args.settle))
        print(f"launch {i + 1}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
    names = [name for name in (*MARKS, "exit") if all(name in r for r in runs)]
    out["median_s"] = {name: round(statistics.median(r[name] for r in runs), 3) for name in names}
    out["goals_s"] = GOALS_S
    out["meets_goal"] = {name: out["median_s"].get(name, 1e9) <= goal for name, goal in GOALS_S.items()}
    out["runs"] = runs
    out["load_average_end"] = load_average()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
