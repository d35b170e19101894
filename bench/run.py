"""LVM Studio benchmarks: `python -m bench.run [--quick] [--json]`.

Prints one JSON object of named figures. Wherever a baseline exists it is measured in the same
run and the figure is reported as a ratio, because these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.common import load_model, machine, pretrained_path


def _prefixed(prefix: str, figures: dict) -> dict:
    return {k if k.startswith(prefix) else prefix + k: v for k, v in figures.items()}


def _em(quick: bool) -> dict:
    from bench import em

    # 60,000 x 16 points, K = 10, full covariances, against scikit-learn when it is installed
    return em.bench_em(iters=20 if quick else 100, repeats=1 if quick else 3)


def _inpainting(data, quick: bool) -> dict:
    from bench import inpainting

    path = pretrained_path(32)
    if path is None:
        raise RuntimeError("no pretrained 32-D model in pretrained/")
    model, _ = load_model(path)
    out = inpainting.bench_fit_time(model, data, repeats=5 if quick else 11)
    out["model"] = path.name
    return out


def _gui(data, quick: bool) -> dict:
    """Slider->painted p95 and map recolour (bench.latency), and the event-loop stall of a
    smoke run of the whole app while it trains (`lvm-studio --smoke`; bench.app_smoke has the full set)."""
    from bench import app_smoke, latency

    hub32 = latency.hub_or_random(pretrained_path(32), 32, data=data)
    hub2 = latency.hub_or_random(pretrained_path(2), 2, hidden=(256, 256), data=data)
    slider = latency.slider_latency(hub32, n=60 if quick else 300)
    recolour = latency.map_recolour(hub2, repeats=5 if quick else 20)
    smoke = app_smoke.smoke_mode(10 if quick else 30)
    return {
        "gui_slider": slider,
        "gui_map_recolour": recolour,
        "gui_smoke": {
            k: smoke.get(k) for k in ("steps", "images_per_s", "evals", "max_event_loop_stall_ms", "seconds")
        },
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes; under 2 minutes on a 2-core CPU")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--only", nargs="*", help="run only these sections: training log_px em gui inpainting")
    args = p.parse_args(argv)
    from bench import core_speed
    from lvm_studio.core.data import load_mnist

    data = load_mnist()
    q = args.quick
    sections = {
        "training": lambda: core_speed.bench_training(data, steps=60 if q else 300, rounds=2 if q else 3),
        "log_px": lambda: core_speed.bench_log_px(data, k=1000, n=8 if q else 100),
    }
    sections["em"] = lambda: _prefixed("em_", _em(q))
    sections["inpainting"] = lambda: _prefixed("inpaint_", _inpainting(data, q))
    sections["gui"] = lambda: _gui(data, q)
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
