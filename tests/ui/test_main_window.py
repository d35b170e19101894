"""The main window: training through the panel, closing mid-run, errors, checkpoints, layout."""

import time

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

from lvm_studio.core.checkpoint import load_checkpoint
from lvm_studio.core.history import EvalRecord, StepRecord
from lvm_studio.core.training import Trainer
from lvm_studio.core.vae import VAEConfig, copy_state_to_cpu
from lvm_studio.ui import main_window_files
from lvm_studio.ui.panels import PanelSpec
from lvm_studio.ui.training.new_model_dialog import NewModelDialog, parse_hidden
from lvm_studio.workers.training_worker import live_training_threads


class ProbePanel(QWidget):
    """A stand-in for another engineer's panel: reads the hub, counts weight updates."""

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
    qtbot.waitUntil(lambda: len(window.hub.history.train) >= steps, timeout=10_000)


def test_start_pause_resume_stop_from_the_panel(qtbot, window):
    p = window.training_panel
    assert p.start_button.isEnabled() and not p.stop_button.isEnabled()
    qtbot.mouseClick(p.start_button, Qt.MouseButton.LeftButton)
    _wait_running(qtbot, window, 2)
    assert window.controller.state == "running"
    # what a running Trainer cannot change is disabled; the learning rate stays editable
    assert not p.batch_size.isEnabled() and not p.objective.isEnabled() and not p.device.isEnabled()
    assert p.lr.isEnabled() and not p.start_button.isEnabled() and p.stop_button.isEnabled()
    assert not window.open_action.isEnabled() and not window.new_action.isEnabled()

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
    qtbot.waitUntil(lambda: window.hub.history.train[-1].step > step + 10, timeout=10_000)
    window.controller.stop_and_wait(2.0)
    steps = [r.step for r in window.hub.history.train]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one history, numbered on
    assert any(not torch.equal(weights[k], v) for k, v in window.hub.model.state_dict().items())


def test_weight_snapshots_reach_the_other_panels(qtbot, make_window):
    window = make_window(panel_specs=(PROBE,))
    probe = window.docks["probe"].widget()
    window.training_panel.epochs.setValue(1000)
    window.start_training()
    qtbot.waitUntil(lambda: probe.updates >= 1, timeout=10_000)  # snapshots come about once a second
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
    assert window.isVisible() and window.controller.state == "idle" and window.hub.dirty
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
    qtbot.waitUntil(lambda: bool(_error_boxes(window)), timeout=10_000)
    box = _error_boxes(window)[0]
    assert "boom inside the worker" in box.text() and "ValueError" in box.text()
    assert window.controller.state == "idle" and window.training_panel.start_button.isEnabled()
    box.accept()

    monkeypatch.setattr(Trainer, "_loss", original)
    n = len(window.hub.history.train)
    window.start_training()
    qtbot.waitUntil(lambda: len(window.hub.history.train) > n + 1, timeout=10_000)
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
    qtbot.waitUntil(lambda: "non-finite loss" in window.training_panel.messages(), timeout=10_000)
    assert "non-finite" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: bool(window.hub.history.train) and window.hub.history.train[-1].step > 20, timeout=10_000)
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
    qtbot.waitUntil(lambda: len(window.hub.history.evals) >= 1, timeout=15_000)
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
    assert set(window.docks) == {"training", "curves", "probe", "probe2"}
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
    qtbot.waitUntil(lambda: len(window.hub.history.evals) >= 2, timeout=15_000)
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
