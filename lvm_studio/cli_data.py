"""`lvm-studio data import SOURCE --out data.npz`: a folder of images or an array file -> an MNIST-style .npz.

The output is what `--data` of `train`, `eval` and the app take (core/dataset_import.py does the work).
Like cli.py, nothing here imports torch at module level.
"""

from __future__ import annotations

import argparse
import sys
import time

from lvm_studio.cli_checks import SEED, add_checks, real

DATA_HELP = "convert your own images into a dataset that train, eval and the app take with --data"
IMPORT_HELP = (
    "convert a folder of PNG/JPEG/BMP images (subfolder names become labels) or a .npy/.npz array file "
    "into an MNIST-style .npz"
)


def add_data_parser(sub) -> None:
    """Register `data import` with the main parser's subcommands (cli.build_parser)."""
    d = sub.add_parser("data", help=DATA_HELP, description=DATA_HELP)
    dsub = d.add_subparsers(dest="data_command", required=True)
    i = dsub.add_parser("import", help=IMPORT_HELP, description=IMPORT_HELP)
    i.add_argument("source", metavar="SOURCE", help="a folder of images, or a .npy / .npz file")
    i.add_argument("--out", required=True, metavar="NPZ", help="the dataset to write (atomically)")
    i.add_argument(
        "--size",
        default="28",
        metavar="SIDE",
        help="resize every image to SIDE × SIDE pixels, 8 to 64 (default 28; 'keep' keeps the images' own square size)",
    )
    i.add_argument("--test-fraction", type=float, default=0.1, help="held out as the test set (default 0.1)")
    i.add_argument("--seed", type=int, default=0, help="seed of the test split (default 0)")
    centre = i.add_mutually_exclusive_group()
    centre.add_argument(
        "--centre",
        dest="centre",
        action="store_true",
        default=None,
        help="centre each image as MNIST is (ink bright, fitted to 20/28 of the side, centre of mass in the "
        "middle); the default for a folder",
    )
    centre.add_argument(
        "--no-centre", dest="centre", action="store_false", help="only grey and resize; the default for array files"
    )
    i.add_argument("--quiet", action="store_true", help="no progress line")
    # refused before any work, one line and exit 2, like every other command's arguments (cli_checks)
    add_checks(i, test_fraction=real(0, 1, lo_open=True, hi_open=True), seed=SEED)


class _Progress:
    """ctx for import_dataset: a progress line on stderr, and Ctrl+C cancels."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0
        self.stop = False

    def report(self, fraction: float, payload=None) -> None:
        now = time.monotonic()
        if self.enabled and now - self._last > 0.2:
            self._last = now
            sys.stderr.write(f"\r{100 * fraction:5.1f} %  {payload or ''}\x1b[K")
            sys.stderr.flush()

    def cancelled(self) -> bool:
        return self.stop

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")


def cmd_data(args) -> int:
    from lvm_studio.core.dataset_import import DatasetImportError, ImportCancelled, ImportOptions, import_to_file

    def fail(message: str) -> int:
        print(f"lvm-studio: error: {message}", file=sys.stderr)
        return 2

    if args.size == "keep":
        side = None
    else:
        try:
            side = int(args.size)
        except ValueError:
            return fail(f"--size must be a number of pixels (8 to 64) or 'keep', got {args.size!r}")
    progress = _Progress(not args.quiet)
    try:
        options = ImportOptions(side=side, test_fraction=args.test_fraction, seed=args.seed, centre=args.centre)
        result, path = import_to_file(args.source, args.out, options, progress)
    except DatasetImportError as e:
        progress.close()
        return fail(str(e))
    except ImportCancelled:
        progress.close()
        return fail("cancelled; nothing was written")
    except KeyboardInterrupt:
        progress.close()
        print("lvm-studio: interrupted; nothing was written", file=sys.stderr)
        return 130
    except OSError as e:
        progress.close()
        return fail(f"could not write {args.out}: {e}")
    progress.close()
    print(f"{result.summary()} ({result.seconds:.1f} s)")
    counts = result.label_counts()
    if counts:
        shown = ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:20])
        print(f"labels: {shown}{', …' if len(counts) > 20 else ''}")
    for r in result.refused[:20]:
        print(f"refused {r.path}: {r.reason}")
    if len(result.refused) > 20:
        print(f"… and {len(result.refused) - 20} more refused")
    print(f"wrote {path}: train with  lvm-studio train --data {path} --out model.pt")
    return 0


def handles(args: argparse.Namespace) -> bool:
    return getattr(args, "command", None) == "data"
