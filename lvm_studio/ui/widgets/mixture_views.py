"""Views the digit clusters panel draws with (the colours themselves: ui.widgets.style).

ComponentGallery: each component's mean image with sample images below, under a coloured header.
ConfusionMatrixView: counts of labels (rows) against clusters (columns), shaded by row fraction,
    from the background colour (no points) to the accent colour (the whole row).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from lvm_studio.core.images import image_side
from lvm_studio.ui.widgets.digit_image import to_grey_u8
from lvm_studio.ui.widgets.style import ACCENT, HIGHLIGHT

NO_COLOUR = QColor(90, 90, 90)  # header of a component given no colour
EMPTY_CELL = QColor(30, 34, 40)  # a confusion cell with no points; a full one is ACCENT
MATCHED = QColor(*HIGHLIGHT)  # outline of a matched (label, component) cell


class ComponentGallery(QWidget):
    """Columns of digit images, one per component: a coloured header with a caption, the mean,
    then samples. Wraps into bands when there are many components; aspect kept, nearest neighbour."""

    def __init__(self, parent=None, min_height: int = 160, frame_first: bool = True):
        super().__init__(parent)
        self.frame_first = frame_first  # row 0 is the mean, framed; False: every row is a sample
        self._images: np.ndarray | None = None  # (K, R, SIDE, SIDE) uint8
        self._colours: np.ndarray | None = None
        self._captions: list[str] = []
        self._qimages: list[list[QImage]] = []
        self._message = ""
        self.setMinimumHeight(min_height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(560, 360)

    def set_message(self, text: str) -> None:
        """Show a line of text instead of images."""
        self._images, self._qimages, self._message = None, [], text
        self.update()

    def set_components(self, images, colours=None, captions=None) -> None:
        """images (K, R, N_PIXELS) or (K, R, SIDE, SIDE) in [0, 1]: row 0 the mean, rows 1.. samples."""
        a = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
        k, r = a.shape[:2]
        side = a.shape[-1] if a.ndim == 4 else image_side(a.shape[-1])  # SIDE for MNIST
        self._images = to_grey_u8(a.reshape(k * r * side, side)).reshape(k, r, side, side)  # 2-D for to_grey_u8
        self._colours = None if colours is None else np.asarray(colours, dtype=np.uint8)
        self._captions = list(captions) if captions is not None else [str(i + 1) for i in range(k)]
        self._qimages = [
            [
                QImage(
                    np.ascontiguousarray(self._images[i, j]).data, side, side, side, QImage.Format.Format_Grayscale8
                ).copy()
                for j in range(r)
            ]
            for i in range(k)
        ]
        self._message = ""
        self.update()

    def images(self) -> np.ndarray | None:
        """The shown images, (K, R, SIDE, SIDE) uint8."""
        return None if self._images is None else self._images.copy()

    def layout_for(self, w: float, h: float) -> tuple[int, float]:
        """(columns per band, cell side in pixels) that make the images largest."""
        k, r = self._images.shape[:2]
        head = 16.0
        best = (k, 0.0)
        for cols in range(1, k + 1):
            bands = -(-k // cols)
            cell = min((w - 2) / cols, (h - bands * (head + 6)) / (bands * r))
            if cell > best[1]:
                best = (cols, cell)
        return best

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        if self._images is None:
            if self._message:
                p.setPen(self.palette().placeholderText().color())
                p.drawText(
                    QRectF(self.rect()).adjusted(8, 8, -8, -8),
                    Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                    self._message,
                )
            p.end()
            return
        k, r = self._images.shape[:2]
        cols, cell = self.layout_for(self.width(), self.height())
        cell = max(4.0, float(int(cell)))
        head = 16.0
        gap = 2.0
        band_h = head + r * cell + 6
        x0 = max(0.0, (self.width() - cols * cell) / 2)
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, min(9.0, cell / 6.5)))
        p.setFont(font)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        for i in range(k):
            band, col = divmod(i, cols)
            x, y = x0 + col * cell, band * band_h
            colour = QColor(*[int(v) for v in self._colours[i]]) if self._colours is not None else NO_COLOUR
            p.fillRect(QRectF(x + 1, y + 1, cell - 2, head - 3), colour)
            p.setPen(QColor(0, 0, 0) if colour.lightness() > 120 else QColor(255, 255, 255))
            p.drawText(QRectF(x + 1, y + 1, cell - 2, head - 3), Qt.AlignmentFlag.AlignCenter, self._captions[i])
            for j in range(r):
                target = QRectF(x + gap / 2, y + head + j * cell + gap / 2, cell - gap, cell - gap)
                p.drawImage(target, self._qimages[i][j])
                if j == 0 and self.frame_first:  # frame the mean in the component's colour
                    p.setPen(QPen(colour, 2))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawRect(target.adjusted(-1, -1, 1, 1))
        p.end()


class ConfusionMatrixView(QWidget):
    """A labelled table of counts, rows = true labels, columns = clusters; each cell shaded by its
    share of the row, the count written in it when it fits. Column headers carry the cluster colours."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._counts: np.ndarray | None = None
        self._rows: list[str] = []
        self._cols: list[str] = []
        self._col_colours: np.ndarray | None = None
        self._highlight: set[tuple[int, int]] = set()
        self.row_title = "digit"
        self.column_title = "component"
        self.setMinimumSize(220, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(380, 330)

    def set_matrix(self, counts, row_names, col_names, col_colours=None, highlight=()) -> None:
        """counts (R, C); highlight: (row, col) cells to outline (the matched pairs)."""
        self._counts = np.asarray(counts, dtype=np.int64).copy()
        self._rows, self._cols = list(row_names), list(col_names)
        self._col_colours = None if col_colours is None else np.asarray(col_colours, dtype=np.uint8)
        self._highlight = {(int(a), int(b)) for a, b in highlight}
        self.update()

    def clear(self) -> None:
        self._counts = None
        self.update()

    def counts(self) -> np.ndarray | None:
        return None if self._counts is None else self._counts.copy()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        if self._counts is None:
            p.end()
            return
        n_r, n_c = self._counts.shape
        left, top = 46.0, 34.0
        cw = (self.width() - left - 4) / max(1, n_c)
        ch = (self.height() - top - 4) / max(1, n_r)
        text = self.palette().windowText().color()
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, min(9.0, min(cw, ch) / 3.2)))
        p.setFont(font)
        p.setPen(text)
        p.drawText(
            QRectF(0, top - 16, left - 4, 14),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            self.row_title,
        )
        p.drawText(QRectF(left, 0, self.width() - left, top - 18), Qt.AlignmentFlag.AlignCenter, self.column_title)
        row_sum = np.maximum(self._counts.sum(1, keepdims=True), 1)
        frac = self._counts / row_sum  # (R, C)
        empty, accent = EMPTY_CELL.getRgb()[:3], QColor(ACCENT).getRgb()[:3]
        for j in range(n_c):
            r = QRectF(left + j * cw, top - 16, cw, 14)
            if self._col_colours is not None:
                p.fillRect(r.adjusted(1, 0, -1, 0), QColor(*[int(v) for v in self._col_colours[j]]))
                c = QColor(*[int(v) for v in self._col_colours[j]])
                p.setPen(QColor(0, 0, 0) if c.lightness() > 120 else QColor(255, 255, 255))
            else:
                p.setPen(text)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, self._cols[j])
        for i in range(n_r):
            p.setPen(text)
            p.drawText(
                QRectF(0, top + i * ch, left - 4, ch),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                self._rows[i],
            )
            for j in range(n_c):
                cell = QRectF(left + j * cw, top + i * ch, cw, ch)
                f = float(frac[i, j])
                shade = QColor(*(int(e + (a - e) * f) for e, a in zip(empty, accent)))  # empty → accent
                p.fillRect(cell.adjusted(0.5, 0.5, -0.5, -0.5), shade)
                if (i, j) in self._highlight:
                    p.setPen(QPen(MATCHED, 1.5))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawRect(cell.adjusted(1, 1, -1, -1))
                if cw >= 22 and ch >= 12 and self._counts[i, j] > 0:
                    p.setPen(QColor(10, 10, 10) if f > 0.55 else QColor(200, 204, 212))
                    p.drawText(cell, Qt.AlignmentFlag.AlignCenter, str(int(self._counts[i, j])))
        p.end()
