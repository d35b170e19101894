"""File › Open dataset…: import a folder of images or an array file, or re-open a recent one.

The conversion (core/dataset_import.py) runs on a TaskRunner with a progress bar and Cancel; the
result is cached as an .npz in the user's data folder (ui/data/datasets.py) and shown before it is
used: a preview grid, the counts, the image size, the images per label and every refused file with
its reason. "Use this dataset" hands it to the window; closing the dialog keeps the current one, and
so does any failure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core.data import MAX_SIDE, MIN_SIDE, MNIST
from lvm_studio.core.dataset_import import ImportOptions, ImportOutcome, open_dataset_task, run_import_task
from lvm_studio.core.images import SIDE
from lvm_studio.core.traversal import tile_images
from lvm_studio.ui.data.datasets import cache_path, recent_datasets, remember_dataset
from lvm_studio.ui.widgets.digit_image import DigitImage
from lvm_studio.workers.tasks import TaskRunner

PREVIEW = 8  # preview grid: PREVIEW × PREVIEW training images
ARRAY_FILTER = "Array files (*.npy *.npz);;All files (*)"


class DatasetDialog(QDialog):
    """Choose, convert and preview a dataset; `outcome()` is what "Use this dataset" accepted."""

    def __init__(self, parent: QWidget | None = None, settings: QSettings | None = None, likelihood: str = "bernoulli"):
        super().__init__(parent)
        self.setWindowTitle("Open dataset")
        self.settings = settings if settings is not None else QSettings("LVM Studio", "lvm-studio")
        self._outcome: ImportOutcome | None = None  # the converted or re-opened dataset on show
        self.runner = TaskRunner("dataset import", parent=self)
        self.runner.progressed.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)

        # --- source and options ---------------------------------------------------------------
        self.source = QLineEdit()
        self.source.setPlaceholderText("a folder of PNG/JPEG/BMP images (subfolders = labels), or a .npy/.npz file")
        folder_button = QPushButton("Folder…")
        folder_button.clicked.connect(self._choose_folder)
        file_button = QPushButton("Array file…")
        file_button.clicked.connect(self._choose_file)
        source_row = QHBoxLayout()
        source_row.addWidget(self.source, 1)
        source_row.addWidget(folder_button)
        source_row.addWidget(file_button)

        self.side = QSpinBox()
        self.side.setRange(MIN_SIDE, MAX_SIDE)
        self.side.setValue(SIDE)
        self.side.setSuffix(" px")
        self.keep_size = QCheckBox("keep the images' own size")
        self.keep_size.toggled.connect(lambda on: self.side.setEnabled(not on))
        self.test_fraction = QDoubleSpinBox()
        self.test_fraction.setRange(0.01, 0.9)
        self.test_fraction.setSingleStep(0.05)
        self.test_fraction.setValue(0.1)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.centre = QComboBox()
        self.centre.addItem("as MNIST for a folder, as they are for an array file", None)
        self.centre.addItem("centred as MNIST (ink bright, fitted to 20/28 of the side, by its centre of mass)", True)
        self.centre.addItem("as they are (grey and resized only)", False)
        self.likelihood = QComboBox()
        self.likelihood.addItem("Bernoulli: binarized afresh at every step", "bernoulli")
        self.likelihood.addItem("Gaussian: the grey levels themselves", "gaussian")
        self.likelihood.setCurrentIndex(max(0, self.likelihood.findData(likelihood)))
        self.new_model = QCheckBox("start a new untrained model for it (always when the image size changes)")
        size_row = QHBoxLayout()
        size_row.addWidget(self.side)
        size_row.addWidget(self.keep_size)
        size_row.addStretch(1)
        form = QFormLayout()
        form.addRow("Source", source_row)
        form.addRow("Image size", size_row)
        form.addRow("Test fraction", self.test_fraction)
        form.addRow("Split seed", self.seed)
        form.addRow("Images", self.centre)
        form.addRow("Model", self.likelihood)
        form.addRow("", self.new_model)

        self.import_button = QPushButton("Import")
        self.import_button.setDefault(True)
        self.import_button.clicked.connect(self.start_import)
        self.cancel_button = QPushButton("Cancel import")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_import)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.status = QLabel("Choose a folder or an array file, then Import.")
        self.status.setWordWrap(True)
        run_row = QHBoxLayout()
        run_row.addWidget(self.import_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)

        # --- recent ---------------------------------------------------------------------------
        self.recent = QComboBox()
        self.recent.setMinimumContentsLength(30)
        self.open_recent_button = QPushButton("Open")
        self.open_recent_button.clicked.connect(self.open_recent)
        recent_row = QHBoxLayout()
        recent_row.addWidget(QLabel("Recent"))
        recent_row.addWidget(self.recent, 1)
        recent_row.addWidget(self.open_recent_button)
        self._fill_recent()

        # --- the result -----------------------------------------------------------------------
        self.preview = DigitImage(min_side=160, hint_side=240)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label_counts = QLabel("")
        self.label_counts.setWordWrap(True)
        self.refused = QListWidget()
        self.refused.setMinimumHeight(60)
        result_box = QGroupBox("Dataset")
        grid = QGridLayout(result_box)
        grid.addWidget(self.preview, 0, 0, 3, 1)
        grid.addWidget(self.summary, 0, 1)
        grid.addWidget(self.label_counts, 1, 1)
        refused_box = QVBoxLayout()
        self.refused_title = QLabel("Refused files")
        refused_box.addWidget(self.refused_title)
        refused_box.addWidget(self.refused, 1)
        grid.addLayout(refused_box, 2, 1)
        grid.setColumnStretch(1, 1)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.use_button = self.buttons.addButton("Use this dataset", QDialogButtonBox.ButtonRole.AcceptRole)
        self.use_button.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(run_row)
        layout.addWidget(self.status)
        layout.addLayout(recent_row)
        layout.addWidget(result_box, 1)
        layout.addWidget(self.buttons)
        self.resize(760, 640)

    # --- what the window reads ------------------------------------------------------------------
    def outcome(self) -> ImportOutcome | None:
        return self._outcome

    def likelihood_choice(self) -> str:
        return self.likelihood.currentData()

    def wants_new_model(self) -> bool:
        return self.new_model.isChecked()

    def options(self) -> ImportOptions:
        return ImportOptions(
            side=None if self.keep_size.isChecked() else self.side.value(),
            test_fraction=round(self.test_fraction.value(), 4),
            seed=self.seed.value(),
            centre=self.centre.currentData(),
        )

    # --- actions --------------------------------------------------------------------------------
    @Slot()
    def _choose_folder(self):
        path = QFileDialog.getExistingDirectory(self, "A folder of images", self.source.text() or str(Path.home()))
        if path:
            self.source.setText(path)

    @Slot()
    def _choose_file(self):
        path, _ = QFileDialog.getOpenFileName(
            self, "An array file", self.source.text() or str(Path.home()), ARRAY_FILTER
        )
        if path:
            self.source.setText(path)

    @Slot()
    def start_import(self) -> bool:
        source = self.source.text().strip()
        if not source:
            self.status.setText("Choose a folder or an array file first.")
            return False
        options = self.options()
        out = cache_path(source, options.side, options.test_fraction, options.centre, options.seed)
        self._running(f"Importing {source} …")
        self.runner.submit(run_import_task, source, str(out), options)
        return True

    @Slot()
    def open_recent(self) -> bool:
        path = self.recent.currentData()
        if not path:
            return False
        self._running(f"Opening {Path(path).name} …")
        self.runner.submit(open_dataset_task, path)
        return True

    @Slot()
    def cancel_import(self) -> None:
        """Stop the running import (its result, were it to come, is dropped: nothing of it is used)."""
        self.runner.cancel()
        self._idle()
        self.progress.setValue(0)
        self.status.setText("Import cancelled; the dataset shown and the window's current one are unchanged.")

    def _running(self, text: str) -> None:
        self.status.setText(text)
        self.progress.setValue(0)
        self.import_button.setEnabled(False)
        self.open_recent_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def _idle(self) -> None:
        self.import_button.setEnabled(True)
        self.open_recent_button.setEnabled(self.recent.count() > 0)
        self.cancel_button.setEnabled(False)

    def _fill_recent(self) -> None:
        self.recent.clear()
        for p in recent_datasets(self.settings):
            self.recent.addItem(p.name, str(p))
        self.open_recent_button.setEnabled(self.recent.count() > 0)

    # --- from the runner (GUI thread) -----------------------------------------------------------
    @Slot(int, float, object)
    def _on_progress(self, task_id: int, fraction: float, payload) -> None:
        self.progress.setValue(int(1000 * fraction))
        if payload:
            self.status.setText(str(payload))

    @Slot(int, object)
    def _on_finished(self, task_id: int, outcome: ImportOutcome) -> None:
        self._idle()
        if outcome.error:
            self.progress.setValue(0)
            self.status.setText(
                "Import cancelled; nothing was written."
                if outcome.error == "cancelled"
                else f"Not imported: {outcome.error}"
            )
            return  # the dataset shown (if any) and the window's current one stay as they were
        self.progress.setValue(1000)
        self._outcome = outcome
        remember_dataset(self.settings, outcome.path)
        self._fill_recent()
        self.show_outcome(outcome)
        self.use_button.setEnabled(True)
        self.status.setText(f"Ready: {outcome.path}")

    @Slot(int, str)
    def _on_failed(self, task_id: int, message: str) -> None:
        self._idle()
        self.status.setText(f"Not imported: {message.splitlines()[0]}")

    @Slot(int)
    def _on_cancelled(self, task_id: int) -> None:
        self._idle()
        self.status.setText("Import cancelled; nothing was written.")

    def show_outcome(self, outcome: ImportOutcome) -> None:
        data: MNIST = outcome.data
        x = data.x_train[: PREVIEW * PREVIEW].astype(np.float32) / 255.0  # (n, side, side)
        if len(x) < PREVIEW * PREVIEW:
            x = np.concatenate([x, np.zeros((PREVIEW * PREVIEW - len(x), *x.shape[1:]), np.float32)])
        self.preview.set_image(tile_images(x.reshape(PREVIEW, PREVIEW, data.side, data.side), gap=1, fill=0.3))
        self.summary.setText(outcome.result.summary() if outcome.result else f"{outcome.path.name}: {data.describe()}")
        if data.labelled:
            y = np.concatenate([data.y_train, data.y_val, data.y_test])
            counts = np.bincount(y, minlength=len(data.label_names))
            self.label_counts.setText(
                "Images per label: " + ", ".join(f"{data.label_name(i)} {c:,}" for i, c in enumerate(counts) if c)
            )
        else:
            self.label_counts.setText("No labels (put the images in one subfolder per label to have them).")
        self.refused.clear()
        refused = outcome.result.refused if outcome.result else []
        self.refused_title.setText(f"Refused files: {len(refused)}" if refused else "Refused files: none")
        for r in refused:
            self.refused.addItem(f"{r.path}: {r.reason}")

    def done(self, code: int) -> None:
        self.runner.shutdown(2.0)  # an import still running is cancelled; nothing half-written is used
        super().done(code)
