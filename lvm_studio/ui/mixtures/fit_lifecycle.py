"""What the digit clusters panel's two tabs share: one background fit's lifecycle, and the EM trace plot.

FitLifecycle: a TaskRunner with its Fit and Cancel buttons, a progress bar and a status line.
    start() disables Fit and enables Cancel; the end of the task (finished, failed, cancelled by
    the button or by the runner) enables Fit again, and the tab hears about it through signals.
    The status text is state held here (status, stale), never read back from a label.
trace_plot: mean log-likelihood against EM iteration, one curve per restart; progress_bar,
    rich_label and split_view: the pieces both tabs lay out the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QSplitter, QVBoxLayout, QWidget

from lvm_studio.ui.widgets.axes import plain_axes
from lvm_studio.ui.widgets.controls import button
from lvm_studio.ui.widgets.style import CURVE_CYCLE, MUTED
from lvm_studio.workers.tasks import TaskRunner

PROGRESS_STEPS = 1000  # resolution of the progress bars


def trace_plot(ylabel: str) -> tuple[pg.PlotWidget, list[pg.PlotDataItem]]:
    plot = pg.PlotWidget()
    plain_axes(plot)
    plot.setLabel("bottom", "EM iteration")
    # the quantity as the title, the unit on the axis: a long axis label would be clipped at 130 px
    plot.setTitle(ylabel, size="9pt")
    plot.setLabel("left", "nats")
    plot.showGrid(x=True, y=True, alpha=0.15)
    plot.setMinimumHeight(130)
    curves = [plot.plot(pen=pg.mkPen(c, width=1.8)) for c in CURVE_CYCLE]  # one colour per EM restart
    return plot, curves


def progress_bar() -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, PROGRESS_STEPS)
    bar.setTextVisible(True)
    bar.setFormat("%p %")
    bar.setMaximumWidth(180)
    return bar


class FitLifecycle(QObject):
    """Fit / Cancel / progress / status for one kind of background fit.

    on_fit: called by the Fit button (the tab reads its controls and calls start()).
    """

    progressed = Signal(float, object)  # fraction, payload (core.digit_clusters.TracePoint or None)
    finished = Signal(object)  # the task's result
    cancelled = Signal()  # by the Cancel button, cancel(), or the task itself
    status_changed = Signal(str)  # the status line to show (rich text)

    def __init__(self, name: str, fit_tooltip: str, cancel_tooltip: str, on_fit: Callable[[], None], parent=None):
        super().__init__(parent)
        self.runner = TaskRunner(name, self)
        self.runner.progressed.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.fit_button = button("Fit", fit_tooltip, lambda: on_fit())
        self.cancel_button = button("Cancel", cancel_tooltip, self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = progress_bar()
        self.status = ""  # the status line without its note
        self.stale = False  # the shown result is out of date (a note has been added to the status)

    # --- status -----------------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        self.status, self.stale = text, False
        self.status_changed.emit(text)

    def mark_stale(self, note: str) -> None:
        """Append note to the status once, until the next set_status."""
        if not self.stale:
            self.set_note(note)

    def set_note(self, note: str) -> None:
        """Show the status with note appended (replacing any earlier note), until the next set_status."""
        self.stale = True
        self.status_changed.emit(self.status + note)

    # --- running ----------------------------------------------------------------------------------
    def busy(self) -> bool:
        return self.runner.is_busy()

    def start(self, status: str, fn: Callable, *args, **kwargs) -> None:
        self.progress.setValue(0)
        self.fit_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.set_status(status)
        self.runner.submit(fn, *args, **kwargs)

    def cancel(self) -> None:
        self.runner.cancel()  # the task's own 'cancelled' is dropped: it is no longer the latest
        self._on_cancelled()

    def _ended(self) -> None:
        self.fit_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_progress(self, task_id: int, fraction: float, payload) -> None:
        self.progress.setValue(int(PROGRESS_STEPS * fraction))
        self.progressed.emit(fraction, payload)

    def _on_finished(self, task_id: int, result) -> None:
        self._ended()
        self.progress.setValue(PROGRESS_STEPS)
        self.finished.emit(result)

    def _on_failed(self, task_id: int, message: str) -> None:
        self._ended()
        self.set_status("Failed: " + message.splitlines()[0])

    def _on_cancelled(self, task_id: int | None = None) -> None:
        self._ended()
        self.set_status("Cancelled.")
        self.cancelled.emit()


def rich_label(text: str = "", caption: bool = False) -> QLabel:
    """A word-wrapped rich-text label; caption: in the muted caption colour."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    if caption:
        label.setStyleSheet(f"color: {MUTED};")
    return label


def split_view(left: list[tuple[QWidget, int]], right: list[tuple[QWidget, int]]) -> QSplitter:
    """Gallery side (left, 3 parts) and results side (right, 2 parts); (widget, stretch) each."""
    split = QSplitter(Qt.Orientation.Horizontal)
    for widgets in (left, right):
        side = QWidget()
        lay = QVBoxLayout(side)
        lay.setContentsMargins(0, 0, 0, 0)
        for widget, stretch in widgets:
            lay.addWidget(widget, stretch)
        split.addWidget(side)
    split.setStretchFactor(0, 3)
    split.setStretchFactor(1, 2)
    return split
