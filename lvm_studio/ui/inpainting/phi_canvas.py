"""A 28 × 28 canvas on which φ, the parameters of q(x_m; φ) = Π_i Bernoulli(x_i; φ_i), is painted.

The observed pixels show the binary digit in grey; the MISSING pixels (mask True, core.masks) show
φ_i as a heat map (core.colour_maps.inferno: black φ = 0 … pale yellow φ = 1) under the inpainting
canvas's orange hatch and outline (mask_overlay.MaskOverlay), so a hidden pixel is never mistaken
for a seen one. Tools:

    phi    left button paints φ = value (the brush's soft edge blends towards it), right button paints 1 − value
    mask   left button hides pixels, right button shows them again (core.masks.brush_stroke)

Strokes are continuous (core.masks.capsule_coverage between mouse events, as DigitCanvas does).
phi_edited / mask_edited carry final=True when an edit is complete and final=False at most every
``live_interval_ms`` while a stroke is in progress, so a listener can recompute as the user paints.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from lvm_studio.core import masks
from lvm_studio.core.colour_maps import inferno
from lvm_studio.core.images import SIDE
from lvm_studio.ui.inpainting.mask_overlay import MISSING_EDGE, MaskOverlay, paint_grey

MODES = ("phi", "mask")


class PhiCanvas(QWidget):
    phi_edited = Signal(bool)  # final
    mask_edited = Signal(bool)

    def __init__(self, parent=None, min_side: int = 196, live_interval_ms: int = 120):
        super().__init__(parent)
        self._image = np.zeros((SIDE, SIDE), dtype=np.float32)
        self._mask = masks.top_half()
        self._phi = np.full((SIDE, SIDE), 0.5, dtype=np.float32)  # read on missing pixels only
        self._overlay = MaskOverlay()
        self._overlay.update(self._mask)
        self._mode = "phi"
        self.value = 1.0  # the φ the left button paints
        self.brush_radius = 1.5
        self.live_interval_ms = live_interval_ms
        self._stroke: str | None = None  # 'phi' or 'mask'
        self._stroke_value = 0.0
        self._base: np.ndarray | None = None
        self._coverage = np.zeros((SIDE, SIDE), dtype=np.float32)
        self._last: tuple[float, float] | None = None
        self._last_live = 0.0
        self._hover = None
        self.setMinimumSize(min_side, min_side)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def sizeHint(self) -> QSize:
        return QSize(336, 336)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, w: int) -> int:
        return w

    # --- state -------------------------------------------------------------------------------
    def image(self) -> np.ndarray:
        return self._image.copy()

    def mask(self) -> np.ndarray:
        """(28, 28) bool, True = missing (a copy)."""
        return self._mask.copy()

    def phi(self) -> np.ndarray:
        """φ of the missing pixels in raster order, (M,) float32 (a copy)."""
        return self._phi[self._mask].copy()

    def phi_map(self) -> np.ndarray:
        return self._phi.copy()

    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self._mode = mode

    def set_value(self, value: float) -> None:
        self.value = float(np.clip(value, 0.0, 1.0))

    def set_brush_radius(self, radius: float) -> None:
        self.brush_radius = float(np.clip(radius, 0.5, 8.0))
        self.update()

    def set_image(self, image) -> None:
        self._image = (np.asarray(image, dtype=np.float32).reshape(SIDE, SIDE) > 0.5).astype(np.float32)
        self.update()

    def set_mask(self, mask, emit: bool = True) -> None:
        mask = masks.check(mask)
        if np.array_equal(mask, self._mask):
            return
        self._mask = mask
        self._overlay.update(mask)
        self.update()
        if emit:
            self.mask_edited.emit(True)

    def set_phi(self, phi, emit: bool = True) -> None:
        """φ for the missing pixels, (M,) in raster order, or a scalar for all of them."""
        phi = np.clip(np.asarray(phi, dtype=np.float32), 0.0, 1.0)
        if phi.ndim == 0:
            self._phi[self._mask] = float(phi)
        else:
            if phi.shape != (int(self._mask.sum()),):
                raise ValueError(f"φ must have one value per missing pixel ({int(self._mask.sum())}), got {phi.shape}")
            self._phi[self._mask] = phi
        self.update()
        if emit:
            self.phi_edited.emit(True)

    # --- geometry ----------------------------------------------------------------------------
    def target_rect(self) -> QRectF:
        side = min(self.width(), self.height())
        cell = side / SIDE
        if cell >= 4:
            cell = float(int(cell))
        s = cell * SIDE
        return QRectF((self.width() - s) / 2, (self.height() - s) / 2, s, s)

    def pixel_at(self, pos) -> tuple[float, float]:
        t = self.target_rect()
        cell = t.width() / SIDE
        return (pos.y() - t.y()) / cell - 0.5, (pos.x() - t.x()) / cell - 0.5

    # --- strokes -----------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton) or self._stroke:
            return
        right = event.button() == Qt.MouseButton.RightButton
        self._stroke = self._mode
        if self._mode == "phi":
            self._stroke_value = (1.0 - self.value) if right else self.value
            self._base = self._phi.copy()
            self._coverage[:] = 0.0
        else:
            self._stroke_value = 0.0 if right else 1.0
        rc = self.pixel_at(event.position())
        self._last, self._last_live = rc, time.perf_counter()
        self._extend(rc, rc)

    def mouseMoveEvent(self, event) -> None:
        self._hover = event.position()
        if self._stroke is None:
            self.update()
            return
        rc = self.pixel_at(event.position())
        self._extend(self._last, rc)
        self._last = rc

    def mouseReleaseEvent(self, event) -> None:
        if self._stroke is None:
            return
        rc = self.pixel_at(event.position())
        if rc != self._last:
            self._extend(self._last, rc)
        stroke, self._stroke, self._base = self._stroke, None, None
        (self.phi_edited if stroke == "phi" else self.mask_edited).emit(True)
        self.update()

    def leaveEvent(self, event) -> None:
        self._hover = None
        self.update()
        super().leaveEvent(event)

    def _extend(self, a, b) -> None:
        if self._stroke == "phi":
            cover = masks.capsule_coverage(a[0], a[1], b[0], b[1], self.brush_radius)  # (28, 28)
            np.maximum(self._coverage, cover, out=self._coverage)
            self._phi = self._base + self._coverage * (self._stroke_value - self._base)  # lerp towards the value
            signal = self.phi_edited
        else:
            mask = masks.brush_stroke(self._mask, a, b, self.brush_radius, missing=bool(self._stroke_value))
            if np.array_equal(mask, self._mask):
                return
            self._mask = mask
            self._overlay.update(mask)
            signal = self.mask_edited
        self.update()
        now = time.perf_counter()
        if 1000 * (now - self._last_live) >= self.live_interval_ms:
            self._last_live = now
            signal.emit(False)

    # --- painting ----------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        target = self.target_rect()
        paint_grey(p, target, self._image, grid=False)
        rgba = np.zeros((SIDE, SIDE, 4), dtype=np.uint8)
        rgba[..., :3] = inferno(self._phi)
        rgba[..., 3] = np.where(self._mask, 255, 0)
        heat = QImage(rgba.data, SIDE, SIDE, 4 * SIDE, QImage.Format.Format_RGBA8888)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(target, heat)
        self._overlay.paint(p, target, tint=False, hatch=True, edge_width=2.0)
        if self._hover is not None:
            cell = target.width() / SIDE
            r = (self.brush_radius + (0.5 if self._mode == "phi" else 0.0)) * cell
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setPen(QPen(QColor(120, 200, 255) if self._mode == "phi" else MISSING_EDGE, 1))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawEllipse(self._hover, r, r)
        p.setPen(QPen(QColor(90, 90, 90)))
        p.drawRect(target.adjusted(-0.5, -0.5, 0.5, 0.5))
        p.end()


class PhiColourBar(QWidget):
    """The heat map's key: φ = 0 … 1 in the canvas's colours."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedHeight(16)
        self.setMinimumWidth(120)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        label_w = 44
        bar = QRectF(label_w, 3, max(10, self.width() - 2 * label_w), self.height() - 6)
        rgb = np.ascontiguousarray(inferno(np.linspace(0.0, 1.0, 256))[None, :, :])  # (1, 256, 3)
        p.drawImage(bar, QImage(rgb.data, 256, 1, 3 * 256, QImage.Format.Format_RGB888))
        p.setPen(self.palette().windowText().color())
        p.drawText(
            QRectF(0, 0, label_w - 4, self.height()),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            "φ = 0",
        )
        p.drawText(
            QRectF(bar.right() + 4, 0, label_w, self.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            "1",
        )
        p.end()
