"""Add a trained checkpoint to pretrained/ with its manifest entry (a maintainer's tool).

A MADE checkpoint (`lvm-studio train-made`, kind "made") gets "kind": "made" in its entry and is
never the default; its --eval-json is the output of `lvm-studio eval-made --json` (exact log p(x)).

    python pretrained/register.py runs/vae32.pt --file vae32.pt --default \
        --train-command "lvm-studio train ..." --eval-json eval.json --wall-time-s 5400 --device cpu

    python pretrained/register.py /tmp/digit_classifier.pt --file digit_classifier.pt --classifier \
        --train-command "lvm-studio train-classifier ..." --wall-time-s 900 --device cpu

A classifier (a checkpoint of kind "classifier", core.classifier) is listed under "classifiers",
with its test accuracy, never under "models" (which the app opens as VAEs).
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
# what the manifest keeps of `lvm-studio eval --json` (the cluster figures: a mixture-prior model's)
TEST_KEYS = (
    "elbo",
    "log_px",
    "k",
    "n",
    "gap",
    "iw_bounds",
    "seconds",
    "exact",
    "cluster_accuracy",
    "cluster_nmi",
    "cluster_n",
    "components",
)


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
    p.add_argument("--classifier", action="store_true", help="a digit classifier (listed under 'classifiers')")
    args = p.parse_args(argv)

    ckpt = load_checkpoint(args.checkpoint)
    kind = ckpt.get("kind", "vae")
    if kind != "vae" and args.default:
        p.error(f"a {kind} checkpoint cannot be the app's default model (the default is a VAE)")
    if args.classifier or kind == "classifier":
        return register_classifier(args, ckpt)
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
        "test": [{k: e[k] for k in TEST_KEYS if k in e} for e in evals],
        "note": args.note,
    }
    manifest = load_manifest(HERE)
    manifest["models"] = [m for m in manifest["models"] if m["file"] != args.file] + [entry]
    if args.default or (not manifest.get("default") and kind == "vae"):
        manifest["default"] = args.file
    (HERE / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"registered {target} ({entry['size_bytes'] / 1e6:.1f} MB), default: {manifest['default']}")
    return 0


def register_classifier(args, ckpt: dict) -> int:
    from lvm_studio.core.classifier import classifier_from_checkpoint

    classifier_from_checkpoint(ckpt)  # refuses anything that is not a classifier
    if args.name:
        ckpt["name"] = args.name
    target = HERE / args.file
    save_checkpoint(target, ckpt)
    metrics = ckpt.get("metrics") or {}
    entry = {
        "file": args.file,
        "kind": "classifier",
        "name": ckpt["name"],
        "sha256": sha256_of(target),
        "size_bytes": target.stat().st_size,
        "config": ckpt["model_config"],
        "train_config": ckpt.get("train_config") or {},
        "train_command": args.train_command,
        "seed": (ckpt.get("train_config") or {}).get("seed"),
        "epochs": ckpt.get("epoch"),
        "wall_time_s": args.wall_time_s,
        "device": args.device,
        "test_accuracy": metrics.get("test_accuracy"),
        "test_accuracy_binarized": metrics.get("test_accuracy_binarized"),
        "n_test": metrics.get("n_test"),
        "note": args.note,
    }
    manifest = load_manifest(HERE)
    manifest["classifiers"] = [m for m in manifest["classifiers"] if m["file"] != args.file] + [entry]
    (HERE / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"registered classifier {target} ({entry['size_bytes'] / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
