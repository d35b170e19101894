"""The mixture-prior VAE in the app: New model… offers it, the curves show test clustering, the latent map
colours by the model's own q(c|x), and the digit clusters panel shows its components and confusion matrix.

Tiny models (784-32-2, three components) on the GUI tests' small data.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import torch

from lvm_studio.core.colours import mix_colours
from lvm_studio.core.history import EvalRecord
from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui.training.new_model_dialog import NewModelDialog

WAIT_MS = 60000  # generous: the machine is shared
MIXTURE = VAEConfig(latent_dim=2, hidden=(32,), prior="mixture", components=3)


def mixture_vae(seed=0) -> VAE:
    torch.manual_seed(seed)
    model = VAE(MIXTURE)
    with torch.no_grad():
        model.mixture.loc.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    return model


def test_new_model_dialog_offers_the_mixture_prior(qtbot, window, monkeypatch):
    dialog = NewModelDialog(window, VAEConfig(), "elbo", 5)
    qtbot.addWidget(dialog)
    assert not dialog.components.isEnabled() and dialog.pretrain_epochs() == 0
    dialog.prior.setCurrentIndex(dialog.prior.findData("mixture"))
    assert dialog.components.isEnabled() and dialog.pretrain.isEnabled() and dialog.weights.isEnabled()
    assert dialog.config().weight_floor == 1.0  # equal weights by default, the shipped VaDE's recipe
    dialog.weights.setCurrentIndex(dialog.weights.findData(0.25))
    assert dialog.config().weight_floor == 0.25

    def accept_a_mixture(self):
        self.prior.setCurrentIndex(self.prior.findData("mixture"))
        self.latent_dim.setValue(2)
        self.hidden.setText("32")
        self.components.setValue(4)
        self.pretrain.setValue(2)
        return NewModelDialog.DialogCode.Accepted

    monkeypatch.setattr(NewModelDialog, "exec", accept_a_mixture)
    window._on_new_model()
    model = window.hub.model
    assert model.mixture is not None and model.mixture.n_components == 4
    assert model.config.weight_floor == 1.0 and torch.allclose(model.mixture.log_pi().exp(), torch.full((4,), 0.25))
    assert "GMM-4 prior" in window.hub.name
    assert window.training_panel.train_config().pretrain_epochs == 2


def _eval(i, acc=None, nmi=None):
    return EvalRecord(
        step=10 * i, epoch=float(i), split="val", n=50, elbo=-150.0, recon=-140.0, kl=10.0, log_px=-145.0, k=5,
        cluster_acc=acc, cluster_nmi=nmi,
    )  # fmt: skip


def test_curves_show_test_clustering_accuracy_and_nmi_only_for_a_mixture(qtbot, hub):
    from lvm_studio.ui.training.curves_panel import CurvesPanel

    panel = CurvesPanel(hub)
    qtbot.addWidget(panel)
    panel.resize(700, 700)
    panel.show()
    hub.add_record(_eval(1))
    qtbot.waitUntil(lambda: panel.evals_plotted == 1, timeout=WAIT_MS)
    assert not panel.clusters.shown and "clustering" not in panel.summary.text()
    for i, (acc, nmi) in enumerate(((0.5, 0.4), (0.7, 0.6), (0.8, 0.75)), 2):
        hub.add_record(_eval(i, acc, nmi))
    qtbot.waitUntil(lambda: panel.evals_plotted == 4, timeout=WAIT_MS)
    assert panel.clusters.shown
    x, y = panel.clusters.accuracy_curve.getData()
    np.testing.assert_allclose(x, [2, 3, 4])
    np.testing.assert_allclose(y, [0.5, 0.7, 0.8])
    np.testing.assert_allclose(panel.clusters.nmi_curve.getData()[1], [0.4, 0.6, 0.75])
    assert "accuracy 0.800" in panel.summary.text() and "NMI 0.750" in panel.summary.text()
    hub.set_model(VAE(VAEConfig(latent_dim=2, hidden=(8,))))  # a new model, an empty history: no plot
    qtbot.waitUntil(lambda: not panel.clusters.shown, timeout=WAIT_MS)


def test_latent_map_colours_a_mixture_model_by_its_own_q_c_given_x(qtbot, hub, add_panel):
    from lvm_studio.ui.latent.map_panel import LatentMapPanel

    panel = add_panel(LatentMapPanel(hub))
    panel.resize(900, 600)
    panel.show()
    qtbot.waitUntil(lambda: panel.codes is not None, timeout=WAIT_MS)
    assert panel.colour_mode() == "label"
    prior_item = panel.colour_by.model().item(panel.colour_by.findData("prior"))
    assert not prior_item.isEnabled()  # a standard VAE has no components
    with qtbot.waitSignal(panel.codes_updated, timeout=WAIT_MS):
        hub.set_model(mixture_vae())
    assert panel.colour_mode() == "prior" and prior_item.isEnabled()
    model = hub.model
    with torch.no_grad():
        mu = model.encode(hub.eval_x("test"))[0]
        resp = model.mixture.log_resp(mu).exp().numpy()  # (N, 3) p(c | z = μ(x))
    np.testing.assert_allclose(resp.sum(1), 1.0, atol=1e-5)
    rgb = panel.cloud.colours().astype(float)
    # each point's colour is Σ_c q(c|x) colour_c for some three colours: solve for them and check the fit
    solved, *_ = np.linalg.lstsq(resp.astype(float), rgb, rcond=None)  # (3, 3)
    np.testing.assert_allclose(resp @ solved, rgb, atol=1.5)
    np.testing.assert_allclose(mix_colours(resp, np.clip(solved, 0, 255).round(), "truncate"), rgb, atol=2.0)


def test_digit_clusters_show_the_models_components_samples_and_confusion(qtbot, hub, add_panel):
    from lvm_studio.ui.mixtures.digit_clusters_panel import DigitClustersPanel
    from lvm_studio.ui.mixtures.prior_tab import N_SAMPLES

    panel = add_panel(DigitClustersPanel(hub))
    tab = panel.prior
    assert not tab.sample_button.isEnabled() and panel.tabs.currentWidget() is panel.clusters
    with qtbot.waitSignal(tab.shown, timeout=WAIT_MS):
        hub.set_model(mixture_vae())
    assert panel.tabs.currentWidget() is tab
    res = tab.result
    n_test = hub.eval_x("test").shape[0]
    assert tab.gallery.images().shape == (3, 1 + N_SAMPLES, 28, 28)
    assert tab.confusion.counts().sum() == n_test and res.confusion.shape == (10, 3)
    assert 0.0 <= res.accuracy <= 1.0 and 0.0 <= res.nmi <= 1.0
    with torch.no_grad():  # the framed means are E[x | z = μ_c]
        np.testing.assert_allclose(res.mean_images, hub.model.decode_mean(hub.model.mixture.loc).numpy(), atol=1e-6)
    # pick a component, then sample: z ~ N(μ_c, σ_c²) decoded
    tab.component.setCurrentIndex(tab.component.findData(2))
    with qtbot.waitSignal(tab.sampled, timeout=WAIT_MS):
        tab.sample()
    picked = tab.picked.images()
    assert picked.shape[0] * picked.shape[1] == tab.n_samples.value()
    with qtbot.waitSignal(tab.sampled, timeout=WAIT_MS):
        tab.sample()
    assert not np.array_equal(tab.picked.images(), picked)  # new draws each time
    # back to a standard VAE: the tab explains, the Clusters tab comes back
    hub.set_model(VAE(VAEConfig(latent_dim=2, hidden=(8,))))
    assert tab.result is None and not tab.sample_button.isEnabled()
    assert panel.tabs.currentWidget() is panel.clusters


def test_component_samples_come_from_the_chosen_component():
    from lvm_studio.core.prior_clusters import component_samples

    model = mixture_vae()
    with torch.no_grad():
        model.mixture.scale_raw.fill_(-20.0)  # σ_c ≈ min_scale: every sample sits at μ_c
        expected = model.decode_mean(model.mixture.loc[1]).numpy()
    images = component_samples(model, 1, 4, seed=0)
    np.testing.assert_allclose(images, np.repeat(expected[None], 4, 0), atol=1e-3)


def test_file_menu_opens_each_pretrained_model(qtbot, window):
    from lvm_studio.core.pretrained import pretrained_dir, vae_entries

    entries = vae_entries()
    actions = window.pretrained_menu.actions()
    assert [a.text().split("  (")[0] for a in actions] == [e["name"] for e in entries]
    actions[0].trigger()
    assert window.hub.path == pretrained_dir() / entries[0]["file"]
    assert window.hub.name == entries[0]["name"]
