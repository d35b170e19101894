"""The "Missing pixels as latents" panel (issue 15) on tiny joints: presets, painting, numbers off the
GUI thread, optimisation, the sweep, the conditional samples' labels and a missing MADE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from lvm_studio.core import masks
from lvm_studio.core import pixel_inference as pi
from lvm_studio.core.made import MADE, MADEConfig
from lvm_studio.core.pixel_tasks import binarized_train_subset, fit_mixture_task
from lvm_studio.ui.inpainting.pixel_latents_panel import PixelLatentsPanel

TIMEOUT_MS = 20000


@pytest.fixture(scope="module")
def tiny_mixture(small_mnist):
    return fit_mixture_task(None, binarized_train_subset(small_mnist, 500), k=4, iters=5)


@pytest.fixture
def panel(qtbot, hub, add_panel):
    p = PixelLatentsPanel(hub)
    add_panel(p)
    p.resize(1100, 640)
    return p


def wait_ready(qtbot, panel):
    qtbot.waitUntil(lambda: panel.reference is not None and panel.numbers is not None, timeout=TIMEOUT_MS)


def test_mixture_numbers_presets_and_exact_marginals(qtbot, panel, tiny_mixture):
    panel.use_joint("mixture", tiny_mixture)
    wait_ready(qtbot, panel)
    x, missing = panel.x(), panel.missing()
    assert int(missing.sum()) == 14 * 28  # the top half, by default
    ref = panel.reference
    assert ref.exact and ref.log_px_o == pytest.approx(tiny_mixture.log_marginal(x, missing))
    assert ref.conditional.how == "exact"
    e = panel.numbers.elbo
    assert e.elbo <= ref.log_px_o + 4 * e.se
    assert "exact" in panel.numbers_label.text() and "gap" in panel.numbers_label.text()
    half = e.elbo
    for name, value in (("ones", 1.0), ("zeros", 0.0), ("half", 0.5)):
        panel.set_phi_preset(name)
        assert np.allclose(panel.canvas.phi(), value)
    with qtbot.waitSignal(panel.numbers_updated, timeout=TIMEOUT_MS):
        panel.set_phi_preset("marginals")
    assert panel.canvas.phi() == pytest.approx(tiny_mixture.posterior_marginals(x, missing).numpy(), abs=1e-6)
    assert panel.numbers.elbo.elbo > half  # the exact marginals beat the fair coin


def test_painting_phi_updates_the_numbers(qtbot, panel, tiny_mixture):
    panel.use_joint("mixture", tiny_mixture)
    wait_ready(qtbot, panel)
    before = panel.numbers.elbo.elbo
    canvas = panel.canvas
    canvas.set_value(1.0)
    t = canvas.target_rect()
    cell = t.width() / 28

    def pos(r, c):
        return QPoint(int(t.x() + (c + 0.5) * cell), int(t.y() + (r + 0.5) * cell))

    with qtbot.waitSignal(panel.numbers_updated, timeout=TIMEOUT_MS):
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos(2, 2))
        for c in range(3, 26):
            QTest.mouseMove(canvas, pos(2 + c % 3, c))
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos(4, 25))
    phi_map = canvas.phi_map()
    assert phi_map[3, 10] > 0.9 and phi_map[12, 10] == pytest.approx(0.5)  # painted there, not here
    assert panel.numbers.elbo.elbo != before


def test_optimise_from_the_canvas_and_the_sweep(qtbot, panel, tiny_mixture):
    panel.use_joint("mixture", tiny_mixture)
    wait_ready(qtbot, panel)
    panel.set_phi_preset("ones")
    with qtbot.waitSignal(panel.optimise_finished, timeout=TIMEOUT_MS):
        panel.set_phi_preset("optimised")
    fit = panel.fit
    assert fit.done and len(fit.trace) > 1
    x, missing = panel.x(), panel.missing()
    g = torch.Generator().manual_seed(0)
    opt = pi.elbo_phi(tiny_mixture, x, missing, fit.phi, 500, g).elbo
    assert opt > pi.elbo_phi(tiny_mixture, x, missing, torch.full((len(fit.phi),), 0.5), 500, g).elbo
    assert np.allclose(panel.canvas.phi(), fit.phi.numpy())
    with qtbot.waitSignal(panel.sweep_finished, timeout=TIMEOUT_MS):
        panel.run_estimates(k_max=1000, runs=2)
    s = panel.sweep
    assert s.runs_done == 2 and int(s.ks[-1]) == 1000 and s.exact == pytest.approx(panel.reference.log_px_o)
    assert abs(float(s.importance[:, -1].mean()) - s.exact) < abs(float(s.naive[:, -1].mean()) - s.exact)


def test_made_is_estimated_and_its_samples_labelled(qtbot, panel):
    torch.manual_seed(0)
    made = MADE(MADEConfig(hidden=(8,), direct=False)).eval()
    panel.use_joint("made", made)
    wait_ready(qtbot, panel)
    assert not panel.reference.exact and "importance sampling" in panel.reference.label
    assert panel.reference.conditional.how == "importance-resampled"  # the top half comes first in raster order
    assert not panel.controls.preset_buttons["marginals"].isEnabled()
    panel.set_mask("bottom_half")
    wait_ready(qtbot, panel)
    assert panel.reference.conditional.how == "ancestral"  # after the seen pixels: exact ancestral sampling
    panel.set_mask(masks.empty())
    assert "Nothing is hidden" in panel.status.text()


def test_a_missing_made_is_one_clear_line(qtbot, panel, monkeypatch):
    import lvm_studio.core.pretrained as pretrained

    monkeypatch.setattr(pretrained, "made_checkpoint_path", lambda directory=None: None)
    panel.set_joint("made")  # not started yet: nothing loads
    with qtbot.waitSignal(panel.failed, timeout=TIMEOUT_MS) as blocker:
        panel.start()
    assert "no MADE is shipped" in blocker.args[0]
    assert "\n" not in panel.status.text()


def test_stop_ends_a_long_sweep(qtbot, panel, tiny_mixture):
    panel.use_joint("mixture", tiny_mixture)
    wait_ready(qtbot, panel)
    with qtbot.waitSignal(panel.runners["sweep"].progressed, timeout=TIMEOUT_MS):
        panel.run_estimates(k_max=100000, runs=20)
    assert panel.controls.stop_button.isEnabled()
    panel.controls.stop_button.click()
    qtbot.waitUntil(lambda: not panel.runners["sweep"].is_busy(), timeout=TIMEOUT_MS)
    assert panel.sweep_plot.summary.text().startswith("Stopped") and not panel.controls.stop_button.isEnabled()


def test_it_starts_only_when_on_screen(qtbot, panel, monkeypatch):
    started = []
    monkeypatch.setattr(panel, "start", lambda: started.append(1))
    assert not started
    panel.show()
    qtbot.waitUntil(lambda: bool(started), timeout=TIMEOUT_MS)  # shown alone: on screen, so it starts
