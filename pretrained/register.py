"""Add a trained checkpoint to pretrained/ with its manifest entry (a maintainer's tool).

A MADE checkpoint (`lvm-studio train-made`, kind "made") gets "kind": "made" in its entry and is
never the default; its --eval-json is the output of `lvm-studio eval-made --json` (exact log p(x)).

    python pretrained/register.py runs/vae32.pt --file vae32.pt --default \
        --train-command "lvm-studio train ..." --eval-json eval.json --wall-time-s 5400 --device cpu

The optimizer state is dropped so the shipped file stays small; the weights, configuration and
metrics history are kept. The manifest records the checksum and the measured test scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lvm_studio.core.checkpoint import load_checkpoint, save_checkpoint
from lvm_studio.core.pretrained import MANIFEST, load_manifest, sha256_of

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--file", required=True, help="file name inside pretrained/")
    p.add_argument("--name")
    p.add_argument("--default", action="store_true", help="make it the model the app opens at start-up")
    p.add_argument("--train-command", required=True)
    p.add_argument("--eval-json", action="append", default=[], help="output of `lvm-studio eval --json` (repeatable)")
    p.add_argument("--wall-time-s", type=float, required=True)
    p.add_argument("--device", default="cpu (2 cores)")
    p.add_argument("--note", default="")
    args = p.parse_args(argv)

    ckpt = load_checkpoint(args.checkpoint)
    kind = ckpt.get("kind", "vae")
    if kind != "vae" and args.default:
        p.error(f"a {kind} checkpoint cannot be the app's default model (the default is a VAE)")
    ckpt["optimizer"] = None
    if args.name:
        ckpt["name"] = args.name
    evals = [json.loads(Path(f).read_text().strip().splitlines()[-1]) for f in args.eval_json]
    ckpt["metrics"] = {**ckpt.get("metrics", {}), "test": evals}
    target = HERE / args.file
    save_checkpoint(target, ckpt)

    train = ckpt.get("train_config") or {}
    entry = {
        "file": args.file,
        **({"kind": kind} if kind != "vae" else {}),
        "name": ckpt["name"],
        "sha256": sha256_of(target),
        "size_bytes": target.stat().st_size,
        "config": ckpt["model_config"],
        "train_config": train,
        "train_command": args.train_command,
        "seed": train.get("seed"),
        "epochs": ckpt.get("epoch"),
        "steps": ckpt.get("step"),
        "wall_time_s": args.wall_time_s,
        "device": args.device,
        "test": [
            {k: e[k] for k in ("elbo", "log_px", "k", "n", "gap", "iw_bounds", "seconds", "exact") if k in e}
            for e in evals
        ],
        "note": args.note,
    }
    manifest = load_manifest(HERE)
    manifest["models"] = [m for m in manifest["models"] if m["file"] != args.file] + [entry]
    if args.default or (not manifest.get("default") and kind == "vae"):
        manifest["default"] = args.file
    (HERE / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"registered {target} ({entry['size_bytes'] / 1e6:.1f} MB), default: {manifest['default']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
