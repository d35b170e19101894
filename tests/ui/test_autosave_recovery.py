"""A crash loses minutes, not the run (issue 13, item 9): the training thread autosaves to the user's data
folder, the next launch offers the autosave back, and a clean exit or a save removes it. The SIGKILL
test of a real training process is tests/core/test_crashes.py."""

from __future__ import annotations

import os

import pytest
import torch
from PySide6.QtWidgets import QMessageBox

from lvm_studio.core import autosave
from lvm_studio.core.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from lvm_studio.core.history import History, StepRecord
from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui import main_window_files
from lvm_studio.workers.training_worker import TrainingController, TrainingJob

DEAD_PID = 2**22 + 4321  # above Linux's default pid_max: no such process


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """The user's data folder, here a temporary one."""
    folder = tmp_path / "appdata"
    monkeypatch.setattr(main_window_files, "user_data_dir", lambda: folder)
    return folder


def _crashed_autosave(data_dir, step=123) -> autosave.Autosave:
    torch.manual_seed(1)
    model = VAE(VAEConfig(latent_dim=2, hidden=(16,)))
    history = History()
    record = StepRecord(step, 1.5, elbo=-200.0, recon=-190.0, kl=10.0, loss=200.0, lr=1e-3, beta=1.0, images_per_s=1.0)
    history.add(record)
    ckpt = make_checkpoint(model, name="crashed run", step=step, epoch=1.5, history=history)
    save_checkpoint(autosave.autosave_path(data_dir, pid=DEAD_PID), ckpt)
    (found,) = autosave.find_autosaves(data_dir)
    return found


def test_the_training_thread_autosaves_with_optimizer_and_history(
    qtbot, tiny_model, small_mnist, tiny_config, tmp_path
):
    controller = TrainingController()
    job = TrainingJob(
        model_config=tiny_model.config.to_dict(),
        state_dict={k: v.detach().clone() for k, v in tiny_model.state_dict().items()},
        data=small_mnist,
        config=tiny_config(),
        device="cpu",
        name="autosaved run",
        autosave_dir=str(tmp_path),
        autosave_every_s=0.05,
    )
    notices = []
    controller.notice_posted.connect(notices.append)
    controller.start(job)
    qtbot.waitUntil(lambda: any(n.kind == "autosaved" for n in notices), timeout=20_000)
    assert controller.stop_and_wait(5.0)
    ckpt = load_checkpoint(autosave.autosave_path(tmp_path))  # this process's, verified by its digest
    assert ckpt["name"] == "autosaved run" and ckpt["step"] > 0
    assert ckpt["optimizer"]["state"] and len(ckpt["history"]["train"]["step"]) > 0
    os.unlink(autosave.autosave_path(tmp_path))


def test_the_next_launch_recovers_the_autosave_and_a_clean_exit_removes_it(make_window, data_dir):
    found = _crashed_autosave(data_dir)
    window = make_window()
    asked = []
    window.ask_recover = lambda a: asked.append(a) or QMessageBox.StandardButton.Yes
    assert window.offer_recovery()
    assert asked == [found]
    hub = window.hub
    assert hub.name == "crashed run" and hub.step == 123 and hub.dirty and hub.path is None
    assert [r.step for r in hub.history.train] == [123]
    mine = autosave.autosave_path(data_dir)
    assert mine.exists() and not found.path.exists(), "adopted: kept on another crash"
    assert autosave.find_autosaves(data_dir) == []  # not offered again while this session runs
    window.close()
    assert not mine.exists(), "a clean exit removes it"


def test_discard_removes_it_and_keep_for_later_keeps_it(make_window, data_dir):
    found = _crashed_autosave(data_dir)
    window = make_window()
    window.ask_recover = lambda a: QMessageBox.StandardButton.Ignore
    assert not window.offer_recovery() and found.path.exists()
    assert window.hub.name == "tiny VAE"  # the current model is left as it was
    window.ask_recover = lambda a: QMessageBox.StandardButton.Discard
    assert not window.offer_recovery() and not found.path.exists()
    assert autosave.find_autosaves(data_dir) == []


def test_saving_the_model_removes_this_sessions_autosave(make_window, data_dir, tmp_path):
    window = make_window()
    mine = autosave.autosave_path(data_dir)
    save_checkpoint(mine, make_checkpoint(window.hub.model))
    assert window.save_checkpoint(tmp_path / "saved.pt")
    assert not mine.exists()
