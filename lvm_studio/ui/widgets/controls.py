"""Small controls shared by the panels.

button, labelled: a push button wired to a slot; a caption above a widget.
TestDigitPicker: choose a test digit by number or at random, with a thumbnail.
KLBar: a small horizontal bar for a dimension's average KL.
dimension_label: 'z3 (KL 2.41)' for combo boxes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSpinBox, QToolButton, QVBoxLayout, QWidget

from lvm_studio.ui.widgets.digit_image import DigitImage

if TYPE_CHECKING:
    import torch


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


def dimension_label(d: int, stats) -> str:
    """'z3 (KL 2.41)' or 'z3 (KL 0.00, inactive)' for combo boxes."""
    if stats is None or d >= stats.mean_kl.numel():
        return f"z{d + 1}"
    kl = float(stats.mean_kl[d])
    return f"z{d + 1}  (KL {kl:.2f})" + ("" if bool(stats.active[d]) else ", inactive")


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
        hub.data_changed.connect(self._on_data_changed)
        self._on_data_changed()
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
        """The chosen evaluation image, (1, N_PIXELS)."""
        return self._hub.eval_x("test")[self.spin.value()][None].clone()

    def _refresh_thumb(self) -> None:
        try:
            i = self.spin.value()
            data = self._hub.data
            # the digit as the dataset has it, grey: the model's binarized copy of the whole test set
            # (x()) is made when it is first needed, not for a thumbnail at start-up (0.1-0.4 s)
            self.thumb.set_image(data.x_test[i] / 255.0)
            self.info.setText(f"label {data.label_name(int(data.y_test[i]))}" if data.labelled else "")
        except Exception:  # no data yet: leave the thumbnail empty
            self.thumb.set_image(None)

    def _on_data_changed(self) -> None:
        """Another dataset: its test set's size bounds the number (MNIST: 0–9999)."""
        try:
            n = len(self._hub.data.x_test)
        except Exception:  # no data yet: keep MNIST's range
            return
        self.spin.blockSignals(True)
        self.spin.setRange(0, max(0, n - 1))
        self.spin.blockSignals(False)
        self.spin.setToolTip(f"Number of the image in the test set (0–{n - 1})")
        self._refresh_thumb()

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
