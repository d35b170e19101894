"""Your own images and torchrun (issue 18): import time of a folder of PNGs, training speed on 1 and 2 processes.

    python -m bench.own_data import --count 10000 [--folder /tmp/png10k]
    python -m bench.own_data ddp [--data resources/mnist.npz] [--epochs 1] [--hidden 512 512]

`import` renders COUNT letter images (bench/letters.py, 64 × 64 PNG) unless the folder has them,
then times `lvm-studio data import` of the folder (centred, the default, and --no-centre).
`ddp` trains the same model for one epoch as (a) one process with 1 thread, (b) one process with
2 threads, (c) `torchrun --standalone --nproc-per-node 2` with 1 thread each, and reports the
median images/s of the logged windows (the first one, which includes warm-up, left out) from each
checkpoint's history, and the wall time of each command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT


def _run(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True)
    return time.perf_counter() - t0, proc.stdout


def out_n(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.png"))


def bench_import(args) -> dict:
    folder = Path(args.folder)
    n = sum(1 for _ in folder.rglob("*.png")) if folder.is_dir() else 0
    if n < args.count:
        from bench.letters import render

        render(folder, "ABCDEFGHIJ", per_font=0, count=args.count)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("centred", []), ("no_centre", ["--no-centre"])):
            cmd = [
                sys.executable,
                "-m",
                "lvm_studio",
                "data",
                "import",
                str(folder),
                "--out",
                f"{tmp}/d.npz",
                "--quiet",
            ]
            wall, text = _run(cmd + extra, env)
            # the command's own figure: the import alone, without starting Python and torch
            seconds = float(re.search(r"\(([0-9.]+) s\)", text).group(1))
            out[name] = {"wall_s": round(wall, 1), "import_s": seconds, "images_per_s": round(out_n(folder) / seconds)}
    out["images"] = out_n(folder)
    return out


def _rate(ckpt: Path) -> float:
    from lvm_studio.core.checkpoint import history_from_checkpoint, load_checkpoint

    rates = [r.images_per_s for r in history_from_checkpoint(load_checkpoint(ckpt)).train[1:]]
    return statistics.median(rates)


def bench_ddp(args) -> dict:
    base = [*args.train_args, "--epochs", str(args.epochs), "--quiet", "--device", "cpu", "--seed", "0"]
    if args.data:
        base += ["--data", args.data]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "1 process, 1 thread": ([sys.executable, "-m", "lvm_studio", "train"], "1"),
            "1 process, 2 threads": ([sys.executable, "-m", "lvm_studio", "train"], "2"),
            "2 processes (torchrun, gloo), 1 thread each": (
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
                + ["-m", "lvm_studio", "train"],
                "1",
            ),
        }
        for name, (cmd, threads) in runs.items():
            out = Path(tmp) / f"{len(results)}.pt"
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": threads, "LVM_STUDIO_THREADS": threads}
            wall, _ = _run([*cmd, *base, "--out", str(out)], env)
            results[name] = {"images_per_s": round(_rate(out), 0), "wall_s": round(wall, 1)}
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    i = sub.add_parser("import")
    i.add_argument("--count", type=int, default=10000)
    i.add_argument("--folder", default="/tmp/lvm-png10k")
    d = sub.add_parser("ddp")
    d.add_argument("--data", default=None, help="default: the shipped MNIST")
    d.add_argument("--epochs", type=int, default=1)
    d.add_argument(
        "--train-args",
        nargs=argparse.REMAINDER,
        default=["--latent-dim", "32", "--hidden", "512", "512", "--eval-n", "100", "--eval-k", "5"],
        help="the rest of the command line goes to `train` (default: the default VAE, a small evaluation)",
    )
    a = p.parse_args(argv)
    t0, load = time.time(), [round(x, 1) for x in os.getloadavg()]
    result = bench_import(a) if a.what == "import" else bench_ddp(a)
    result["cpu_count"] = os.cpu_count()
    result["load_average_at_start"] = load  # the machine is shared: other engineers' jobs run meanwhile
    result["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
