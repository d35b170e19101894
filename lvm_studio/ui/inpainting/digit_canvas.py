"""A 28 × 28 drawing canvas with an inpainting mask, for the inpainting panel.

DigitCanvas paints the image itself with QPainter: nearest-neighbour pixels, grid lines between
pixels once a pixel is large enough on screen, and the MISSING pixels (mask True, the convention
of lvm_studio.core.masks) as mask_overlay shows them: tinted and hatched in orange with an
outline, so that a hidden pixel is never mistaken for black paper or ink.

Tools (set_mode):
    draw   left button inks, right button erases;
    erase  left button erases;
    mask   a mask brush: left button hides pixels (missing), right button shows them again;
    box    drag a free box: left button hides it, right button shows it again.

Strokes are continuous: every mouse event adds the capsule (the segment from the previous mouse
position to this one, thickened by the brush radius) to the stroke's coverage, so a fast drag
whose events are several pixels apart leaves no gaps (pyqtgraph's setDrawKernel stamps only at
the events; core.masks.capsule_coverage is the geometry). Ink edges are anti-aliased: coverage =
clip(radius + ½ − distance, 0, 1), and a pixel becomes lerp(its value before the stroke, grey
level, coverage), so going over the same place twice in one stroke does not darken it further.

Every stroke, box, load or preset is one undo step of (image, mask). image_edited / mask_edited
carry final=True when an edit is complete, and final=False at most every `live_interval_ms`
while a stroke is in progress (so a listener can re-run a computation while the user draws).
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from lvm_studio.core import masks
from lvm_studio.core.images import BOX, SIDE
from lvm_studio.ui.inpainting.mask_overlay import MISSING_EDGE, MaskOverlay, masked_digit_qimage, paint_grey

MODES = ("draw", "erase", "mask", "box")
UNDO_DEPTH = 200
GRID_MIN_CELL = 9.0  # screen pixels per image pixel from which the pixel grid is drawn
GUIDE_COLOUR = QColor(80, 160, 230, 110)  # MNIST's BOX × BOX box, where a digit's ink lies
GUIDE_MARGIN = (SIDE - BOX) // 2  # 4


# --- the canvas ----------------------------------------------------------------------------------


class DigitCanvas(QWidget):
    image_edited = Signal(bool)  # final: the edit is complete (stroke released, undo, load); False while drawing
    mask_edited = Signal(bool)
    history_changed = Signal()  # undo / redo availability may have changed
    stroke_started = Signal(str)  # the tool of the stroke that began: 'draw', 'erase', 'mask' or 'box'

    def __init__(self, parent=None, min_side: int = 224, live_interval_ms: int = 100):
        super().__init__(parent)
        self._image = np.zeros((SIDE, SIDE), dtype=np.float32)
        self._mask = masks.empty()
        self._mode = "draw"
        self.brush_radius = 1.2  # pixels; MNIST strokes are about 2–3 pixels wide
        self.grey_level = 1.0  # ink of the draw tool (1 = white ink, as in MNIST)
        self.show_guide = True  # MNIST's 20 × 20 box, where a digit's ink lies
        self.live_interval_ms = live_interval_ms
        self._undo: list[tuple[np.ndarray, np.ndarray]] = []
        self._redo: list[tuple[np.ndarray, np.ndarray]] = []
        # the stroke in progress
        self._stroke: str | None = None  # 'ink', 'mask' or 'box'
        self._stroke_value = 0.0  # grey level (ink) or missing True/False as 1/0 (mask, box)
        self._stroke_base: np.ndarray | None = None  # image at the stroke's start
        self._coverage = np.zeros((SIDE, SIDE), dtype=np.float32)
        self._last: tuple[float, float] | None = None  # (row, col) of the previous mouse event
        self._last_live = 0.0  # perf_counter of the stroke's last live emission
        self._box_start: tuple[int, int] | None = None
        self._box_end: tuple[int, int] | None = None
        self._image_dirty = self._mask_dirty = False
        self._hover: QPointF | None = None
        self._overlay = MaskOverlay()
        self._overlay.update(self._mask)
        self._live = QTimer(self)
        self._live.setSingleShot(True)
        self._live.timeout.connect(self._on_live_timeout)
        self.moves = 0  # mouse-move events handled (the bench reads these three)
        self.painted = 0
        self.last_paint_ms = 0.0
        self.setMinimumSize(min_side, min_side)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)

    def sizeHint(self) -> QSize:
        return QSize(420, 420)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, w: int) -> int:
        return w

    # --- state -------------------------------------------------------------------------------
    def image(self) -> np.ndarray:
        """(28, 28) float32 grey levels in [0, 1] (a copy)."""
        return self._image.copy()

    def mask(self) -> np.ndarray:
        """(28, 28) bool, True = missing (a copy)."""
        return self._mask.copy()

    def is_stroking(self) -> bool:
        """A mouse button is down on the canvas (a stroke or a box is being drawn)."""
        return self._stroke is not None

    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self._mode = mode
        self.update()

    def set_brush_radius(self, radius: float) -> None:
        self.brush_radius = float(np.clip(radius, 0.5, 8.0))
        self.update()

    def set_grey_level(self, level: float) -> None:
        self.grey_level = float(np.clip(level, 0.0, 1.0))

    def set_image(self, image, undoable: bool = True) -> None:
        self.set_state(image, self._mask, undoable)

    def set_mask(self, mask, undoable: bool = True) -> None:
        self.set_state(self._image, mask, undoable)

    def set_state(self, image, mask, undoable: bool = True) -> None:
        """Replace image and mask together (one undo step); emits what changed, with final=True."""
        image = np.clip(np.asarray(image, dtype=np.float32).reshape(SIDE, SIDE), 0.0, 1.0).copy()
        mask = masks.check(mask)
        self._cancel_stroke()
        img_changed = not np.array_equal(image, self._image)
        mask_changed = not np.array_equal(mask, self._mask)
        if not (img_changed or mask_changed):
            return
        if undoable:
            self._push_undo()
        self._apply(image, mask, img_changed, mask_changed)

    def clear(self) -> None:
        """A blank image, nothing hidden (one undo step)."""
        self.set_state(np.zeros((SIDE, SIDE), np.float32), masks.empty())

    def _apply(self, image: np.ndarray, mask: np.ndarray, img_changed: bool, mask_changed: bool) -> None:
        self._image, self._mask = image, mask
        if mask_changed:
            self._overlay.update(mask)
        self.update()
        if img_changed:
            self.image_edited.emit(True)
        if mask_changed:
            self.mask_edited.emit(True)

    # --- undo / redo -------------------------------------------------------------------------
    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def _push_undo(self) -> None:
        self._undo.append((self._image.copy(), self._mask.copy()))
        del self._undo[:-UNDO_DEPTH]
        self._redo.clear()
        self.history_changed.emit()

    def undo(self) -> None:
        self._cancel_stroke()
        if self._undo:
            self._redo.append((self._image.copy(), self._mask.copy()))
            self._restore(*self._undo.pop())

    def redo(self) -> None:
        self._cancel_stroke()
        if self._redo:
            self._undo.append((self._image.copy(), self._mask.copy()))
            self._restore(*self._redo.pop())

    def _restore(self, image: np.ndarray, mask: np.ndarray) -> None:
        img_changed = not np.array_equal(image, self._image)
        mask_changed = not np.array_equal(mask, self._mask)
        self._apply(image, mask, img_changed, mask_changed)
        self.history_changed.emit()

    # --- geometry ----------------------------------------------------------------------------
    def target_rect(self) -> QRectF:
        """Where the 28 × 28 image lies in the widget: a centred square, whole screen pixels per pixel when large."""
        side = min(self.width(), self.height())
        cell = side / SIDE
        if cell >= 4:
            cell = float(int(cell))
        s = cell * SIDE
        return QRectF((self.width() - s) / 2, (self.height() - s) / 2, s, s)

    def pixel_at(self, pos: QPointF) -> tuple[float, float]:
        """(row, col) of a widget position, continuous; the centre of pixel (r, c) is (r, c)."""
        t = self.target_rect()
        cell = t.width() / SIDE
        return (pos.y() - t.y()) / cell - 0.5, (pos.x() - t.x()) / cell - 0.5

    def pos_of_pixel(self, row: float, col: float) -> QPointF:
        """The widget position of a (continuous) pixel coordinate: the inverse of pixel_at."""
        t = self.target_rect()
        cell = t.width() / SIDE
        return QPointF(t.x() + (col + 0.5) * cell, t.y() + (row + 0.5) * cell)

    # --- strokes -----------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        button = event.button()
        if button not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton) or self._stroke is not None:
            return
        right = button == Qt.MouseButton.RightButton
        rc = self.pixel_at(event.position())
        self._push_undo()  # popped again on release if the stroke changed nothing
        if self._mode in ("draw", "erase"):
            self._stroke = "ink"
            self._stroke_value = 0.0 if (self._mode == "erase" or right) else self.grey_level
            self._stroke_base = self._image.copy()
            self._coverage[:] = 0.0
        elif self._mode == "mask":
            self._stroke = "mask"
            self._stroke_value = 0.0 if right else 1.0
        else:
            self._stroke = "box"
            self._stroke_value = 0.0 if right else 1.0
            self._box_start = self._box_end = self._clamped_cell(rc)
        self._last = rc
        self._last_live = time.perf_counter()  # the first live emission comes one interval into the stroke
        self.stroke_started.emit(self._mode)
        if self._stroke != "box":
            self._extend(rc, rc)
        self.update()

    def mouseMoveEvent(self, event) -> None:
        self._hover = event.position()
        if self._stroke is None:
            self.update()  # the brush outline follows the pointer
            return
        self.moves += 1
        rc = self.pixel_at(event.position())
        if self._stroke == "box":
            self._box_end = self._clamped_cell(rc)
        else:
            self._extend(self._last, rc)
        self._last = rc
        self.update()

    def mouseReleaseEvent(self, event) -> None:
        if self._stroke is None:
            return
        rc = self.pixel_at(event.position())
        if self._stroke == "box":
            self._box_end = self._clamped_cell(rc)
            (r0, c0), (r1, c1) = self._box_start, self._box_end
            region = masks.box(min(r0, r1), min(c0, c1), max(r0, r1) + 1, max(c0, c1) + 1)
            mask = self._mask.copy()
            mask[region] = bool(self._stroke_value)
            if not np.array_equal(mask, self._mask):
                self._mask = mask
                self._overlay.update(mask)
                self._mask_dirty = True
        elif rc != self._last:
            self._extend(self._last, rc)
        self._end_stroke()

    def leaveEvent(self, event) -> None:
        self._hover = None
        self.update()
        super().leaveEvent(event)

    def _clamped_cell(self, rc: tuple[float, float]) -> tuple[int, int]:
        return (int(np.clip(np.floor(rc[0] + 0.5), 0, SIDE - 1)), int(np.clip(np.floor(rc[1] + 0.5), 0, SIDE - 1)))

    def _extend(self, a: tuple[float, float], b: tuple[float, float]) -> None:
        """Add the segment a → b (row, col) to the stroke in progress."""
        if self._stroke == "ink":
            cover = masks.capsule_coverage(a[0], a[1], b[0], b[1], self.brush_radius)  # (28, 28)
            np.maximum(self._coverage, cover, out=self._coverage)
            # paint over: lerp from the image at the stroke's start towards the grey level
            image = self._stroke_base + self._coverage * (self._stroke_value - self._stroke_base)
            if not np.array_equal(image, self._image):
                self._image = image
                self._image_dirty = True
        elif self._stroke == "mask":
            mask = masks.brush_stroke(self._mask, a, b, self.brush_radius, missing=bool(self._stroke_value))
            if not np.array_equal(mask, self._mask):
                self._mask = mask
                self._overlay.update(mask)
                self._mask_dirty = True
        if self._image_dirty or self._mask_dirty:
            # emitted from the move itself when the interval has passed (a timer can starve while the
            # event loop is busy); the timer only covers a pen that rests with the button down
            wait_ms = self.live_interval_ms - 1000 * (time.perf_counter() - self._last_live)
            if wait_ms <= 0:
                self._on_live_timeout()
            elif not self._live.isActive():
                self._live.start(int(wait_ms) + 1)

    def _on_live_timeout(self) -> None:
        if self._stroke is None:
            return
        self._live.stop()
        self._last_live = time.perf_counter()
        if self._image_dirty:
            self._image_dirty = False
            self.image_edited.emit(False)
        if self._mask_dirty:
            self._mask_dirty = False
            self.mask_edited.emit(False)

    def _end_stroke(self) -> None:
        self._live.stop()
        self._stroke = None
        self._stroke_base = None
        self._box_start = self._box_end = None
        before_img, before_mask = self._undo[-1]
        img_changed = not np.array_equal(before_img, self._image)
        mask_changed = not np.array_equal(before_mask, self._mask)
        if not (img_changed or mask_changed):
            self._undo.pop()  # a click that changed nothing is no undo step
        self.history_changed.emit()
        self._image_dirty = self._mask_dirty = False
        self.update()
        if img_changed:
            self.image_edited.emit(True)
        if mask_changed:
            self.mask_edited.emit(True)

    def _cancel_stroke(self) -> None:
        """End a stroke in progress as it stands (a programmatic change arrived mid-stroke)."""
        if self._stroke is not None:
            self._end_stroke()

    # --- painting ----------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        t0 = time.perf_counter()
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        target = self.target_rect()
        cell = target.width() / SIDE
        paint_grey(p, target, self._image, grid=cell >= GRID_MIN_CELL)
        self._overlay.paint(p, target)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self.show_guide:
            pen = QPen(GUIDE_COLOUR, 1, Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            g0, g = GUIDE_MARGIN * cell, BOX * cell
            p.drawRect(QRectF(target.x() + g0, target.y() + g0, g, g))
        if self._box_start is not None and self._box_end is not None:
            (r0, c0), (r1, c1) = self._box_start, self._box_end
            rect = QRectF(
                target.x() + min(c0, c1) * cell,
                target.y() + min(r0, r1) * cell,
                (abs(c1 - c0) + 1) * cell,
                (abs(r1 - r0) + 1) * cell,
            )
            colour = MISSING_EDGE if self._stroke_value else QColor(120, 200, 255)
            p.setPen(QPen(colour, 2, Qt.PenStyle.DashLine))
            p.setBrush(QColor(colour.red(), colour.green(), colour.blue(), 50))
            p.drawRect(rect)
        elif self._hover is not None and self._mode != "box":
            # the brush outline under the pointer
            r = (self.brush_radius + (0.5 if self._mode != "mask" else 0.0)) * cell
            colour = MISSING_EDGE if self._mode == "mask" else QColor(120, 200, 255)
            p.setPen(QPen(colour, 1))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawEllipse(self._hover, r, r)
        p.setPen(QPen(QColor(90, 90, 90)))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(target.adjusted(-0.5, -0.5, 0.5, 0.5))
        p.end()
        self.painted += 1
        self.last_paint_ms = 1000 * (time.perf_counter() - t0)

    def grab_masked(self, scale: int = 10) -> QImage:
        """The image with its mask drawn as on screen, scale × scale screen pixels per pixel (for saving)."""
        return masked_digit_qimage(self._image, self._mask, scale)
