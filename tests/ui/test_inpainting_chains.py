"""The inpainting panel's Markov chains (issue 16): after each fit, chains of completions mix live with
the class mix as bars and the acceptance rate; a new stroke stops them (the newest stroke wins) and
they start again for the new drawing; the multi-start fit says whether its starts agree."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch

from lvm_studio.core import masks
from lvm_studio.core.classifier import ClassifierConfig, DigitClassifier
from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui.inpainting.inpainting_panel import InpaintingPanel
from lvm_studio.ui.state.model_hub import ModelHub

WAIT_MS = 30000  # generous: the machine is shared


@pytest.fixture
def panel(qapp, add_panel, small_mnist):
    torch.manual_seed(0)
    hub = ModelHub(data=small_mnist)
    hub.set_model(VAE(VAEConfig(latent_dim=2, hidden=(32,))).eval(), name="tiny")
    p = add_panel(InpaintingPanel(hub))
    p.resize(1100, 760)
    p.steps.setValue(30)
    p.use_importance.setChecked(False)
    p.chains_view.sweeps.setValue(40)
    torch.manual_seed(0)
    p.chains.classifier = DigitClassifier(ClassifierConfig(channels=(2, 4), hidden=8)).eval()  # untrained, tiny
    p.chains.classifier_note = ""
    return p


def _observed_kept(report, x, missing):
    obs = ~missing.reshape(-1)
    comps = report.completions.numpy()  # (chains, 784)
    return np.array_equal(comps[:, obs], np.broadcast_to(x.reshape(-1)[obs], (len(comps), obs.sum())))


def test_chains_follow_a_fit_with_the_class_mix_and_the_acceptance_rate(qtbot, panel):
    panel.show()
    panel.load_test_digit(3)
    with qtbot.waitSignal(panel.chains.finished, timeout=WAIT_MS) as done:
        panel.preset_buttons["top_half"].click()
    report = done.args[0]
    assert report.step == 40 and report.method == "mwg"
    assert report.completions.shape == (16, 784)
    assert _observed_kept(report, panel.canvas.image(), panel.canvas.mask())  # the seen pixels are the user's
    assert 0.0 <= report.accept_rate <= 1.0 and report.ess_min is not None
    heights = panel.chains_view.bars.opts["height"]
    assert heights.shape == (10,) and abs(float(np.sum(heights)) - 1.0) < 1e-4
    assert torch.allclose(report.class_probs.sum(), torch.tensor(1.0))
    text = panel.chains_view.stats.text()
    assert "acceptance rate" in text and "class mix" in text and "effective samples" in text
    assert panel.chains_view.grid_view.image_array() is not None
    assert "starts" in panel.numbers.text()  # the multi-start fit's summary


def test_a_new_stroke_stops_the_chains_and_they_restart_for_it(qtbot, panel):
    panel.show()
    panel.chains_view.sweeps.setValue(20000)  # runs until stopped
    panel.load_test_digit(3)
    with qtbot.waitSignal(panel.chains.report_shown, timeout=WAIT_MS):
        panel.preset_buttons["top_half"].click()
    shown, old_x = [], panel.canvas.image()
    panel.chains.report_shown.connect(shown.append)
    with qtbot.waitSignal(panel.fit_finished, timeout=WAIT_MS):
        panel.load_test_digit(5)  # a new drawing: the old chains stop when its fit is asked for
    new_x, n_before = panel.canvas.image(), len(shown)
    qtbot.waitUntil(lambda: len(shown) > n_before, timeout=WAIT_MS)
    # everything drawn since the new fit ended is of the new drawing: nothing of the old chains
    assert all(_observed_kept(r, new_x, masks.top_half()) for r in shown[n_before:])
    assert not np.array_equal(old_x, new_x)
    panel.chains.stop()


def test_pseudo_gibbs_is_offered_and_accepts_everything(qtbot, panel):
    panel.show()
    panel.chains_view.method.setCurrentIndex(1)
    with qtbot.waitSignal(panel.chains.finished, timeout=WAIT_MS) as done:
        panel.preset_buttons["bottom_half"].click()
    assert done.args[0].method == "pseudo_gibbs" and done.args[0].accept_rate == 1.0
    assert "acceptance" not in panel.chains_view.stats.text()


def test_without_a_classifier_the_chains_still_run_and_say_why(qtbot, panel):
    panel.chains.classifier, panel.chains.classifier_note = None, "no digit classifier is shipped"
    panel.show()
    with qtbot.waitSignal(panel.chains.finished, timeout=WAIT_MS) as done:
        panel.preset_buttons["top_half"].click()
    assert done.args[0].class_probs is None
    assert "no digit classifier" in panel.chains_view.stats.text()
    assert float(np.sum(panel.chains_view.bars.opts["height"])) == 0.0


def test_the_chains_wait_while_training_sends_new_weights(qtbot, panel):
    """New weights every second mean a refit every second: the chains must not take the training's core."""
    from lvm_studio.ui.inpainting import chains_view

    panel.show()
    # as if a training step's weights had just arrived when the fit ends (this slot runs before the
    # panel starts the chains)
    panel.fit_finished.connect(panel.chains.note_weights_updated)
    with qtbot.waitSignal(panel.fit_finished, timeout=WAIT_MS):
        panel.preset_buttons["top_half"].click()
    panel.fit_finished.disconnect(panel.chains.note_weights_updated)
    assert not panel.chains.runner.is_busy() and "wait while the model trains" in panel.chains_view.stats.text()
    # once no weights came for TRAINING_QUIET_S, they run
    with qtbot.waitSignal(panel.chains.finished, timeout=WAIT_MS + 1000 * chains_view.TRAINING_QUIET_S):
        pass
