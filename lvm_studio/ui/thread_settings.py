"""Training › Threads…: the thread policy's two counts (core.threads), stored in QSettings.

Keys "threads/training" and "threads/tasks"; a missing key means the policy's own choice for this
machine (or LVM_STUDIO_THREADS). A change applies to the next run and the next background task:
each thread sets its count when it starts (core.threads.use).
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, Slot
from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from lvm_studio.core import threads

TRAINING_KEY = "threads/training"
TASKS_KEY = "threads/tasks"


def _stored(settings: QSettings, key: str) -> int | None:
    value = settings.value(key)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def apply_saved(settings: QSettings) -> threads.ThreadPolicy:
    """Configure the process from the saved counts (none saved: the default policy); returns it."""
    training, tasks = _stored(settings, TRAINING_KEY), _stored(settings, TASKS_KEY)
    threads.configure(None)
    if training is None and tasks is None:
        return threads.current()
    base = threads.current()
    try:
        policy = threads.ThreadPolicy(
            training=training or base.training, tasks=tasks or base.tasks, gui=base.gui, wait_policy=base.wait_policy
        )
    except ValueError:
        return base
    return threads.configure(policy)


class ThreadSettingsDialog(QDialog):
    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Threads")
        self.settings = settings
        threads.configure(None)
        default = threads.current()
        now = apply_saved(settings)
        cores = threads.available_cores()
        self.automatic = QCheckBox(f"Automatic for this machine ({cores} cores: {default.describe()})")
        self.automatic.setChecked(_stored(settings, TRAINING_KEY) is None and _stored(settings, TASKS_KEY) is None)
        self.training = QSpinBox(minimum=1, maximum=max(1, cores), value=min(now.training, max(1, cores)))
        self.training.setToolTip("Intra-op threads of the training thread")
        self.tasks = QSpinBox(minimum=1, maximum=max(1, cores), value=min(now.tasks, max(1, cores)))
        self.tasks.setToolTip("Intra-op threads of each background task (inpainting, clusters, grids)")
        self.note = QLabel(
            "Training and background tasks together should not ask for more threads than there are cores: "
            "idle OpenMP threads spin and slow everything else down. Applies to the next run."
        )
        self.note.setWordWrap(True)
        form = QFormLayout()
        form.addRow(self.automatic)
        form.addRow("Training threads", self.training)
        form.addRow("Background task threads", self.tasks)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._on_accepted)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(buttons)
        self.automatic.toggled.connect(self._on_automatic_toggled)
        self._on_automatic_toggled(self.automatic.isChecked())

    @Slot(bool)
    def _on_automatic_toggled(self, on: bool) -> None:
        self.training.setEnabled(not on)
        self.tasks.setEnabled(not on)

    def apply(self) -> threads.ThreadPolicy:
        if self.automatic.isChecked():
            self.settings.remove(TRAINING_KEY)
            self.settings.remove(TASKS_KEY)
        else:
            self.settings.setValue(TRAINING_KEY, self.training.value())
            self.settings.setValue(TASKS_KEY, self.tasks.value())
        self.settings.sync()
        return apply_saved(self.settings)

    @Slot()
    def _on_accepted(self) -> None:
        self.apply()
        self.accept()
