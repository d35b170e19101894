"""The array maths behind the latent explorer's pictures, without Qt (docs/architecture.md, §3).

- The latent map's point cloud: which device pixels each point's disc covers, and the raster of
  filled discs with a darker rim as one uint32 ARGB array (PointCloudItem in ui/latent/map_view.py
  wraps it in a QImage), so 10,000 points cost a few numpy operations instead of 10,000 brushes.
- The view plane: two latent dimensions, or two principal components through the current z;
  projecting codes onto it, the grid of codes behind the decoded manifold, and tiling its digits.
- The posterior view's heat map: p(z|x) (or log p(z|x)) as an image with its levels and extent,
  and the importance samples' marker sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lvm_studio.core.clustering import PCA
from lvm_studio.core.images import image_side

OPAQUE = np.uint32(0xFF000000)
RIM_SHADE = 0.55  # a point's rim is its fill colour times this


# --- the point cloud raster -------------------------------------------------------------------


def disc_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) int64 offsets of the pixels within `radius` of a pixel, dx² + dy² ≤ radius²."""
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = dx**2 + dy**2 <= radius**2 + 1e-9
    return dy[keep].astype(np.int64), dx[keep].astype(np.int64)


def pack_argb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colours -> (N,) opaque 0xAARRGGBB uint32 (QImage.Format_ARGB32's layout)."""
    rgb = np.asarray(rgb, dtype=np.uint32)
    return OPAQUE | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


def unpack_rgb(argb: np.ndarray) -> np.ndarray:
    """(N,) 0xAARRGGBB -> (N, 3) uint8."""
    f = np.asarray(argb, dtype=np.uint32)
    return np.stack([(f >> 16) & 255, (f >> 8) & 255, f & 255], 1).astype(np.uint8)


def rim_colours(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 fill colours -> their darker rims, (N, 3) uint8."""
    return (np.asarray(rgb, dtype=np.uint32) * RIM_SHADE).astype(np.uint8)


def drawing_order(n: int, seed: int = 0) -> np.ndarray:
    """A fixed random order of n points, so that no class is always drawn on top. (n,) int64."""
    return np.random.default_rng(seed).permutation(n)


@dataclass(frozen=True)
class SplatGeometry:
    """Which pixel each disc element covers and where its colour is.

    pix: (M,) flat pixel indices (row · width + column); src: (M,) indices into the palette
    (rim of point i at 2i, fill at 2i + 1). Elements come point after point in drawing order, the
    rim disc before the fill disc, so writing them in order leaves the last point on top.
    """

    pix: np.ndarray
    src: np.ndarray
    width: int
    height: int


def splat_geometry(
    px: np.ndarray, py: np.ndarray, order: np.ndarray, radius: float, width: int, height: int
) -> SplatGeometry:
    """Discs of `radius` device pixels (fill) and radius + 1 (rim) around each point.

    px, py: (N,) device-pixel coordinates of the points (x to the right, y down), already in
    drawing order; order: (N,) the point index of each, for the palette.
    """
    ix, iy = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)  # (N,)
    pad = int(np.ceil(radius)) + 2
    vis = (ix > -pad) & (ix < width + pad) & (iy > -pad) & (iy < height + pad)
    ix, iy, pts = ix[vis], iy[vis], np.asarray(order)[vis]
    rdy, rdx = disc_offsets(radius + 1.0)
    fdy, fdx = disc_offsets(radius)
    dy = np.concatenate([rdy, fdy])
    dx = np.concatenate([rdx, fdx])
    is_fill = np.concatenate([np.zeros(len(rdy), np.int64), np.ones(len(fdy), np.int64)])
    X = ix[:, None] + dx[None, :]  # (n, offsets)
    Y = iy[:, None] + dy[None, :]
    ok = (X >= 0) & (X < width) & (Y >= 0) & (Y < height)
    src = 2 * pts[:, None] + is_fill[None, :]  # (n, offsets)
    return SplatGeometry(pix=(Y * width + X)[ok], src=src[ok], width=int(width), height=int(height))


def rasterise(geometry: SplatGeometry, fill: np.ndarray, rim: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The discs as a (height · width,) uint32 ARGB raster, transparent (0) elsewhere.

    fill, rim: (N,) packed colours (pack_argb). `out`, if of the right size, is reused.
    """
    size = geometry.width * geometry.height
    if out is None or out.size != size:
        out = np.zeros(size, dtype=np.uint32)
    else:
        out.fill(0)
    palette = np.stack([rim, fill], 1).reshape(-1)  # (2N,): rim, fill of each point
    out[geometry.pix] = palette[geometry.src]  # numpy assigns in order: the last write wins
    return out


def rasterise_points(
    xy: np.ndarray, rgb: np.ndarray, radius: float, width: int, height: int, seed: int = 0
) -> np.ndarray:
    """Points at device pixels xy (N, 2) with colours rgb (N, 3) -> (height, width) uint32 ARGB.

    The whole pipeline of the latent map's raster in one call (for tests and benchmarks).
    """
    xy = np.asarray(xy, dtype=np.float64)
    order = drawing_order(xy.shape[0], seed)
    geo = splat_geometry(xy[order, 0], xy[order, 1], order, radius, width, height)
    return rasterise(geo, pack_argb(rgb), pack_argb(rim_colours(rgb))).reshape(height, width)


# --- the view plane ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewPlane:
    """The plane z = origin + u e_a + v e_b through the latent space that the map shows as (u, v)."""

    origin: np.ndarray  # (latent,)
    e_a: np.ndarray  # (latent,)
    e_b: np.ndarray  # (latent,)

    def to_z(self, u, v) -> np.ndarray:
        """View point(s) (u, v) -> z, float32; u and v broadcast (a trailing latent axis is added)."""
        u, v = np.asarray(u, dtype=np.float64)[..., None], np.asarray(v, dtype=np.float64)[..., None]
        return (self.origin + u * self.e_a + v * self.e_b).astype(np.float32)


def dims_plane(z: np.ndarray, a: int, b: int) -> ViewPlane:
    """Latent dimensions a and b vary, every other dimension stays at z."""
    z = np.asarray(z, dtype=np.float64)
    d = z.shape[0]
    origin = z.copy()
    origin[a] = 0.0
    origin[b] = 0.0
    return ViewPlane(origin=origin, e_a=np.eye(d)[a], e_b=np.eye(d)[b])


def pca_plane(z: np.ndarray, projection: PCA, a: int, b: int) -> ViewPlane:
    """Principal components a and b through z: origin is z minus its components along them."""
    z = np.asarray(z, dtype=np.float64)
    comps = projection.components.double().cpu().numpy()  # (n_components, latent)
    mean = projection.mean.double().cpu().numpy()  # (latent,)
    e_a, e_b = comps[a], comps[b]
    rel = z - mean
    return ViewPlane(origin=z - e_a * (rel @ e_a) - e_b * (rel @ e_b), e_a=e_a, e_b=e_b)


def project_codes(z: np.ndarray, a: int, b: int, projection: PCA | None = None) -> np.ndarray:
    """Codes (N, latent) -> view coordinates (N, 2): dimensions a, b, or components a, b of `projection`."""
    z = np.asarray(z)
    if projection is None:
        return np.stack([z[:, a], z[:, b]], 1)
    if projection.mean.shape[0] != z.shape[1]:
        raise ValueError(f"a projection of {projection.mean.shape[0]}-D codes cannot take {z.shape[1]}-D ones")
    c = projection.transform(z).cpu().numpy()  # (N, n_components)
    return np.stack([c[:, a], c[:, b]], 1)


def manifold_codes(plane: ViewPlane, x_range, y_range, n: int) -> np.ndarray:
    """Codes at the centres of n × n tiles over the view rectangle, (n, n, latent) float32,
    row 0 at the top (largest v), column 0 on the left."""
    (x0, x1), (y0, y1) = x_range, y_range
    u = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n  # tile centres, left to right
    v = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n  # top to bottom
    return plane.to_z(u[None, :], v[:, None])


def tile_manifold(images: np.ndarray) -> np.ndarray:
    """(rows, cols, N_PIXELS) digits with row 0 at the top -> one (rows·SIDE, cols·SIDE) image with
    row 0 at the BOTTOM of the array, as an image item whose y axis points up shows it."""
    rows, cols = images.shape[:2]
    side = image_side(images.shape[2])  # SIDE for MNIST, an imported dataset's side otherwise
    tiles = np.asarray(images).reshape(rows, cols, side, side).transpose(0, 2, 1, 3).reshape(rows * side, cols * side)
    return np.ascontiguousarray(np.flipud(tiles))


def fit_range(xy: np.ndarray, lo: float = 0.2, hi: float = 99.8, pad: float = 0.05):
    """((x0, x1), (y0, y1)) holding the points between the lo and hi percentiles, plus pad × the
    larger side on every side (a few outliers do not shrink the picture)."""
    a, b = np.percentile(xy, lo, axis=0), np.percentile(xy, hi, axis=0)
    p = pad * float((b - a).max())
    return (float(a[0] - p), float(b[0] + p)), (float(a[1] - p), float(b[1] + p))


def nearest_point(xy: np.ndarray, u: float, v: float, pixel_w: float, pixel_h: float, max_pixels: float) -> int:
    """Index of the point nearest to (u, v) measured in screen pixels (view units / pixel size),
    or −1 when none lies within max_pixels."""
    if xy.shape[0] == 0:
        return -1
    d2 = ((xy[:, 0] - u) / pixel_w) ** 2 + ((xy[:, 1] - v) / pixel_h) ** 2  # (N,)
    i = int(np.argmin(d2))
    return i if d2[i] <= max_pixels**2 else -1


# --- the posterior view -----------------------------------------------------------------------

LOG_HEAT_FLOOR = 12.0  # the log-density colouring shows this many nats below the peak


@dataclass(frozen=True)
class HeatImage:
    """A heat map ready to draw: image[i, j] for z = (z1[i], z2[j]) (column-major for the plot),
    its colour levels, and the rectangle (x0, y0, width, height) its cells cover."""

    image: np.ndarray  # (n1, n2) float32
    levels: tuple[float, float]
    rect: tuple[float, float, float, float]


def grid_rect(z1: np.ndarray, z2: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, width, height) covered by cells centred on the regular grids z1, z2 (from cell edge to edge)."""
    z1, z2 = np.asarray(z1, dtype=np.float64), np.asarray(z2, dtype=np.float64)
    d1, d2 = float(z1[1] - z1[0]), float(z2[1] - z2[0])
    return float(z1[0] - d1 / 2), float(z2[0] - d2 / 2), d1 * len(z1), d2 * len(z2)


def heat_image(log_post: np.ndarray, z1: np.ndarray, z2: np.ndarray, log_scale: bool = False) -> HeatImage:
    """p(z|x) / max p(z|x) in [0, 1], or log p(z|x) − max in [−LOG_HEAT_FLOOR, 0] (log_scale)."""
    lp = np.asarray(log_post, dtype=np.float64)  # (n1, n2)
    peak = float(lp.max())
    if log_scale:
        img, levels = np.clip(lp - peak, -LOG_HEAT_FLOOR, 0.0), (-LOG_HEAT_FLOOR, 0.0)
    else:
        img, levels = np.exp(lp - peak), (0.0, 1.0)
    return HeatImage(image=np.ascontiguousarray(img, dtype=np.float32), levels=levels, rect=grid_rect(z1, z2))


def sample_sizes(w: np.ndarray, typical: float = 9.0, lo: float = 2.0, hi: float = 30.0) -> np.ndarray:
    """Marker diameters for importance samples with normalised weights w̃ (k,): area ∝ k w̃, so a
    sample of average weight (w̃ = 1/k) is `typical` pixels across; clipped to [lo, hi]."""
    w = np.asarray(w, dtype=np.float64)
    return np.clip(typical * np.sqrt(len(w) * w), lo, hi)
