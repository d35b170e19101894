"""The latent map's plot items: the rasterised point cloud and the cached legends.

PointCloudItem draws many points as one image per view; the raster itself (which pixels each
disc covers, the ARGB buffer) is core.latent_views, so tests and benchmarks run it without Qt.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from lvm_studio.core import latent_views as V

DEFAULT_GREY = 200  # points without colours yet


def _transform_key(tr, dev, width: int, height: int, dpr: float, version: int) -> tuple:
    return (
        round(tr.m11(), 9),
        round(tr.m22(), 9),
        round(tr.m21(), 9),
        round(tr.m12(), 9),
        round(tr.dx(), 4),
        round(tr.dy(), 4),
        dev.x(),
        dev.y(),
        width,
        height,
        dpr,
        version,
    )


class PointCloudItem(pg.GraphicsObject):
    """Many points drawn as one rasterised image: filled discs with a darker rim.

    Colours are (N, 3) uint8. The raster is redone only when the view transform, the size, the
    points or the colours change; `rasterised` and `painted` count both (for benchmarks).
    """

    def __init__(self, radius: float = 2.6, seed: int = 0):
        super().__init__()
        self.radius = radius
        self._xy = np.zeros((0, 2))
        self._fill = np.zeros(0, dtype=np.uint32)
        self._rim = np.zeros(0, dtype=np.uint32)
        self._order = np.zeros(0, dtype=np.int64)
        self._seed = seed
        self._version = 0  # points, radius or colours changed
        self._geo_version = 0  # points or radius changed
        self._geo_key = None
        self._geo: V.SplatGeometry | None = None
        self._cache_key = None
        self._cache_img: QImage | None = None
        self._buf = None
        self._bounds = QRectF()
        self.rasterised = 0
        self.painted = 0

    # --- data --------------------------------------------------------------------------
    def set_points(self, xy: np.ndarray) -> None:
        xy = np.asarray(xy, dtype=np.float64)
        if xy.shape[0] != self._xy.shape[0]:
            self._order = V.drawing_order(xy.shape[0], self._seed)
            if self._fill.shape[0] != xy.shape[0]:
                self.set_colours(np.full((xy.shape[0], 3), DEFAULT_GREY, dtype=np.uint8), update=False)
        self._xy = xy
        self.prepareGeometryChange()
        if xy.shape[0]:
            lo, hi = xy.min(0), xy.max(0)
            self._bounds = QRectF(lo[0], lo[1], max(hi[0] - lo[0], 1e-9), max(hi[1] - lo[1], 1e-9))
        else:
            self._bounds = QRectF()
        self._version += 1
        self._geo_version += 1
        self.informViewBoundsChanged()
        self.update()

    def set_colours(self, rgb: np.ndarray, update: bool = True) -> None:
        self._fill = V.pack_argb(rgb)
        self._rim = V.pack_argb(V.rim_colours(rgb))
        self._version += 1
        if update:
            self.update()

    def set_radius(self, radius: float) -> None:
        self.radius = float(radius)
        self._version += 1
        self._geo_version += 1
        self.update()

    def points(self) -> np.ndarray:
        return self._xy

    def colours(self) -> np.ndarray:
        """(N, 3) uint8 fill colours."""
        return V.unpack_rgb(self._fill)

    # --- QGraphicsItem -------------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        return QRectF(self._bounds)

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        if self._xy.shape[0] == 0:
            return (None, None)
        return (float(self._xy[:, ax].min()), float(self._xy[:, ax].max()))

    def pixelPadding(self) -> float:
        return self.radius + 1

    def viewRangeChanged(self):
        self.update()

    def paint(self, p: QPainter, *args) -> None:
        vb = self.getViewBox()
        if vb is None or self._xy.shape[0] == 0:
            return
        tr = p.transform()  # item (view) coordinates -> device pixels
        dev = tr.mapRect(vb.viewRect()).toAlignedRect().intersected(p.viewport())
        if dev.isEmpty():
            return
        dpr = p.device().devicePixelRatioF() if p.device() is not None else 1.0
        key = _transform_key(tr, dev, dev.width(), dev.height(), dpr, self._version)
        if key != self._cache_key:
            self._cache_img = self._rasterise(tr, dev, dpr)
            self._cache_key = key
        p.save()
        p.resetTransform()
        p.drawImage(QPointF(dev.x(), dev.y()), self._cache_img)
        p.restore()
        self.painted += 1

    def _rasterise(self, tr, dev, dpr: float) -> QImage:
        W, H = int(round(dev.width() * dpr)), int(round(dev.height() * dpr))
        geo_key = _transform_key(tr, dev, W, H, dpr, self._geo_version)
        if geo_key != self._geo_key:  # the view or the points moved: recompute which pixels each disc covers
            order = self._order
            x, y = self._xy[order, 0], self._xy[order, 1]
            px = ((tr.m11() * x + tr.m21() * y + tr.dx()) - dev.x()) * dpr  # (N,) device pixels
            py = ((tr.m12() * x + tr.m22() * y + tr.dy()) - dev.y()) * dpr
            self._geo = V.splat_geometry(px, py, order, self.radius * dpr, W, H)
            self._geo_key = geo_key
        self._buf = V.rasterise(self._geo, self._fill, self._rim, out=self._buf)
        img = QImage(self._buf.data, W, H, 4 * W, QImage.Format.Format_ARGB32).copy()
        img.setDevicePixelRatio(dpr)
        self.rasterised += 1
        return img


class LegendCache:
    """One pg.LegendItem per set of (colour, name) entries, built once (building one costs ~30 ms);
    show(entries) hides the previous legend and shows the one for these entries."""

    MAX_ENTRIES = 20

    def __init__(self, parent_item, text_colour, background):
        self._parent = parent_item
        self._text_colour = text_colour
        self._background = background
        self._legends: dict[tuple, pg.LegendItem] = {}
        self._key = None
        self.current = self._legend_for(())

    def _legend_for(self, key: tuple) -> pg.LegendItem:
        legend = self._legends.get(key)
        if legend is None:
            legend = pg.LegendItem(offset=(-8, 8), labelTextColor=self._text_colour, brush=self._background)
            legend.setParentItem(self._parent)
            legend.samples = []  # keep the sample items alive with their legend
            for colour, name in key[: self.MAX_ENTRIES]:
                item = pg.ScatterPlotItem(size=9, pen=pg.mkPen(QColor(*colour).darker(180)), brush=pg.mkBrush(*colour))
                legend.samples.append(item)
                legend.addItem(item, name)
            legend.setVisible(False)
            self._legends[key] = legend
        return legend

    def show(self, entries) -> pg.LegendItem:
        key = tuple(entries)
        if key != self._key:
            self._key = key
            self.current.setVisible(False)
            self.current = self._legend_for(key)
            self.current.setVisible(bool(entries))
        return self.current
