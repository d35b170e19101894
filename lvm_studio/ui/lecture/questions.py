"""The question of a step: a choice (radio buttons) or a slider, and the student's prediction."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QSlider, QVBoxLayout, QWidget

from lvm_studio.core.tour import Question

SLIDER_TICKS = 1000  # the slider's integer positions between min and max
RIGHT, WRONG = "#7fd17f", "#f0a050"


class QuestionWidget(QWidget):
    """Shows a tour Question; `prediction()` is the chosen option's id or the slider's value (None
    until the student has chosen or moved the slider)."""

    predicted = Signal()  # the student made or changed a prediction

    def __init__(self, question: Question, parent=None):
        super().__init__(parent)
        self.question = question
        self._touched = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        prompt = QLabel(question.prompt)
        prompt.setWordWrap(True)
        prompt.setTextFormat(Qt.TextFormat.RichText)
        prompt.setObjectName("LecturePrompt")
        lay.addWidget(prompt)
        self.buttons: dict[str, QRadioButton] = {}
        self.slider: QSlider | None = None
        if question.kind == "choice":
            self.group = QButtonGroup(self)
            for option in question.options:
                b = QRadioButton(option.label)
                self.group.addButton(b)
                self.buttons[option.id] = b
                b.toggled.connect(self._on_changed)
                lay.addWidget(b)
        else:
            row = QHBoxLayout()
            self.slider = QSlider(Qt.Orientation.Horizontal)
            self.slider.setRange(0, SLIDER_TICKS)
            self.value_label = QLabel()
            self.value_label.setMinimumWidth(90)
            self.set_value(question.initial, touched=False)
            self.slider.valueChanged.connect(self._on_slider)
            row.addWidget(QLabel(f"{question.minimum:g}"))
            row.addWidget(self.slider, 1)
            row.addWidget(QLabel(f"{question.maximum:g}"))
            row.addWidget(self.value_label)
            lay.addLayout(row)

    # --- the prediction --------------------------------------------------------------------------
    def prediction(self):
        if self.question.kind == "choice":
            for option_id, b in self.buttons.items():
                if b.isChecked():
                    return option_id
            return None
        return self.value() if self._touched else None

    def set_prediction(self, value) -> None:
        """Choose an option by id, or move the slider to a value (as the student would)."""
        if self.question.kind == "choice":
            self.buttons[str(value)].setChecked(True)
        else:
            self.set_value(float(value), touched=True)

    def value(self) -> float:
        q = self.question
        raw = q.minimum + (q.maximum - q.minimum) * self.slider.value() / SLIDER_TICKS
        return round(round((raw - q.minimum) / q.step) * q.step + q.minimum, 10)  # on the question's steps

    def set_value(self, value: float, touched: bool = True) -> None:
        q = self.question
        position = round(SLIDER_TICKS * (float(value) - q.minimum) / (q.maximum - q.minimum))
        self.slider.blockSignals(True)
        self.slider.setValue(int(min(max(position, 0), SLIDER_TICKS)))
        self.slider.blockSignals(False)
        self._touched = touched
        self._show_value()
        if touched:
            self.predicted.emit()

    def _show_value(self) -> None:
        unit = f" {self.question.unit}" if self.question.unit else ""
        self.value_label.setText(f"<b>{self.value():g}</b>{unit}" if self._touched else f"{self.value():g}{unit}?")

    def _on_slider(self, _v: int) -> None:
        self._touched = True
        self._show_value()
        self.predicted.emit()

    def _on_changed(self, checked: bool) -> None:
        if checked:
            self.predicted.emit()

    def mark(self, answer, correct: bool) -> None:
        """After the reveal: the right option ticked (and a wrong prediction crossed), or the answer
        beside the slider."""
        if self.question.kind == "choice":
            chosen = self.prediction()
            for option in self.question.options:
                b = self.buttons[option.id]
                if option.id == str(answer):
                    b.setText(f"{option.label}  ✓")
                    b.setStyleSheet(f"color: {RIGHT}; font-weight: bold;")
                elif option.id == chosen:
                    b.setText(f"{option.label}  ✗")
                    b.setStyleSheet(f"color: {WRONG};")
        else:
            unit = f" {self.question.unit}" if self.question.unit else ""
            colour = RIGHT if correct else WRONG
            self.value_label.setText(
                f"{self.value_label.text()} → <b style='color:{colour}'>{float(answer):.4g}</b>{unit}"
            )

    def lock(self, locked: bool) -> None:
        """After the reveal the prediction stays as it was made."""
        for b in self.buttons.values():
            b.setEnabled(not locked)
        if self.slider is not None:
            self.slider.setEnabled(not locked)
