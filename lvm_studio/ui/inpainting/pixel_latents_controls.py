"""The controls of the "Missing pixels as latents" panel: the joint, the digit, the mask, the φ brush,
the lecture's φ choices and the estimator sweep. They hold widgets and say what was asked for."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core import masks
from lvm_studio.ui.widgets.controls import TestDigitPicker, button

JOINTS = (
    ("mixture", "Bernoulli mixture (EM)", "p(x) = Σ_k π_k Π_d Bernoulli(x_d; μ_kd): log p(x_o) and p(x_i | x_o) exact"),
    ("made", "MADE (autoregressive)", "p(x) = Π_d p(x_d | x_<d), exact log p(x); log p(x_o) must be estimated"),
)
MASKS = ("top_half", "bottom_half", "left_half", "centre_box")
PHI_PRESETS = (
    ("half", "φ = 0.5", "Every hidden pixel a fair coin"),
    ("ones", "φ = 1", "Every hidden pixel ink, with certainty"),
    ("zeros", "φ = 0", "Every hidden pixel paper, with certainty"),
    ("marginals", "exact marginals", "φ_i = p(x_i = 1 | x_o), exact for the Bernoulli mixture"),
    ("optimised", "optimise", "Maximise ELBO(φ) from the φ shown (progress and the ELBO trace live)"),
)
K_MAX = (1000, 10000, 100000)


class PixelLatentControls(QWidget):
    joint_chosen = Signal(str)
    mask_chosen = Signal(str)  # a core.masks preset name
    tool_chosen = Signal(str)  # 'phi' or 'mask'
    phi_preset_chosen = Signal(str)  # a PHI_PRESETS key
    stop_clicked = Signal()
    sweep_clicked = Signal()

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.joint = QComboBox()
        for key, label, tip in JOINTS:
            self.joint.addItem(label, key)
            self.joint.setItemData(self.joint.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.joint.currentIndexChanged.connect(lambda _: self.joint_chosen.emit(self.joint.currentData()))
        self.picker = TestDigitPicker(hub, label="digit", seed=15)

        self.mask_buttons = {}
        mask_row = QHBoxLayout()
        mask_row.addWidget(QLabel("hide"))
        for name in MASKS:
            b = QToolButton()
            b.setText(masks.PRESETS[name][0])
            b.setToolTip(f"Hide the {masks.PRESETS[name][0].lower()}")
            b.clicked.connect(lambda _=False, n=name: self.mask_chosen.emit(n))
            self.mask_buttons[name] = b
            mask_row.addWidget(b)
        mask_row.addStretch(1)

        self.tool_group = QButtonGroup(self)
        self.tool_buttons = {}
        tool_row = QHBoxLayout()
        for key, text, tip in (
            ("phi", "Paint φ", "Left button paints φ = the value, right button 1 − value"),
            ("mask", "Hide brush", "Left button hides pixels, right button shows them"),
        ):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, k=key: self.tool_chosen.emit(k))
            self.tool_group.addButton(b)
            self.tool_buttons[key] = b
            tool_row.addWidget(b)
        self.tool_buttons["phi"].setChecked(True)
        self.value = QSlider(Qt.Orientation.Horizontal)
        self.value.setRange(0, 100)
        self.value.setValue(100)
        self.value.setToolTip("The φ the brush paints (0 = paper, 1 = ink)")
        self.value_label = QLabel("φ 1.00")
        self.value.valueChanged.connect(lambda v: self.value_label.setText(f"φ {v / 100:.2f}"))
        self.brush = QDoubleSpinBox()
        self.brush.setRange(0.5, 6.0)
        self.brush.setSingleStep(0.5)
        self.brush.setValue(1.5)
        self.brush.setToolTip("Brush radius in pixels")
        tool_row.addWidget(self.value, 1)
        tool_row.addWidget(self.value_label)
        tool_row.addWidget(self.brush)

        presets = QGridLayout()
        presets.setContentsMargins(0, 0, 0, 0)
        self.preset_buttons = {}
        for i, (key, text, tip) in enumerate(PHI_PRESETS):
            b = button(text, tip, lambda _=False, k=key: self.phi_preset_chosen.emit(k))
            self.preset_buttons[key] = b
            presets.addWidget(b, i // 3, i % 3)
        self.stop_button = button(
            "stop", "Stop the optimisation (φ keeps its last value) or the sweep", self.stop_clicked.emit
        )
        self.stop_button.setEnabled(False)
        presets.addWidget(self.stop_button, 1, 2)

        self.k_max = QComboBox()
        for k in K_MAX:
            self.k_max.addItem(f"{k:,}", k)
        self.k_max.setToolTip("Largest number of samples k (10⁵ with the MADE takes about a minute)")
        self.runs = QSpinBox()
        self.runs.setRange(1, 20)
        self.runs.setValue(3)
        self.runs.setToolTip("Independent runs")
        self.sweep_button = button(
            "Naive vs importance",
            "Estimate log p(x_o) with k uniform completions and with k samples of q(φ)",
            self.sweep_clicked.emit,
        )
        sweep_row = QHBoxLayout()
        sweep_row.addWidget(self.sweep_button)
        sweep_row.addWidget(QLabel("k ≤"))
        sweep_row.addWidget(self.k_max)
        sweep_row.addWidget(QLabel("runs"))
        sweep_row.addWidget(self.runs)
        sweep_row.addStretch(1)

        top = QHBoxLayout()
        top.addWidget(self.joint)
        top.addWidget(self.picker, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addLayout(mask_row)
        lay.addLayout(tool_row)
        lay.addLayout(presets)
        lay.addLayout(sweep_row)

    def set_joint_key(self, key: str) -> None:
        i = self.joint.findData(key)
        if i < 0:
            raise ValueError(f"unknown joint {key!r}; one of {', '.join(k for k, _, _ in JOINTS)}")
        self.joint.setCurrentIndex(i)

    def set_k_max(self, k: int) -> None:
        i = self.k_max.findData(int(k))
        if i < 0:
            self.k_max.addItem(f"{int(k):,}", int(k))
            i = self.k_max.count() - 1
        self.k_max.setCurrentIndex(i)
