"""Small pieces shared by the latent explorer panels.

DigitImage: crisp grey digits (nearest-neighbour, aspect kept), cheap to repaint.
LatentCursor: the "current z" that the sliders, the traversal grid and the map share per hub.
LatentStatsService: the per-dimension KL statistics on the validation set, shared per hub.
TestDigitPicker: choose a test digit by number or at random, with a thumbnail.
DrawPad: draw a digit with the mouse on a 28 × 28 grid.
KLBar: a small horizontal bar for a dimension's average KL.
"""

from __future__ import annotations

import time
import weakref

import numpy as np
import torch
from PySide6.QtCore import QObject, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSpinBox, QToolButton, QVBoxLayout,
                               QWidget)

# Ten label colours (matplotlib's tab10): distinct, and fine for the common colour-vision deficiencies
LABEL_COLOURS = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                          (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)],
                         dtype=np.uint8)


def to_grey_u8(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """Values in [0, 1] (any float array or tensor) -> C-contiguous uint8 0..255, same 2-D shape."""
    a = img.detach().cpu().numpy() if torch.is_tensor(img) else np.asarray(img)
    if a.ndim == 1 and a.size == 784:
        a = a.reshape(28, 28)
    return np.ascontiguousarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8))


def grey_qimage(img: np.ndarray | torch.Tensor) -> QImage:
    """A QImage (Grayscale8) that owns its pixels: ink bright on black, as in MNIST figures."""
    a = to_grey_u8(img)
    h, w = a.shape
    return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


class DigitImage(QWidget):
    """Paints a grey image (28 × 28 digit or a tiled grid) scaled with nearest neighbour, aspect kept.

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

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        if not self._image.isNull():
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            p.drawImage(self.target_rect(), self._image)
        if self._caption:
            p.setPen(self.palette().windowText().color())
            p.drawText(QRectF(0, self.height() - 18, self.width(), 18), Qt.AlignmentFlag.AlignCenter, self._caption)
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


# --- the current z, shared per hub -----------------------------------------------------------

class LatentCursor(QObject):
    """The z the user is looking at. Sliders set it; the map and the traversal grid read and set it.

    `moved(source)` carries who moved it, so a panel can ignore its own moves.
    """

    moved = Signal(str)

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self._hub = hub
        self._z = np.zeros(hub.latent_dim, dtype=np.float32)
        hub.model_changed.connect(self._on_model_changed)

    @property
    def z(self) -> np.ndarray:
        return self._z.copy()

    def set_z(self, z, source: str = "") -> None:
        z = np.array(z, dtype=np.float32, copy=True).reshape(-1)
        if z.shape != self._z.shape:
            raise ValueError(f"z has {z.size} dimensions, the model has {self._z.size}")
        self._z = z
        self.moved.emit(source)

    def _on_model_changed(self) -> None:
        if self._hub.latent_dim != self._z.size:
            self._z = np.zeros(self._hub.latent_dim, dtype=np.float32)
            self.moved.emit("model")


_CURSORS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def cursor_for(hub) -> LatentCursor:
    """The one LatentCursor of this hub (made on first use, lives as long as the hub)."""
    cur = _CURSORS.get(hub)
    if cur is None:
        cur = _CURSORS[hub] = LatentCursor(hub, parent=hub)
    return cur


# --- KL statistics, shared per hub ------------------------------------------------------------

STATS_REFRESH_S = 10.0  # while training: recompute the statistics at most this often (5,000 encodings each)


def _latent_stats_task(ctx, model, x_val):
    from lvm_studio.core.latent import encode_loc_scale, latent_stats_from_codes

    z_loc, z_scale = encode_loc_scale(model, x_val, 1000, should_stop=ctx.cancelled)
    ctx.check()
    return latent_stats_from_codes(z_loc, z_scale)


class LatentStatsService(QObject):
    """Average KL per dimension, the KL ordering and the active units of the hub's model on the
    validation set (core.latent.LatentStats), recomputed off the GUI thread when the model changes
    and, while training, at most every STATS_REFRESH_S seconds. `stats` is None until the first
    result for the current model arrives."""

    stats_changed = Signal()
    failed = Signal(str)

    def __init__(self, hub, parent=None):
        from lvm_studio.workers.tasks import TaskRunner

        super().__init__(parent)
        self._hub = hub
        self.stats = None
        self._last_t = 0.0
        self.runner = TaskRunner("latent-stats", self)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        hub.model_changed.connect(self._on_model_changed)
        hub.weights_updated.connect(self._on_weights_updated)
        hub.data_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        try:
            x_val = self._hub.eval_x("val")
        except Exception as e:  # no data: panels keep the natural order
            self.failed.emit(str(e))
            return
        self._last_t = time.monotonic()
        self.runner.submit(_latent_stats_task, self._hub.model, x_val)

    def _on_model_changed(self) -> None:
        self.stats = None
        self.refresh()

    def _on_weights_updated(self, step: int) -> None:
        if not self._timer.isActive():
            self._timer.start(int(1000 * max(0.0, STATS_REFRESH_S - (time.monotonic() - self._last_t))))

    def _on_finished(self, task_id: int, stats) -> None:
        if stats.mean_kl.numel() != self._hub.latent_dim:
            return  # for a model that has since been replaced
        self.stats = stats
        self.stats_changed.emit()

    def _on_failed(self, task_id: int, message: str) -> None:
        self.failed.emit(message)


_STATS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def stats_for(hub) -> LatentStatsService:
    """The one LatentStatsService of this hub (made on first use)."""
    svc = _STATS.get(hub)
    if svc is None:
        svc = _STATS[hub] = LatentStatsService(hub, parent=hub)
    return svc


def dimension_label(d: int, stats) -> str:
    """'z3 (KL 2.41)' or 'z3 (KL 0.00, inactive)' for combo boxes."""
    if stats is None or d >= stats.mean_kl.numel():
        return f"z{d + 1}"
    kl = float(stats.mean_kl[d])
    return f"z{d + 1}  (KL {kl:.2f})" + ("" if bool(stats.active[d]) else ", inactive")


# --- small widgets ----------------------------------------------------------------------------

class TestDigitPicker(QWidget):
    """A test digit number with a 'random' button and a thumbnail; emits picked(index)."""

    picked = Signal(int)

    def __init__(self, hub, parent=None, label: str = "Test digit", seed: int = 0):
        """label: text before the number ('' for none)."""
        super().__init__(parent)
        self._hub = hub
        self._rng = np.random.default_rng(seed)
        self.spin = QSpinBox()
        self.spin.setRange(0, 9999)
        self.spin.setToolTip("Number of the digit in the MNIST test set (0–9999)")
        self.spin.setKeyboardTracking(False)
        self.random_button = QToolButton()
        self.random_button.setText("random")
        self.random_button.setToolTip("Pick a random test digit")
        self.thumb = DigitImage(min_side=36, hint_side=36)
        self.thumb.setFixedSize(40, 40)
        self.info = QLabel("")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        if label:
            lay.addWidget(QLabel(label))
        lay.addWidget(self.spin)
        lay.addWidget(self.random_button)
        lay.addWidget(self.thumb)
        lay.addWidget(self.info)
        lay.addStretch(1)
        self.spin.valueChanged.connect(self._on_spin_changed)
        self.random_button.clicked.connect(self._on_random_clicked)
        self._refresh_thumb()

    def index(self) -> int:
        return self.spin.value()

    def set_index(self, i: int, emit: bool = True) -> None:
        if not emit:
            self.spin.blockSignals(True)
        self.spin.setValue(int(i))
        self.spin.blockSignals(False)
        self._refresh_thumb()

    def x(self) -> torch.Tensor:
        """The chosen evaluation image, (1, 784)."""
        return self._hub.eval_x("test")[self.spin.value()][None].clone()

    def _refresh_thumb(self) -> None:
        try:
            i = self.spin.value()
            self.thumb.set_image(self._hub.eval_x("test")[i])
            self.info.setText(f"label {int(self._hub.labels('test')[i])}")
        except Exception:  # no data yet: leave the thumbnail empty
            self.thumb.set_image(None)

    def _on_spin_changed(self, i: int) -> None:
        self._refresh_thumb()
        self.picked.emit(int(i))

    def _on_random_clicked(self) -> None:
        self.spin.setValue(int(self._rng.integers(0, self.spin.maximum() + 1)))


class KLBar(QWidget):
    """A thin bar whose length is a dimension's average KL relative to the largest."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._fraction = 0.0
        self._active = True
        self.setFixedSize(56, 12)

    def set_value(self, fraction: float, active: bool) -> None:
        self._fraction = float(np.clip(fraction, 0.0, 1.0))
        self._active = bool(active)
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        r = self.rect().adjusted(0, 1, -1, -2)
        p.setPen(QPen(QColor(150, 150, 150)))
        p.drawRect(r)
        colour = QColor(52, 152, 219) if self._active else QColor(170, 170, 170)
        w = int(round((r.width() - 1) * self._fraction))
        if w > 0:
            p.fillRect(r.x() + 1, r.y() + 1, w, r.height() - 1, colour)
        p.end()


class DrawPad(QWidget):
    """Draw a digit with the mouse on a 28 × 28 grid (left button draws, right button erases).

    Emits drawn(np.ndarray (784,) float32 in [0, 1]) when a stroke ends.
    """

    drawn = Signal(object)

    def __init__(self, parent=None, side: int = 168):
        super().__init__(parent)
        self._img = np.zeros((28, 28), dtype=np.float32)
        self._erase = False
        self.setFixedSize(side, side)
        self.setToolTip("Draw a digit: left button draws, right button erases")
        self.setCursor(Qt.CursorShape.CrossCursor)

    def clear(self) -> None:
        self._img[:] = 0.0
        self.update()

    def set_image(self, img) -> None:
        self._img = np.array(img, dtype=np.float32).reshape(28, 28).copy()
        self.update()

    def image(self) -> np.ndarray:
        return self._img.reshape(-1).copy()

    def _stamp(self, pos: QPointF) -> None:
        cell = self.width() / 28.0
        cx, cy = pos.x() / cell, pos.y() / cell
        ys, xs = np.mgrid[0:28, 0:28]
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


def labelled(widget: QWidget, text: str) -> QWidget:
    """A caption above a widget."""
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(2)
    cap = QLabel(text)
    cap.setAlignment(Qt.AlignmentFlag.AlignHCenter)
    lay.addWidget(cap)
    lay.addWidget(widget, 1)
    return box


def button(text: str, tooltip: str, slot) -> QPushButton:
    b = QPushButton(text)
    b.setToolTip(tooltip)
    b.clicked.connect(slot)
    return b
