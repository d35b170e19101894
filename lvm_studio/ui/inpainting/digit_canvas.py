"""A 28 × 28 drawing canvas with an inpainting mask, for the inpainting panel.

DigitCanvas paints the image itself with QPainter: nearest-neighbour pixels, grid lines between
pixels once a pixel is large enough on screen, and the MISSING pixels (mask True, the convention
of lvm_studio.core.masks) tinted and hatched in orange with an outline, so that a hidden pixel is
never mistaken for black paper or ink.

Tools (set_mode):
    draw   left button inks, right button erases;
    erase  left button erases;
    mask   a mask brush: left button hides pixels (missing), right button shows them again;
    box    drag a free box: left button hides it, right button shows it again.

Strokes are continuous: every mouse event adds the capsule (the segment from the previous mouse
position to this one, thickened by the brush radius) to the stroke's coverage, so a fast drag
whose events are several pixels apart leaves no gaps (pyqtgraph's setDrawKernel stamps only at
the events). Ink edges are anti-aliased: coverage = clip(radius + ½ − distance, 0, 1), and a
pixel becomes lerp(its value before the stroke, grey level, coverage), so going over the same
place twice in one stroke does not darken it further.

Every stroke, box, load or preset is one undo step of (image, mask). image_edited / mask_edited
carry final=True when an edit is complete, and final=False at most every `live_interval_ms`
while a stroke is in progress (so a listener can re-run a computation while the user draws).
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QTransform
from PySide6.QtWidgets import QSizePolicy, QWidget

from lvm_studio.core import masks
from lvm_studio.ui.widgets.digit_image import DigitImage, to_grey_u8

SIDE = masks.SIDE  # 28
MODES = ("draw", "erase", "mask", "box")
UNDO_DEPTH = 200
GRID_MIN_CELL = 9.0  # screen pixels per image pixel from which the pixel grid is drawn

# the look of missing pixels: a translucent orange tint, an orange hatch and an outline
MISSING_TINT = QColor(255, 140, 0, 70)
MISSING_HATCH = QColor(255, 150, 30, 210)
MISSING_EDGE = QColor(255, 150, 30)
GRID_COLOUR = QColor(120, 120, 120, 90)
GUIDE_COLOUR = QColor(80, 160, 230, 110)

_ROWS = np.arange(SIDE, dtype=np.float32)[:, None]  # (28, 1) pixel-centre rows
_COLS = np.arange(SIDE, dtype=np.float32)[None, :]  # (1, 28) pixel-centre columns


# --- pure array helpers -------------------------------------------------------------------------


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
        for r, c0, c1 in mask_runs(self._mask):
            path.addRect(QRectF(c0, r, c1 - c0, 1))
        self.path = path
        self.lines = [QLineF(x0, y0, x1, y1) for x0, y0, x1, y1 in mask_outline(self._mask)]

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
    _paint_grey(p, target, image, grid)
    overlay.paint(p, target)
    p.end()
    return out


def _paint_grey(p: QPainter, target: QRectF, image: np.ndarray, grid: bool) -> None:
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
            np.maximum(self._coverage, capsule_coverage(a[0], a[1], b[0], b[1], self.brush_radius), out=self._coverage)
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
        _paint_grey(p, target, self._image, grid=cell >= GRID_MIN_CELL)
        self._overlay.paint(p, target)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self.show_guide:
            pen = QPen(GUIDE_COLOUR, 1, Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(target.x() + 4 * cell, target.y() + 4 * cell, 20 * cell, 20 * cell))
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


class MaskedDigitImage(DigitImage):
    """A DigitImage with a mask's outline on top (which pixels were filled in), and colour images."""

    def __init__(self, parent=None, min_side: int = 96, hint_side: int = 160, caption: str = ""):
        super().__init__(parent, min_side=min_side, hint_side=hint_side, caption=caption)
        self._overlay = MaskOverlay()
        self._show_mask = False

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
