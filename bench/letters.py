"""A dataset that is not MNIST: capital letters rendered in the fonts installed on this machine.

    python -m bench.letters /tmp/letters --letters ABCDEFGHIJ --per-font 20
    python -m bench.letters /tmp/png10k --count 10000          # the import benchmark's folder

Writes OUT/<letter>/<font>_<i>.png: dark ink on a light background at 64 × 64 (so an import inverts,
crops and centres it), each a little rotated, scaled and shifted (seeded), one subfolder per letter
(the import's labels). Fonts come from `fc-list` (TrueType and OpenType files); symbol fonts are skipped.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import numpy as np

SKIP = ("Symbol", "Dingbat", "D050000L", "Z003", "Emoji")  # fonts without Latin capitals or in script


def latin_fonts(limit: int = 40) -> list[str]:
    out = subprocess.run(["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, check=False).stdout
    files = sorted({f for f in out.splitlines() if f.endswith((".ttf", ".otf")) and not any(s in f for s in SKIP)})
    return files[:limit]


def render(out: Path, letters: str, per_font: int, count: int | None, size: int = 64, seed: int = 0) -> int:
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    fonts = latin_fonts()
    if not fonts:
        raise SystemExit("no TrueType/OpenType fonts found by fc-list")
    n = 0
    total = count if count is not None else len(fonts) * per_font * len(letters)
    while n < total:
        for fi, font_file in enumerate(fonts):
            font = ImageFont.truetype(font_file, int(size * 0.7))
            for letter in letters:
                for _ in range(per_font if count is None else 1):
                    if n >= total:
                        return n
                    img = Image.new("L", (size, size), 255)
                    ImageDraw.Draw(img).text((size / 2, size / 2), letter, fill=0, font=font, anchor="mm")
                    angle = rng.uniform(-12, 12)
                    scale = rng.uniform(0.75, 1.05)
                    dx, dy = rng.uniform(-6, 6, 2)
                    img = img.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
                    img = img.resize((int(size * scale),) * 2, Image.Resampling.BILINEAR)
                    canvas = Image.new("L", (size, size), 255)
                    canvas.paste(img, (int((size - img.width) / 2 + dx), int((size - img.height) / 2 + dy)))
                    folder = out / letter
                    folder.mkdir(parents=True, exist_ok=True)
                    canvas.save(folder / f"{fi:02d}_{n:06d}.png")
                    n += 1
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--letters", default="ABCDEFGHIJ")
    p.add_argument("--per-font", type=int, default=20, help="images per letter and font")
    p.add_argument("--count", type=int, help="stop after this many images in all (cycling over the fonts)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    n = render(args.out, args.letters, args.per_font, args.count, seed=args.seed)
    print(f"wrote {n} images in {len(latin_fonts())} fonts to {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
