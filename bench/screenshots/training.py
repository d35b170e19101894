"""The main window while it trains: docs/screenshot-training.png.

    python -m bench.screenshots.training [--checkpoint CKPT] [--seconds 25] [--out DIR]

Runs `lvm-studio --smoke SECONDS --screenshot PNG` in a fresh process: the full window, offscreen
without a display, continues training the model it opens (by default the shipped 32-D one, with
its history, so the curves span the whole run) and is saved when the smoke run ends.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.common import DOCS, add_model_argument, run_module

NAME = "screenshot-training.png"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(p, "--checkpoint", latent_dim=32, help="the model the window opens")
    p.add_argument("--seconds", type=float, default=25.0, help="training time before the picture")
    p.add_argument("--out", default=str(DOCS), help="folder for the PNG file (default: docs/)")
    a = p.parse_args(argv)
    out = Path(a.out).resolve()  # the app runs from the repository root
    out.mkdir(parents=True, exist_ok=True)
    args = ["--smoke", str(a.seconds), "--screenshot", str(out / NAME)]
    if a.checkpoint:
        args += ["--checkpoint", str(Path(a.checkpoint).resolve())]
    env = dict(os.environ)
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    proc = run_module("lvm_studio", *args, env=env, timeout_s=a.seconds + 300)
    if proc.returncode != 0:
        print(f"the smoke run failed ({proc.returncode}):\n{proc.stderr[-2000:]}", file=sys.stderr)
        return proc.returncode or 1
    print("wrote", out / NAME)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
