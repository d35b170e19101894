"""The main window's File menu: new model, open and save checkpoints, exports, the save question.

A mixin of MainWindow (lvm_studio.ui.main_window), which provides `hub`, `controller`,
`training_panel`, `curves_panel`, `ask_before_closing`, `statusBar()` and `show_error()`.
Every change to the current model goes through the hub's setters (ModelHub.set_model,
mark_saved), whose signals update the title and the status bar.

The shipped models (core.pretrained.is_shipped) are read-only: saving one asks where to save,
starting in the user's data folder, and no save ever writes inside the package or pretrained/.
Closing, opening another model and creating one all go through `settle_current_run`: while a run
is going or progress is unsaved it asks first, and only then stops the run (Cancel leaves it running).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QStandardPaths, Slot
from PySide6.QtWidgets import QFileDialog, QMessageBox

import lvm_studio
from lvm_studio.core import autosave
from lvm_studio.core.checkpoint import (
    CheckpointError,
    headline_metrics,
    history_from_checkpoint,
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from lvm_studio.core.data import N_PIXELS, DataError, check_fits
from lvm_studio.core.pretrained import default_checkpoint_path, is_shipped, pretrained_dir, vae_entries
from lvm_studio.core.training import resume_lr
from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui.training.new_model_dialog import NewModelDialog

log = logging.getLogger(__name__)

CHECKPOINT_FILTER = "LVM Studio checkpoints (*.pt);;All files (*)"
CLOSE_TIMEOUT_S = 1.0  # the training thread must end this quickly when the window closes


class CheckpointFiles:
    """Opening, saving and creating models; exporting the curves and the window."""

    _save_path_pending: Path | None = None  # a save the training thread was asked to make
    autosave_enabled = True  # runs autosave to the user's data folder (off in smoke runs)

    # --- autosave and recovery (issue 13, item 9) ---------------------------------------
    def autosave_dir(self) -> str | None:
        """Where the training thread autosaves (core.autosave), or None when autosave is off."""
        return str(user_data_dir()) if self.autosave_enabled else None

    def remove_autosave(self) -> None:
        """This session's autosave is not needed: the model was saved, or the app closes cleanly."""
        if self.autosave_enabled:
            autosave.remove_own_autosave(user_data_dir())

    def ask_recover(self, found: autosave.Autosave) -> QMessageBox.StandardButton:
        """Recover (Yes), Discard, or keep it for later (Ignore); tests replace this method."""
        box = QMessageBox(self)
        box.setWindowTitle("Recover a training run?")
        box.setIcon(QMessageBox.Icon.Question)
        box.setText("LVM Studio did not close properly last time. A model it was training was autosaved.")
        box.setInformativeText(f"{found.describe()}.\nRecover it as the current (unsaved) model?")
        box.setStandardButtons(
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Ignore
        )
        box.button(QMessageBox.StandardButton.Yes).setText("Recover")
        box.button(QMessageBox.StandardButton.Ignore).setText("Keep for later")
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        return QMessageBox.StandardButton(box.exec())

    def offer_recovery(self) -> bool:
        """At launch: offer back the newest autosave a crashed session left; True if it was recovered."""
        if not self.autosave_enabled:
            return False
        data_dir = user_data_dir()
        found = autosave.find_autosaves(data_dir)
        if not found:
            return False
        answer = self.ask_recover(found[0])
        if answer == QMessageBox.StandardButton.Discard:
            for a in found:
                autosave.discard(a)
            self.statusBar().showMessage("Discarded the autosaved run", 5000)
            return False
        if answer != QMessageBox.StandardButton.Yes:
            return False  # kept: offered again at the next launch
        try:
            ckpt = load_checkpoint(found[0].path)
            self._adopt_checkpoint(ckpt, None)
        except CheckpointError as e:
            self.show_error("Could not recover the autosaved run", str(e))
            return False
        autosave.adopt(found[0], data_dir)  # ours now: kept on another crash, removed on a clean exit
        self.hub.set_dirty(True)  # recovered progress is not saved anywhere the user chose
        self.statusBar().showMessage(f"Recovered {found[0].describe()}", 10000)
        return True

    # --- models and checkpoints -------------------------------------------------------
    def open_startup_model(self, path: str | Path | None = None) -> None:
        """--checkpoint if given, else the pretrained default, else the untrained default model."""
        if path:
            if self.open_checkpoint(path):
                return
        else:
            default = default_checkpoint_path()
            if default is not None and self._fits_data(default):
                try:
                    self._adopt_checkpoint(load_checkpoint(default), default)
                    self.statusBar().showMessage(f"Opened the pretrained model {self.hub.name}", 8000)
                    return
                except CheckpointError as e:
                    self.statusBar().showMessage(f"The pretrained model could not be opened: {e}", 15000)
                    log.warning("pretrained default unusable: %s", e)
                    self.hub.set_model(
                        VAE(self._default_config()), name="untrained " + self._default_config().describe()
                    )
                    return
        self.hub.set_model(VAE(self._default_config()), name="untrained " + self._default_config().describe())
        if not path:
            self.statusBar().showMessage(
                "No pretrained model under pretrained/: an untrained VAE is loaded. Press F5 to train it.", 15000
            )

    def _default_config(self) -> VAEConfig:
        """The default architecture, for the current dataset's image size."""
        return VAEConfig(x_dim=self.hub.data.n_pixels)

    def _set_untrained_default(self) -> None:
        config = self._default_config()
        self.hub.set_model(VAE(config), name="untrained " + config.describe())

    def _fits_data(self, path) -> bool:
        """Whether the shipped default model (28 × 28) can take the current dataset's images."""
        try:
            return self.hub.data.n_pixels == N_PIXELS
        except DataError:
            return True  # no data to judge by: the pretrained model is still worth showing

    def open_checkpoint(self, path: str | Path) -> bool:
        """Open a checkpoint as the current model; on error show why and keep the current one."""
        if self.controller.is_active():
            self.show_error("Cannot open a checkpoint", "Stop training before opening another model.")
            return False
        try:
            ckpt = load_checkpoint(path)
            check_fits(int(ckpt["model_config"].get("x_dim", N_PIXELS)), self.hub.data)  # an imported dataset's side
            self._adopt_checkpoint(ckpt, path)
        except (CheckpointError, DataError) as e:
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
        # Continue carries on where the run really ended (a decayed rate included); without the
        # optimizer state the Trainer warms the rate up, so continuing does not knock the model off
        lr = resume_lr(ckpt.get("train_config"), ckpt.get("optimizer"), history)
        if lr is not None:
            self.training_panel.show_lr(lr)

    def save_checkpoint(self, path: str | Path) -> bool:
        """While training: the worker saves between steps (with its optimizer). Otherwise: now."""
        path = Path(path)
        if is_protected(path):
            self.show_error(
                "Cannot save there",
                f"{path} is inside LVM Studio's own files (the shipped models or the package), which the app "
                "never changes. Choose another place, e.g. the folder Save offers.",
            )
            return False
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
        self.remove_autosave()
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def _on_save_notice(self, kind: str, message: str) -> None:
        """The training thread's answer to a save asked for while training ran."""
        if kind == "saved" and self._save_path_pending is not None:
            self.hub.mark_saved(self._save_path_pending)
            self._save_path_pending = None
            self.remove_autosave()
        elif kind == "save_failed":
            self._save_path_pending = None
            self.show_error("Could not save the checkpoint", message)

    def new_model(self, config: VAEConfig, name: str | None = None, objective: str = "elbo", k: int = 1) -> None:
        if self.controller.is_active():
            self.show_error("Cannot create a model", "Stop training before creating a new model.")
            return
        config = replace(config, x_dim=self.hub.data.n_pixels)  # the input follows the dataset's side
        # a new model starts from a new model's settings, not the old run's (a fine-tuning lr, say)
        self.training_panel.reset_to_defaults()
        self.hub.set_model(VAE(config), name=name or "untrained " + config.describe())
        self.training_panel.set_objective(objective, k)
        self.training_panel.show_progress(0, 0.0, self.training_panel.epochs.value())
        self.curves_panel.redraw()  # the empty history drawn now, with nothing of the old model's
        self.statusBar().showMessage(f"New model: {config.describe()}", 5000)

    @Slot()
    def train_new_model(self) -> bool:
        """Fresh weights of the default architecture, empty curves, a new model's settings: watch it learn."""
        if not self.settle_current_run("training a new model"):
            return False
        self.new_model(self._default_config())
        self.training_panel.add_message("a new model: fresh weights, watch the curves and the latent views change")
        return self.start_training()

    # --- unsaved progress and running training -----------------------------------------
    _pending_action = "closing"  # what the question is about: closing, opening another model, ...

    def ask_save_changes(self) -> QMessageBox.StandardButton:
        """Save, Discard or Cancel before `_pending_action` (tests replace this method)."""
        running = self.controller.is_active()
        if running:
            text = (
                f"{self.hub.name} is training. Before {self._pending_action}, the run stops. Save its progress first?"
            )
        else:
            text = f"{self.hub.name} has training progress that is not saved. Save it before {self._pending_action}?"
        return QMessageBox.question(
            self,
            "Training is running" if running else "Unsaved training progress",
            text,
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )

    def settle_current_run(self, action: str = "closing") -> bool:
        """Before dropping the current model or run: ask (while training, or with unsaved progress),
        then stop the run and save if asked. False (nothing changed, training goes on) on Cancel."""
        running = self.controller.is_active() or self.controller.thread_alive()
        if self.ask_before_closing and (running or self.hub.dirty):
            self._pending_action = action
            answer = self.ask_save_changes()
            if answer == QMessageBox.StandardButton.Save:
                path = self._save_target()
                if not path:
                    return False  # no place chosen: as if cancelled
                self._stop_run()
                return self.save_checkpoint(path)
            if answer != QMessageBox.StandardButton.Discard:
                return False
        self._stop_run()
        return True

    def _stop_run(self) -> None:
        if self.controller.is_active() or self.controller.thread_alive():
            if not self.controller.stop_and_wait(CLOSE_TIMEOUT_S):
                log.warning("the training thread did not stop within %.1f s", CLOSE_TIMEOUT_S)
                self.controller.finish_pending(5.0)

    def _save_target(self) -> str:
        """Where Save writes: the model's own file, unless it is a shipped one (then ask)."""
        if self.hub.path and not is_protected(self.hub.path):
            return str(self.hub.path)
        return self._ask_save_path()

    def _ask_save_path(self) -> str:
        if self.hub.path and not is_protected(self.hub.path):
            start = Path(self.hub.path)
        else:
            start = user_models_dir() / _file_name(self.hub.name)
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", str(start), CHECKPOINT_FILTER)
        return path

    # --- menu slots -------------------------------------------------------------------
    @Slot()
    def _on_new_model(self):
        objective = self.training_panel.objective.currentData()
        dialog = NewModelDialog(self, self.hub.config, objective, self.training_panel.k.value())
        if dialog.exec() != NewModelDialog.DialogCode.Accepted:
            return
        if not self.settle_current_run("creating a new model"):
            return
        objective, k = dialog.objective_choice()
        self.new_model(dialog.config(), dialog.model_name(), objective, k)
        self.training_panel.pretrain_epochs = dialog.pretrain_epochs()

    def fill_pretrained_menu(self, menu) -> None:
        """File → Open pretrained model: one entry per VAE in pretrained/manifest.json."""
        menu.clear()
        entries = vae_entries()  # the VAEs: what this window opens
        for entry in entries:
            scores = [t for t in entry.get("test", []) if "cluster_accuracy" in t]
            note = f"  (test clustering accuracy {scores[0]['cluster_accuracy']:.3f})" if scores else ""
            action = menu.addAction(entry.get("name", entry["file"]) + note)
            action.setToolTip(entry.get("note", ""))
            action.triggered.connect(functools.partial(self._on_open_pretrained, entry["file"]))
        if not entries:
            menu.addAction("(no pretrained models found)").setEnabled(False)

    def _on_open_pretrained(self, file: str, *_):
        if self.settle_current_run("opening another model"):
            self.open_checkpoint(pretrained_dir() / file)

    @Slot()
    def _on_open(self):
        start = str(self.hub.path.parent if self.hub.path else user_models_dir())
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", start, CHECKPOINT_FILTER)
        if not path or not self.settle_current_run("opening another model"):
            return
        self.open_checkpoint(path)

    @Slot()
    def _on_save(self):
        path = self._save_target()
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


def is_protected(path: str | Path) -> bool:
    """A shipped model, or anywhere inside pretrained/ or the installed package: never written."""
    if is_shipped(path):
        return True
    try:
        p = Path(path).resolve()
        return any(p.is_relative_to(d.resolve()) for d in (pretrained_dir(), Path(lvm_studio.__file__).parent))
    except OSError:
        return False


def user_data_dir() -> Path:
    """The user's data folder (QStandardPaths.AppDataLocation); ~/.lvm-studio when there is none."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base) if base else Path.home() / ".lvm-studio"


def user_models_dir() -> Path:
    """The user's data folder (QStandardPaths.AppDataLocation)/models, made on first use; the home
    folder when there is none."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    folder = Path(base) / "models" if base else Path.home()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Path.home()
    return folder


def _file_name(name: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "model"
    return f"{stem[:60]}.pt"
