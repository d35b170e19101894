"""The main window's File menu: new model, open and save checkpoints, exports, the save question.

A mixin of MainWindow (lvm_studio.ui.main_window), which provides `hub`, `controller`,
`training_panel`, `curves_panel`, `ask_before_closing`, `statusBar()` and `show_error()`.
Every change to the current model goes through the hub's setters (ModelHub.set_model,
mark_saved), whose signals update the title and the status bar.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFileDialog, QMessageBox

from lvm_studio.core.checkpoint import (
    CheckpointError,
    headline_metrics,
    history_from_checkpoint,
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from lvm_studio.core.pretrained import default_checkpoint_path, pretrained_dir
from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui.training.new_model_dialog import NewModelDialog

log = logging.getLogger(__name__)

CHECKPOINT_FILTER = "LVM Studio checkpoints (*.pt);;All files (*)"


class CheckpointFiles:
    """Opening, saving and creating models; exporting the curves and the window."""

    _save_path_pending: Path | None = None  # a save the training thread was asked to make

    # --- models and checkpoints -------------------------------------------------------
    def open_startup_model(self, path: str | Path | None = None) -> None:
        """--checkpoint if given, else the pretrained default, else the untrained default model."""
        if path:
            if self.open_checkpoint(path):
                return
        else:
            default = default_checkpoint_path()
            if default is not None:
                try:
                    self._adopt_checkpoint(load_checkpoint(default), default)
                    self.statusBar().showMessage(f"Opened the pretrained model {self.hub.name}", 8000)
                    return
                except CheckpointError as e:
                    self.statusBar().showMessage(f"The pretrained model could not be opened: {e}", 15000)
                    log.warning("pretrained default unusable: %s", e)
                    self.hub.set_model(VAE(VAEConfig()), name="untrained " + VAEConfig().describe())
                    return
        self.hub.set_model(VAE(VAEConfig()), name="untrained " + VAEConfig().describe())
        if not path:
            self.statusBar().showMessage(
                "No pretrained model under pretrained/: an untrained VAE is loaded. Press F5 to train it.", 15000
            )

    def open_checkpoint(self, path: str | Path) -> bool:
        """Open a checkpoint as the current model; on error show why and keep the current one."""
        if self.controller.is_active():
            self.show_error("Cannot open a checkpoint", "Stop training before opening another model.")
            return False
        try:
            ckpt = load_checkpoint(path)
            self._adopt_checkpoint(ckpt, path)
        except CheckpointError as e:
            self.show_error("Could not open the checkpoint", str(e))
            return False
        self.statusBar().showMessage(f"Opened {path}", 5000)
        return True

    def _adopt_checkpoint(self, ckpt: dict, path) -> None:
        model = model_from_checkpoint(ckpt)
        history = history_from_checkpoint(ckpt)
        self.hub.set_model(
            model,
            name=ckpt.get("name"),
            history=history,
            step=ckpt.get("step", 0),
            epoch=ckpt.get("epoch", 0.0),
            path=path,
            train_config=ckpt.get("train_config"),
            optimizer_state=ckpt.get("optimizer"),
        )
        self.training_panel.apply_config(ckpt.get("train_config"))
        try:  # carry on at the optimizer's current learning rate (a decayed one included)
            self.training_panel.show_lr(float(ckpt["optimizer"]["param_groups"][0]["lr"]))
        except (KeyError, IndexError, TypeError, ValueError):
            pass

    def save_checkpoint(self, path: str | Path) -> bool:
        """While training: the worker saves between steps (with its optimizer). Otherwise: now."""
        path = Path(path)
        if self.controller.is_active():
            self._save_path_pending = path
            self.controller.request_save(path)
            self.statusBar().showMessage(f"Saving {path} after the current step…", 3000)
            return True
        hub = self.hub
        try:
            ckpt = make_checkpoint(
                hub.model,
                name=hub.name,
                optimizer=hub.optimizer_state,
                train_config=hub.train_config,
                step=hub.step,
                epoch=hub.epoch,
                history=hub.history,
                metrics=headline_metrics(hub.history),
            )
            save_checkpoint(path, ckpt)
        except (OSError, RuntimeError) as e:
            self.show_error("Could not save the checkpoint", f"{path}: {e}")
            return False
        hub.mark_saved(path)
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def _on_save_notice(self, kind: str, message: str) -> None:
        """The training thread's answer to a save asked for while training ran."""
        if kind == "saved" and self._save_path_pending is not None:
            self.hub.mark_saved(self._save_path_pending)
            self._save_path_pending = None
        elif kind == "save_failed":
            self._save_path_pending = None
            self.show_error("Could not save the checkpoint", message)

    def new_model(self, config: VAEConfig, name: str | None = None, objective: str = "elbo", k: int = 1) -> None:
        if self.controller.is_active():
            self.show_error("Cannot create a model", "Stop training before creating a new model.")
            return
        self.hub.set_model(VAE(config), name=name or "untrained " + config.describe())
        self.training_panel.set_objective(objective, k)
        self.statusBar().showMessage(f"New model: {config.describe()}", 5000)

    # --- unsaved progress -------------------------------------------------------------
    def ask_save_changes(self) -> QMessageBox.StandardButton:
        """Save, Discard or Cancel for unsaved training progress (tests replace this method)."""
        return QMessageBox.question(
            self,
            "Unsaved training progress",
            f"{self.hub.name} has training progress that is not saved. Save it before closing?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )

    def _confirm_unsaved(self) -> bool:
        """True if it is fine to drop the current model (saved, discarded, or nothing to save)."""
        if not self.hub.dirty or not self.ask_before_closing:
            return True
        answer = self.ask_save_changes()
        if answer == QMessageBox.StandardButton.Save:
            path = self.hub.path or self._ask_save_path()
            return bool(path) and self.save_checkpoint(path)
        return answer == QMessageBox.StandardButton.Discard

    def _ask_save_path(self) -> str:
        start = str(self.hub.path or Path.cwd() / "model.pt")
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", start, CHECKPOINT_FILTER)
        return path

    # --- menu slots -------------------------------------------------------------------
    @Slot()
    def _on_new_model(self):
        if not self._confirm_unsaved():
            return
        objective = self.training_panel.objective.currentData()
        dialog = NewModelDialog(self, self.hub.config, objective, self.training_panel.k.value())
        if dialog.exec() == NewModelDialog.DialogCode.Accepted:
            objective, k = dialog.objective_choice()
            self.new_model(dialog.config(), dialog.model_name(), objective, k)

    @Slot()
    def _on_open(self):
        if not self._confirm_unsaved():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", str(Path.cwd()), CHECKPOINT_FILTER)
        if path:
            self.open_checkpoint(path)

    @Slot()
    def _on_save(self):
        path = self.hub.path if self.hub.path and not _is_pretrained(self.hub.path) else self._ask_save_path()
        if path:
            self.save_checkpoint(path)

    @Slot()
    def _on_save_as(self):
        path = self._ask_save_path()
        if path:
            self.save_checkpoint(path)

    # --- exports ----------------------------------------------------------------------
    def _export(self, title: str, suffix: str, filt: str, fn):
        path, _ = QFileDialog.getSaveFileName(self, title, str(Path.cwd() / f"lvm-studio{suffix}"), filt)
        if not path:
            return
        try:
            fn(path)
        except OSError as e:
            self.show_error("Export failed", str(e))
            return
        self.statusBar().showMessage(f"Exported {path}", 5000)

    @Slot()
    def _on_export_png(self):
        self._export("Export curves as PNG", "-curves.png", "PNG images (*.png)", self.curves_panel.export_png)

    @Slot()
    def _on_export_svg(self):
        self._export("Export curves as SVG", "-curves.svg", "SVG images (*.svg)", self.curves_panel.export_svg)

    @Slot()
    def _on_export_csv(self):
        self._export("Export history as CSV", "-history.csv", "CSV files (*.csv)", self.curves_panel.export_csv)

    @Slot()
    def _on_export_screenshot(self):
        self._export("Save a screenshot of the window", "-window.png", "PNG images (*.png)", self.save_screenshot)

    def save_screenshot(self, path: str | Path) -> Path:
        path = Path(path)
        if not self.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return path


def _is_pretrained(path: Path) -> bool:
    """Saving over a shipped pretrained file would break its checksum: ask for a new path instead."""
    try:
        return Path(path).resolve().parent == pretrained_dir().resolve()
    except OSError:
        return False
