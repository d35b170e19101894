"""Turning any grey picture of a digit into an MNIST-style 28×28 image (numpy only).

MNIST's convention (LeCun et al. 1998, §III-A; yann.lecun.com/exdb/mnist): the digit is
scaled, aspect ratio preserved, to fit a 20×20 box (anti-aliasing gives grey levels), then
placed in a 28×28 field by translating it so that its centre of mass lies at the centre.
Measured on the shipped training set, the centre of mass sits in [13.5, 14.5] on both axes
(0-based pixel indices, mean 14.0): an integer translation that puts it nearest (14, 14).
We do the same. Images are floats in [0, 1] with bright ink on a dark background.

File decoding (PNG, JPEG, ...) needs an image codec: the app's single pictures go through QImage
(lvm_studio/ui/widgets/image_io.py), dataset imports through Pillow (core/dataset_import.py); this
module is plain array maths.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

SIDE = 28
BOX = 20  # the digit's bounding box is scaled to fit BOX × BOX
CENTRE = 14.0  # target centre of mass (row, col), 0-based, as measured on MNIST
INK_THRESHOLD = 1e-3  # grey levels above this count as ink when finding the bounding box


def image_side(n_pixels: int) -> int:
    """The side of a square image of n_pixels (28 for MNIST's 784; an imported dataset may differ)."""
    side = int(round(float(n_pixels) ** 0.5))
    if side * side != int(n_pixels):
        raise ValueError(f"{n_pixels} pixels is not a square image")
    return side


@functools.lru_cache(maxsize=256)  # a dataset import resizes thousands of images between a few sizes
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: output cell i averages the input cells it overlaps, by overlap length.
    Cached and shared: read-only."""
    edges_in = np.arange(n_in + 1, dtype=np.float64)
    edges_out = np.linspace(0.0, n_in, n_out + 1)
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])  # (n_out, n_in)
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    w = np.clip(hi - lo, 0.0, None)
    w = w / w.sum(1, keepdims=True)
    w.setflags(write=False)
    return w


def area_resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2-D array by area averaging (each output pixel is the mean of the area it covers).

    Exact for any ratio, up or down (like a box filter); the mean grey level is preserved.
    """
    img = np.asarray(img, dtype=np.float64)
    rows = _area_matrix(img.shape[0], int(height))  # (height, H)
    cols = _area_matrix(img.shape[1], int(width))  # (width, W)
    return rows @ img @ cols.T


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, col) of the grey-level centre of mass, 0-based pixel indices."""
    img = np.asarray(img, dtype=np.float64)
    total = img.sum()
    if total <= 0:
        return ((img.shape[0] - 1) / 2, (img.shape[1] - 1) / 2)
    r = (img.sum(1) * np.arange(img.shape[0])).sum() / total
    c = (img.sum(0) * np.arange(img.shape[1])).sum() / total
    return float(r), float(c)


@dataclass(frozen=True)
class Placement:
    """Where center_by_mass puts a digit: the one transform that both a digit and its mask follow.

    The ink's bounding box (rows r0 … r0 + h − 1, columns c0 … c0 + w − 1 of the input) is resized
    to new_h × new_w (longer side BOX) and pasted with its top-left corner at (top, left) of the
    28×28 field. Output pixel (i, j) shows input position
    (r0 + (i − top + ½) · h / new_h − ½, c0 + (j − left + ½) · w / new_w − ½): see source_pixels.
    """

    r0: int
    c0: int
    h: int
    w: int
    new_h: int
    new_w: int
    top: int
    left: int

    def source_pixels(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(SIDE,) row and (SIDE,) column indices: the input pixel nearest to each output pixel's
        centre under the inverse of this placement, clipped to an input of `shape` (edges extended)."""
        i = np.arange(SIDE)
        src_r = np.floor(self.r0 + (i - self.top + 0.5) * self.h / self.new_h).astype(int)
        src_c = np.floor(self.c0 + (i - self.left + 0.5) * self.w / self.new_w).astype(int)
        return src_r.clip(0, shape[0] - 1), src_c.clip(0, shape[1] - 1)

    def back_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(SIDE, SIDE) row and column weights W[u, i] that carry an image in the placed frame back to the
        input frame (a SIDE × SIDE input): input = W_rows @ placed @ W_cols.T. See unapply_placement."""
        return (
            _back_matrix(self.r0, self.h, self.new_h, self.top),
            _back_matrix(self.c0, self.w, self.new_w, self.left),
        )


def find_placement(img: np.ndarray) -> Placement | None:
    """The placement center_by_mass gives `img` (2-D, values in [0, 1]); None when there is no ink.

    Crop to the ink's bounding box, scale it (aspect preserved) so that the longer side is BOX
    pixels, and shift it by the integer offset that puts the resized crop's centre of mass nearest
    CENTRE (LeCun et al. 1998, §III-A).
    """
    img = _checked_grey(img)
    ink = img > INK_THRESHOLD
    if not ink.any():
        return None
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    r0, c0 = int(rows[0]), int(cols[0])
    h, w = int(rows[-1]) - r0 + 1, int(cols[-1]) - c0 + 1
    scale = BOX / max(h, w)
    new_h, new_w = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    com_r, com_c = centre_of_mass(_resized_crop(img, r0, c0, h, w, new_h, new_w))
    top, left = int(np.floor(CENTRE - com_r + 0.5)), int(np.floor(CENTRE - com_c + 0.5))
    return Placement(r0, c0, h, w, new_h, new_w, top, left)


def apply_placement(
    placement: Placement | None, img: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Move a digit, and optionally its mask, by one placement: (28, 28) float32 image, (28, 28) bool mask.

    The image is area-resized and pasted (ink shifted past the border is clipped); the mask goes
    through the same transform by nearest neighbour (each output pixel takes the mask of the input
    pixel under its centre, edges extended), so hidden pixels stay on the ink they hid. A None
    placement (no ink) returns the image clipped to [0, 1] and the mask unchanged; that path is
    only for SIDE × SIDE inputs.
    """
    img = _checked_grey(img)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool).reshape(img.shape)
    if placement is None:
        return img.astype(np.float32), (None if mask is None else mask.copy())
    p = placement
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    digit = _resized_crop(img, p.r0, p.c0, p.h, p.w, p.new_h, p.new_w)
    # paste with clipping: the source window that lands inside the 28×28 field
    r0, c0 = max(p.top, 0), max(p.left, 0)
    r1, c1 = min(p.top + p.new_h, SIDE), min(p.left + p.new_w, SIDE)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = digit[r0 - p.top : r1 - p.top, c0 - p.left : c1 - p.left]
    if mask is None:
        return out, None
    src_r, src_c = p.source_pixels(mask.shape)
    return out, mask[np.ix_(src_r, src_c)]


def _back_matrix(start: int, crop: int, new: int, offset: int) -> np.ndarray:
    """(SIDE, SIDE) weights along one axis: input cell u, the interval [u, u + 1) in input pixel edges,
    lies at [offset + (u − start)·s, offset + (u + 1 − start)·s) of the placed frame, s = new / crop
    (the map apply_placement uses); W[u, i] = its overlap with placed cell [i, i + 1), divided by s.
    Rows sum to 1 where the interval lies inside the frame and less where it leaves it (black there)."""
    s = new / crop
    u = np.arange(SIDE, dtype=np.float64)
    lo = offset + (u - start) * s  # (SIDE,)
    hi = lo + s
    i = np.arange(SIDE, dtype=np.float64)
    overlap = np.clip(np.minimum(hi[:, None], i[None, :] + 1) - np.maximum(lo[:, None], i[None, :]), 0.0, None)
    return overlap / s  # (SIDE input, SIDE placed)


def unapply_placement(placement: Placement | None, placed: np.ndarray) -> np.ndarray:
    """Carry images from a placement's frame back to the input's: the inverse of apply_placement's move.

    placed: (..., SIDE, SIDE). Each input pixel becomes the area average of the placed image over
    the region it was moved to (back_weights); where that region leaves the 28×28 field the image
    counts as black. A pure shift, or an enlargement by an integer factor, is undone exactly; a
    shrink cannot restore detail it averaged away. None (no ink: nothing moved) returns a copy.
    Returns float64 (..., SIDE, SIDE).
    """
    placed = np.asarray(placed, dtype=np.float64)
    if placement is None:
        return placed.copy()
    w_rows, w_cols = placement.back_weights()
    return w_rows @ placed @ w_cols.T  # (..., SIDE, SIDE)


def center_by_mass(img: np.ndarray) -> np.ndarray:
    """MNIST-normalise a digit image of any size (bright ink on dark, values in [0, 1]).

    Crops to the ink's bounding box, scales it (aspect preserved, area averaging) so that the
    longer side is 20 pixels, and pastes it into a 28×28 black field with an integer shift that
    puts the centre of mass nearest (14, 14) (find_placement, apply_placement). Ink shifted past
    the border is clipped (only a digit with nearly all its mass at one edge loses any). No ink at
    all gives a black image. Returns (28, 28) float32 in [0, 1].
    """
    placement = find_placement(img)
    if placement is None:
        return np.zeros((SIDE, SIDE), dtype=np.float32)
    return apply_placement(placement, img)[0]


def centre_with_mask(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-centre a 28×28 drawing as center_by_mass does and carry its mask along by the same
    placement; a blank image is returned as it is, with its mask. (28, 28) float32, (28, 28) bool."""
    image = np.asarray(image, dtype=np.float64).reshape(SIDE, SIDE)
    mask = np.asarray(mask, dtype=bool).reshape(SIDE, SIDE)
    return apply_placement(find_placement(image), image, mask)


def _checked_grey(img: np.ndarray) -> np.ndarray:
    img = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {img.shape}")
    return img


def _resized_crop(img: np.ndarray, r0: int, c0: int, h: int, w: int, new_h: int, new_w: int) -> np.ndarray:
    return np.clip(area_resize(img[r0 : r0 + h, c0 : c0 + w], new_h, new_w), 0.0, 1.0)


def to_grey(img: np.ndarray) -> np.ndarray:
    """Any image array -> 2-D float grey levels in [0, 1], 0 = black.

    Accepts (H, W) or (H, W, 1|3|4); uint8/uint16 are scaled by their range, floats are clipped
    to [0, 1], booleans map to {0, 1}. Colour uses ITU-R BT.601 luma; an alpha channel is
    composited over white (a transparent background reads as paper).
    """
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / float(np.iinfo(a.dtype).max)
    else:
        a = np.clip(a.astype(np.float64), 0.0, 1.0)
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        if a.shape[2] == 1:
            a = a[..., 0]
        else:
            alpha = a[..., 3] if a.shape[2] == 4 else 1.0
            luma = a[..., :3] @ np.array([0.299, 0.587, 0.114])
            a = alpha * luma + (1.0 - alpha) * 1.0
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"expected a grey (H, W) or colour (H, W, 3|4) image, got shape {np.shape(img)}")
    return a


def center_by_mass_in(img: np.ndarray, side: int) -> np.ndarray:
    """center_by_mass for a side × side field (an imported dataset of another size): the box and the
    centre scale with the side (BOX · side / SIDE, side / 2), so side = SIDE gives center_by_mass's image.
    Returns (side, side) float32 in [0, 1]."""
    if side == SIDE:
        return center_by_mass(img)
    img = _checked_grey(img)
    out = np.zeros((side, side), dtype=np.float32)
    ink = img > INK_THRESHOLD
    if not ink.any():
        return out
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    r0, c0 = int(rows[0]), int(cols[0])
    h, w = int(rows[-1]) - r0 + 1, int(cols[-1]) - c0 + 1
    scale = max(1, round(BOX * side / SIDE)) / max(h, w)
    new_h, new_w = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    digit = _resized_crop(img, r0, c0, h, w, new_h, new_w)
    com_r, com_c = centre_of_mass(digit)  # moved to the field's centre: LeCun et al. 1998, §III-A
    top, left = int(np.floor(side / 2 - com_r + 0.5)), int(np.floor(side / 2 - com_c + 0.5))
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + new_h, side), min(left + new_w, side)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = digit[r0 - top : r1 - top, c0 - left : c1 - left]
    return out


def to_mnist_format(
    grey: np.ndarray, invert_if_light_background: bool = True, noise_floor: float = 0.1, side: int = SIDE
) -> np.ndarray:
    """A picture of a digit of any size and format -> MNIST-style (side, side) float32 in [0, 1] (28 by default).

    1. to grey levels (to_grey);
    2. if the background (median of the border pixels) is light, invert, so ink is bright as in MNIST;
    3. subtract the background level and stretch so the brightest ink is 1 (photos of paper are not black),
       then shrink levels below `noise_floor` to 0 (paper grain and JPEG ringing would otherwise
       count as ink and stretch the bounding box);
    4. center_by_mass: fit 20×20, centre of mass at (14, 14) (for another side: center_by_mass_in).
    """
    a = to_grey(grey)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if invert_if_light_background and np.median(border) > 0.5:
        a = 1.0 - a
        border = 1.0 - border
    background = float(np.median(border))
    peak = float(a.max())
    if peak - background <= INK_THRESHOLD:
        return np.zeros((side, side), dtype=np.float32)
    a = np.clip((a - background) / (peak - background), 0.0, 1.0)
    a = np.clip((a - noise_floor) / (1.0 - noise_floor), 0.0, 1.0)
    return center_by_mass_in(a, side)
