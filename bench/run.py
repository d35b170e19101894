"""LVM Studio benchmarks: `python bench/run.py [--quick] [--json]`.

Prints one JSON object of named figures. Wherever a baseline exists it is measured in the same
run and the figure is reported as a ratio, because these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def machine() -> dict:
    import torch
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes; under 2 minutes on a 2-core CPU")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--only", nargs="*", help="run only these sections: training log_px em gui inpainting")
    args = p.parse_args(argv)
    from lvm_studio.core.data import load_mnist

    from bench import core_speed

    data = load_mnist()
    q = args.quick
    sections = {
        "training": lambda: core_speed.bench_training(data, steps=60 if q else 300, rounds=2 if q else 3),
        "log_px": lambda: core_speed.bench_log_px(data, k=1000, n=8 if q else 100),
    }
    try:
        from bench import em
        sections["em"] = lambda: em.bench_em(iters=20 if q else 100)
    except ImportError:
        pass
    try:
        from bench import inpainting
        sections["inpainting"] = lambda: inpainting.bench_for_run(quick=q)
    except (ImportError, AttributeError):
        pass
    try:
        from bench import latency
        sections["gui"] = lambda: latency.bench_for_run(quick=q)
    except (ImportError, AttributeError):
        pass
    results: dict = {"quick": q, **machine()}
    t_all = time.perf_counter()
    for name, fn in sections.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        try:
            figures = fn()
        except Exception as e:  # one broken section must not hide the others
            figures = {f"{name}_error": f"{type(e).__name__}: {e}"}
        results.update(figures)
        results[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
        if not args.json:
            print(f"{name}: {json.dumps(figures)}", file=sys.stderr)
    results["total_seconds"] = round(time.perf_counter() - t_all, 2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
