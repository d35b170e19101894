"""Regenerate every screenshot under docs/: `python -m bench.screenshots [--out DIR] [--only AREA ...]`.

Each area runs in a fresh process with its defaults (the shipped models), one after the other; a
failed area is reported and the others still run. Takes several minutes of CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.common import DOCS, run_module
from bench.screenshots import AREAS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DOCS), help="folder for the PNG files (default: docs/)")
    p.add_argument("--only", nargs="*", default=None, choices=tuple(AREAS), help="these areas only")
    a = p.parse_args(argv)
    out = str(Path(a.out).resolve())  # the areas run from the repository root
    failed = []
    for area in a.only or AREAS:
        t0 = time.perf_counter()
        print(f"== {area}: {', '.join(AREAS[area])}", file=sys.stderr, flush=True)
        proc = run_module(f"bench.screenshots.{area}", "--out", out, capture=False)
        print(f"== {area}: exit {proc.returncode} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        if proc.returncode != 0:
            failed.append(area)
    if failed:
        print(f"failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
