"""The inpainting panel's controls: the canvas with its tools, sources and mask presets; the fit's options.

They hold widgets and say what was asked for (signals); the panel decides what happens. Brush
size, ink level, undo and redo go straight to the canvas.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core import inpainting as ip
from lvm_studio.core import masks
from lvm_studio.core.images import BOX, SIDE
from lvm_studio.ui.inpainting.digit_canvas import DigitCanvas
from lvm_studio.ui.widgets.controls import TestDigitPicker, button

TOOLS = (
    ("draw", "Draw", "Draw with the left button, erase with the right"),
    ("erase", "Erase", "Erase with the left button"),
    ("mask", "Hide brush", "Hide pixels (mark them missing) with the left button, show them again with the right"),
    ("box", "Hide box", "Drag a box to hide it; the right button shows it again"),
)
PRESET_ROW = ("top_half", "bottom_half", "left_half", "right_half", "centre_box")  # labels from masks.PRESETS


class CanvasControls(QWidget):
    """The canvas, its tools above it and, below, edit buttons, digit sources and mask presets."""

    tool_chosen = Signal(str)  # a tool button was clicked: 'draw', 'erase', 'mask' or 'box'
    preset_chosen = Signal(str)  # a core.masks preset name
    invert_clicked = Signal()
    show_all_clicked = Signal()
    clear_clicked = Signal()
    centre_clicked = Signal()
    load_test_clicked = Signal()
    open_clicked = Signal()

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        # narrow rows (each about 330 px at most), so the panel fits a dock of a 1,280 × 720 window
        self.canvas = DigitCanvas(min_side=200)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(self._tool_rows())
        lay.addWidget(self.canvas, 1)
        lay.addLayout(self._edit_rows())
        lay.addLayout(self._source_rows(hub))
        lay.addWidget(self._mask_box())

    def _tool_rows(self) -> QVBoxLayout:
        """The four tools in one row; brush size and ink level in the next."""
        self.tool_buttons: dict[str, QToolButton] = {}
        self._tool_group = QButtonGroup(self)
        row = QHBoxLayout()
        for mode, text, tip in TOOLS:
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setAutoRaise(False)
            self._tool_group.addButton(b)
            self.tool_buttons[mode] = b
            row.addWidget(b)
            b.clicked.connect(lambda _=False, m=mode: self.tool_chosen.emit(m))
        self.tool_buttons["draw"].setChecked(True)
        row.addStretch(1)
        self.brush_size = QDoubleSpinBox()
        self.brush_size.setRange(0.5, 6.0)
        self.brush_size.setSingleStep(0.25)
        self.brush_size.setValue(self.canvas.brush_radius)
        self.brush_size.setToolTip("Brush radius in pixels (draw, erase and hide brush)")
        self.brush_size.valueChanged.connect(self.canvas.set_brush_radius)
        self.grey = QSlider(Qt.Orientation.Horizontal)
        self.grey.setRange(10, 100)
        self.grey.setValue(100)
        self.grey.setMinimumWidth(60)
        self.grey.setMaximumWidth(120)
        self.grey.setToolTip("Grey level of the ink (100 % = white ink, as in MNIST)")
        self.grey.valueChanged.connect(lambda v: self.canvas.set_grey_level(v / 100.0))
        brush = QHBoxLayout()
        brush.addWidget(QLabel("size"))
        brush.addWidget(self.brush_size)
        brush.addWidget(QLabel("ink"))
        brush.addWidget(self.grey)
        brush.addStretch(1)
        rows = QVBoxLayout()
        rows.addLayout(row)
        rows.addLayout(brush)
        return rows

    def _edit_rows(self) -> QGridLayout:
        self.undo_button = button("Undo", "Undo the last stroke, mask or load (Ctrl+Z)", self.canvas.undo)
        self.redo_button = button("Redo", "Redo (Ctrl+Shift+Z)", self.canvas.redo)
        self.clear_button = button("Clear", "A blank canvas with nothing hidden", self.clear_clicked)
        self.centre_button = button(
            "Centre",
            f"Centre the drawing as MNIST does: fit it in {BOX}×{BOX} pixels with its "
            "centre of mass in the middle (the mask moves with it)",
            self.centre_clicked,
        )
        self.auto_centre = QCheckBox("auto-centre")
        self.auto_centre.setChecked(True)
        self.auto_centre.setToolTip(
            f"When you hide part of a digit you drew whole, the model sees it centred as MNIST is (fit in "
            f"{BOX}×{BOX}, centre of mass in the middle); the canvas and the hidden region stay as you drew "
            "them, and the completions are drawn back onto them. A drawing none of whose ink is hidden (part "
            "of a digit, to be completed) is used as drawn"
        )
        grid = QGridLayout()  # Undo Redo Clear / Centre auto-centre
        for i, w in enumerate((self.undo_button, self.redo_button, self.clear_button)):
            grid.addWidget(w, 0, i)
        grid.addWidget(self.centre_button, 1, 0)
        grid.addWidget(self.auto_centre, 1, 1, 1, 2)
        grid.setColumnStretch(3, 1)
        return grid

    def _source_rows(self, hub) -> QVBoxLayout:
        self.picker = TestDigitPicker(hub, label="Test digit", seed=11)
        self.picker.set_index(0, emit=False)
        self.load_test_button = button(
            "Load", "Put this test digit on the canvas (the mask stays)", self.load_test_clicked
        )
        self.open_button = button(
            "Open image…",
            f"Load a picture of a digit (PNG, JPEG, …): it is turned into {SIDE}×{SIDE} grey levels "
            "and centred as MNIST is",
            self.open_clicked,
        )
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_test_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        rows = QVBoxLayout()
        rows.addWidget(self.picker)
        rows.addLayout(buttons)
        return rows

    def _mask_box(self) -> QGroupBox:
        self.preset_buttons: dict[str, QPushButton] = {}
        box = QGroupBox("Hide")
        grid = QGridLayout(box)
        grid.setContentsMargins(6, 4, 6, 4)
        # three columns: Top half, Bottom half, Left half / Right half, Centre box, Invert / Random [%], Show all
        for i, name in enumerate(PRESET_ROW):
            label = masks.PRESETS[name][0]
            b = button(label, f"Hide the {label.lower()} (replaces the mask)", self._preset_emitter(name))
            b.setProperty("preset", name)
            self.preset_buttons[name] = b
            grid.addWidget(b, i // 3, i % 3)
        self.random_fraction = QSpinBox()
        self.random_fraction.setRange(1, 99)
        self.random_fraction.setValue(50)
        self.random_fraction.setSuffix(" %")
        self.random_fraction.setToolTip("Fraction of pixels the random mask hides")
        b = button(
            "Random",
            "Hide this fraction of the pixels, chosen at random (a new draw each click)",
            self._preset_emitter("random_pixels"),
        )
        b.setProperty("preset", "random_pixels")
        self.preset_buttons["random_pixels"] = b
        self.invert_button = button("Invert", "Hidden ↔ seen", self.invert_clicked)
        self.show_all_button = button("Show all", "Hide nothing", self.show_all_clicked)
        grid.addWidget(self.invert_button, 1, 2)
        grid.addWidget(b, 2, 0)
        grid.addWidget(self.random_fraction, 2, 1)
        grid.addWidget(self.show_all_button, 2, 2)
        return box

    def _preset_emitter(self, name: str):
        return lambda _=False: self.preset_chosen.emit(name)


class FitControls(QWidget):
    """Adam steps, live fitting, several starts, importance resampling, and the Fit and Save buttons, in two rows."""

    options_changed = Signal()  # steps, several starts, importance on/off or k changed
    fit_clicked = Signal()
    save_clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.steps = QSpinBox()
        self.steps.setRange(10, 5000)
        self.steps.setValue(ip.InpaintConfig.steps)
        self.steps.setSingleStep(50)
        self.steps.setToolTip("Adam steps of the fit")
        self.live = QCheckBox("fit as I draw")
        self.live.setChecked(True)
        self.live.setToolTip(
            "Fit again after every edit, and every tenth of a second during a stroke "
            "(the newest stroke wins); off: only the Fit button fits"
        )
        self.several_starts = QCheckBox("several starts")
        self.several_starts.setChecked(True)
        self.several_starts.setToolTip(
            "Fit q from several starts at once (the encoder's guess, the best state of a short "
            "Metropolis-within-Gibbs run, the most probable of many prior draws) and keep the best ELBO; "
            "starts that end in different places with close ELBOs mean the seen pixels are ambiguous"
        )
        self.use_importance = QCheckBox("importance resampling, k =")
        self.use_importance.setChecked(True)
        self.importance_k = QSpinBox()
        self.importance_k.setRange(10, 20000)
        self.importance_k.setValue(2000)
        self.importance_k.setSingleStep(500)
        self.importance_k.setToolTip("Proposals z ~ q for importance resampling")
        self.fit_button = button("Fit", "Fit q to the seen pixels now", self.fit_clicked)
        self.save_button = button(
            "Save PNG…", "Save the masked input and the mean completion as PNG images", self.save_clicked
        )
        # steps [n] fit as I draw …… Fit / importance resampling, k = [k] …… Save PNG…
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        steps = QHBoxLayout()
        steps.addWidget(QLabel("steps"))
        steps.addWidget(self.steps)
        steps.addWidget(self.live)
        steps.addWidget(self.several_starts)
        steps.addStretch(1)
        importance = QHBoxLayout()
        importance.addWidget(self.use_importance)
        importance.addWidget(self.importance_k)
        importance.addStretch(1)
        grid.addLayout(steps, 0, 0)
        grid.addLayout(importance, 1, 0)
        grid.addWidget(self.fit_button, 0, 1)
        grid.addWidget(self.save_button, 1, 1)
        grid.setColumnStretch(0, 1)
        self.use_importance.toggled.connect(self._on_options_changed)
        self.several_starts.toggled.connect(self._on_options_changed)
        self.importance_k.valueChanged.connect(self._on_options_changed)
        self.steps.valueChanged.connect(self._on_options_changed)

    def importance_k_or_zero(self) -> int:
        """k for importance resampling, 0 when it is off."""
        return self.importance_k.value() if self.use_importance.isChecked() else 0

    def _on_options_changed(self, *_) -> None:
        self.importance_k.setEnabled(self.use_importance.isChecked())
        self.options_changed.emit()
