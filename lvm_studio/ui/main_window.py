"""The main window: dockable panels around one "current model" (the ModelHub), the training worker,
menus, status bar and shortcuts. The File menu's work (checkpoints, new models, exports, the
"stop and save first?" question) is in ui/main_window_files.py, the layout (sizes, screen, full
screen, snapshot demand) in ui/main_window_layout.py, messages and Help in ui/main_window_help.py.

Data flow (docs/architecture.md, the data flow while training): the TrainingController runs the
Trainer in its own thread and sends immutable records and CPU weight snapshots; this window adds
the records to the hub (`hub.add_record`: the curves panel redraws on `record_added`) and loads
each snapshot into the hub's replica, which every other panel reads. Snapshots come only as often
as the visible panels use them (`snapshot_interval`). The title and the status bar follow the
hub's signals. Commands go back through the controller, between steps.

With `load_panels=False` every panel is docked as a "Loading…" placeholder and built later by
`load_next_panel()` (the ones on screen first), so the app shows the window before the panels exist.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QSettings, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QSizePolicy, QWidget

from lvm_studio.core.history import EvalRecord, History, StepRecord
from lvm_studio.core.training import Notice, Progress, Snapshot
from lvm_studio.core.vae import copy_state_to_cpu
from lvm_studio.ui.data.dataset_files import DatasetFiles
from lvm_studio.ui.docks import PanelDock
from lvm_studio.ui.help_texts import PANEL_HELP
from lvm_studio.ui.main_window_files import CHECKPOINT_FILTER, CLOSE_TIMEOUT_S, CheckpointFiles
from lvm_studio.ui.main_window_help import WindowHelp
from lvm_studio.ui.main_window_layout import DEFAULT_SIZE, LAYOUT_VERSION, WindowLayout
from lvm_studio.ui.panels import PANELS, PanelSpec, load_panel_class
from lvm_studio.ui.training.curves_panel import CurvesPanel
from lvm_studio.ui.training.training_panel import TrainingPanel
from lvm_studio.workers.training_worker import RunResult, TrainingController, TrainingJob

__all__ = ["CHECKPOINT_FILTER", "CLOSE_TIMEOUT_S", "DEFAULT_SIZE", "LAYOUT_VERSION", "MainWindow", "settings_for_user"]

log = logging.getLogger(__name__)


_AREAS = {
    "left": Qt.DockWidgetArea.LeftDockWidgetArea,
    "right": Qt.DockWidgetArea.RightDockWidgetArea,
    "bottom": Qt.DockWidgetArea.BottomDockWidgetArea,
    "top": Qt.DockWidgetArea.TopDockWidgetArea,
}


def settings_for_user() -> QSettings:
    return QSettings("LVM Studio", "lvm-studio")


class MainWindow(QMainWindow, CheckpointFiles, DatasetFiles, WindowLayout, WindowHelp):
    def __init__(
        self,
        hub,
        settings: QSettings | None = None,
        panel_specs: tuple[PanelSpec, ...] = PANELS,
        parent: QWidget | None = None,
        load_panels: bool = True,
    ):
        super().__init__(parent)
        self.hub = hub
        self.settings = settings if settings is not None else settings_for_user()
        self.ask_before_closing = True  # tests and smoke mode turn the save question off
        self.errors: list[str] = []  # every message shown by show_error, newest last
        self._error_box: QMessageBox | None = None
        self._errors_shown: set[str] = set()  # distinct exceptions already shown in a dialog
        self.training_device = ""  # the device of the latest run, as the worker describes it
        self.setObjectName("MainWindow")
        self.setDockNestingEnabled(True)
        self.resize(DEFAULT_SIZE)

        self._snapshot_timer = QTimer(self)
        self._snapshot_timer.setSingleShot(True)
        self._snapshot_timer.setInterval(0)  # one recount per pass of the event loop
        self._snapshot_timer.timeout.connect(self.update_snapshot_interval)

        # --- the training worker and the two panels that talk to it -------------------
        self.controller = TrainingController(self)
        self.training_panel = TrainingPanel()
        self.curves_panel = CurvesPanel(hub)
        self.docks: dict[str, QDockWidget] = {}
        self._add_dock("training", "Training", self.training_panel, "left")
        self._add_dock("curves", "Live curves", self.curves_panel, "left")
        # training above, curves below: one column on the left, the explorer panels beside it
        self.splitDockWidget(self.docks["training"], self.docks["curves"], Qt.Orientation.Vertical)

        self.panel_errors: dict[str, str] = {}
        self._pending: list[PanelSpec] = []  # docked with a placeholder, built by load_next_panel
        stacks: dict[str, QDockWidget] = {}

        self._build_actions()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        for spec in panel_specs:
            dock = self._dock_panel(spec) if load_panels else self._dock_placeholder(spec)
            if dock is None:
                continue
            first = stacks.get(spec.area)  # one tab stack per area, panels of a group side by side
            if first is None:
                stacks[spec.area] = dock
            else:
                self.tabifyDockWidget(first, dock)
        for first in stacks.values():
            first.raise_()
        self._default_state = self.saveState(LAYOUT_VERSION)
        self._apply_default_sizes()
        self.restore_layout()
        self._on_model_changed()
        self._on_name_changed(hub.name)
        self._on_training_state_changed(self.controller.state)
        from lvm_studio.ui.lecture import install  # the Lecture dock and menu (ui/lecture/)

        self.lecture = install(self)

    # --- construction helpers ---------------------------------------------------------
    def _build_panel(self, spec: PanelSpec) -> QWidget | str:
        """The panel, or why it could not be built (one broken panel never keeps the app from starting)."""
        cls = load_panel_class(spec)
        if cls is None:
            return "module unavailable"
        try:
            return cls(self.hub, self)
        except Exception as e:
            log.exception("panel %s failed to start", spec.title)
            return f"{type(e).__name__}: {e}"

    def _dock_panel(self, spec: PanelSpec) -> QDockWidget | None:
        panel = self._build_panel(spec)
        if isinstance(panel, str):
            self.panel_errors[spec.key] = panel
            return None
        return self._add_dock(spec.key, spec.title, panel, spec.area)

    def _dock_placeholder(self, spec: PanelSpec) -> QDockWidget:
        label = QLabel(f"Loading {spec.title}…")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._pending.append(spec)
        return self._add_dock(spec.key, spec.title, label, spec.area)

    @property
    def pending_panels(self) -> int:
        return len(self._pending)

    def pending_on_screen(self) -> list[PanelSpec]:
        """The panels still to build whose docks are on screen."""
        return [s for s in self._pending if not self.docks[s.key].visibleRegion().isEmpty()]

    def load_next_panel(self) -> str | None:
        """Build one panel docked as a placeholder (those on screen first); its key, or None when done."""
        if not self._pending:
            return None
        spec = (self.pending_on_screen() or self._pending)[0]
        self._pending.remove(spec)
        panel = self._build_panel(spec)
        if isinstance(panel, str):
            self.panel_errors[spec.key] = panel
            panel = QLabel(f"{spec.title} could not start:\n{panel}")
            panel.setWordWrap(True)
        self.docks[spec.key].set_panel(panel)
        self._snapshot_timer.start()
        return spec.key

    def add_dock(self, key: str, title: str, widget: QWidget, area: str = "left") -> QDockWidget:
        """Dock a widget that is not a registered panel (the lecture dock), listed in the View menu."""
        return self._add_dock(key, title, widget, area)

    def _add_dock(self, key: str, title: str, widget: QWidget, area: str) -> QDockWidget:
        dock = PanelDock(key, title, widget, self, has_help=key in PANEL_HELP, scroll=key != "curves")  # plots shrink
        dock.title_bar.help_requested.connect(self.show_panel_help)
        dock.visibilityChanged.connect(lambda _visible: self._snapshot_timer.start())
        self.addDockWidget(_AREAS.get(area, Qt.DockWidgetArea.RightDockWidgetArea), dock)
        self.docks[key] = dock
        if hasattr(self, "view_menu"):  # docked after the menus were built: list it with the others
            self.view_menu.insertAction(self._view_separator, dock.toggleViewAction())
            self._add_help_entry(key)
        return dock

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even with the menu bar hidden
        return action

    def _build_actions(self):
        K = QKeySequence.StandardKey
        self.new_action = self._action("&New model…", self._on_new_model, K.New, "Create an untrained model")
        self.open_action = self._action("&Open checkpoint…", self._on_open, K.Open, "Open a saved model")
        self.open_dataset_action = self._action(
            "Open &dataset…", self.open_dataset_dialog, "Ctrl+Shift+O", "Your own images: a folder or an array file"
        )
        self.save_action = self._action("&Save checkpoint", self._on_save, K.Save, "Save the current model")
        self.save_as_action = self._action("Save checkpoint &as…", self._on_save_as, K.SaveAs)
        self.export_png_action = self._action("Curves as &PNG…", self._on_export_png, "Ctrl+Shift+P")
        self.export_svg_action = self._action("Curves as &SVG…", self._on_export_svg, "Ctrl+Shift+G")
        self.export_csv_action = self._action("History as &CSV…", self._on_export_csv, "Ctrl+Shift+C")
        self.export_shot_action = self._action("&Window screenshot…", self._on_export_screenshot, "Ctrl+Shift+W")
        self.quit_action = self._action("&Quit", self.close, K.Quit)
        self.train_new_action = self._action(
            "Train a &new model", self.train_new_model, "Ctrl+F5", "Fresh weights, empty curves: watch a VAE learn"
        )
        self.start_action = self._action("&Continue training", self.start_training, "F5")
        self.pause_action = self._action("&Pause / resume", self.toggle_pause, "F6")
        self.stop_action = self._action("S&top training", self.stop_training, "Shift+F5")
        self.eval_action = self._action("&Evaluate now", self.evaluate_now, "F7")
        self.threads_action = self._action("&Threads…", self._on_thread_settings, tip="CPU threads for training")
        self.reset_layout_action = self._action("&Reset layout", self.reset_layout, "Ctrl+Shift+R")
        self.full_screen_action = self._action("&Full screen", self.toggle_full_screen, "F11")
        self.full_screen_action.setCheckable(True)
        self.shortcuts_action = self._action("&Keyboard shortcuts", self._on_show_shortcuts, "F1")
        self.about_action = self._action("&About LVM Studio", self.show_about)

    def _build_menus(self):
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for a in (self.new_action, self.open_action, self.save_action, self.save_as_action, self.open_dataset_action):
            file_menu.addAction(a)
        self.pretrained_menu = file_menu.addMenu("Open &pretrained model")
        self.fill_pretrained_menu(self.pretrained_menu)
        export_menu = file_menu.addMenu("&Export")
        for a in (self.export_png_action, self.export_svg_action, self.export_csv_action, self.export_shot_action):
            export_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        train_menu = bar.addMenu("&Training")
        for a in (self.train_new_action, self.start_action, self.pause_action, self.stop_action, self.eval_action):
            train_menu.addAction(a)
        train_menu.addSeparator()
        train_menu.addAction(self.threads_action)
        self.view_menu = bar.addMenu("&View")
        self.help_menu = bar.addMenu("&Help")
        self.panel_help_menu = self.help_menu.addMenu("&What am I looking at?")
        for key, dock in self.docks.items():
            self.view_menu.addAction(dock.toggleViewAction())
            self._add_help_entry(key)
        self._view_separator = self.view_menu.addSeparator()
        self.view_menu.addAction(self.reset_layout_action)
        self.view_menu.addAction(self.full_screen_action)
        self.help_menu.addAction(self.shortcuts_action)
        self.help_menu.addSeparator()
        self.help_menu.addAction(self.about_action)

    def _build_status_bar(self):
        bar = self.statusBar()
        self.model_label = QLabel()
        self.model_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # long names elide
        self.model_label.setMinimumWidth(80)
        self.device_label = QLabel("device: –")
        self.step_label = QLabel("step 0 · epoch 0.00")
        self.rate_label = QLabel("– images/s")
        for w in (self.device_label, self.step_label, self.rate_label):
            bar.addPermanentWidget(w)
        bar.addPermanentWidget(self.model_label, 1)
        self._build_dataset_status()  # ui/data/dataset_files.py

    def _connect(self):
        c, p, hub = self.controller, self.training_panel, self.hub
        c.state_changed.connect(self._on_training_state_changed)
        c.started.connect(self._on_training_started)
        c.step_recorded.connect(self._on_step_recorded)
        c.progressed.connect(self._on_progressed)
        c.evaluated.connect(self._on_evaluated)
        c.eval_progressed.connect(self._on_eval_progressed)
        c.snapshot_taken.connect(self._on_snapshot_taken)
        c.notice_posted.connect(self._on_notice_posted)
        c.failed.connect(self._on_training_failed)
        c.ended.connect(self._on_training_ended)
        p.start_requested.connect(self.start_training)
        p.new_run_requested.connect(self.train_new_model)
        p.pause_requested.connect(self.pause_training)
        p.resume_requested.connect(self.resume_training)
        p.stop_requested.connect(self.stop_training)
        p.eval_requested.connect(self.evaluate_now)
        p.lr_changed.connect(self._on_lr_changed)
        hub.model_changed.connect(self._on_model_changed)
        hub.name_changed.connect(self._on_name_changed)
        hub.dirty_changed.connect(self._on_dirty_changed)

    # --- training ---------------------------------------------------------------------
    def _job(self, **config_overrides) -> TrainingJob:
        hub = self.hub
        state = copy_state_to_cpu(hub.model)  # the job's own copy
        history = History(train=list(hub.history.train), evals=list(hub.history.evals))
        interval = self.snapshot_interval()
        config_overrides.setdefault("snapshot_interval_s", interval if interval is not None else 0.0)
        config = self.training_panel.train_config(start_epoch=hub.epoch, **config_overrides)
        return TrainingJob(
            model_config=hub.config.to_dict(),
            state_dict=state,
            data=hub.data,
            config=config,
            device=self.training_panel.device_choice(),
            optimizer_state=hub.optimizer_state,
            history=history,
            step=hub.step,
            epoch=hub.epoch,
            name=hub.name,
            autosave_dir=self.autosave_dir(),
        )

    @Slot()
    def start_training(self, **config_overrides) -> bool:
        """Continue training the current model (its optimizer state too, when it has one)."""
        if self.controller.is_active():
            return False
        self.controller.finish_pending(2.0)  # a run still ending hands over its final weights first
        try:
            job = self._job(**config_overrides)
        except (ValueError, OSError) as e:
            self.show_error("Cannot start training", str(e))
            return False
        self.controller.start(job)
        self.training_panel.add_message(
            f"starting: {job.config.objective}"
            f"{'-' + str(job.config.k) if job.config.objective == 'iwae' else ''}, "
            f"lr {job.config.lr:g}, batch {job.config.batch_size}, "
            f"until epoch {job.config.epochs}"
            f"{'' if job.optimizer_state is None else ', with the saved optimizer state'}"
        )
        self.update_snapshot_interval()
        return True

    @Slot()
    def pause_training(self):
        self.controller.pause()

    @Slot()
    def resume_training(self):
        self.controller.resume()

    @Slot()
    def toggle_pause(self):
        if self.controller.state == "paused":
            self.controller.resume()
        elif self.controller.state in ("running", "starting"):
            self.controller.pause()

    @Slot()
    def stop_training(self):
        self.controller.stop()

    @Slot()
    def evaluate_now(self):
        self.controller.request_eval()

    @Slot(float)
    def _on_lr_changed(self, lr: float):
        self.controller.set_lr(lr)

    # --- from the worker (GUI thread) -------------------------------------------------
    @Slot(str)
    def _on_training_state_changed(self, state: str):
        self.training_panel.set_state(state)
        active = state != "idle"
        self.start_action.setEnabled(not active)
        self.pause_action.setEnabled(active)
        self.stop_action.setEnabled(active)
        self.eval_action.setEnabled(state in ("running", "paused"))
        # New and Open stay enabled: they offer to stop (and save) the run first

    @Slot(str)
    def _on_training_started(self, device_text: str):
        self.training_device = device_text
        self.device_label.setText(f"device: {device_text}")

    @Slot(object)
    def _on_step_recorded(self, record: StepRecord):
        self.hub.add_record(record)
        self.step_label.setText(f"step {record.step} · epoch {record.epoch:.2f}")
        self.rate_label.setText(f"{record.images_per_s:,.0f} images/s")

    @Slot(object)
    def _on_progressed(self, progress: Progress):
        self.training_panel.show_progress(progress.epoch, progress.epoch_fraction, progress.total_epochs)

    @Slot(object)
    def _on_evaluated(self, record: EvalRecord):
        self.hub.add_record(record)
        self.training_panel.show_eval_progress(1.0)
        self.training_panel.add_message(
            f"epoch {record.epoch:.2f}: val ELBO {record.elbo:.2f}, "
            f"log p(x) ≈ {record.log_px:.2f} (IWAE-{record.k}), gap {record.gap:.2f} nats"
        )

    @Slot(float)
    def _on_eval_progressed(self, fraction: float):
        self.training_panel.show_eval_progress(fraction)

    @Slot(object)
    def _on_snapshot_taken(self, snapshot: Snapshot):
        self.hub.load_state(snapshot.state_dict, snapshot.step, snapshot.epoch)

    @Slot(object)
    def _on_notice_posted(self, notice: Notice):
        self.training_panel.add_message(notice.message)
        self.statusBar().showMessage(notice.message, 8000 if notice.kind in ("nan", "diverged") else 4000)
        if notice.kind in ("saved", "save_failed"):
            self._on_save_notice(notice.kind, notice.message)
        elif notice.kind == "diverged":
            self.show_error("Training diverged", notice.message)

    @Slot(str)
    def _on_training_failed(self, message: str):
        self.show_error("Training stopped by an error", message)

    @Slot(object)
    def _on_training_ended(self, result: RunResult):
        if result.snapshot is not None:
            s = result.snapshot
            self.hub.load_state(s.state_dict, s.step, s.epoch)
            self.hub.set_optimizer_state(result.optimizer_state, result.train_config)
        self.step_label.setText(f"step {self.hub.step} · epoch {self.hub.epoch:.2f}")
        if result.reason != "failed":
            self.training_panel.add_message(f"{result.reason} at step {self.hub.step} (epoch {self.hub.epoch:.2f})")

    # --- hub --------------------------------------------------------------------------
    @Slot()
    def _on_model_changed(self):
        self.step_label.setText(f"step {self.hub.step} · epoch {self.hub.epoch:.2f}")

    @Slot(str)
    def _on_name_changed(self, name: str):
        self.model_label.setText(name)
        self.model_label.setToolTip(name)
        self._update_title()

    @Slot(bool)
    def _on_dirty_changed(self, dirty: bool):
        self._update_title()

    def _update_title(self):
        title = f"LVM Studio — {self.hub.name}{' •' if self.hub.dirty else ''}"
        if title != self.windowTitle():
            self.setWindowTitle(title)

    # --- closing ----------------------------------------------------------------------
    def closeEvent(self, event):
        # ask first: Cancel leaves a running training exactly as it was
        if not self.settle_current_run("closing"):
            event.ignore()
            return
        if self.ask_before_closing:  # a user session: remember the layout
            self.save_layout()
        self.curves_panel.stop_redrawing()
        self._snapshot_timer.stop()
        self.remove_autosave()  # a clean exit: nothing to recover next time
        event.accept()
