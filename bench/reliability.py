"""The fault trials of docs/reliability.md that are too slow for the test suite.

    python -m bench.reliability --flips 40      # single-byte flips in pretrained/vae2.pt

Each flipped copy is loaded with core.checkpoint.load_checkpoint: it must be refused
(CheckpointError) or load with contents identical to the original (a flip in bytes nothing reads).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import torch

from bench.common import ROOT
from lvm_studio.core.checkpoint import CheckpointError, load_checkpoint


def _same(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)


def flip_trials(path: Path, n: int, seed: int) -> dict:
    original = load_checkpoint(path)
    data = path.read_bytes()
    rng = random.Random(seed)
    counts = {"refused": 0, "identical": 0, "changed": 0}
    with tempfile.TemporaryDirectory() as d:
        for trial in range(n):
            flipped = bytearray(data)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            target = Path(d) / f"flip{trial}.pt"
            target.write_bytes(bytes(flipped))
            try:
                loaded = load_checkpoint(target)
            except CheckpointError:
                counts["refused"] += 1
                continue
            counts["identical" if _same(loaded, original) else "changed"] += 1
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flips", type=int, default=40)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--file", default=str(ROOT / "pretrained" / "vae2.pt"))
    args = p.parse_args(argv)
    counts = flip_trials(Path(args.file), args.flips, args.seed)
    print(f"{args.flips} single-byte flips in {args.file}: {counts}")
    return 0 if counts["changed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
