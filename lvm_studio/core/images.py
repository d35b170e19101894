"""Turning any grey picture of a digit into an MNIST-style 28×28 image (numpy only).

MNIST's convention (LeCun et al. 1998, §III-A; yann.lecun.com/exdb/mnist): the digit is
scaled, aspect ratio preserved, to fit a 20×20 box (anti-aliasing gives grey levels), then
placed in a 28×28 field by translating it so that its centre of mass lies at the centre.
Measured on the shipped training set, the centre of mass sits in [13.5, 14.5] on both axes
(0-based pixel indices, mean 14.0): an integer translation that puts it nearest (14, 14).
We do the same. Images are floats in [0, 1] with bright ink on a dark background.

File decoding (PNG, JPEG, ...) needs an image codec, so it lives in the UI layer
(lvm_studio/ui/image_io.py, via QImage); this module is plain array maths.
"""

from __future__ import annotations

import numpy as np

SIDE = 28
BOX = 20  # the digit's bounding box is scaled to fit BOX × BOX
CENTRE = 14.0  # target centre of mass (row, col), 0-based, as measured on MNIST
INK_THRESHOLD = 1e-3  # grey levels above this count as ink when finding the bounding box


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: output cell i averages the input cells it overlaps, by overlap length."""
    edges_in = np.arange(n_in + 1, dtype=np.float64)
    edges_out = np.linspace(0.0, n_in, n_out + 1)
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])  # (n_out, n_in)
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    w = np.clip(hi - lo, 0.0, None)
    return w / w.sum(1, keepdims=True)


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


def center_by_mass(img: np.ndarray) -> np.ndarray:
    """MNIST-normalise a digit image of any size (bright ink on dark, values in [0, 1]).

    Crops to the ink's bounding box, scales it (aspect preserved, area averaging) so that the
    longer side is 20 pixels, and pastes it into a 28×28 black field with an integer shift that
    puts the centre of mass nearest (14, 14). Ink shifted past the border is clipped (only a
    digit with nearly all its mass at one edge loses any). No ink at all gives a black image.
    Returns (28, 28) float32 in [0, 1].
    """
    img = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {img.shape}")
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    ink = img > INK_THRESHOLD
    if not ink.any():
        return out
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    crop = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    digit = np.clip(area_resize(crop, new_h, new_w), 0.0, 1.0)
    com_r, com_c = centre_of_mass(digit)
    top, left = int(np.floor(CENTRE - com_r + 0.5)), int(np.floor(CENTRE - com_c + 0.5))
    # paste with clipping: the source window that lands inside the 28×28 field
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + new_h, SIDE), min(left + new_w, SIDE)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = digit[r0 - top : r1 - top, c0 - left : c1 - left]
    return out


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


def to_mnist_format(grey: np.ndarray, invert_if_light_background: bool = True, noise_floor: float = 0.1) -> np.ndarray:
    """A picture of a digit of any size and format -> MNIST-style (28, 28) float32 in [0, 1].

    1. to grey levels (to_grey);
    2. if the background (median of the border pixels) is light, invert, so ink is bright as in MNIST;
    3. subtract the background level and stretch so the brightest ink is 1 (photos of paper are not black),
       then shrink levels below `noise_floor` to 0 (paper grain and JPEG ringing would otherwise
       count as ink and stretch the bounding box);
    4. center_by_mass: fit 20×20, centre of mass at (14, 14).
    """
    a = to_grey(grey)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if invert_if_light_background and np.median(border) > 0.5:
        a = 1.0 - a
        border = 1.0 - border
    background = float(np.median(border))
    peak = float(a.max())
    if peak - background <= INK_THRESHOLD:
        return np.zeros((SIDE, SIDE), dtype=np.float32)
    a = np.clip((a - background) / (peak - background), 0.0, 1.0)
    a = np.clip((a - noise_floor) / (1.0 - noise_floor), 0.0, 1.0)
    return center_by_mass(a)
