"""The latent explorer panels, standalone with a ModelHub and tiny random models.

Each test checks what the panel shows against the core computed directly: the decoded image
for a slider value, the KL ordering, the 10,000-point map, the posterior view's numbers.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch

from lvm_studio.core.estimators import exact_log_px_2d
from lvm_studio.core.images import SIDE
from lvm_studio.core.latent import latent_stats
from lvm_studio.core.q_elbo import elbo_for_q
from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui.state.model_hub import ModelHub
from lvm_studio.ui.widgets.digit_image import to_grey_u8
from lvm_studio.workers.tasks import shutdown_all

WAIT_MS = 20000  # generous: the machine is shared
MANIFOLD_SIDE = 18 * SIDE  # map_panel.MANIFOLD_TILES decoded digits per side


_KEPT = []  # panels of the running test: alive until their TaskRunners are stopped


@pytest.fixture(autouse=True)
def _no_threads_left(qtbot):
    """Stop every TaskRunner while the panels still exist, then let them go (a panel deleted
    mid-task would leave its runner's thread emitting on a deleted object)."""
    yield
    assert shutdown_all(10.0)
    _KEPT.clear()


def add(qtbot, widget):
    qtbot.addWidget(widget)
    _KEPT.append(widget)
    return widget


def tiny_vae(latent_dim, seed=0):
    torch.manual_seed(seed)
    return VAE(VAEConfig(latent_dim=latent_dim, hidden=(32,))).eval()


def kl_shaped_vae(seed=0):
    """A latent-6 VAE with known KL structure: dims 0 and 2 ignore x and match the prior (KL ≈ 0),
    dims 1, 3, 4 carry x with very different strengths."""
    model = tiny_vae(6, seed)
    last = model.encoder[-1]  # Linear(32, 12): rows 0..5 → z_loc, 6..11 → raw scale
    with torch.no_grad():
        last.weight[[0, 2]] = 0.0
        last.bias[[0, 2]] = 0.0
        last.weight[[6, 8]] = 0.0
        last.bias[[6, 8]] = 0.5413  # softplus(0.5413) + 1e-3 ≈ 1: q = p(z) exactly in these dims
        last.weight[1] *= 30.0
        last.weight[4] *= 8.0
        last.weight[3] *= 2.0
    return model


@pytest.fixture
def hub(mnist):
    h = ModelHub(data=mnist)
    yield h
    h.deleteLater()


def decode_u8(model, z):
    with torch.no_grad():
        return to_grey_u8(model.decode_mean(torch.as_tensor(z, dtype=torch.float32)[None])[0].reshape(28, 28))


# --- latent sliders ---------------------------------------------------------------------------


def test_slider_value_decodes_into_the_image(qtbot, hub):
    from lvm_studio.ui.latent.sliders_panel import SLIDER_STEPS_PER_SD, LatentSlidersPanel

    hub.set_model(tiny_vae(8))
    panel = LatentSlidersPanel(hub)
    add(qtbot, panel)
    panel.show()
    qtbot.waitUntil(lambda: panel.stats is not None, timeout=WAIT_MS)
    row = panel.rows[3]
    with qtbot.waitSignal(panel.image_updated, timeout=WAIT_MS):
        row.slider.setValue(int(-1.75 * SLIDER_STEPS_PER_SD))
    z = np.zeros(8, dtype=np.float32)
    z[3] = -1.75
    np.testing.assert_allclose(panel.z(), z)
    np.testing.assert_array_equal(panel.image.image_array(), decode_u8(hub.model, z))
    assert row.value.text() == "-1.75"
    # the picture differs from the one at z = 0 (the decoder depends on z4)
    assert np.abs(panel.image.image_array().astype(int) - decode_u8(hub.model, np.zeros(8)).astype(int)).max() > 0
    # painted: the widget paints the new image
    before = panel.image.painted
    panel.image.repaint()
    assert panel.image.painted == before + 1


def test_sliders_are_ordered_by_kl_and_inactive_units_marked(qtbot, hub):
    from lvm_studio.ui.latent.sliders_panel import LatentSlidersPanel

    model = kl_shaped_vae()
    hub.set_model(model)
    panel = LatentSlidersPanel(hub)
    add(qtbot, panel)
    qtbot.waitUntil(lambda: panel.stats is not None, timeout=WAIT_MS)
    expected = latent_stats(hub.model, hub.eval_x("val"))
    assert panel.row_order() == expected.order.tolist()
    assert panel.row_order()[0] == 1 and set(panel.row_order()[-2:]) == {0, 2}
    assert not expected.active[0] and not expected.active[2] and expected.active[1]
    for d in range(6):
        marked = panel.rows[d].name.text().endswith("°")
        assert marked == (not bool(expected.active[d]))
    assert f"{expected.n_active} of 6" in panel.header.text()


def test_buttons_set_z_from_a_test_digit_the_prior_and_zero(qtbot, hub):
    from lvm_studio.ui.latent.sliders_panel import LatentSlidersPanel

    hub.set_model(tiny_vae(8, seed=3))
    panel = LatentSlidersPanel(hub)
    add(qtbot, panel)
    panel.picker.set_index(42)
    with qtbot.waitSignal(panel.image_updated, timeout=WAIT_MS):
        panel.from_test_button.click()
    with torch.no_grad():
        mu = hub.model.encode(hub.eval_x("test")[42][None])[0][0].numpy()
    np.testing.assert_allclose(panel.z(), mu, atol=1e-6)
    np.testing.assert_array_equal(panel.image.image_array(), decode_u8(hub.model, mu))
    slider_z = np.array([r.slider.value() / 100 for r in panel.rows])
    np.testing.assert_allclose(slider_z, mu, atol=0.006)
    with qtbot.waitSignal(panel.image_updated, timeout=WAIT_MS):
        panel.random_button.click()
    assert np.any(panel.z() != mu)
    with qtbot.waitSignal(panel.image_updated, timeout=WAIT_MS):
        panel.reset_button.click()
    assert np.all(panel.z() == 0)
    # sample mode shows a binary image
    with qtbot.waitSignal(panel.image_updated, timeout=WAIT_MS):
        panel.sample_radio.setChecked(True)
    assert set(np.unique(panel.image.image_array())) <= {0, 255}


def test_sliders_follow_new_weights_and_a_new_model(qtbot, hub):
    from lvm_studio.ui.latent.sliders_panel import LatentSlidersPanel

    hub.set_model(tiny_vae(8))
    panel = LatentSlidersPanel(hub)
    add(qtbot, panel)
    panel.set_z(np.full(8, 0.5, dtype=np.float32))
    other = tiny_vae(8, seed=9)
    with qtbot.waitSignal(panel.image_updated, timeout=WAIT_MS):
        hub.load_state({k: v.clone() for k, v in other.state_dict().items()}, step=10, epoch=0.1)
    np.testing.assert_array_equal(panel.image.image_array(), decode_u8(other, np.full(8, 0.5)))
    with qtbot.waitSignal(panel.image_updated, timeout=WAIT_MS):
        hub.set_model(tiny_vae(2))
    assert len(panel.rows) == 2 and panel.z().shape == (2,)
    qtbot.waitUntil(lambda: panel.stats is not None and panel.stats.mean_kl.numel() == 2, timeout=WAIT_MS)


# --- traversals -----------------------------------------------------------------------------


def tile(arr, r, c):
    return arr[r * 29 : r * 29 + 28, c * 29 : c * 29 + 28]


def test_traversal_grid_varies_two_dimensions_around_the_current_z(qtbot, hub, tmp_path):
    from lvm_studio.ui.latent.traversal_panel import TraversalPanel

    hub.set_model(tiny_vae(8, seed=4))
    z = np.linspace(-1, 1, 8).astype(np.float32)
    hub.cursor.set_z(z, "test")
    panel = TraversalPanel(hub)
    add(qtbot, panel)
    panel.range_spin.setValue(2.0)
    panel.steps_spin.setValue(5)
    panel.set_dims(6, 1)
    codes = panel.grid_codes
    assert codes.shape == (5, 5, 8)
    others = [d for d in range(8) if d not in (6, 1)]
    np.testing.assert_allclose(codes[..., others].numpy(), np.broadcast_to(z[others], (5, 5, 6)))
    np.testing.assert_allclose(codes[0, :, 6].numpy(), np.linspace(-2, 2, 5), atol=1e-6)  # columns: z7
    np.testing.assert_allclose(codes[:, 0, 1].numpy(), np.linspace(2, -2, 5), atol=1e-6)  # rows: z2, top = +2
    grid = panel.grid_array
    assert grid.shape == (5 * 29 - 1, 5 * 29 - 1)
    with torch.no_grad():
        expected = hub.model.decode_mean(codes[4, 3][None])[0].reshape(28, 28).numpy()
    np.testing.assert_allclose(tile(grid, 4, 3), expected, atol=1e-6)
    # one dimension: one row; the sliders' z moves the grid
    panel.set_dims(2, None)
    assert panel.grid_codes.shape == (1, 5, 8)
    z2 = np.zeros(8, dtype=np.float32)
    z2[0] = 3.0
    panel.show()
    with qtbot.waitSignal(panel.grid_updated, timeout=WAIT_MS):
        hub.cursor.set_z(z2, "test")
    assert float(panel.grid_codes[0, 0, 0]) == 3.0
    out = tmp_path / "grid.png"
    assert panel.export_grid(str(out), scale=3)
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    assert (img.width(), img.height()) == (3 * (5 * 29 - 1), 3 * 28)


def test_interpolation_strip_ends_at_the_two_digits(qtbot, hub, tmp_path):
    from lvm_studio.ui.latent.traversal_panel import TraversalPanel

    hub.set_model(tiny_vae(8, seed=5))
    panel = TraversalPanel(hub)
    add(qtbot, panel)
    panel.pick_a.set_index(10, emit=False)
    panel.pick_b.set_index(20, emit=False)
    panel.strip_steps.setValue(6)
    panel.update_strip()
    strip = panel.strip_array
    x = hub.eval_x("test")
    np.testing.assert_allclose(strip[:, :28], x[10].reshape(28, 28).numpy())
    np.testing.assert_allclose(strip[:, -28:], x[20].reshape(28, 28).numpy())
    with torch.no_grad():
        mu = hub.model.encode(x[[10, 20]])[0]
        first = hub.model.decode_mean(mu[0][None])[0].reshape(28, 28).numpy()
    np.testing.assert_allclose(strip[:, 38:66], first, atol=1e-6)  # after the original and a 10-px spacer
    linear = strip.copy()
    panel.method.setCurrentIndex(panel.method.findData("spherical"))
    panel.update_strip()
    assert panel.strip_array.shape == linear.shape
    assert not np.allclose(panel.strip_array, linear)  # the middle of the path differs
    assert panel.export_strip(str(tmp_path / "strip.png"))


# --- latent map ------------------------------------------------------------------------------


def test_map_shows_all_10000_test_codes_coloured_by_label_and_by_mixture(qtbot, hub):
    from lvm_studio.ui.latent.map_panel import LatentMapPanel
    from lvm_studio.ui.widgets.style import LABEL_COLOURS

    hub.set_model(tiny_vae(2, seed=6))
    panel = LatentMapPanel(hub)
    add(qtbot, panel)
    panel.resize(900, 600)
    panel.show()
    qtbot.waitUntil(lambda: panel.codes is not None, timeout=WAIT_MS)
    x = hub.eval_x("test")
    assert x.shape[0] == 10000
    with torch.no_grad():
        mu = hub.model.encode(x)[0].numpy()
    np.testing.assert_allclose(panel.cloud.points(), mu, rtol=1e-5, atol=1e-5)
    labels = np.asarray(hub.labels("test"))
    np.testing.assert_array_equal(panel.cloud.colours(), LABEL_COLOURS[labels])
    assert panel.axis_names() == ("z1", "z2")
    # painted: the raster holds every label colour
    panel.plot.grab()
    assert panel.cloud.rasterised >= 1 and panel.cloud.painted >= 1
    img = panel.cloud._cache_img
    buf = np.frombuffer(img.constBits(), dtype=np.uint32, count=img.width() * img.height())
    seen = {int(c) & 0xFFFFFF for c in np.unique(buf)}
    for r, g, b in LABEL_COLOURS.astype(int):
        assert (r << 16 | g << 8 | b) in seen
    # a mixture's p(c|z) mixes its component colours
    rng = np.random.default_rng(0)
    resp = rng.dirichlet(np.ones(3), size=10000).astype(np.float32)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    hub.set_cluster_posterior(resp, colours, "test mixture")
    with qtbot.waitSignal(panel.recoloured, timeout=WAIT_MS):
        panel.set_colour_mode("mixture")
    np.testing.assert_allclose(panel.cloud.colours().astype(float), resp @ colours.astype(float), atol=1.0)
    assert panel.legend.isVisible()
    # a new mixture for the same codes recolours at once
    with qtbot.waitSignal(panel.recoloured, timeout=WAIT_MS):
        hub.set_cluster_posterior(resp[:, [1, 0, 2]], colours, "swapped")
    np.testing.assert_allclose(
        panel.cloud.colours().astype(float), resp[:, [1, 0, 2]] @ colours.astype(float), atol=1.0
    )


def test_map_click_decodes_the_point_and_hover_finds_the_digit(qtbot, hub):
    from lvm_studio.ui.latent.map_panel import LatentMapPanel

    hub.set_model(tiny_vae(2, seed=7))
    panel = LatentMapPanel(hub)
    add(qtbot, panel)
    panel.resize(900, 600)
    panel.show()
    qtbot.waitUntil(lambda: panel.codes is not None, timeout=WAIT_MS)
    with qtbot.waitSignal(panel.point_decoded, timeout=WAIT_MS):
        z = panel.decode_at(0.4, -0.3)
    np.testing.assert_allclose(z, [0.4, -0.3], atol=1e-6)
    np.testing.assert_allclose(hub.cursor.z, [0.4, -0.3], atol=1e-6)
    np.testing.assert_array_equal(panel.decoded.image_array(), decode_u8(hub.model, [0.4, -0.3]))
    # the sliders' z moves the target
    hub.cursor.set_z([1.0, 2.0], "sliders")
    assert (panel.target.pos().x(), panel.target.pos().y()) == pytest.approx((1.0, 2.0))
    # hovering right over point 123 finds it (or a point at the same spot)
    u, v = panel.cloud.points()[123]
    i = panel.nearest_point(u, v)
    assert np.allclose(panel.cloud.points()[i], (u, v))
    panel._show_hover(i, None)
    assert f"test digit {i}" in panel.hover_caption.text()
    assert panel.nearest_point(1e6, 1e6) == -1
    # the decoded manifold arrives behind the points
    panel.request_manifold()
    qtbot.waitUntil(lambda: panel.manifold.isVisible() and panel.manifold.image is not None, timeout=WAIT_MS)


def test_map_projects_higher_dimensional_codes_by_pca(qtbot, hub):
    from lvm_studio.core.clustering import pca
    from lvm_studio.ui.latent.map_panel import LatentMapPanel

    hub.set_model(tiny_vae(8, seed=8))
    panel = LatentMapPanel(hub)
    add(qtbot, panel)
    panel.show()
    qtbot.waitUntil(lambda: panel.codes is not None, timeout=WAIT_MS)
    assert panel.mode.currentData() == "pca"
    with torch.no_grad():
        mu = hub.model.encode(hub.eval_x("test"))[0].double()
    p = pca(mu, 8)
    c = p.transform(mu).numpy()
    panel.set_axes("pca", 0, 2)
    np.testing.assert_allclose(panel.cloud.points(), c[:, [0, 2]], atol=1e-4)
    assert panel.axis_names() == ("PC1", "PC3")
    assert "%" in panel.axis_x.currentText()
    # a click in the PC plane decodes a z whose projection is that point
    hub.cursor.set_z(np.linspace(-1, 1, 8), "test")
    z = panel.decode_at(0.7, -0.2)
    np.testing.assert_allclose(panel.project(z[None].astype(np.float64))[0], [0.7, -0.2], atol=1e-5)
    # two raw dimensions
    panel.set_axes("dims", 5, 3)
    np.testing.assert_allclose(panel.cloud.points(), mu.numpy()[:, [5, 3]], atol=1e-5)
    assert panel.axis_names() == ("z6", "z4")


def test_map_redraws_after_a_32_d_model_is_replaced_by_a_2_d_one(qtbot, hub):
    """Issue 11, item 11: the cursor moved to the new size before the map had dropped its 32-D
    projection, and projecting it raised 'size of tensor a (2) must match ... (32)'."""
    from lvm_studio.ui.latent.map_panel import LatentMapPanel

    hub.set_model(tiny_vae(32, seed=15))
    panel = LatentMapPanel(hub)
    add(qtbot, panel)
    panel.resize(900, 600)
    panel.show()
    qtbot.waitUntil(lambda: panel.codes is not None, timeout=WAIT_MS)
    assert panel.mode.currentData() == "pca" and panel.projection.mean.shape == (32,)
    hub.cursor.set_z(np.linspace(-1, 1, 32), "test")  # a 32-D cursor away from 0
    panel.request_manifold()  # a 32-D manifold in flight while the model changes
    with qtbot.captureExceptions() as raised:
        hub.set_model(tiny_vae(2, seed=16))
        qtbot.waitUntil(lambda: panel.codes is not None and panel.codes.shape[1] == 2, timeout=WAIT_MS)
        panel.plot.grab()  # paints the new points
        panel.request_manifold()
        qtbot.waitUntil(lambda: panel.manifold.isVisible(), timeout=WAIT_MS)
        hub.cursor.set_z([0.5, -0.5], "sliders")
    assert not raised, [str(e[1]) for e in raised]
    assert panel.mode.currentData() == "dims" and panel.axis_names() == ("z1", "z2")
    with torch.no_grad():
        mu = hub.model.encode(hub.eval_x("test"))[0].numpy()
    np.testing.assert_allclose(panel.cloud.points(), mu, rtol=1e-5, atol=1e-5)
    assert panel.cloud.painted >= 1
    assert (panel.target.pos().x(), panel.target.pos().y()) == pytest.approx((0.5, -0.5))
    assert panel.manifold.image.shape == (MANIFOLD_SIDE, MANIFOLD_SIDE)


# --- posterior view ---------------------------------------------------------------------------


def test_posterior_view_numbers_match_the_core_grid_and_optimising_beats_a_hand_moved_q(qtbot, hub):
    from lvm_studio.ui.latent.posterior_panel import GRID_N, PosteriorPanel

    hub.set_model(tiny_vae(2, seed=11))
    panel = PosteriorPanel(hub)
    add(qtbot, panel)
    panel.resize(1000, 640)
    panel.show()
    with qtbot.waitSignal(panel.numbers_updated, timeout=WAIT_MS):
        panel.set_digit_index(7)
    x = hub.eval_x("test")[7:8]
    exact = float(exact_log_px_2d(hub.model, x)[0])
    assert panel.log_px == pytest.approx(exact, abs=0.02)
    assert panel.heat.image.shape == (GRID_N, GRID_N)
    enc = panel.numbers
    with torch.no_grad():
        loc, scale = hub.model.encode(x)
    direct = elbo_for_q(hub.model, x, loc, scale)
    assert enc.elbo == pytest.approx(float(direct.elbo[0]), abs=1e-3)
    assert enc.log_px - enc.elbo == pytest.approx(enc.kl_post) and enc.kl_post >= -1e-3
    assert "KL(q ‖ p(z|x))" in panel.numbers_label.text()
    # a hand-moved q
    with qtbot.waitSignal(panel.numbers_updated, timeout=WAIT_MS):
        panel.set_q(loc[0].numpy() + [0.8, -0.5], scale[0].numpy() * 1.7)
    hand = panel.numbers
    assert hand.kl_post >= -1e-3 and hand.log_px == enc.log_px
    # dragging a σ handle reshapes q
    with qtbot.waitSignal(panel.numbers_updated, timeout=WAIT_MS):
        panel.handle1.setPos(panel.q_loc[0] + 0.33, panel.q_loc[1])
    assert panel.q_scale[0] == pytest.approx(0.33, abs=1e-6)
    # φ* for this digit has the highest ELBO; the amortization gap is shown
    with qtbot.waitSignal(panel.optimised, timeout=WAIT_MS):
        panel.optimise(steps=120)
    best = panel.optimised_numbers
    assert best.elbo > hand.elbo and best.elbo >= enc.elbo - 1e-3 and best.kl_post >= -1e-3
    qtbot.waitUntil(lambda: "amortization gap" in panel.numbers_label.text(), timeout=WAIT_MS)
    np.testing.assert_allclose(panel.q_loc, panel.opt_loc)


def test_posterior_view_explains_itself_for_other_latent_sizes(qtbot, hub):
    from lvm_studio.ui.latent.posterior_panel import PosteriorPanel

    hub.set_model(tiny_vae(8))
    panel = PosteriorPanel(hub)
    add(qtbot, panel)
    assert not panel.supported() and panel.message.isVisible()
    assert "2-D latent" in panel.message.textItem.toPlainText()
    assert not panel.optimise_button.isEnabled()
    with qtbot.waitSignal(panel.posterior_updated, timeout=WAIT_MS):
        hub.set_model(tiny_vae(2))
    assert panel.supported() and not panel.message.isVisible()


# --- estimator lab ----------------------------------------------------------------------------


def test_estimator_lab_shows_naive_and_importance_sampling_runs(qtbot, hub):
    from lvm_studio.ui.latent.estimator_lab_panel import EstimatorLabPanel

    hub.set_model(tiny_vae(2, seed=12))
    panel = EstimatorLabPanel(hub)
    add(qtbot, panel)
    panel.picker.set_index(4, emit=False)
    with qtbot.waitSignal(panel.finished, timeout=WAIT_MS):
        panel.run(k_max=1000, runs=3)
    s = panel.sweep
    assert s.runs_done == 3 and s.naive.shape == (3, len(s.ks)) and int(s.ks[-1]) == 1000
    x = hub.eval_x("test")[4:5]
    assert panel.exact == pytest.approx(float(exact_log_px_2d(hub.model, x)[0]), abs=1e-4)
    # the plotted curves are the sweep's numbers
    kx, ky = panel.is_mean.getOriginalDataset()
    np.testing.assert_allclose(kx, s.ks.numpy())
    np.testing.assert_allclose(ky, s.importance.double().mean(0).numpy(), rtol=1e-6)
    assert len([c for c in panel.naive_runs if c.getOriginalDataset()[0] is not None]) == 3
    assert panel.ref_line.value() == pytest.approx(panel.exact)
    # every one of the k log-weights is in its histogram, and the ESS is in the legend
    assert panel.hist_prior.getOriginalDataset()[1].sum() == 1000
    assert panel.hist_q.getOriginalDataset()[1].sum() == 1000
    labels = [lbl.text for _, lbl in panel.hist_legend.items]
    assert any("ESS" in t and "1,000" in t for t in labels)
    assert 1.0 <= s.ess_prior <= 1000 and 1.0 <= s.ess_q <= 1000
    # importance sampling with q sits near log p(x) at the largest k
    assert abs(float(s.importance[:, -1].mean()) - panel.exact) < 0.5
    assert "nats" in panel.summary.text()


# --- while training: new snapshots reach every panel --------------------------------------------


def test_panels_follow_training_snapshots(qtbot, hub, monkeypatch):
    from lvm_studio.ui.latent import map_panel as latent_map_panel
    from lvm_studio.ui.latent.map_panel import LatentMapPanel
    from lvm_studio.ui.latent.posterior_panel import PosteriorPanel
    from lvm_studio.ui.latent.traversal_panel import TraversalPanel

    monkeypatch.setattr(latent_map_panel, "REENCODE_S", 0.01)
    hub.set_model(tiny_vae(2, seed=13))
    m = add(qtbot, LatentMapPanel(hub))
    t = add(qtbot, TraversalPanel(hub))
    p = add(qtbot, PosteriorPanel(hub))
    for w in (m, t, p):
        w.show()
    qtbot.waitUntil(lambda: m.codes is not None and p.numbers is not None, timeout=WAIT_MS)
    old_log_px = p.log_px
    new = tiny_vae(2, seed=14)
    with qtbot.waitSignals([m.codes_updated, t.grid_updated, p.posterior_updated], timeout=WAIT_MS):
        hub.load_state({k: v.clone() for k, v in new.state_dict().items()}, step=50, epoch=0.5)
    with torch.no_grad():
        mu = new.encode(hub.eval_x("test"))[0].numpy()
    np.testing.assert_allclose(m.cloud.points(), mu, atol=1e-5)
    with torch.no_grad():
        first = new.decode_mean(t.grid_codes[0, 0][None])[0].reshape(28, 28).numpy()
    np.testing.assert_allclose(tile(t.grid_array, 0, 0), first, atol=1e-6)
    assert p.log_px != old_log_px
    x = hub.eval_x("test")[p.picker.index()][None]
    assert p.log_px == pytest.approx(float(exact_log_px_2d(new, x)[0]), abs=0.02)
    assert "step 50" in m.status.text()


# --- while hidden: no work on new weights, one refresh when shown --------------------------------


def _count_calls(monkeypatch, module, name, calls):
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def test_hidden_panels_skip_new_weights_and_refresh_once_when_shown(qtbot, hub, monkeypatch):
    from lvm_studio.ui.latent import map_panel, posterior_panel, sliders_panel, traversal_panel

    hub.set_model(tiny_vae(2, seed=13))
    s = add(qtbot, sliders_panel.LatentSlidersPanel(hub))
    t = add(qtbot, traversal_panel.TraversalPanel(hub))
    m = add(qtbot, map_panel.LatentMapPanel(hub))
    p = add(qtbot, posterior_panel.PosteriorPanel(hub))
    panels = (s, t, m, p)
    # the main window asks the training thread for weights at the fastest rate a visible panel uses
    assert [type(w).SNAPSHOT_INTERVAL_S for w in panels] == [0.5, 1.0, 2.0, 2.0]
    qtbot.waitUntil(lambda: m.codes is not None and not s._decode_timer.isActive(), timeout=WAIT_MS)
    calls = {}
    for module, name in (
        (sliders_panel, "decode_image"),
        (traversal_panel, "traversal_images"),
        (traversal_panel, "interpolation_strip"),
        (posterior_panel, "encode_one"),
    ):
        _count_calls(monkeypatch, module, name, calls)
    submitted = []
    monkeypatch.setattr(m.runner, "submit", lambda *a, **k: submitted.append(a[0]))  # the re-encodes asked for

    for seed in (21, 22, 23):  # three snapshots while every panel is hidden
        new = tiny_vae(2, seed=seed)
        hub.load_state({k: v.clone() for k, v in new.state_dict().items()}, step=seed, epoch=0.1)
    qtbot.wait(200)  # an absence to check: nothing decoded, encoded or scheduled
    assert calls == {} and submitted == []
    assert all(w.snapshots.stale and not w.snapshots.pending() and w.snapshots.refreshes == 0 for w in panels)

    with qtbot.waitSignals([s.image_updated, t.grid_updated, t.strip_updated], timeout=WAIT_MS):
        for w in panels:
            w.show()
    qtbot.waitUntil(lambda: all(w.snapshots.refreshes == 1 for w in panels), timeout=WAIT_MS)
    qtbot.wait(200)  # and no second refresh
    assert calls == {"decode_image": 1, "traversal_images": 1, "interpolation_strip": 1, "encode_one": 1}
    assert submitted == [map_panel.encode_codes_task]
    assert not any(w.snapshots.stale for w in panels)
    np.testing.assert_array_equal(s.image.image_array(), decode_u8(tiny_vae(2, seed=23), s.z()))
    # shown: a new snapshot refreshes again; hidden then shown with no new weights: nothing
    with qtbot.waitSignal(s.image_updated, timeout=WAIT_MS):
        hub.load_state({k: v.clone() for k, v in tiny_vae(2, seed=24).state_dict().items()}, step=24, epoch=0.2)
    qtbot.waitUntil(lambda: all(w.snapshots.refreshes == 2 for w in panels), timeout=WAIT_MS)
    for w in panels:
        w.hide()
        w.show()
    qtbot.wait(100)
    assert all(w.snapshots.refreshes == 2 for w in panels)


def test_no_axis_shows_an_si_prefix(qtbot, hub):
    import pyqtgraph as pg

    from lvm_studio.ui.latent.estimator_lab_panel import EstimatorLabPanel
    from lvm_studio.ui.latent.map_panel import LatentMapPanel
    from lvm_studio.ui.latent.posterior_panel import PosteriorPanel
    from lvm_studio.ui.widgets.axes import axes_in

    hub.set_model(tiny_vae(2, seed=5))
    for cls in (LatentMapPanel, PosteriorPanel, EstimatorLabPanel):
        panel = add(qtbot, cls(hub))
        panel.resize(700, 500)
        panel.show()
        views = panel.findChildren(pg.GraphicsView)
        axes = [a for v in views for a in axes_in(v)]
        assert views and axes, cls.__name__
        for a in axes:
            assert not a.autoSIPrefix and a.autoSIPrefixScale == 1.0, (cls.__name__, a.orientation)
            assert "(x0" not in a.labelString() and "(x1" not in a.labelString()


def test_traversal_dimension_boxes_show_their_whole_label(qtbot, hub):
    from lvm_studio.ui.latent.traversal_panel import TraversalPanel

    hub.set_model(kl_shaped_vae())
    panel = add(qtbot, TraversalPanel(hub))
    qtbot.waitUntil(lambda: hub.latent_stats.stats is not None, timeout=WAIT_MS)
    panel._on_stats_changed()
    panel.resize(420, 620)  # a narrow dock
    panel.show()
    qtbot.waitUntil(lambda: panel.dim_a.width() > 0, timeout=WAIT_MS)
    for box in (panel.dim_a, panel.dim_b):
        # as wide as its longest entry asks for: "z3  (KL 0.00, inactive)" is not cut to "z3 ("
        assert box.width() >= box.sizeHint().width(), (box.width(), box.sizeHint().width())


def test_map_view_follows_the_codes_until_the_user_moves_it(qtbot, hub):
    """A learning model spreads its codes out: the view keeps up until the user pans or zooms it."""
    from lvm_studio.core.latent_tasks import MapCodes
    from lvm_studio.ui.latent.map_panel import LatentMapPanel

    hub.set_model(tiny_vae(2, seed=6))
    panel = LatentMapPanel(hub)
    add(qtbot, panel)
    panel.resize(900, 600)
    panel.show()
    qtbot.waitUntil(lambda: panel.codes is not None, timeout=WAIT_MS)
    codes = panel.codes

    def new_codes(scale):
        panel._pending_version = hub.version  # as request_encode() sets it
        panel._on_codes_finished(0, MapCodes(codes=codes * scale, projection=None))
        (x0, x1), _ = panel.vb.viewRange()
        return x0, x1

    w0 = float(np.subtract(*panel.vb.viewRange()[0][::-1]))  # the view's width, fitted to the first codes
    x0, x1 = new_codes(10.0)  # re-encoded while training: ten times wider
    assert x1 - x0 == pytest.approx(10 * w0, rel=0.2)
    panel.vb.sigRangeChangedManually.emit([True, True])  # the user zoomed
    assert new_codes(100.0) == (x0, x1)  # the user's view is kept
    panel._on_fit_clicked()  # Fit view: following again
    x0, x1 = new_codes(1000.0)
    assert x1 - x0 == pytest.approx(1000 * w0, rel=0.2)
