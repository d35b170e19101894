"""How a mask is shown: missing pixels (mask True, the convention of lvm_studio.core.masks) tinted
and hatched in orange with an outline, so that a hidden pixel is never mistaken for black paper or
ink. The canvas paints with it, MaskedDigitImage outlines the filled-in pixels of a completion,
and masked_digit_qimage renders the masked input for saving.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QRect, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QTransform

from lvm_studio.core import masks
from lvm_studio.core.images import SIDE
from lvm_studio.ui.widgets.digit_image import DigitImage, to_grey_u8

# the look of missing pixels: a translucent orange tint, an orange hatch and an outline
MISSING_TINT = QColor(255, 140, 0, 70)
MISSING_HATCH = QColor(255, 150, 30, 210)
MISSING_EDGE = QColor(255, 150, 30)
GRID_COLOUR = QColor(120, 120, 120, 90)


class MaskOverlay:
    """The cached geometry that shows a mask: clip path of missing pixels and their outline, in
    pixel units (one image pixel = 1 × 1). Rebuilt only when the mask changes."""

    def __init__(self):
        self._mask = None
        self.path = QPainterPath()
        self.lines: list[QLineF] = []

    def update(self, mask: np.ndarray) -> None:
        if self._mask is not None and np.array_equal(self._mask, mask):
            return
        self._mask = np.array(mask, dtype=bool, copy=True)
        path = QPainterPath()
        for r, c0, c1 in masks.mask_runs(self._mask):
            path.addRect(QRectF(c0, r, c1 - c0, 1))
        self.path = path
        self.lines = [QLineF(x0, y0, x1, y1) for x0, y0, x1, y1 in masks.mask_outline(self._mask)]

    def paint(
        self, p: QPainter, target: QRectF, tint: bool = True, hatch: bool = True, edge_width: float = 2.0
    ) -> None:
        """Draw onto `target`, the rectangle the 28 × 28 image occupies."""
        if self._mask is None or not self._mask.any():
            return
        scale = target.width() / SIDE
        to_screen = QTransform(scale, 0, 0, scale, target.x(), target.y())
        p.save()
        if tint or hatch:
            # in screen coordinates, so that the hatch keeps its spacing at any zoom
            p.setClipPath(to_screen.map(self.path))
            if tint:
                p.fillRect(target, MISSING_TINT)
            if hatch:
                p.fillRect(target, QBrush(MISSING_HATCH, Qt.BrushStyle.BDiagPattern))
            p.setClipping(False)
        p.setTransform(to_screen, True)
        pen = QPen(MISSING_EDGE, edge_width)
        pen.setCosmetic(True)  # width in screen pixels, whatever the scale
        p.setPen(pen)
        p.drawLines(self.lines)
        p.restore()


def masked_digit_qimage(image: np.ndarray, mask: np.ndarray, scale: int = 10, grid: bool = False) -> QImage:
    """The image as the canvas shows it (missing pixels hatched in orange), scale × scale per pixel."""
    side = SIDE * int(scale)
    out = QImage(side, side, QImage.Format.Format_RGB32)
    out.fill(QColor(0, 0, 0))
    overlay = MaskOverlay()
    overlay.update(mask)
    p = QPainter(out)
    target = QRectF(0, 0, side, side)
    paint_grey(p, target, image, grid)
    overlay.paint(p, target)
    p.end()
    return out


def paint_grey(p: QPainter, target: QRectF, image: np.ndarray, grid: bool) -> None:
    a = to_grey_u8(image)
    qimg = QImage(a.data, SIDE, SIDE, SIDE, QImage.Format.Format_Grayscale8)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
    p.drawImage(target, qimg)
    if grid:
        # one-pixel rectangles: several times faster than drawLines in the raster engine
        cell = target.width() / SIDE
        x0, y0, side = int(round(target.x())), int(round(target.y())), int(round(target.width()))
        for i in range(1, SIDE):
            k = int(round(i * cell))
            p.fillRect(QRect(x0 + k, y0, 1, side), GRID_COLOUR)
            p.fillRect(QRect(x0, y0 + k, side, 1), GRID_COLOUR)


class MaskedDigitImage(DigitImage):
    """A DigitImage with a mask's outline on top (which pixels were filled in), and colour images."""

    def __init__(self, parent=None, min_side: int = 96, hint_side: int = 160, caption: str = ""):
        super().__init__(parent, min_side=min_side, hint_side=hint_side, caption=caption)
        self._overlay = MaskOverlay()
        self._show_mask = False
        self._full_caption = caption  # painted elided to the width (a narrow dock never clips it mid-letter)
        self._elide_caption()

    def set_caption(self, text: str) -> None:
        self._full_caption = text
        self._elide_caption()
        self.update()

    def caption(self) -> str:
        return self._full_caption

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide_caption()

    def _elide_caption(self) -> None:
        text = self._full_caption
        self._caption = (
            self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, self.width()) or "…" if text else ""
        )

    def set_mask(self, mask: np.ndarray | None) -> None:
        self._show_mask = mask is not None
        if mask is not None:
            self._overlay.update(mask)
        self.update()

    def set_rgb(self, rgb: np.ndarray | None) -> None:
        """An (H, W, 3) uint8 colour image (e.g. an uncertainty map through a colour map)."""
        if rgb is None:
            self.set_image(None)
            return
        a = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        h, w = a.shape[:2]
        self._array = a
        self._image = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self.update()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self._show_mask and not self._image.isNull() and self._image.width() == SIDE:
            p = QPainter(self)
            self._overlay.paint(p, self.target_rect(), tint=False, hatch=False, edge_width=1.5)
            p.end()
