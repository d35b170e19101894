"""The main window's datasets: File › Open dataset…, the status bar's dataset label, switching datasets.

A mixin of MainWindow (lvm_studio.ui.main_window), like ui/main_window_files.py: it uses `hub`,
`settings`, `controller`, `statusBar()`, `show_error()`, `settle_current_run()` and `new_model()`.
The dataset lives on the hub (`hub.data`, `hub.data_path`, `data_changed`); panels react to its
signal. A dataset whose images have another size than the current model's input comes with a new
untrained model of the same architecture (`x_dim` = side²), set on the hub together with it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QLabel, QSizePolicy

from lvm_studio.core.data import MNIST
from lvm_studio.core.vae import VAE


class DatasetFiles:
    def _build_dataset_status(self) -> None:
        """The current dataset, at the left of the status bar's permanent widgets."""
        self.data_label = QLabel()
        self.data_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.data_label.setMinimumWidth(120)
        self.statusBar().addPermanentWidget(self.data_label, 1)
        self.hub.data_changed.connect(self._on_data_changed)
        self._on_data_changed()

    @Slot()
    def _on_data_changed(self) -> None:
        path = self.hub.data_path
        try:
            text = f"data: {path.name if path else 'MNIST'} · {self.hub.data.describe()}"
        except Exception as e:  # no data could be loaded: say so, never fail the window
            text = f"data: unavailable ({e})"
        self.data_label.setText(text)
        self.data_label.setToolTip(str(path) if path else "the shipped MNIST digits")

    @Slot()
    def open_dataset_dialog(self) -> bool:
        from lvm_studio.ui.data.dataset_dialog import DatasetDialog

        dialog = DatasetDialog(self, self.settings, self.hub.config.likelihood)
        try:
            if dialog.exec() != DatasetDialog.DialogCode.Accepted or dialog.outcome() is None:
                return False
            outcome = dialog.outcome()
            new = dialog.wants_new_model()
            return self.use_dataset(outcome.data, outcome.path, dialog.likelihood_choice() if new else None)
        finally:
            dialog.deleteLater()

    def use_dataset(self, data: MNIST, path: str | Path | None, new_model_likelihood: str | None = None) -> bool:
        """Make `data` current. A new untrained model comes with it when asked (with that likelihood)
        or when its image size differs from the model's; False (nothing changed) if the user cancels."""
        resize = data.n_pixels != self.hub.config.x_dim
        model = None
        if resize or new_model_likelihood:
            if not self.settle_current_run("switching to another dataset"):
                return False
            config = replace(
                self.hub.config, x_dim=data.n_pixels, likelihood=new_model_likelihood or self.hub.config.likelihood
            )
            model = VAE(config)
        elif self.controller.is_active():
            self.show_error("Cannot change the dataset", "Stop training before opening another dataset.")
            return False
        name = "untrained " + model.config.describe() if model is not None else None
        if model is not None:
            self.training_panel.reset_to_defaults()
        self.hub.set_data(data, path=path, model=model, model_name=name)
        shown = Path(path).name if path else "MNIST"
        extra = f"; a new untrained {model.config.describe()} for it (F5 trains it)" if model is not None else ""
        self.statusBar().showMessage(f"Dataset {shown}: {data.describe()}{extra}", 10000)
        return True
