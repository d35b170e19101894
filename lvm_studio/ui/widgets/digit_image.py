"""Grey digit images: conversion to uint8 and QImage, a crisp scaled view, PNG export, a draw pad.

DigitImage: crisp grey digits (nearest-neighbour, aspect kept), cheap to repaint.
DrawPad: draw a digit with the mouse on a SIDE × SIDE (28 × 28) grid.
"""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from lvm_studio.core.images import SIDE, image_side


def to_grey_u8(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """Values in [0, 1] (any float array or tensor) -> C-contiguous uint8 0..255, same 2-D shape."""
    a = img.detach().cpu().numpy() if torch.is_tensor(img) else np.asarray(img)
    if a.ndim == 1:  # a flat square image: N_PIXELS for MNIST, side² for an imported dataset
        a = a.reshape(image_side(a.size), -1)
    return np.ascontiguousarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8))


def grey_qimage(img: np.ndarray | torch.Tensor) -> QImage:
    """A QImage (Grayscale8) that owns its pixels: ink bright on black, as in MNIST figures."""
    a = to_grey_u8(img)
    h, w = a.shape
    return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


class DigitImage(QWidget):
    """Paints a grey image (a SIDE × SIDE digit or a tiled grid) scaled with nearest neighbour, aspect kept.

    `painted` counts paint events (the latency bench waits for it to move).
    """

    clicked = Signal()

    def __init__(self, parent=None, min_side: int = 112, hint_side: int = 280, caption: str = ""):
        super().__init__(parent)
        self._image = QImage()
        self._array: np.ndarray | None = None
        self._caption = caption
        self._hint = hint_side
        self.painted = 0
        self.setMinimumSize(min_side, min_side)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    def sizeHint(self) -> QSize:
        if self._image.isNull() or self._image.width() == self._image.height():
            return QSize(self._hint, self._hint + (18 if self._caption else 0))
        scale = self._hint / max(self._image.width(), self._image.height())
        return QSize(int(self._image.width() * scale), int(self._image.height() * scale))

    def set_image(self, img: np.ndarray | torch.Tensor | None) -> None:
        if img is None:
            self._image, self._array = QImage(), None
        else:
            self._array = to_grey_u8(img)
            h, w = self._array.shape
            # shares self._array's memory (no copy); both are replaced together
            self._image = QImage(self._array.data, w, h, w, QImage.Format.Format_Grayscale8)
        self.update()

    def set_caption(self, text: str) -> None:
        self._caption = text
        self.update()

    def image_array(self) -> np.ndarray | None:
        """The shown image as uint8 (H, W), or None."""
        return None if self._array is None else self._array.copy()

    def target_rect(self) -> QRectF:
        cap = 18 if self._caption else 0
        w, h = self.width(), self.height() - cap
        if self._image.isNull():
            return QRectF(0, 0, w, h)
        iw, ih = self._image.width(), self._image.height()
        scale = min(w / iw, h / ih)
        if scale >= 1:
            scale = float(int(scale)) if scale >= 2 else scale  # whole multiples keep pixels even
        tw, th = iw * scale, ih * scale
        return QRectF((w - tw) / 2, (h - th) / 2, tw, th)

    def caption(self) -> str:
        return self._caption

    def caption_shown(self) -> str:
        """The caption elided to the widget's width: a narrow dock shows "completion, ste…", never a
        word cut in half or a caption that widens the dock."""
        return self.fontMetrics().elidedText(self._caption, Qt.TextElideMode.ElideRight, max(0, self.width() - 4))

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        if not self._image.isNull():
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            p.drawImage(self.target_rect(), self._image)
        if self._caption:
            p.setPen(self.palette().windowText().color())
            p.drawText(
                QRectF(0, self.height() - 18, self.width(), 18), Qt.AlignmentFlag.AlignCenter, self.caption_shown()
            )
        p.end()
        self.painted += 1

    def mousePressEvent(self, event) -> None:
        self.clicked.emit()
        super().mousePressEvent(event)


def save_grey_png(path: str, img: np.ndarray, scale: int = 4) -> bool:
    """Write a grey image to PNG, each pixel a scale × scale block (crisp when printed)."""
    a = to_grey_u8(img)
    a = np.ascontiguousarray(np.repeat(np.repeat(a, scale, 0), scale, 1))
    h, w = a.shape
    return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy().save(str(path), "PNG")


class DrawPad(QWidget):
    """Draw a digit with the mouse on a SIDE × SIDE grid (left button draws, right button erases).

    Emits drawn(np.ndarray (N_PIXELS,) float32 in [0, 1]) when a stroke ends.
    """

    drawn = Signal(object)

    def __init__(self, parent=None, side: int = 168):
        super().__init__(parent)
        self._img = np.zeros((SIDE, SIDE), dtype=np.float32)
        self._erase = False
        self.setFixedSize(side, side)
        self.setToolTip("Draw a digit: left button draws, right button erases")
        self.setCursor(Qt.CursorShape.CrossCursor)

    def clear(self) -> None:
        self._img[:] = 0.0
        self.update()

    def set_image(self, img) -> None:
        self._img = np.array(img, dtype=np.float32).reshape(SIDE, SIDE).copy()
        self.update()

    def image(self) -> np.ndarray:
        return self._img.reshape(-1).copy()

    def _stamp(self, pos: QPointF) -> None:
        cell = self.width() / SIDE
        cx, cy = pos.x() / cell, pos.y() / cell
        ys, xs = np.mgrid[0:SIDE, 0:SIDE]
        d2 = (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2
        ink = np.clip(1.6 - np.sqrt(d2), 0.0, 1.0).astype(np.float32)  # a soft pen about 2.5 pixels wide
        self._img = np.minimum(self._img, 1 - ink) if self._erase else np.maximum(self._img, ink)
        self.update()

    def mousePressEvent(self, event) -> None:
        self._erase = event.button() == Qt.MouseButton.RightButton
        self._stamp(event.position())

    def mouseMoveEvent(self, event) -> None:
        self._stamp(event.position())

    def mouseReleaseEvent(self, event) -> None:
        self.drawn.emit(self.image())

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(QRectF(self.rect()), grey_qimage(self._img))
        p.setPen(QPen(QColor(90, 90, 90)))
        p.drawRect(self.rect().adjusted(0, 0, -1, -1))
        p.end()
