"""The lecture dock's content: where the tour is, the step's idea, its question, Reveal and the answer.

It only shows: the controller (ui/lecture/controller.py) sets the step up, runs the reveal and hands
the results here. No fonts are set explicitly (headings are rich text), so presenter mode's scaled
application font reaches every line.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from lvm_studio.core.tour import Score, Step, Tour
from lvm_studio.ui.lecture.questions import RIGHT, WRONG, QuestionWidget
from lvm_studio.ui.lecture.vi_1d_view import VI1DView


def _label(rich: bool = True) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class StepView(QWidget):
    back_requested = Signal()
    next_requested = Signal()
    reveal_requested = Signal()
    reset_requested = Signal()
    leave_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("LectureStepView")
        self.question_widget: QuestionWidget | None = None
        self.tour_label = _label()
        self.position = QLabel()
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.back_button = QPushButton("◀ Back")
        self.back_button.setToolTip("The previous step (← or PgUp)")
        self.next_button = QPushButton("Next ▶")
        self.next_button.setToolTip("The next step (→ or PgDn)")
        self.title = _label()
        self.text = _label()
        self.vi_view: VI1DView | None = None  # the "pick φ" view, docked beside the panels by the controller
        self.question_box = QVBoxLayout()
        self.reveal_button = QPushButton("Reveal")
        self.reveal_button.setToolTip("Compute the answer live with the model (seeded: everyone sees the same numbers)")
        self.reveal_button.setDefault(True)
        self.reset_button = QPushButton("Reset this step")
        self.reset_button.setToolTip("Set the panel up as the step began")
        self.leave_button = QPushButton("Leave the tour")
        self.leave_button.setToolTip("Back to what was open before the tour")
        self.status = _label()
        self.score_label = _label()
        self.explanation = _label()

        top = QHBoxLayout()
        top.addWidget(self.back_button)
        top.addWidget(self.position, 1, Qt.AlignmentFlag.AlignCenter)
        top.addWidget(self.next_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.reveal_button)
        buttons.addWidget(self.reset_button)
        buttons.addStretch(1)
        buttons.addWidget(self.leave_button)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tour_label)
        lay.addLayout(top)
        lay.addWidget(self.progress)
        lay.addWidget(self.title)
        lay.addWidget(self.text)
        lay.addWidget(line)
        lay.addLayout(self.question_box)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.score_label)
        lay.addWidget(self.explanation)
        lay.addStretch(1)

        self.back_button.clicked.connect(self.back_requested)
        self.next_button.clicked.connect(self.next_requested)
        self.reveal_button.clicked.connect(self.reveal_requested)
        self.reset_button.clicked.connect(self.reset_requested)
        self.leave_button.clicked.connect(self.leave_requested)

    def show_step(self, tour: Tour, index: int) -> None:
        step: Step = tour.steps[index]
        n = len(tour.steps)
        self.tour_label.setText(f"<span style='color:gray'>Lecture: {tour.title}</span>")
        self.position.setText(f"Step <b>{index + 1}</b> of {n}")
        self.progress.setRange(0, n)
        self.progress.setValue(index + 1)
        self.back_button.setEnabled(index > 0)
        self.next_button.setEnabled(index < n - 1)
        self.title.setText(f"<h2>{index + 1}. {step.title}</h2>")
        self.text.setText(step.text)
        if self.question_widget is not None:  # gone at once, not at the next pass of the event loop
            self.question_box.removeWidget(self.question_widget)
            self.question_widget.hide()
            self.question_widget.setParent(None)
            self.question_widget.deleteLater()
        self.question_widget = QuestionWidget(step.question)
        self.question_box.addWidget(self.question_widget)
        self.reveal_button.setEnabled(True)
        self.status.setText("<span style='color:gray'>Predict first, then press Reveal.</span>")
        self.score_label.setText("")
        self.explanation.setText("")

    def show_computing(self) -> None:
        self.reveal_button.setEnabled(False)
        self.question_widget.lock(True)
        self.status.setText("<i>Computing with the model…</i>")

    def show_failed(self, message: str) -> None:
        self.reveal_button.setEnabled(True)
        self.question_widget.lock(False)
        self.status.setText(f"<span style='color:{WRONG}'>The reveal failed: {message}</span>")

    def show_reveal(self, score: Score, explanation: str) -> None:
        colour = RIGHT if score.correct else WRONG
        mark = "✓" if score.correct else "✗"
        self.status.setText("<span style='color:gray'>Now try it in the panel; Reset this step starts over.</span>")
        self.score_label.setText(f"<b style='color:{colour}'>{mark} {score.text}</b>")
        self.explanation.setText(explanation)
        self.question_widget.mark(score.answer, score.correct)
