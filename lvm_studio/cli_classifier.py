"""`lvm-studio train-classifier`: train the digit classifier the inpainting panel uses (issue 16).

    lvm-studio train-classifier --epochs 6 --seed 0 --out digit_classifier.pt

Prints one line per epoch and, at the end, the test accuracy on grey levels and on the fixed
binarized test set; writes a core/checkpoint.py checkpoint of kind "classifier" (atomically).
Registered from cli.py by `add_parser(sub)` and `run(args)`; nothing here imports torch at
module level.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

COMMAND = "train-classifier"
HELP = "train the digit classifier (a small CNN) that names the inpainting panel's completions"


def add_parser(sub) -> argparse.ArgumentParser:
    c = sub.add_parser(COMMAND, help=HELP, description=HELP)
    c.add_argument("--epochs", type=int, default=6)
    c.add_argument("--channels", type=int, nargs=2, default=[32, 64], metavar="C", help="widths of the two conv layers")
    c.add_argument("--hidden", type=int, default=128, help="width of the dense layer")
    c.add_argument("--batch-size", type=int, default=128)
    c.add_argument("--lr", type=float, default=1e-3)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True, metavar="CKPT")
    c.add_argument("--data", metavar="PATH", help="an MNIST-style .npz (default: the shipped resources/mnist.npz)")
    c.add_argument("--json", action="store_true", help="print the final figures as one JSON line")
    return c


def run(args) -> int:
    from lvm_studio.core import threads
    from lvm_studio.core.checkpoint import save_checkpoint
    from lvm_studio.core.classifier import (
        ClassifierConfig,
        ClassifierTrainConfig,
        DigitClassifier,
        accuracy,
        make_classifier_checkpoint,
        train_classifier,
    )
    from lvm_studio.core.data import DataError, load_mnist

    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0 or min(args.channels) < 1 or args.hidden < 1:
        print(
            "lvm-studio: error: --epochs, --batch-size, --channels and --hidden must be at least 1, --lr positive",
            file=sys.stderr,
        )
        return 2
    try:
        threads.use("training")
        data = load_mnist(args.data)
    except (DataError, ValueError) as e:
        print(f"lvm-studio: error: {e}", file=sys.stderr)
        return 2
    import torch

    config = ClassifierTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    torch.manual_seed(args.seed)
    model = DigitClassifier(ClassifierConfig(channels=tuple(args.channels), hidden=args.hidden))
    t0 = time.perf_counter()
    for r in train_classifier(data, config, model):
        print(
            f"epoch {r.epoch}/{config.epochs}  loss {r.train_loss:.4f}  val accuracy {100 * r.val_accuracy:.2f} %  "
            f"{r.seconds:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    wall = time.perf_counter() - t0
    y_test = torch.from_numpy(data.y_test.astype("int64"))
    metrics = {
        "test_accuracy": accuracy(model, data.float_images("test"), y_test),
        "test_accuracy_binarized": accuracy(model, data.binarized("test"), y_test),
        "n_test": len(y_test),
        "wall_time_s": wall,
    }
    ckpt = make_classifier_checkpoint(model, train_config={**vars(config)}, metrics=metrics, epoch=config.epochs)
    save_checkpoint(Path(args.out), ckpt)
    print(
        f"saved {args.out}: test accuracy {100 * metrics['test_accuracy']:.2f} % (grey), "
        f"{100 * metrics['test_accuracy_binarized']:.2f} % (binarized), {wall:.0f} s",
        file=sys.stderr,
    )
    if args.json:
        print(json.dumps(metrics))
    return 0
