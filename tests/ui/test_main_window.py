"""The main window: training through the panel, closing mid-run, errors, checkpoints, layout."""

import time

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

from lvm_studio.core.checkpoint import load_checkpoint
from lvm_studio.core.history import EvalRecord, StepRecord
from lvm_studio.core.training import TrainConfig, Trainer
from lvm_studio.core.vae import VAEConfig, copy_state_to_cpu
from lvm_studio.ui import main_window_files
from lvm_studio.ui.panels import PanelSpec
from lvm_studio.ui.training.new_model_dialog import NewModelDialog, parse_hidden
from lvm_studio.workers.training_worker import live_training_threads


class ProbePanel(QWidget):
    """A stand-in for another engineer's panel: reads the hub, counts weight updates."""

    SNAPSHOT_INTERVAL_S = 0.05  # it shows decoded weights: snapshots while it is on screen

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.updates = 0
        self.label = QLabel(hub.name)
        QVBoxLayout(self).addWidget(self.label)
        hub.weights_updated.connect(self._on_weights_updated)

    def _on_weights_updated(self, step):
        self.updates += 1


class BrokenPanel(QWidget):
    def __init__(self, hub, parent=None):
        raise RuntimeError("this panel cannot start")


PROBE = PanelSpec("probe", "Probe", __name__, "ProbePanel", "right", "explore")
SECOND = PanelSpec("probe2", "Probe two", __name__, "ProbePanel", "right", "mixtures")
BROKEN = PanelSpec("broken", "Broken", __name__, "BrokenPanel", "right", "explore")
MISSING = PanelSpec("missing", "Missing", "lvm_studio.ui.no_such_panel", "Nope", "right", "explore")


def _error_boxes(window):
    return [b for b in window.findChildren(QMessageBox) if b.isVisible()]


def _wait_running(qtbot, window, steps=1):
    qtbot.waitUntil(lambda: len(window.hub.history.train) >= steps, timeout=30_000)  # a loaded 2-core machine


def test_start_pause_resume_stop_from_the_panel(qtbot, window):
    p = window.training_panel
    assert p.start_button.isEnabled() and not p.stop_button.isEnabled()
    qtbot.mouseClick(p.start_button, Qt.MouseButton.LeftButton)
    _wait_running(qtbot, window, 2)
    assert window.controller.state == "running"
    # what a running Trainer cannot change is disabled; the learning rate stays editable
    assert not p.batch_size.isEnabled() and not p.objective.isEnabled() and not p.device.isEnabled()
    assert p.lr.isEnabled() and not p.start_button.isEnabled() and p.stop_button.isEnabled()
    # New and Open stay available while training: they offer to stop (and save) first (issue 11, item 6)
    assert window.open_action.isEnabled() and window.new_action.isEnabled()

    qtbot.mouseClick(p.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "paused at step" in p.messages(), timeout=5_000)
    assert p.pause_button.text() == "Resume" and p.state_label.text() == "Paused"
    n = len(window.hub.history.train)
    with qtbot.assertNotEmitted(window.hub.record_added, wait=250):  # no record while paused
        pass
    assert len(window.hub.history.train) == n

    qtbot.mouseClick(p.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(window.hub.history.train) > n, timeout=5_000)
    assert p.pause_button.text() == "Pause"

    with qtbot.waitSignal(window.controller.ended, timeout=5_000):
        qtbot.mouseClick(p.stop_button, Qt.MouseButton.LeftButton)
    assert p.start_button.isEnabled() and p.batch_size.isEnabled()
    hub = window.hub
    assert hub.step >= hub.history.train[-1].step and hub.dirty  # a partial log window is not recorded
    assert hub.optimizer_state is not None
    # the status bar shows the device, the step and the rate
    assert window.device_label.text().startswith("device: cpu")
    assert f"step {hub.step}" in window.step_label.text()
    assert "images/s" in window.rate_label.text() and window.rate_label.text()[0].isdigit()
    assert "•" in window.windowTitle()  # unsaved progress


def test_training_continues_from_where_it_stopped(qtbot, window):
    window.start_training()
    _wait_running(qtbot, window, 2)
    window.controller.stop_and_wait(2.0)
    step, weights = window.hub.step, {k: v.clone() for k, v in window.hub.model.state_dict().items()}
    window.start_training()
    qtbot.waitUntil(lambda: window.hub.history.train[-1].step > step + 10, timeout=30_000)
    window.controller.stop_and_wait(2.0)
    steps = [r.step for r in window.hub.history.train]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one history, numbered on
    assert any(not torch.equal(weights[k], v) for k, v in window.hub.model.state_dict().items())


def test_weight_snapshots_reach_the_other_panels(qtbot, make_window):
    window = make_window(panel_specs=(PROBE,))
    window.show()  # snapshots come only for panels on screen
    probe = window.docks["probe"].widget()
    window.training_panel.epochs.setValue(1000)
    window.start_training()
    qtbot.waitUntil(lambda: probe.updates >= 1, timeout=30_000)  # snapshots come about once a second
    window.controller.stop_and_wait(2.0)
    assert window.hub.step > 0


def test_closing_mid_training_stops_within_a_second_and_asks_to_save(qtbot, window, monkeypatch):
    asked = []
    window.ask_before_closing = True
    monkeypatch.setattr(window, "save_layout", lambda: None)
    monkeypatch.setattr(window, "ask_save_changes", lambda: asked.append(1) or QMessageBox.StandardButton.Discard)
    window.show()
    window.start_training()
    _wait_running(qtbot, window, 2)
    t0 = time.perf_counter()
    assert window.close()
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"closing took {elapsed:.2f} s"
    assert asked == [1]
    assert live_training_threads() == []
    assert not window.isVisible()


def test_cancel_on_close_keeps_the_window_and_its_progress(qtbot, window, monkeypatch, tmp_path):
    window.ask_before_closing = True
    monkeypatch.setattr(window, "save_layout", lambda: None)
    monkeypatch.setattr(window, "ask_save_changes", lambda: QMessageBox.StandardButton.Cancel)
    window.show()
    window.start_training()
    _wait_running(qtbot, window, 2)
    assert not window.close()
    # Cancel leaves the run going exactly as it was (issue 11, item 5: it used to stop first)
    assert window.isVisible() and window.controller.state == "running"
    n = len(window.hub.history.train)
    qtbot.waitUntil(lambda: len(window.hub.history.train) > n, timeout=30_000)
    # Save writes the checkpoint and then closes
    window.hub.set_path(tmp_path / "kept.pt")
    monkeypatch.setattr(window, "ask_save_changes", lambda: QMessageBox.StandardButton.Save)
    assert window.close()
    ckpt = load_checkpoint(tmp_path / "kept.pt")
    assert ckpt["step"] == window.hub.step > 0


def test_an_exception_in_the_worker_shows_a_message_and_the_app_goes_on(qtbot, window, monkeypatch):
    original = Trainer._loss

    def failing(self, x):
        if self.step >= 2:
            raise ValueError("boom inside the worker")
        return original(self, x)

    monkeypatch.setattr(Trainer, "_loss", failing)
    window.start_training()
    qtbot.waitUntil(lambda: bool(_error_boxes(window)), timeout=30_000)
    box = _error_boxes(window)[0]
    assert "boom inside the worker" in box.text() and "ValueError" in box.text()
    assert window.controller.state == "idle" and window.training_panel.start_button.isEnabled()
    box.accept()

    monkeypatch.setattr(Trainer, "_loss", original)
    n = len(window.hub.history.train)
    window.start_training()
    qtbot.waitUntil(lambda: len(window.hub.history.train) > n + 1, timeout=30_000)
    window.controller.stop_and_wait(2.0)


def test_a_nan_loss_is_reported_and_training_goes_on(qtbot, window, monkeypatch):
    original = Trainer._loss

    def nan_once(self, x):
        loss, elbo, recon, kl = original(self, x)
        if self.step == 5 and not getattr(self, "_nan_done", False):
            self._nan_done = True
            return loss * float("nan"), elbo, recon, kl
        return loss, elbo, recon, kl

    monkeypatch.setattr(Trainer, "_loss", nan_once)
    window.start_training()
    qtbot.waitUntil(lambda: "non-finite loss" in window.training_panel.messages(), timeout=30_000)
    assert "non-finite" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: bool(window.hub.history.train) and window.hub.history.train[-1].step > 20, timeout=30_000)
    assert window.controller.state == "running" and _error_boxes(window) == []
    window.controller.stop_and_wait(2.0)


def test_a_corrupt_checkpoint_shows_a_message_and_keeps_the_model(qtbot, window, tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint" * 10)
    before = window.hub.model
    assert window.open_checkpoint(bad) is False
    qtbot.waitUntil(lambda: bool(_error_boxes(window)), timeout=2_000)
    assert "corrupt" in _error_boxes(window)[0].text() or "not an LVM Studio" in _error_boxes(window)[0].text()
    assert window.hub.model is before and window.hub.name == "tiny VAE"
    _error_boxes(window)[0].accept()
    # and the app keeps working
    window.start_training()
    _wait_running(qtbot, window, 1)
    window.controller.stop_and_wait(2.0)


def test_save_and_open_round_trip_restores_weights_and_history(qtbot, window, make_window, hub, tmp_path):
    window.training_panel.eval_every.setValue(20)
    window.start_training()
    qtbot.waitUntil(lambda: len(window.hub.history.evals) >= 1, timeout=30_000)
    window.controller.stop_and_wait(2.0)
    path = tmp_path / "round.pt"
    assert window.save_checkpoint(path) and not window.hub.dirty
    train, evals = list(window.hub.history.train), list(window.hub.history.evals)
    weights = {k: v.clone() for k, v in window.hub.model.state_dict().items()}

    window.new_model(VAEConfig(latent_dim=3, hidden=(16,)), name="other")
    assert window.hub.latent_dim == 3 and window.hub.history.train == []
    assert window.open_checkpoint(path)
    assert window.hub.history.train == train and window.hub.history.evals == evals
    assert all(torch.equal(weights[k], v) for k, v in window.hub.model.state_dict().items())
    assert window.hub.optimizer_state is not None and window.hub.path == path
    window.curves_panel.redraw()
    assert window.curves_panel.evals_plotted == len(evals)


def test_saving_while_training_goes_through_the_worker(qtbot, window, tmp_path):
    window.start_training()
    _wait_running(qtbot, window, 1)
    path = tmp_path / "live.pt"
    window.save_checkpoint(path)
    qtbot.waitUntil(lambda: path.is_file() and window.hub.path == path, timeout=5_000)
    window.controller.stop_and_wait(2.0)
    ckpt = load_checkpoint(path)
    assert ckpt["step"] > 0 and ckpt["optimizer"] is not None and ckpt["history"]["train"]["step"]


def test_panels_from_the_registry_are_docked_and_toggled_from_view(qtbot, make_window):
    window = make_window(panel_specs=(PROBE, BROKEN, MISSING, SECOND))
    window.show()
    assert set(window.docks) == {"training", "curves", "probe", "probe2", "lecture", "lecture_vi_1d"}  # + the tour
    assert set(window.panel_errors) == {"broken", "missing"}
    assert "cannot start" in window.panel_errors["broken"]
    assert window.tabifiedDockWidgets(window.docks["probe"]) == [window.docks["probe2"]]
    toggles = {a.text(): a for a in window.view_menu.actions()}
    assert {"Training", "Live curves", "Probe", "Probe two", "&Reset layout"} <= set(toggles)
    toggles["Probe"].trigger()
    assert window.docks["probe"].isHidden()
    toggles["Probe"].trigger()
    assert not window.docks["probe"].isHidden()
    assert window.docks["probe"].widget().label.text() == "tiny VAE"


def test_layout_is_remembered_and_reset(qtbot, make_window, settings):
    first = make_window(panel_specs=(PROBE,))
    first.show()
    first.docks["probe"].hide()
    first.save_layout()
    first.close()

    second = make_window(panel_specs=(PROBE,), settings_=settings)
    second.show()
    assert second.docks["probe"].isHidden()
    second.reset_layout()
    assert not second.docks["probe"].isHidden() and not second.docks["training"].isHidden()
    assert second.dockWidgetArea(second.docks["training"]) == Qt.DockWidgetArea.LeftDockWidgetArea


def test_shortcuts_for_the_common_actions(window):
    keys = {
        a: a.shortcut().toString()
        for a in (
            window.start_action,
            window.pause_action,
            window.stop_action,
            window.eval_action,
            window.open_action,
            window.save_action,
            window.new_action,
            window.reset_layout_action,
        )
    }
    assert keys[window.start_action] == "F5" and keys[window.stop_action] == "Shift+F5"
    assert keys[window.pause_action] == "F6" and keys[window.eval_action] == "F7"
    assert keys[window.open_action] == "Ctrl+O" and keys[window.save_action] == "Ctrl+S"
    assert keys[window.new_action] == "Ctrl+N" and keys[window.reset_layout_action] == "Ctrl+Shift+R"


def test_new_model_dialog_and_parse_hidden(qtbot, window):
    assert parse_hidden("512, 256") == (512, 256) and parse_hidden("64 32") == (64, 32)
    for bad in ("", "a, b", "0", "-3"):
        with pytest.raises(ValueError):
            parse_hidden(bad)
    dialog = NewModelDialog(window, VAEConfig(), "elbo", 5)
    qtbot.addWidget(dialog)
    dialog.latent_dim.setValue(4)
    dialog.hidden.setText("64, oops")
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled() and dialog.error.text()
    dialog.hidden.setText("64, 32")
    dialog.likelihood.setCurrentIndex(dialog.likelihood.findData("gaussian"))
    dialog.objective.setCurrentIndex(dialog.objective.findData("iwae"))
    dialog.k.setValue(10)
    config = dialog.config()
    assert (config.latent_dim, config.hidden, config.likelihood) == (4, (64, 32), "gaussian")
    window.new_model(config, dialog.model_name(), *dialog.objective_choice())
    assert window.hub.latent_dim == 4 and window.hub.name == "untrained " + config.describe()
    assert window.training_panel.objective.currentData() == "iwae" and window.training_panel.k.value() == 10
    assert "gaussian" in window.windowTitle()


def test_start_up_model(qtbot, window, monkeypatch, tmp_path):
    monkeypatch.setattr(main_window_files, "default_checkpoint_path", lambda: None)
    window.open_startup_model()
    assert window.hub.name.startswith("untrained") and window.hub.config == VAEConfig()
    assert "No pretrained model" in window.statusBar().currentMessage()

    path = tmp_path / "pre.pt"
    window.new_model(VAEConfig(latent_dim=2, hidden=(16,)), name="pretrained test model")
    window.save_checkpoint(path)
    monkeypatch.setattr(main_window_files, "default_checkpoint_path", lambda: path)
    window.open_startup_model()
    assert window.hub.name == "pretrained test model" and window.hub.latent_dim == 2

    broken = tmp_path / "broken.pt"
    broken.write_text("not a checkpoint")
    monkeypatch.setattr(main_window_files, "default_checkpoint_path", lambda: broken)
    window.open_startup_model()
    assert window.hub.name.startswith("untrained") and "could not be opened" in window.statusBar().currentMessage()


def test_history_records_reach_the_hub_in_order(qtbot, window):
    window.training_panel.eval_every.setValue(15)
    window.start_training()
    qtbot.waitUntil(lambda: len(window.hub.history.evals) >= 2, timeout=30_000)
    window.controller.stop_and_wait(2.0)
    h = window.hub.history
    assert all(isinstance(r, StepRecord) for r in h.train) and all(isinstance(e, EvalRecord) for e in h.evals)
    assert [e.step for e in h.evals][:2] == [15, 30]
    assert "evaluation" in window.training_panel.eval_bar.format()


def _record(step):
    return StepRecord(
        step=step, epoch=step / 100, elbo=-150.0, recon=-145.0, kl=5.0, loss=150.0, lr=1e-3, beta=1.0, images_per_s=1.0
    )


def test_hub_fields_are_read_only_and_each_setter_announces_its_change(qtbot, hub, tmp_path):
    for field in ("dirty", "path", "name", "history", "step", "epoch", "train_config", "optimizer_state"):
        with pytest.raises(AttributeError):
            setattr(hub, field, None)
    seen = []
    hub.dirty_changed.connect(lambda dirty: seen.append(("dirty", dirty)))
    hub.path_changed.connect(lambda path: seen.append(("path", path)))
    hub.name_changed.connect(lambda name: seen.append(("name", name)))
    hub.record_added.connect(lambda record: seen.append(("record", record.step)))
    hub.optimizer_state_changed.connect(lambda: seen.append(("optimizer",)))
    state = copy_state_to_cpu(hub.model)
    hub.load_state(state, step=7, epoch=0.5)
    hub.load_state(state, step=8, epoch=0.6)  # already dirty: announced once
    hub.add_record(_record(8))
    hub.set_optimizer_state({"state": {}, "param_groups": []}, {"lr": 1e-3})
    hub.mark_saved(tmp_path / "m.pt")
    hub.set_name("renamed")
    hub.set_name("renamed")  # no change, no signal
    assert seen == [
        ("dirty", True),
        ("record", 8),
        ("optimizer",),
        ("path", tmp_path / "m.pt"),
        ("dirty", False),
        ("name", "renamed"),
    ]
    assert (hub.step, hub.epoch, hub.path, hub.dirty) == (8, 0.6, tmp_path / "m.pt", False)
    assert hub.history.train == [_record(8)] and hub.train_config == {"lr": 1e-3}
    # a different model resets every field and announces what changed
    hub.load_state(state, step=9, epoch=0.7)
    seen.clear()
    hub.set_model(hub.model, name="other")
    assert {("dirty", False), ("name", "other"), ("path", None), ("optimizer",)} <= set(seen)
    assert hub.step == 0 and hub.history.train == [] and hub.optimizer_state is None


def test_the_title_and_status_bar_follow_the_hub(window, hub, tmp_path):
    hub.load_state(copy_state_to_cpu(hub.model), step=3, epoch=0.1)
    assert window.windowTitle() == "LVM Studio — tiny VAE •"
    hub.mark_saved(tmp_path / "saved.pt")
    assert window.windowTitle() == "LVM Studio — tiny VAE"
    hub.set_name("renamed")
    assert window.windowTitle() == "LVM Studio — renamed" and window.model_label.text() == "renamed"


# --- issue 11: the first ten minutes ------------------------------------------------------------


def _shipped_hashes():
    from lvm_studio.core.pretrained import pretrained_dir, sha256_of

    return {p.name: sha256_of(p) for p in sorted(pretrained_dir().iterdir()) if p.is_file()}


def _progress(hub):
    """Unsaved training progress, as a snapshot from a run would leave it."""
    hub.load_state(copy_state_to_cpu(hub.model), step=hub.step + 1, epoch=hub.epoch + 0.01)


def test_saving_a_shipped_model_never_writes_it(qtbot, window, monkeypatch, tmp_path):
    from PySide6.QtCore import QStandardPaths

    from lvm_studio.core.pretrained import default_checkpoint_path, is_shipped

    QStandardPaths.setTestModeEnabled(True)
    shipped = default_checkpoint_path()
    assert shipped is not None and is_shipped(shipped)
    before = _shipped_hashes()
    starts, answers = [], []  # the folders the save dialog starts in; the paths it returns

    def save_dialog(parent, title, start, filt):
        starts.append(start)
        return str(answers.pop(0)), filt

    monkeypatch.setattr(main_window_files.QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    monkeypatch.setattr(window, "save_layout", lambda: None)
    monkeypatch.setattr(window, "ask_save_changes", lambda: QMessageBox.StandardButton.Save)
    app_data = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)

    def shipped_with_progress():
        assert window.open_checkpoint(shipped) and window.hub.path == shipped
        _progress(window.hub)

    # Save (Ctrl+S): asks where, starting in the user's data folder
    shipped_with_progress()
    answers.append(tmp_path / "saved.pt")
    window._on_save()
    assert starts[-1].startswith(app_data) and window.hub.path == tmp_path / "saved.pt" and not window.hub.dirty
    assert _shipped_hashes() == before
    # choosing the shipped file itself in the dialog is refused with a message
    shipped_with_progress()
    answers.append(shipped)
    window._on_save()
    assert window.hub.dirty and "never changes" in window.errors[-1]
    assert window.save_checkpoint(shipped) is False and window.save_checkpoint(shipped.parent / "new.pt") is False
    assert not (shipped.parent / "new.pt").exists() and _shipped_hashes() == before
    for box in _error_boxes(window):
        box.accept()
    # Save as
    answers.append(tmp_path / "as.pt")
    window._on_save_as()
    assert (tmp_path / "as.pt").is_file() and _shipped_hashes() == before
    # the "save changes?" question before opening another model and before a new one
    window.ask_before_closing = True
    shipped_with_progress()
    answers.append(tmp_path / "before-open.pt")
    monkeypatch.setattr(main_window_files.QFileDialog, "getOpenFileName", staticmethod(lambda *a: (str(shipped), "")))
    window._on_open()
    assert (tmp_path / "before-open.pt").is_file() and window.hub.path == shipped
    _progress(window.hub)
    answers.append(tmp_path / "before-new.pt")
    monkeypatch.setattr(NewModelDialog, "exec", lambda self: NewModelDialog.DialogCode.Accepted)
    window._on_new_model()
    assert (tmp_path / "before-new.pt").is_file() and window.hub.path is None
    assert _shipped_hashes() == before
    # and before closing
    shipped_with_progress()
    answers.append(tmp_path / "before-close.pt")
    assert window.close()
    assert (tmp_path / "before-close.pt").is_file() and _shipped_hashes() == before
    assert all(not is_shipped(s) for s in starts)


def test_the_default_layout_fits_1280_by_720(qtbot, make_window):
    from PySide6.QtCore import QPoint, QRect
    from PySide6.QtWidgets import QApplication

    from lvm_studio.ui.panels import PANELS

    window = make_window(panel_specs=PANELS)
    assert not window.panel_errors, window.panel_errors
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 640, hint
    window.show()
    window.reset_layout()
    qtbot.waitUntil(lambda: window.size().toTuple() == (1280, 720))
    inside = QRect(0, 0, 1280, 720)

    def shown(widget) -> QRect:
        """The part of the widget on screen: clipped by every parent (a scroll area's viewport too)."""
        if not widget.isVisible():
            return QRect()
        r = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
        parent = widget.parentWidget()
        while parent is not None and parent is not window:
            r = r.intersected(QRect(parent.mapTo(window, QPoint(0, 0)), parent.size()))
            parent = parent.parentWidget()
        return r.intersected(inside)

    def on_screen(widget, least=(1, 1)):
        r = shown(widget)
        return r.width() >= least[0] and r.height() >= least[1]

    p = window.training_panel
    for w in (p.new_run_button, p.start_button, p.pause_button, p.stop_button, p.epoch_bar):
        assert shown(w).size() == w.size(), w  # wholly on screen
    assert on_screen(window.curves_panel.view, (300, 200))
    for key, dock in window.docks.items():
        if key in window.optional_docks:  # the lecture's docks: hidden until a tour starts (tests/ui/test_lecture.py)
            assert dock.isHidden(), key
            continue
        dock.raise_()
        QApplication.processEvents()
        panel = dock.widget()
        assert inside.contains(dock.geometry()), key
        # each panel is on screen, most of it without scrolling (a larger one scrolls, never widens the window)
        least = panel.minimumSizeHint()
        visible = shown(panel)
        assert on_screen(panel, (min(300, least.width()), min(200, least.height()))), key
        assert visible.width() >= 0.6 * least.width() and visible.height() >= 0.6 * least.height(), key
    assert window.size().toTuple() == (1280, 720)  # nothing widened it


def test_a_new_model_starts_empty_with_a_new_models_settings(qtbot, window):
    p = window.training_panel
    p.lr.setValue(0.0002)  # the old run's fine-tuning rate
    p.set_objective("iwae", 5)
    window.hub.add_record(_record(8))
    assert window.train_new_model()
    hub = window.hub
    assert hub.config == VAEConfig() and hub.name.startswith("untrained")
    assert p.lr.value() == TrainConfig().lr and p.objective.currentData() == "elbo"
    assert p.epoch_bar.format() == f"epoch 0.00 / {p.epochs.value()}"
    qtbot.waitUntil(lambda: len(hub.history.train) >= 1, timeout=30_000)
    window.controller.stop_and_wait(2.0)
    assert hub.history.train[0].step <= 20 and hub.history.evals == []  # a history of its own, from step 0
    assert window.curves_panel.evals_plotted == 0


def test_continuing_keeps_the_optimizer_state(qtbot, window, monkeypatch):
    window.start_training()
    _wait_running(qtbot, window, 2)
    window.controller.stop_and_wait(2.0)
    state = window.hub.optimizer_state
    first_steps = int(next(iter(state["state"].values()))["step"])
    assert first_steps == window.hub.step > 0
    jobs = []
    original = window.controller.start
    monkeypatch.setattr(window.controller, "start", lambda job: jobs.append(job) or original(job))
    window.start_training()
    assert jobs[0].optimizer_state is state and jobs[0].step == window.hub.step
    n = len(window.hub.history.train)
    qtbot.waitUntil(lambda: len(window.hub.history.train) > n, timeout=30_000)
    window.controller.stop_and_wait(2.0)
    assert int(next(iter(window.hub.optimizer_state["state"].values()))["step"]) == window.hub.step > first_steps


def test_open_and_new_while_training_offer_to_stop_first(qtbot, window, monkeypatch, tmp_path):
    other = tmp_path / "other.pt"
    assert window.save_checkpoint(other)
    window.hub.set_name("the running one")
    window.ask_before_closing = True
    answer = []
    monkeypatch.setattr(window, "ask_save_changes", lambda: answer[-1])
    monkeypatch.setattr(main_window_files.QFileDialog, "getOpenFileName", staticmethod(lambda *a: (str(other), "")))
    monkeypatch.setattr(NewModelDialog, "exec", lambda self: NewModelDialog.DialogCode.Accepted)
    window.start_training()
    _wait_running(qtbot, window, 1)
    assert window.open_action.isEnabled() and window.new_action.isEnabled()
    # Cancel: nothing changes, training goes on
    answer.append(QMessageBox.StandardButton.Cancel)
    window.open_action.trigger()
    window.new_action.trigger()
    assert window.controller.state == "running" and window.hub.name == "the running one"
    # Discard: the run stops and the other model opens
    answer.append(QMessageBox.StandardButton.Discard)
    window.open_action.trigger()
    assert window.controller.state == "idle" and window.hub.path == other
    # Save: the run stops, is saved where it came from, and the new model replaces it
    window.start_training()
    _wait_running(qtbot, window, 1)
    answer.append(QMessageBox.StandardButton.Save)
    window.new_action.trigger()
    assert window.controller.state == "idle" and window.hub.path is None
    assert load_checkpoint(other)["step"] > 0


def test_an_exception_in_a_slot_is_shown_once_and_logged(qtbot, window, monkeypatch, caplog):
    import sys

    from PySide6.QtCore import QObject, Signal

    from lvm_studio.ui.app import install_excepthook

    class Emitter(QObject):
        fired = Signal()

    def broken_slot():
        raise RuntimeError("The size of tensor a (2) must match the size of tensor b (32)")

    window.show()
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # put pytest-qt's back afterwards
    install_excepthook(lambda: window)
    emitter = Emitter()
    emitter.fired.connect(broken_slot)
    with caplog.at_level("ERROR"):
        emitter.fired.emit()
        emitter.fired.emit()  # the same error again: status bar, no second dialog
    boxes = [b for b in _error_boxes(window) if b.windowTitle() == "Something went wrong"]
    assert len(boxes) == 1 and "size of tensor a (2)" in boxes[0].text() and "broken_slot" in boxes[0].text()
    assert "Internal error: RuntimeError" in window.statusBar().currentMessage()
    assert "Traceback" in caplog.text and "broken_slot" in caplog.text
    boxes[0].accept()


def test_help_about_and_what_am_i_looking_at(qtbot, make_window):
    import pyqtgraph
    import PySide6

    from lvm_studio.ui.help import about_text
    from lvm_studio.ui.help_texts import PANEL_HELP
    from lvm_studio.ui.panels import PANELS

    text = about_text()
    for version in (torch.__version__, PySide6.__version__, pyqtgraph.__version__, "MIT", "MNIST", "LeCun"):
        assert version in text
    assert {spec.key for spec in PANELS} | {"training", "curves"} <= set(PANEL_HELP)
    assert all(entry["title"] and "<p>" in entry["body"] for entry in PANEL_HELP.values())
    window = make_window(panel_specs=(PROBE,))
    window.show()
    assert not window.docks["probe"].title_bar.help_button.isVisibleTo(window)  # no text for it: no "?"
    qtbot.mouseClick(window.docks["curves"].title_bar.help_button, Qt.MouseButton.LeftButton)
    boxes = _error_boxes(window)
    assert len(boxes) == 1 and "Live curves" in boxes[0].windowTitle() and "KL(q(z|x)" in boxes[0].text()
    boxes[0].accept()
    titles = [a.text() for a in window.panel_help_menu.actions()]
    assert titles == ["Training", "Live curves"]
    window.about_action.trigger()
    boxes = _error_boxes(window)
    assert len(boxes) == 1 and "pyqtgraph" in boxes[0].text()
    boxes[0].accept()


def test_the_progress_bar_counts_epochs_as_the_log_does(window):
    window.training_panel.show_progress(195, 0.73, 215)
    assert window.training_panel.epoch_bar.format() == "epoch 195.73 / 215"


class QuietPanel(QWidget):
    """A panel that shows no weights (no SNAPSHOT_INTERVAL_S)."""

    def __init__(self, hub, parent=None):
        super().__init__(parent)


QUIET = PanelSpec("quiet", "Quiet", __name__, "QuietPanel", "right", "explore")


def test_snapshots_only_as_often_as_the_visible_panels_use_them(qtbot, make_window, monkeypatch):
    window = make_window(panel_specs=(PROBE, QUIET))
    calls = []
    monkeypatch.setattr(window.controller, "set_snapshot_interval", calls.append, raising=False)
    assert window.snapshot_interval() is None  # nothing on screen
    window.show()
    window.docks["probe"].raise_()
    qtbot.waitUntil(lambda: window.snapshot_interval() == ProbePanel.SNAPSHOT_INTERVAL_S)
    jobs = []
    original = window.controller.start
    monkeypatch.setattr(window.controller, "start", lambda job: jobs.append(job) or original(job))
    window.start_training()
    assert jobs[0].config.snapshot_interval_s == ProbePanel.SNAPSHOT_INTERVAL_S
    window.docks["quiet"].raise_()  # the probe goes behind its tab: nobody looks at weights
    qtbot.waitUntil(lambda: calls and calls[-1] is None)
    window.docks["probe"].raise_()
    qtbot.waitUntil(lambda: calls[-1] == ProbePanel.SNAPSHOT_INTERVAL_S)
    window.controller.stop_and_wait(2.0)


def test_thread_settings_are_stored_and_applied(qtbot, window, settings):
    from lvm_studio.core import threads
    from lvm_studio.ui.thread_settings import TASKS_KEY, TRAINING_KEY, ThreadSettingsDialog

    dialog = ThreadSettingsDialog(settings, window)
    qtbot.addWidget(dialog)
    try:
        dialog.automatic.setChecked(False)
        dialog.training.setValue(1)
        dialog.tasks.setValue(1)
        policy = dialog.apply()
        assert int(settings.value(TRAINING_KEY)) == 1 and int(settings.value(TASKS_KEY)) == 1
        assert threads.current() == policy and (policy.training, policy.tasks) == (1, 1)
        dialog.automatic.setChecked(True)
        dialog.apply()
        assert settings.value(TRAINING_KEY) is None and threads.current() == threads.configure(None)
    finally:
        threads.configure(None)


def test_f11_toggles_full_screen(qtbot, window):
    assert window.full_screen_action.shortcut().toString() == "F11"
    window.show()
    window.full_screen_action.trigger()
    qtbot.waitUntil(window.isFullScreen)
    window.full_screen_action.trigger()
    qtbot.waitUntil(lambda: not window.isFullScreen())


def test_continuing_the_shipped_model_starts_where_its_run_ended(qtbot, window):
    from lvm_studio.core.checkpoint import history_from_checkpoint
    from lvm_studio.core.pretrained import default_checkpoint_path
    from lvm_studio.core.training import resume_lr

    path = default_checkpoint_path()
    ckpt = load_checkpoint(path)
    assert window.open_checkpoint(path)
    lr = resume_lr(ckpt.get("train_config"), ckpt.get("optimizer"), history_from_checkpoint(ckpt))
    assert lr is not None and window.training_panel.lr.value() == pytest.approx(lr, abs=1e-6)
    job = window._job()
    assert job.step == ckpt["step"] > 0 and job.config.lr == pytest.approx(lr, abs=1e-6)


def test_a_saved_window_larger_than_the_screen_is_fitted_to_it(qtbot, make_window, settings):
    first = make_window()
    first.resize(2266, 1400)
    first.save_layout()
    second = make_window(settings_=settings)
    free = second.screen().availableGeometry()
    assert second.width() <= free.width() and second.height() <= free.height()
