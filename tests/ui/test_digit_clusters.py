"""The digit clusters panel, the panel registry and the latent map's mixture colouring.

The digits panel fits in the background on a tiny model, scores in [0, 1], publishes the test
responsibilities to the hub, and can be cancelled.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from lvm_studio.core import digit_clusters as dc
from lvm_studio.core.bernoulli_mixture import BernoulliMixture, BernoulliMixtureConfig
from lvm_studio.core.clustering import hungarian_accuracy, pca
from lvm_studio.core.gmm import GaussianMixture, GMMConfig
from lvm_studio.core.vae import VAE
from lvm_studio.ui.mixtures import digit_clusters_panel as dcp
from lvm_studio.ui.mixtures.em_playground_panel import EMPlaygroundPanel
from lvm_studio.ui.panels import PANELS, load_panel_class

WAIT_MS = 60000  # generous: the machine is shared


# --- digits ------------------------------------------------------------------------------------------


def test_digit_clusters_fit_vae_codes_and_publish(qtbot, hub, add_panel):
    panel = add_panel(dcp.DigitClustersPanel(hub))
    with qtbot.waitSignal(panel.clusters_fitted, timeout=WAIT_MS):
        panel.fit("vae", k=4, fit_on="10k", seed=0, max_iter=40)
    r = panel.result
    n_test = hub.eval_x("test").shape[0]
    assert 0.0 <= r.accuracy <= 1.0 and 0.0 <= r.nmi <= 1.0
    assert r.n_fit == min(10000, hub.data.x_train.shape[0]) and r.dim == hub.latent_dim
    resp, colours, desc = hub.cluster_posterior
    assert resp.shape == (n_test, 4) and colours.shape == (4, 3) and "K = 4" in desc
    np.testing.assert_allclose(resp.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(r.pred_test, resp.argmax(1))
    assert r.confusion.sum() == n_test
    assert r.accuracy == pytest.approx(hungarian_accuracy(hub.labels("test"), r.pred_test))
    # the means shown are p(x | z = μ_k) of the current model
    with torch.no_grad():
        decoded = hub.model.decode_mean(torch.as_tensor(r.means, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(r.mean_images, decoded, atol=1e-6)
    assert panel.gallery.images().shape == (4, 1 + dc.N_SAMPLES, 28, 28)
    assert panel.confusion.counts().sum() == n_test
    # the published responsibilities are the mixture's p(c | z) at the map's test codes μ(x)
    codes, _ = hub.model.encode(hub.eval_x("test"))
    gmm = GaussianMixture(GMMConfig(n_components=4), dtype=torch.float64)
    gmm.set_parameters(r.weights, r.means, r.covariances)
    np.testing.assert_allclose(resp, gmm.responsibilities(codes.double()).numpy(), atol=1e-4)


def test_digit_clusters_pca_space(qtbot, hub, add_panel):
    panel = add_panel(dcp.DigitClustersPanel(hub))
    with qtbot.waitSignal(panel.clusters_fitted, timeout=WAIT_MS):
        panel.fit("pca", k=3, pca_dim=6, fit_on="10k", covariance="diag", max_iter=30)
    r = panel.result
    assert r.space == "pca" and r.dim == 6 and 0 < r.explained_variance < 1
    assert 0.0 <= r.accuracy <= 1.0
    assert hub.cluster_posterior is None  # only the latent-code mixture goes to the map
    proj = pca(hub.data.float_images("train")[:10000], 6)
    back = proj.inverse_transform(torch.as_tensor(r.means, dtype=proj.mean.dtype)).clamp(0, 1).numpy()
    np.testing.assert_allclose(r.mean_images, back, atol=1e-4)


def test_digit_clusters_cancel(qtbot, hub, add_panel):
    panel = add_panel(dcp.DigitClustersPanel(hub))
    fitted = []
    panel.clusters_fitted.connect(lambda: fitted.append(1))
    panel.fit("vae", k=5, fit_on="trainval", max_iter=100000, tol=0.0)  # never converges: runs until cancelled
    qtbot.waitUntil(lambda: len(panel._traces.get(0, [])) >= 3, timeout=WAIT_MS)  # EM is running
    assert panel.runner.is_busy() and not panel.fit_button.isEnabled()
    with qtbot.waitSignal(panel.fit_cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.runner.is_busy(), timeout=WAIT_MS)
    assert panel.fit_button.isEnabled() and panel.result is None and not fitted
    assert hub.cluster_posterior is None


def test_bernoulli_density_reports_exact_log_px(qtbot, hub, add_panel):
    panel = add_panel(dcp.DigitClustersPanel(hub))
    with qtbot.waitSignal(panel.density_fitted, timeout=WAIT_MS):
        panel.fit_density(k=3, fit_on="10k", max_iter=5, n_vae=20, vae_k=5)
    r = panel.density_result
    x_test = hub.data.binarized("test")
    bmm = BernoulliMixture(BernoulliMixtureConfig(n_components=3)).set_parameters(r.weights, r.probs)
    assert r.test_log_px == pytest.approx(float(bmm.log_prob(x_test).double().mean()), abs=1e-3)
    assert r.test_log_px_subset == pytest.approx(float(bmm.log_prob(x_test[:20]).double().mean()), abs=1e-3)
    assert r.n_vae == 20 and np.isfinite(r.vae_log_px) and r.vae_log_px < 0
    assert "IWAE-5" in panel.d_results.text()
    assert panel.d_gallery.images().shape == (3, 3, 28, 28)


def test_panels_are_registered(qtbot, hub):
    specs = {s.key: s for s in PANELS}
    assert load_panel_class(specs["em_playground"]) is EMPlaygroundPanel
    assert load_panel_class(specs["digit_clusters"]) is dcp.DigitClustersPanel


def test_latent_map_colours_by_the_published_mixture(qtbot, hub, add_panel):
    from lvm_studio.ui.latent.map_panel import LatentMapPanel

    panel = add_panel(dcp.DigitClustersPanel(hub))
    with qtbot.waitSignal(panel.clusters_fitted, timeout=WAIT_MS):
        panel.fit("vae", k=3, fit_on="10k", max_iter=20)
    latent_map = add_panel(LatentMapPanel(hub))
    qtbot.waitUntil(lambda: latent_map.codes is not None, timeout=WAIT_MS)
    latent_map.set_colour_mode("mixture")
    resp, colours, _ = hub.cluster_posterior
    expected = np.clip(resp @ colours.astype(np.float32), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(latent_map.cloud.colours(), expected)


# --- while training: the weights move during and after a fit ---------------------------------------------


def moved_weights(model, seed: int) -> dict:
    """A snapshot as the trainer sends one: new CPU tensors, the weights moved noticeably."""
    g = torch.Generator().manual_seed(seed)
    return {
        name: (v + 0.3 * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v.clone()
        for name, v in model.state_dict().items()
    }


def responsibilities_at(model, res, x):
    codes, _ = model.encode(x)
    return dc.fitted_mixture(res).responsibilities(codes.double()).numpy()


def test_a_fit_while_training_is_published_and_its_colours_follow_the_weights(qtbot, hub, monkeypatch, add_panel):
    from lvm_studio.ui.latent.map_panel import LatentMapPanel
    from lvm_studio.ui.mixtures import clusters_tab

    monkeypatch.setattr(clusters_tab, "REFRESH_S", 0.05)  # the throttle, not what is tested here
    panel = add_panel(dcp.DigitClustersPanel(hub))
    tab = panel.clusters
    x = hub.eval_x("test")
    snapshot = hub.model
    with qtbot.waitSignal(tab.responsibilities_refreshed, timeout=WAIT_MS) as refreshed:
        with qtbot.waitSignal(panel.clusters_fitted, timeout=WAIT_MS):
            panel.fit("vae", k=4, fit_on="10k", seed=0, max_iter=40)
            hub.load_state(moved_weights(snapshot, 1), step=100, epoch=0.5)  # between submit and finish
        r = panel.result
        # fitted on the snapshot it started from, and published for it, although training moved on
        np.testing.assert_allclose(r.resp_test, responsibilities_at(snapshot, r, x), atol=1e-4)
        resp, colours, desc = hub.cluster_posterior
        np.testing.assert_array_equal(resp, r.resp_test)
        assert "not published" not in panel.status.text() and "Done" in panel.status.text()
        assert tab.published.fit_step == 0
    assert refreshed.args == [100]
    # then the responsibilities follow the current weights, under the same mixture
    resp, colours2, desc = hub.cluster_posterior
    now = responsibilities_at(hub.model, r, x)
    np.testing.assert_allclose(resp, now, atol=1e-4)
    assert np.abs(now - r.resp_test).max() > 0.05  # the codes did move
    np.testing.assert_array_equal(colours2, colours)
    assert "codes of step 100" in desc and "step 100" in panel.status.text()
    # another weight change: recomputed again for the new codes
    with qtbot.waitSignal(tab.responsibilities_refreshed, timeout=WAIT_MS) as refreshed:
        hub.load_state(moved_weights(hub.model, 2), step=200, epoch=1.0)
    assert refreshed.args == [200]
    np.testing.assert_allclose(hub.cluster_posterior[0], responsibilities_at(hub.model, r, x), atol=1e-4)
    # the latent map colours its codes by them
    latent_map = add_panel(LatentMapPanel(hub))
    qtbot.waitUntil(lambda: latent_map.codes is not None, timeout=WAIT_MS)
    latent_map.set_colour_mode("mixture")
    resp, colours, _ = hub.cluster_posterior
    expected = np.clip(resp @ colours.astype(np.float32), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(latent_map.cloud.colours(), expected)


def test_weights_that_move_while_a_refresh_runs_are_caught_up(qtbot, hub, monkeypatch, add_panel):
    from lvm_studio.ui.mixtures import clusters_tab

    monkeypatch.setattr(clusters_tab, "REFRESH_S", 0.05)
    panel = add_panel(dcp.DigitClustersPanel(hub))
    tab = panel.clusters
    with qtbot.waitSignal(panel.clusters_fitted, timeout=WAIT_MS):
        panel.fit("vae", k=3, fit_on="10k", max_iter=20)
    steps = []
    tab.responsibilities_refreshed.connect(steps.append)
    hub.load_state(moved_weights(hub.model, 1), step=10, epoch=0.1)
    tab.refresh_responsibilities()  # in flight now
    hub.load_state(moved_weights(hub.model, 2), step=20, epoch=0.2)  # arrives while it runs
    qtbot.waitUntil(lambda: bool(steps) and steps[-1] == 20, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not tab._refresh_timer.isActive() and not tab.refresh_runner.is_busy(), timeout=WAIT_MS)
    np.testing.assert_allclose(
        hub.cluster_posterior[0], responsibilities_at(hub.model, panel.result, hub.eval_x("test")), atol=1e-4
    )
    # a different model drops them, and no later snapshot brings them back
    hub.set_model(VAE(hub.config), name="another")
    assert hub.cluster_posterior is None and tab.published is None
    hub.load_state(moved_weights(hub.model, 3), step=5, epoch=0.1)
    assert not tab._refresh_timer.isActive() and not tab.refresh_runner.is_busy()
    assert hub.cluster_posterior is None


def test_the_density_tab_says_when_its_vae_number_is_for_older_weights(qtbot, hub, add_panel):
    panel = add_panel(dcp.DigitClustersPanel(hub))
    with qtbot.waitSignal(panel.density_fitted, timeout=WAIT_MS):
        panel.fit_density(k=2, fit_on="10k", max_iter=3, n_vae=10, vae_k=2)
    table = panel.d_results.text()
    assert "training has moved on" not in table
    hub.load_state(moved_weights(hub.model, 1), step=42, epoch=0.1)
    text = panel.d_results.text()
    assert text.startswith(table) and "for step 0; training has moved on" in text
    hub.load_state(moved_weights(hub.model, 2), step=43, epoch=0.2)
    assert panel.d_results.text() == text  # said once
    hub.set_model(VAE(hub.config), name="another")
    assert "not the model loaded now" in panel.d_results.text()
