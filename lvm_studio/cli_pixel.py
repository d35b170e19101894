"""`lvm-studio train-made` and `lvm-studio eval-made`: the pixel-space joint of issue 15.

Registered from cli.py with two lines (``add_pixel_commands(sub)`` and ``run_pixel_command``).
No torch at module level (cli.py's rule: the thread policy comes first).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from lvm_studio.cli_checks import MAX_LR, SEED, add_checks, count, each, real

TRAIN_MADE_HELP = "train a MADE (exact log p(x) over binary pixels) headless and save a checkpoint"
EVAL_MADE_HELP = "report the exact test log p(x) of a MADE checkpoint on the binarized test digits"
PIXEL_COMMANDS = ("train-made", "eval-made")


def add_pixel_commands(sub) -> None:
    t = sub.add_parser("train-made", help=TRAIN_MADE_HELP, description=TRAIN_MADE_HELP)
    t.add_argument("--hidden", type=int, nargs="+", default=[500], metavar="H", help="hidden widths (default 500)")
    t.add_argument("--no-direct", action="store_true", help="without the direct input→output connection")
    t.add_argument("--epochs", type=int, default=200)
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--lr-decay", type=float, default=0.98, help="per epoch")
    t.add_argument("--patience", type=int, default=20, help="epochs without a better validation score before stopping")
    t.add_argument("--max-minutes", type=float, default=0.0, help="stop after this much wall time (0: none)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--name")
    t.add_argument("--out", required=True, metavar="CKPT")
    t.add_argument("--data", metavar="PATH", help="an MNIST-style .npz (default: the shipped one)")

    add_checks(
        t,
        hidden=each(count(1, 8192)),
        epochs=count(1, 10**6),
        batch_size=count(1, 10**6),
        lr=real(0, MAX_LR, lo_open=True),
        lr_decay=real(0, 1, lo_open=True),
        patience=count(1),
        max_minutes=real(0, 10**7),
        seed=SEED,
    )

    e = sub.add_parser("eval-made", help=EVAL_MADE_HELP, description=EVAL_MADE_HELP)
    e.add_argument("checkpoint", metavar="CKPT")
    e.add_argument("--n", type=int, default=10000, help="how many test images (from the first)")
    e.add_argument("--json", action="store_true")
    e.add_argument("--data", metavar="PATH")
    add_checks(e, n=count(1))


def _fail(message: str) -> int:
    print(f"lvm-studio: error: {message}", file=sys.stderr)
    return 2


def _test_log_px(model, data, n: int) -> tuple[float, int, float]:
    from lvm_studio.core.made_training import mean_log_prob

    t0 = time.perf_counter()
    x = data.binarized("test")[:n]  # (n, D) the project's fixed-seed binarization
    return mean_log_prob(model, x), len(x), time.perf_counter() - t0


def cmd_train_made(args) -> int:
    import torch

    from lvm_studio.core import threads
    from lvm_studio.core.checkpoint import save_checkpoint
    from lvm_studio.core.data import DataError, load_mnist
    from lvm_studio.core.made import MADE, MADEConfig
    from lvm_studio.core.made_training import MADETrainConfig, made_checkpoint, train_made

    if args.epochs < 1 or args.batch_size < 1:
        return _fail("--epochs and --batch-size must be at least 1")
    try:
        threads.use("training")
        data = load_mnist(args.data)
        torch.manual_seed(args.seed)
        model = MADE(MADEConfig(hidden=tuple(args.hidden), direct=not args.no_direct))
        config = MADETrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            lr_decay=args.lr_decay,
            max_minutes=args.max_minutes,
            patience=args.patience,
            seed=args.seed,
        )
    except (DataError, ValueError) as e:
        return _fail(str(e))
    out = Path(args.out)
    print(f"training {model.config.describe()} ({config}) -> {out}", file=sys.stderr, flush=True)
    stopping = []
    previous = signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    history, last = [], None
    try:
        for rec in train_made(model, data, config, stop=lambda: bool(stopping)):
            history.append({k: getattr(rec, k) for k in rec.__dataclass_fields__})
            last = rec
            print(
                f"epoch {rec.epoch:4d}  train log p(x) {rec.train_log_px:8.2f}  val {rec.val_log_px:8.2f}  "
                f"best {rec.best_val_log_px:8.2f}  lr {rec.lr:.2e}  {rec.seconds:6.0f} s",
                file=sys.stderr,
                flush=True,
            )
            if rec.val_log_px >= rec.best_val_log_px:  # keep the best epoch on disk as it goes
                save_checkpoint(
                    out,
                    made_checkpoint(
                        model,
                        name=args.name,
                        train_config=config.to_dict(),
                        step=rec.step,
                        epoch=rec.epoch,
                        history=history,
                        metrics={"val_log_px": rec.val_log_px},
                    ),
                )
    finally:
        signal.signal(signal.SIGINT, previous)
    if last is None:
        return 1
    test, n, seconds = _test_log_px(model, data, 10000)
    best_epoch = max(history, key=lambda h: h["val_log_px"])
    ckpt = made_checkpoint(
        model,
        name=args.name,
        train_config=config.to_dict(),
        step=best_epoch["step"],
        epoch=best_epoch["epoch"],
        history=history,
        metrics={"val_log_px": best_epoch["val_log_px"], "test": {"log_px": test, "n": n, "exact": True}},
    )
    save_checkpoint(out, ckpt)
    print(
        f"saved {out}: best epoch {best_epoch['epoch']} of {last.epoch}, val log p(x) {best_epoch['val_log_px']:.2f}, "
        f"test log p(x) {test:.2f} on {n} digits (exact), {last.seconds:.0f} s training",
        file=sys.stderr,
    )
    print(json.dumps({"test_log_px": test, "n": n, "wall_time_s": last.seconds, "best_epoch": best_epoch["epoch"]}))
    return 130 if stopping else 0


def cmd_eval_made(args) -> int:
    from lvm_studio.core import threads
    from lvm_studio.core.checkpoint import CheckpointError, load_checkpoint
    from lvm_studio.core.data import DataError, load_mnist
    from lvm_studio.core.made_training import made_from_checkpoint

    if args.n < 1:
        return _fail("--n must be at least 1")
    try:
        threads.use("training")
        ckpt = load_checkpoint(args.checkpoint)
        model = made_from_checkpoint(ckpt)
        data = load_mnist(args.data)
    except (DataError, CheckpointError, ValueError) as e:
        return _fail(str(e))
    log_px, n, seconds = _test_log_px(model, data, args.n)
    result = {
        "checkpoint": str(args.checkpoint),
        "model": ckpt.get("name"),
        "log_px": log_px,
        "n": n,
        "exact": True,
        "seconds": seconds,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{ckpt.get('name')}: test log p(x) = {log_px:.3f} nats (exact), n={n}, {seconds:.1f} s")
    return 0


def run_pixel_command(args: argparse.Namespace) -> int:
    return cmd_train_made(args) if args.command == "train-made" else cmd_eval_made(args)
