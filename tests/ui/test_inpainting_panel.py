"""The inpainting panel: mask presets from its buttons, fits that raise the observed-pixel ELBO and
never touch observed pixels, the newest stroke winning, centring, loading and saving files."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from lvm_studio.core import estimators as est
from lvm_studio.core import masks
from lvm_studio.core.colour_maps import STD_LEVEL, uncertainty_rgb
from lvm_studio.core.images import apply_placement, centre_of_mass
from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui.inpainting.inpainting_panel import InpaintingPanel
from lvm_studio.ui.state.model_hub import ModelHub
from lvm_studio.ui.widgets.digit_image import to_grey_u8
from lvm_studio.workers.tasks import shutdown_all

WAIT_MS = 30000  # generous: the machine is shared
LEFT = Qt.MouseButton.LeftButton
NO_MOD = Qt.KeyboardModifier.NoModifier

_KEPT = []  # panels of the running test: alive until their TaskRunners are stopped


@pytest.fixture(autouse=True)
def _no_threads_left(qtbot):
    """Stop every TaskRunner while the panels still exist, then let them go."""
    yield
    assert shutdown_all(10.0)
    _KEPT.clear()


@pytest.fixture(scope="module")
def trained_vae(mnist):
    """A 2-D-latent VAE trained for about a second on 1,000 digits (as tests/core/test_inpainting.py does)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = mnist.float_images("train")[:1000]
    model = VAE(VAEConfig(latent_dim=2, hidden=(64,)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 100):
            xb = torch.bernoulli(x[perm[i : i + 100]], generator=g)
            loss = -est.elbo(model, xb, generator=g).elbo.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.set_num_threads(before)
    return model.eval()


@pytest.fixture
def trained_hub(qapp, small_mnist, trained_vae):
    h = ModelHub(data=small_mnist)
    h.set_model(trained_vae, name="trained tiny VAE")
    return h


@pytest.fixture
def panel(qtbot, trained_hub):
    p = InpaintingPanel(trained_hub)
    qtbot.addWidget(p)
    _KEPT.append(p)
    p.resize(1100, 700)
    p.steps.setValue(60)  # quick fits; the ELBO still climbs well above the encoder's guess
    p.importance_k.setValue(300)
    return p


def wait_fit(qtbot, panel, action):
    with qtbot.waitSignal(panel.fit_finished, timeout=WAIT_MS):
        action()
    return panel.outcome


def test_preset_buttons_set_the_masks(qtbot, panel):
    for name in ("top_half", "bottom_half", "left_half", "right_half", "centre_box"):
        panel.preset_buttons[name].click()
        np.testing.assert_array_equal(panel.canvas.mask(), masks.preset(name))
    panel.random_fraction.setValue(30)
    panel.preset_buttons["random_pixels"].click()
    first = panel.canvas.mask()
    assert first.sum() == round(0.3 * 784)
    panel.preset_buttons["random_pixels"].click()
    second = panel.canvas.mask()
    assert second.sum() == round(0.3 * 784) and not np.array_equal(first, second)  # a new draw each click
    panel.invert_button.click()
    np.testing.assert_array_equal(panel.canvas.mask(), ~second)
    panel.show_all_button.click()
    assert not panel.canvas.mask().any()
    panel.undo_button.click()
    np.testing.assert_array_equal(panel.canvas.mask(), ~second)
    panel.redo_button.click()
    assert not panel.canvas.mask().any()


def test_fit_improves_the_observed_elbo_and_keeps_observed_pixels(qtbot, panel, trained_hub):
    panel.show()
    panel.load_test_digit(3)
    out = wait_fit(qtbot, panel, panel.preset_buttons["top_half"].click)
    x = trained_hub.eval_x("test")[3].numpy()
    missing = masks.top_half().reshape(-1)
    np.testing.assert_array_equal(out.x, x)
    np.testing.assert_array_equal(out.missing, missing)
    # the fit raises the observed-pixel ELBO above the encoder's guess (same noise for both)
    assert out.elbo_fitted > out.elbo_guess + 1.0
    trace = out.result.elbo_trace[:, 0]
    assert trace[-10:].mean() > trace[0]
    # the observed pixels are never changed: in the completion, every sample and the views
    obs = ~missing
    res = out.result
    for c in (res.completion, res.amortized):
        assert torch.equal(c.mean[0][obs], torch.from_numpy(x)[obs])
        assert torch.equal(c.samples[:, 0][:, obs], torch.from_numpy(x)[obs].expand(c.samples.shape[0], -1))
        assert (c.pixel_std[0][obs] == 0).all()
    assert torch.equal(out.importance.completions[:, 0][:, obs], torch.from_numpy(x)[obs].expand(16, -1))
    shown = panel.mean_view.image_array().reshape(-1)
    np.testing.assert_array_equal(shown[obs], to_grey_u8(x).reshape(-1)[obs])
    assert (shown[missing] > 0).any()  # something was filled in
    np.testing.assert_array_equal(panel.canvas.image().reshape(-1), x)  # the canvas is untouched


def test_the_fit_is_shown_before_its_importance_samples(qtbot, panel):
    """fit_shown comes once per fit, before fit_finished: the completions and ELBOs are on screen
    while the importance samples are computed, their view saying so."""
    panel.show()
    panel.load_test_digit(2)
    seen = []
    panel.fit_shown.connect(lambda: seen.append(("shown", panel.outcome, panel.importance_view.caption())))
    panel.fit_finished.connect(lambda: seen.append(("finished", panel.outcome, panel.importance_view.caption())))
    with qtbot.waitSignal(panel.fit_finished, timeout=WAIT_MS):
        panel.preset_buttons["top_half"].click()
    assert [kind for kind, *_ in seen] == ["shown", "finished"]
    (_, shown, shown_caption), (_, final, final_caption) = seen
    assert shown.importance_pending and shown.importance is None and shown_caption == "resampling …"
    assert final.importance is not None and final_caption.startswith("resampled, ESS")
    assert shown.elbo_fitted == final.elbo_fitted
    panel.use_importance.setChecked(False)  # no importance samples: shown once, with the final outcome
    seen.clear()
    with qtbot.waitSignal(panel.fit_finished, timeout=WAIT_MS):
        panel.request_fit()
    assert [kind for kind, *_ in seen] == ["shown", "finished"]  # (this 2-D model's grid follows the fit)
    assert not seen[0][1].importance_pending and seen[1][1].importance is None
    assert seen[1][2] == "importance resampling off"


def test_two_d_latent_plane_numbers(qtbot, panel):
    panel.show()
    panel.load_test_digit(5)
    out = wait_fit(qtbot, panel, panel.preset_buttons["bottom_half"].click)
    assert out.grid is not None and panel.latent_stack.currentWidget() is panel.latent_plot
    log_px_o = float(out.grid.log_px[0])
    # log p(x_o) = ELBO(q) + KL(q ‖ p(z|x_o)) ≥ ELBO(q), up to the ELBO's Monte Carlo error
    assert log_px_o > out.elbo_fitted - 0.5
    assert log_px_o > out.elbo_guess - 0.5
    assert "KL(q ‖ p(z|x<sub>o</sub>))" in panel.numbers.text()
    assert panel.heat.image is not None
    x, y = panel.q1_curve.getData()
    assert len(x) > 10


def test_new_model_without_2d_latent(qtbot, panel, trained_hub):
    panel.show()
    torch.manual_seed(1)
    trained_hub.set_model(VAE(VAEConfig(latent_dim=5, hidden=(16,))), name="5-D")
    with qtbot.waitSignal(panel.fit_finished, timeout=WAIT_MS):
        pass
    assert panel.latent_stack.currentWidget() is panel.latent_note
    assert panel.outcome.result.z_loc.shape == (1, 5) and panel.outcome.grid is None


def test_newest_stroke_wins_while_drawing(qtbot, panel):
    panel.show()
    panel.canvas.live_interval_ms = 5
    panel.canvas.clear()
    panel.auto_centre.setChecked(False)
    panel.preset_buttons["top_half"].click()
    c = panel.canvas
    started = []
    panel.fit_started.connect(lambda: started.append(1))
    q = [c.pos_of_pixel(16 + i % 8, 6 + i).toPoint() for i in range(16)]
    QTest.mousePress(c, LEFT, NO_MOD, q[0])
    for p in q[1:]:
        QTest.mouseMove(c, p)
        qtbot.wait(8)  # the event loop runs between mouse events, as it does for a user
    with qtbot.waitSignal(panel.fit_finished, timeout=WAIT_MS):
        QTest.mouseRelease(c, LEFT, NO_MOD, q[-1])
    assert len(started) >= 2  # fits were started during the stroke, not only at its end
    qtbot.waitUntil(lambda: not panel.runner.is_busy(), timeout=WAIT_MS)
    # what is shown was fitted to the final drawing
    np.testing.assert_array_equal(panel.outcome.x, c.image().reshape(-1))


def test_nothing_hidden_skips_the_fit(qtbot, panel):
    panel.show()
    with qtbot.waitSignal(panel.fit_skipped, timeout=WAIT_MS):
        panel.show_all_button.click()
    assert panel.outcome is None
    np.testing.assert_array_equal(panel.mean_view.image_array(), to_grey_u8(panel.canvas.image()))


def test_loading_a_non_image_file_shows_the_message_and_keeps_the_canvas(qtbot, panel, tmp_path):
    panel.preset_buttons["centre_box"].click()
    image, mask = panel.canvas.image(), panel.canvas.mask()
    undo_depth = len(panel.canvas._undo)
    bad = tmp_path / "digit.png"
    bad.write_text("this is not a picture\n")
    with qtbot.waitSignal(panel.load_failed, timeout=2000):
        assert panel.load_image_file(bad) is False
    assert "digit.png is not an image file" in panel.status.text()
    box = panel.error_box
    assert isinstance(box, QMessageBox) and box.isVisible() and "not an image file" in box.text()
    np.testing.assert_array_equal(panel.canvas.image(), image)
    np.testing.assert_array_equal(panel.canvas.mask(), mask)
    assert len(panel.canvas._undo) == undo_depth
    box.close()


def test_loading_a_picture_centres_it_as_mnist(qtbot, panel, tmp_path):
    # a dark "1"-like bar on white paper, far from the centre, in a 60 × 90 colour picture
    pic = QImage(60, 90, QImage.Format.Format_RGB32)
    pic.fill(QColor("white"))
    p = QPainter(pic)
    p.fillRect(5, 10, 6, 40, QColor(20, 20, 20))
    p.end()
    path = tmp_path / "one.png"
    assert pic.save(str(path))
    panel.preset_buttons["left_half"].click()
    assert panel.load_image_file(path)
    img = panel.canvas.image()
    r, c = centre_of_mass(img)
    assert abs(r - 14) <= 0.5 and abs(c - 14) <= 0.5
    assert img.max() == pytest.approx(1.0) and img[0, 0] == 0.0  # ink bright, paper black
    np.testing.assert_array_equal(panel.canvas.mask(), masks.left_half())  # the mask stays


def draw(canvas, points):
    """One stroke through (row, col) pixel centres, with real mouse events."""
    q = [canvas.pos_of_pixel(r, c).toPoint() for r, c in points]
    QTest.mousePress(canvas, LEFT, NO_MOD, q[0])
    for p in q[1:]:
        QTest.mouseMove(canvas, p)
    QTest.mouseRelease(canvas, LEFT, NO_MOD, q[-1])


def test_auto_centre_centres_for_the_model_and_never_moves_the_canvas(qtbot, panel):
    panel.show()
    panel.canvas.clear()
    c = panel.canvas
    draw(c, [(2, 4), (8, 4), (14, 4)])
    drawn = c.image()
    r, col = centre_of_mass(drawn)
    assert col < 6  # drawn at the left edge, not moved while drawing
    out = wait_fit(qtbot, panel, panel.preset_buttons["top_half"].click)
    np.testing.assert_array_equal(c.image(), drawn)  # the canvas stays as drawn …
    np.testing.assert_array_equal(c.mask(), masks.top_half())  # … and the mask where it was put
    # … while the model saw the drawing centred as MNIST is, its mask carried along
    placed, placed_mask = apply_placement(out.placement, drawn, masks.top_half())
    r, col = centre_of_mass(placed)
    assert abs(r - 14) <= 0.5 and abs(col - 14) <= 0.5
    np.testing.assert_array_equal(out.model_missing, placed_mask.reshape(-1))
    np.testing.assert_array_equal(out.x, drawn.reshape(-1))
    wait_fit(qtbot, panel, panel.preset_buttons["bottom_half"].click)
    np.testing.assert_array_equal(c.image(), drawn)  # nothing moves now either
    # off: the model sees the canvas as it is
    panel.auto_centre.setChecked(False)
    out = wait_fit(qtbot, panel, panel.fit_button.click)
    assert out.placement is None and out.model_missing is None


def test_top_half_on_the_bottom_of_a_digit_hides_none_of_it(qtbot, panel):
    """Issue 11, item 12: draw the bottom of a 2, press Top half (auto-centre on, the default)."""
    panel.show()
    assert panel.auto_centre.isChecked()
    c = panel.canvas
    c.clear()
    draw(c, [(16, 18), (19, 14), (22, 9), (22, 13), (22, 17), (22, 20)])  # the foot of a 2
    drawn = c.image()
    assert drawn[:14].max() == 0 and drawn.max() > 0.5  # all of it in the bottom half
    out = wait_fit(qtbot, panel, panel.preset_buttons["top_half"].click)
    np.testing.assert_array_equal(c.image(), drawn)  # the canvas pixels unchanged
    np.testing.assert_array_equal(c.mask(), masks.top_half())
    assert not (c.mask() & (drawn > 0)).any()  # none of the drawn pixels is hidden
    # the completion shown is aligned with the canvas: every seen pixel is the canvas's own
    seen = ~c.mask().reshape(-1)
    shown = panel.mean_view.image_array().reshape(-1)
    np.testing.assert_array_equal(shown[seen], to_grey_u8(drawn).reshape(-1)[seen])
    res = out.result
    assert torch.equal(res.completion.mean[0][seen], torch.from_numpy(drawn.reshape(-1))[seen])
    assert (shown[~seen] > 0.25 * 255).sum() >= 10  # and the top is filled in
    # none of its ink is hidden: the seen part of a digit, given to the model as placed (centred by its
    # own ink it would become a digit of its own, enlarged in the middle, and nothing would be filled in)
    assert out.placement is None and "centred" not in panel.status.text()
    # once part of the ink is hidden (the digit was drawn whole), the model sees it centred, the canvas still not moved
    draw(c, [(8, 9), (5, 13), (8, 18), (12, 17), (16, 18)])  # the top of the 2, now drawn under the mask
    qtbot.waitUntil(lambda: not panel.runner.is_busy(), timeout=WAIT_MS)
    whole = c.image()
    out = wait_fit(qtbot, panel, panel.fit_button.click)
    assert out.placement is not None and "centred" in panel.status.text()
    np.testing.assert_array_equal(c.image(), whole)
    np.testing.assert_array_equal(c.mask(), masks.top_half())
    shown = panel.mean_view.image_array().reshape(-1)
    np.testing.assert_array_equal(shown[seen], to_grey_u8(whole).reshape(-1)[seen])


def test_a_fit_that_ends_after_new_weights_is_followed_by_one_for_them(qtbot, panel, trained_hub):
    panel.show()
    panel.load_test_digit(2)
    wait_fit(qtbot, panel, panel.preset_buttons["top_half"].click)
    panel.steps.setValue(400)  # long enough for a snapshot to arrive while it runs
    with qtbot.waitSignal(panel.fit_started, timeout=WAIT_MS):
        pass
    state = {k: v + 0.01 for k, v in trained_hub.model.state_dict().items()}
    trained_hub.load_state(state, step=7, epoch=0.1)  # the fit in flight is for the old weights
    with qtbot.waitSignal(panel.fit_finished, timeout=WAIT_MS):
        pass
    qtbot.waitUntil(
        lambda: panel.outcome is not None and panel.outcome.model_version == trained_hub.version, timeout=WAIT_MS
    )
    qtbot.waitUntil(lambda: not panel.runner.is_busy() and not panel._weights_timer.isActive(), timeout=WAIT_MS)


def test_save_pngs(qtbot, panel, tmp_path):
    panel.show()
    panel.load_test_digit(1)
    out = wait_fit(qtbot, panel, panel.preset_buttons["right_half"].click)
    files = panel.save_pngs(tmp_path / "result.png", scale=5)
    assert [f.name for f in files] == ["result-masked.png", "result-completion.png"]
    masked, completion = QImage(str(files[0])), QImage(str(files[1]))
    assert masked.size() == completion.size() and masked.width() == 140
    # the completion PNG holds the mean completion, pixel for pixel
    expected = to_grey_u8(out.result.completion.mean[0])
    got = np.array([[QColor(completion.pixel(5 * c + 2, 5 * r + 2)).red() for c in range(28)] for r in range(28)])
    np.testing.assert_array_equal(got, expected)


def test_the_core_inferno_map_is_pyqtgraphs():
    # core.colour_maps holds the table, so the core stays Qt-free; the colours are pyqtgraph's, byte for byte
    inferno = pg.colormap.get("inferno")
    std = np.random.default_rng(0).uniform(-0.1, 0.7, (28, 28))  # beyond both ends: clipped
    std[0, :3] = (0.0, STD_LEVEL / 2, STD_LEVEL)
    v = np.clip(std / STD_LEVEL, 0.0, 1.0).reshape(-1)
    expected = inferno.map(v, mode="byte")[:, :3].reshape(28, 28, 3)
    np.testing.assert_array_equal(uncertainty_rgb(std), expected)
