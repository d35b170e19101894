"""The lecture tour's controller: the dock, the Lecture menu, the keys, and one step at a time.

    start(tour)  →  saves what is open (the model with its history and path, the dock layout)
    go_to(i)     →  the step's model (a shipped one, opened read-only), its panel in front, its state
    reveal()     →  core.tour_reveals on a TaskRunner (seeded), then the score, the explanation, and
                    the numbers shown in the panel (ui/lecture/setups.py)
    leave()      →  the tour's own training stopped, the saved model and layout restored

The tour's content comes from a file (core/tour.py); nothing here knows what a step says.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QFileDialog,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
)

from lvm_studio.core import tour as tour_data
from lvm_studio.core.pretrained import pretrained_dir
from lvm_studio.core.tour_reveals import REVEALS, RevealResult, reveal_task
from lvm_studio.core.vae import VAEConfig
from lvm_studio.ui.lecture.presenter import PresenterMode
from lvm_studio.ui.lecture.setups import Stage, apply_state, panel_keys, reveal_input, show_reveal
from lvm_studio.ui.lecture.step_view import StepView
from lvm_studio.ui.lecture.vi_1d_view import VI1DView
from lvm_studio.workers.tasks import TaskRunner

log = logging.getLogger(__name__)

TOUR_FILTER = "LVM Studio tours (*.json);;All files (*)"
STOP_TIMEOUT_S = 10.0  # a run still starting (loading the data) stops only once it has started
NEXT_KEYS = (Qt.Key.Key_Right, Qt.Key.Key_PageDown)
BACK_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_PageUp)
LEFT_DOCKS = ("training", "curves")  # the column the lecture dock shares
ARROW_WIDGETS = (QAbstractSlider, QAbstractSpinBox, QLineEdit, QTextEdit, QPlainTextEdit, QComboBox, QAbstractItemView)


@dataclass(frozen=True)
class SavedState:
    """What was open when the tour started."""

    model: object
    name: str
    history: object
    step: int
    epoch: float
    path: object
    train_config: dict | None
    optimizer_state: dict | None
    dirty: bool
    layout: object


@dataclass(frozen=True)
class RevealOutcome:
    step_id: str
    result: RevealResult
    score: tour_data.Score
    explanation: str
    seconds: float


class LectureController(QObject):
    step_shown = Signal(int)  # the step's index: its model is open, its panel in front, its state set
    revealed = Signal(object)  # a RevealOutcome
    reveal_failed = Signal(str)
    active_changed = Signal(bool)

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.hub = window.hub
        self.tour: tour_data.Tour | None = None
        self.index = -1
        self.active = False
        self.last: RevealOutcome | None = None
        self._saved: SavedState | None = None
        self._opened: tuple[str, int] | None = None  # (model name, hub version) the tour opened
        self._training = False  # the tour started a training run
        self._prediction = None
        self._waiting = None  # (signal, step index) while a reveal waits for a panel's input
        self._reveal_started = 0.0
        self.view = StepView()
        self.stage = Stage(self)
        self.runner = TaskRunner("lecture-reveal", self)
        self.runner.finished.connect(self._on_reveal_finished)
        self.runner.failed.connect(self._on_reveal_failed)
        self.presenter = PresenterMode(window.settings, self)
        self.dock = window.add_dock("lecture", "Lecture", self.view, "left")
        if "training" in window.docks:
            window.tabifyDockWidget(window.docks["training"], self.dock)
        self.dock.hide()
        # the lecture's own figure ("pick φ", a 1-D posterior), docked where the panels are
        self.vi_view = self.view.vi_view = VI1DView()
        self.vi_dock = window.add_dock("lecture_vi_1d", "Pick φ (1-D posterior)", self.vi_view, "right")
        self.vi_dock.hide()
        self._vi_tabified = False  # tabbed with the panels the first time it is shown
        window.optional_docks = frozenset({"lecture", "lecture_vi_1d"})  # shown by the tour, not by Reset layout
        self.view.back_requested.connect(self.back)
        self.view.next_requested.connect(self.next)
        self.view.reveal_requested.connect(self.reveal)
        self.view.reset_requested.connect(self.reset_step)
        self.view.leave_requested.connect(self.leave)
        self._build_menu()
        # the arrow keys' filter sees every event of the application: installed only while a tour
        # runs (always on, it cost the GUI thread about 3 % of a core while training; issue 12)
        self._keys = _TourKeys(self)
        window.destroyed.connect(self._on_window_destroyed)
        if self.presenter.saved():
            self.presenter.set_enabled(True, remember=False)

    # --- the menu ----------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    def _build_menu(self) -> None:
        w = self.window
        self.start_action = self._action(
            "&Start the lecture tour", self._on_start, "Ctrl+L", "Variational Autoencoder I, step by step"
        )
        self.open_action = self._action("&Open tour…", self._on_open, tip="A tour file of your own (JSON)")
        self.next_action = self._action("&Next step", self.next, tip="→ or PgDn")
        self.back_action = self._action("&Previous step", self.back, tip="← or PgUp")
        self.reveal_action = self._action("&Reveal", self.reveal, "Ctrl+Return")
        self.leave_action = self._action("&Leave the tour", self.leave, tip="Back to what was open before")
        self.presenter_action = self._action(
            "P&resenter mode", self._on_presenter_toggled, "F9", "Larger text everywhere, for a projector"
        )
        self.presenter_action.setCheckable(True)
        self.presenter_action.setChecked(self.presenter.saved())
        self.menu = w.menuBar().addMenu("&Lecture")
        w.menuBar().insertMenu(w.help_menu.menuAction(), self.menu)
        for a in (self.start_action, self.open_action, None, self.back_action, self.next_action, self.reveal_action):
            self.menu.addAction(a) if a is not None else self.menu.addSeparator()
        self.menu.addAction(self.leave_action)
        self.menu.addSeparator()
        self.menu.addAction(self.presenter_action)
        self._sync_actions()

    def _sync_actions(self) -> None:
        for a in (self.next_action, self.back_action, self.reveal_action, self.leave_action):
            a.setEnabled(self.active)

    @Slot()
    def _on_start(self) -> None:
        self.start()

    @Slot()
    def _on_open(self) -> None:
        start = str(Path(self.tour.source).parent if self.tour and self.tour.source else Path.home())
        path, _ = QFileDialog.getOpenFileName(self.window, "Open a tour", start, TOUR_FILTER)
        if path:
            self.open_tour(path)

    @Slot(bool)
    def _on_presenter_toggled(self, on: bool) -> None:
        self.set_presenter(on)

    def set_presenter(self, on: bool) -> None:
        self.presenter.set_enabled(on)
        self.presenter_action.setChecked(self.presenter.enabled)

    # --- tours -----------------------------------------------------------------------------------
    def load(self, path: str | Path | None = None) -> tour_data.Tour:
        """A tour file checked against this window's panels (TourError: one line)."""
        return tour_data.load_tour(path, panels=panel_keys(self.window))

    def open_tour(self, path: str | Path) -> bool:
        """Load a teacher's tour and start it; a malformed one is reported in one line and nothing changes."""
        try:
            t = self.load(path)
        except tour_data.TourError as e:
            self.window.show_error("Cannot open the tour", str(e))
            return False
        if self.active:
            self.tour = t
            self.go_to(0)
            return True
        return self.start(t)

    def start(self, tour: tour_data.Tour | None = None, index: int = 0) -> bool:
        if tour is None and self.tour is None:
            try:
                tour = self.load()
            except tour_data.TourError as e:
                self.window.show_error("Cannot open the lecture tour", str(e))
                return False
        if tour is not None:
            self.tour = tour
        if self.active:
            self.go_to(index)
            return True
        if self.window.controller.is_active():
            self.window.show_error(
                "Stop training first",
                "The tour opens models of its own: stop (or save) the current training run before starting it.",
            )
            return False
        from lvm_studio.ui.main_window_layout import LAYOUT_VERSION

        hub = self.hub
        self._saved = SavedState(
            model=hub.model,
            name=hub.name,
            history=hub.history,
            step=hub.step,
            epoch=hub.epoch,
            path=hub.path,
            train_config=hub.train_config,
            optimizer_state=hub.optimizer_state,
            dirty=hub.dirty,
            layout=self.window.saveState(LAYOUT_VERSION),
        )
        self.active = True
        QApplication.instance().installEventFilter(self._keys)
        self.dock.show()
        self.dock.raise_()
        self._sync_actions()
        self.active_changed.emit(True)
        self.go_to(index)
        return True

    def leave(self) -> None:
        """End the tour: its training stopped, the model and layout from before restored."""
        if not self.active:
            return
        self._end_step()
        self._stop_training()
        saved, self._saved = self._saved, None
        self.active = False
        QApplication.instance().removeEventFilter(self._keys)
        self.index = -1
        self._opened = None
        if saved is not None:
            from lvm_studio.ui.main_window_layout import LAYOUT_VERSION

            self.hub.set_model(
                saved.model,
                name=saved.name,
                history=saved.history,
                step=saved.step,
                epoch=saved.epoch,
                path=saved.path,
                train_config=saved.train_config,
                optimizer_state=saved.optimizer_state,
            )
            self.hub.set_dirty(saved.dirty)
            if saved.train_config:
                self.window.training_panel.apply_config(saved.train_config)
            self.window.restoreState(saved.layout, LAYOUT_VERSION)
        self.dock.hide()
        self.vi_dock.hide()
        self._sync_actions()
        self.window.statusBar().showMessage("Left the tour: your model and layout are back", 5000)
        self.active_changed.emit(False)

    # --- steps -----------------------------------------------------------------------------------
    @property
    def step(self) -> tour_data.Step | None:
        return self.tour.steps[self.index] if self.tour and 0 <= self.index < len(self.tour.steps) else None

    @Slot()
    def next(self) -> None:
        if self.active and self.index < len(self.tour.steps) - 1:
            self.go_to(self.index + 1)

    @Slot()
    def back(self) -> None:
        if self.active and self.index > 0:
            self.go_to(self.index - 1)

    @Slot()
    def reset_step(self) -> None:
        if self.active:
            self.go_to(self.index)

    def _end_step(self) -> None:
        if self._waiting is not None:
            self._waiting[0].disconnect(self._on_input_ready)
            self._waiting = None
        self.runner.cancel()
        self.stage.stop()
        self.last = None

    def go_to(self, index: int) -> bool:
        """Set the app up for step `index`; False (the step shown, the reason in the status) if its model
        could not be opened."""
        if not self.active or self.tour is None:
            return False
        index = max(0, min(int(index), len(self.tour.steps) - 1))
        self._end_step()
        self.index = index
        step = self.tour.steps[index]
        self.view.show_step(self.tour, index)
        ok = self._open_model(step.setup.model)
        if not ok:
            self.view.status.setText("The step's model could not be opened; see the message.")
            self.view.reveal_button.setEnabled(False)
        self._arrange(step.setup.panel)
        if ok:
            try:
                apply_state(self.window, self.view, step.setup.panel, step.setup.state)
                if step.setup.model == "new" and step.setup.state.get("train"):
                    self._train_new()
            except Exception as e:  # a panel that cannot take the state: say so, keep the tour going
                log.exception("step %s: set-up failed", step.id)
                self.view.status.setText(f"The panel could not be set up: {type(e).__name__}: {e}")
        self.window.statusBar().showMessage(f"Lecture step {index + 1} of {len(self.tour.steps)}: {step.title}", 5000)
        self.step_shown.emit(index)
        return ok

    def _arrange(self, key: str) -> None:
        """The step's panel in front; the left column (the training controls and the curves, unless the
        step is about the curves) given to the lecture (leave() restores the layout as it was)."""
        docks = self.window.docks
        if key != "lecture_vi_1d":
            self.vi_dock.hide()
        elif not self._vi_tabified:
            panels = [d for k, d in docks.items() if k not in (*LEFT_DOCKS, "lecture", key) and not d.isFloating()]
            if panels:
                self.window.tabifyDockWidget(panels[0], self.vi_dock)
            self._vi_tabified = True
        dock = docks.get(key)
        if dock is not None:
            dock.show()
            dock.raise_()
        for other in LEFT_DOCKS:
            if other != key and other in docks:
                docks[other].hide()
        self.dock.show()
        self.dock.raise_()
        if key in LEFT_DOCKS and key in docks:
            h = self.window.height()
            self.window.resizeDocks([self.dock, docks[key]], [int(0.58 * h), int(0.42 * h)], Qt.Orientation.Vertical)

    def _open_model(self, name: str) -> bool:
        if name == "current":
            return True
        self._stop_training()
        if name == "new":
            return True
        if self._opened == (name, self.hub.version):
            return True  # still the model the tour opened, untouched
        ok = self.window.open_checkpoint(pretrained_dir() / f"{name}.pt")
        self._opened = (name, self.hub.version) if ok else None
        return ok

    def _train_new(self) -> None:
        """A fresh model of the default architecture, trained live (the curves fill)."""
        self.window.new_model(VAEConfig())
        self._opened = None
        self._training = self.window.start_training()

    def _stop_training(self) -> None:
        if self._training:
            if not self.window.controller.stop_and_wait(STOP_TIMEOUT_S):
                log.warning("the tour's training run did not stop within %.0f s", STOP_TIMEOUT_S)
            self._training = False

    # --- the reveal ------------------------------------------------------------------------------
    @Slot()
    def reveal(self) -> None:
        step = self.step
        if step is None:
            return
        spec = REVEALS[step.reveal.compute]
        self._prediction = self.view.question_widget.prediction()
        self.view.show_computing()
        self._reveal_started = time.perf_counter()
        model, wait = reveal_input(self.window, step, self.hub.model if spec.needs_model else None)
        if wait is not None:  # the panel is still preparing what the reveal computes with
            self._waiting = (wait, self.index)
            wait.connect(self._on_input_ready)
            self.view.status.setText("<i>Waiting for the panel's model (fitted in the background)…</i>")
            return
        self.runner.submit(
            reveal_task, step.reveal.compute, model, self.hub.data, dict(step.reveal.args), step.reveal.seed
        )

    @Slot()
    def _on_input_ready(self, *_):
        signal, index = self._waiting
        self._waiting = None
        signal.disconnect(self._on_input_ready)
        if self.active and index == self.index:
            self.reveal()

    def predict(self, value) -> None:
        """Make the prediction as the student would (tests, the smoke tour)."""
        self.view.question_widget.set_prediction(value)

    @Slot(int, object)
    def _on_reveal_finished(self, task_id: int, result: RevealResult) -> None:
        step = self.step
        if step is None or result.name != step.reveal.compute:
            return
        try:
            score = tour_data.score(step.question, self._prediction, result.values)
            explanation = tour_data.explain(step.reveal, result.values)
        except (KeyError, ValueError, IndexError, TypeError) as e:
            self._on_reveal_failed(task_id, f"the tour's question or explanation does not fit the result: {e}")
            return
        self.view.show_reveal(score, explanation)
        try:
            show_reveal(self.window, self.view, self.stage, step, result)
        except Exception as e:
            log.exception("step %s: showing the reveal failed", step.id)
            self.view.status.setText(f"The panel could not show it: {type(e).__name__}: {e}")
        self.last = RevealOutcome(step.id, result, score, explanation, time.perf_counter() - self._reveal_started)
        self.revealed.emit(self.last)

    @Slot(int, str)
    def _on_reveal_failed(self, task_id: int, message: str) -> None:
        line = message.strip().splitlines()[-1] if message.strip() else "unknown error"
        self.view.show_failed(line)
        self.reveal_failed.emit(line)

    def _on_window_destroyed(self, *_):
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self._keys)


class _TourKeys(QObject):
    """→ / PgDn and ← / PgUp (what presentation clickers send) move between steps while a tour runs;
    arrows stay with a focused slider, spin box, text field or list, PgUp / PgDn with a text area."""

    def __init__(self, controller: LectureController):
        super().__init__(controller)
        self.controller = controller

    def eventFilter(self, obj, event) -> bool:
        c = self.controller
        if (
            event.type() != QEvent.Type.KeyPress
            or not c.active
            or event.modifiers()
            not in (
                Qt.KeyboardModifier.NoModifier,
                Qt.KeyboardModifier.KeypadModifier,
            )
        ):
            return False
        key = event.key()
        if key not in NEXT_KEYS and key not in BACK_KEYS:
            return False
        active = QApplication.activeWindow()
        if QApplication.activeModalWidget() is not None or (active is not None and active is not c.window):
            return False
        focus = QApplication.focusWidget()
        arrow = key in (Qt.Key.Key_Left, Qt.Key.Key_Right)
        if arrow and focus is not None and isinstance(focus, ARROW_WIDGETS):
            return False
        if isinstance(focus, (QTextEdit, QPlainTextEdit)):
            return False  # PgUp / PgDn page through a text; anywhere else they are the clicker's
        c.next() if key in NEXT_KEYS else c.back()
        return True
