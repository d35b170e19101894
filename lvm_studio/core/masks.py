"""Inpainting masks on the 28×28 MNIST grid.

    ┌────────────────────────────────────────────────────────────────────┐
    │  CONVENTION: a mask is a boolean numpy array of shape (28, 28)     │
    │  where True = MISSING (to be filled in) and False = OBSERVED.      │
    │  Every function here returns a new array in this convention.      │
    └────────────────────────────────────────────────────────────────────┘

Rows run top to bottom, columns left to right (image order, as in x.reshape(28, 28)).
Regions are half-open: box(r0, c0, r1, c1) covers rows r0..r1-1 and columns c0..c1-1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SIDE = 28
SHAPE = (SIDE, SIDE)
HALF = SIDE // 2  # 14


def empty() -> np.ndarray:
    """Nothing missing."""
    return np.zeros(SHAPE, dtype=bool)


def top_half() -> np.ndarray:
    """Rows 0..13 missing."""
    m = empty()
    m[:HALF, :] = True
    return m


def bottom_half() -> np.ndarray:
    """Rows 14..27 missing."""
    m = empty()
    m[HALF:, :] = True
    return m


def left_half() -> np.ndarray:
    """Columns 0..13 missing."""
    m = empty()
    m[:, :HALF] = True
    return m


def right_half() -> np.ndarray:
    """Columns 14..27 missing."""
    m = empty()
    m[:, HALF:] = True
    return m


def box(r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
    """The rectangle rows [r0, r1) × columns [c0, c1) missing.

    Corners may come in any order (a box dragged from any corner) and are clipped to the grid.
    """
    r0, r1 = sorted((int(r0), int(r1)))
    c0, c1 = sorted((int(c0), int(c1)))
    m = empty()
    m[max(r0, 0) : min(r1, SIDE), max(c0, 0) : min(c1, SIDE)] = True
    return m


def centre_box(size: int = 12) -> np.ndarray:
    """A size×size square in the middle missing (default 12×12: rows and columns 8..19)."""
    if not 1 <= size <= SIDE:
        raise ValueError(f"centre box size must be between 1 and {SIDE}, got {size}")
    r0 = (SIDE - size) // 2
    return box(r0, r0, r0 + size, r0 + size)


def random_pixels(fraction: float = 0.5, seed: int | None = 0) -> np.ndarray:
    """Exactly round(fraction · 784) pixels missing, chosen uniformly without replacement."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    n = SIDE * SIDE
    k = int(round(fraction * n))
    m = np.zeros(n, dtype=bool)
    m[np.random.default_rng(seed).permutation(n)[:k]] = True
    return m.reshape(SHAPE)


def disk(row: float, col: float, radius: float) -> np.ndarray:
    """Pixels whose centres lie within `radius` of (row, col); radius 0 marks the nearest pixel."""
    rr, cc = np.ogrid[:SIDE, :SIDE]
    m = (rr - row) ** 2 + (cc - col) ** 2 <= radius**2
    r, c = int(round(row)), int(round(col))
    if 0 <= r < SIDE and 0 <= c < SIDE:
        m[r, c] = True  # a brush always paints the pixel under it, whatever the radius
    return m


def brush(mask: np.ndarray, row: float, col: float, radius: float = 1.5, missing: bool = True) -> np.ndarray:
    """A copy of `mask` with a disk at (row, col) set missing (True) or observed (missing=False)."""
    out = np.array(mask, dtype=bool, copy=True)
    out[disk(row, col, radius)] = missing
    return out


def brush_stroke(
    mask: np.ndarray, start: tuple[float, float], end: tuple[float, float], radius: float = 1.5, missing: bool = True
) -> np.ndarray:
    """A copy of `mask` with disks stamped along the segment start→end (row, col), so a fast drag leaves no gaps."""
    (r0, c0), (r1, c1) = start, end
    n = max(1, int(np.ceil(2 * np.hypot(r1 - r0, c1 - c0))))  # half-pixel spacing
    t = np.linspace(0.0, 1.0, n + 1)
    hit = np.zeros(SHAPE, dtype=bool)
    for ti in t:
        hit |= disk(r0 + ti * (r1 - r0), c0 + ti * (c1 - c0), radius)
    out = np.array(mask, dtype=bool, copy=True)
    out[hit] = missing
    return out


# --- stroke and outline geometry (the canvas draws with these) -------------------------------

_ROWS = np.arange(SIDE, dtype=np.float32)[:, None]  # (28, 1) pixel-centre rows
_COLS = np.arange(SIDE, dtype=np.float32)[None, :]  # (1, 28) pixel-centre columns


def segment_distance(r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
    """(28, 28) distance from each pixel centre to the segment (r0, c0)–(r1, c1), in pixels."""
    dr, dc = r1 - r0, c1 - c0
    length2 = dr * dr + dc * dc
    pr, pc = _ROWS - r0, _COLS - c0  # (28, 1), (1, 28)
    if length2 < 1e-12:
        return np.sqrt(pr * pr + pc * pc)
    t = np.clip((pr * dr + pc * dc) / length2, 0.0, 1.0)  # (28, 28) the closest point's position on the segment
    er, ec = pr - t * dr, pc - t * dc
    return np.sqrt(er * er + ec * ec)


def capsule_coverage(r0: float, c0: float, r1: float, c1: float, radius: float) -> np.ndarray:
    """(28, 28) float32 in [0, 1]: how much of each pixel a round brush of `radius` dragged along
    the segment covers, with a one-pixel linear edge (1 inside radius − ½, 0 beyond radius + ½)."""
    d = segment_distance(r0, c0, r1, c1)
    return np.clip(radius + 0.5 - d, 0.0, 1.0).astype(np.float32)


def mask_outline(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Unit edges (x0, y0, x1, y1) in pixel-corner coordinates between missing and observed pixels
    (and between missing pixels and the image border)."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)  # (30, 30), border observed
    edges = []
    horiz = m[1:, 1:-1] != m[:-1, 1:-1]  # (29, 28): edge above row r (r = 0..28) in column c
    for r, c in zip(*np.nonzero(horiz)):
        edges.append((int(c), int(r), int(c) + 1, int(r)))
    vert = m[1:-1, 1:] != m[1:-1, :-1]  # (28, 29): edge left of column c in row r
    for r, c in zip(*np.nonzero(vert)):
        edges.append((int(c), int(r), int(c), int(r) + 1))
    return edges


def mask_runs(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """Horizontal runs (row, first column, end column) of missing pixels: a few rectangles per row."""
    out = []
    m = np.asarray(mask, dtype=bool)
    for r in range(m.shape[0]):
        row = np.concatenate([[False], m[r], [False]])
        d = np.diff(row.astype(np.int8))
        starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
        out.extend((r, int(s), int(e)) for s, e in zip(starts, ends))
    return out


def invert(mask: np.ndarray) -> np.ndarray:
    """Missing ↔ observed."""
    return ~np.asarray(mask, dtype=bool)


def check(mask: np.ndarray) -> np.ndarray:
    """A (28, 28) boolean copy of `mask` (also accepts a flat (784,) array); ValueError otherwise."""
    m = np.asarray(mask)
    if m.shape == (SIDE * SIDE,):
        m = m.reshape(SHAPE)
    if m.shape != SHAPE:
        raise ValueError(f"a mask must have shape (28, 28) or (784,), got {m.shape}")
    return np.array(m, dtype=bool, copy=True)


# name -> (label for a menu, factory). Factories take only keyword arguments with defaults.
PRESETS: dict[str, tuple[str, Callable[..., np.ndarray]]] = {
    "top_half": ("Top half", top_half),
    "bottom_half": ("Bottom half", bottom_half),
    "left_half": ("Left half", left_half),
    "right_half": ("Right half", right_half),
    "centre_box": ("Centre box", centre_box),
    "random_pixels": ("Random pixels", random_pixels),
}


def preset(name: str, **kwargs) -> np.ndarray:
    """A preset mask by registry name, e.g. preset('random_pixels', fraction=0.3, seed=1)."""
    try:
        factory = PRESETS[name][1]
    except KeyError:
        raise ValueError(f"unknown mask preset {name!r}; known: {', '.join(PRESETS)}") from None
    return factory(**kwargs)
