"""Every dockable panel fits the dock of a 1,280 × 720 window (issue 11, item 2).

At that size the main window's right-hand tabbed dock area is about 780 × 600 px; a panel whose
minimumSizeHint is within MAX_W × MAX_H is shown there whole, without scroll bars.
"""

import pytest
import torch

from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui.panels import PANELS, load_panel_class

MAX_W, MAX_H = 760, 580


@pytest.fixture(autouse=True)
def app_look(qapp):
    """Sizes as the app has them: its style, palette and stylesheet (group-box margins), restored after."""
    import pyqtgraph as pg

    from lvm_studio.ui.widgets import style

    saved = (qapp.style().name(), qapp.palette(), qapp.styleSheet())
    saved_pg = {k: pg.getConfigOption(k) for k in ("background", "foreground")}
    style.apply(qapp)
    yield
    qapp.setStyle(saved[0])
    qapp.setPalette(saved[1])
    qapp.setStyleSheet(saved[2])
    pg.setConfigOptions(**saved_pg)


def _assert_fits(panel, what: str) -> None:
    hint = panel.minimumSizeHint()
    assert hint.width() <= MAX_W and hint.height() <= MAX_H, (
        f"{what}: minimumSizeHint {hint.width()}×{hint.height()} exceeds {MAX_W}×{MAX_H}"
    )


@pytest.mark.parametrize("latent_dim", [2, 32])
@pytest.mark.parametrize("spec", PANELS, ids=[s.key for s in PANELS])
def test_every_panel_fits_a_1280x720_window(qtbot, hub, spec, latent_dim):
    if latent_dim != 2:
        torch.manual_seed(0)
        hub.set_model(VAE(VAEConfig(latent_dim=latent_dim, hidden=(32,))), name=f"tiny VAE-{latent_dim}")
    cls = load_panel_class(spec)
    assert cls is not None, f"panel {spec.key} does not import"
    panel = cls(hub)
    qtbot.addWidget(panel)
    _assert_fits(panel, f"{spec.title} (latent dim {latent_dim})")


def test_the_em_playground_fits_with_the_generating_mixture_shown(qtbot):
    """The custom point set shows the generating mixture's table: the panel still fits."""
    from lvm_studio.core.em_playground import CUSTOM
    from lvm_studio.ui.mixtures.em_playground_panel import EMPlaygroundPanel

    panel = EMPlaygroundPanel(None)
    qtbot.addWidget(panel)
    panel.set_point_set(CUSTOM)
    panel.controls.tabs.setCurrentIndex(1)
    panel.resize(780, 600)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.controls.custom_box.isVisible()
    _assert_fits(panel, "EM playground with a generating mixture")


@pytest.mark.parametrize("latent_dim", [2, 32])
def test_the_inpainting_column_gives_every_view_its_minimum(qtbot, hub, latent_dim):
    """At 1,280 × 720 with its longest texts, the inpainting panel's right-hand column gives the fit's
    views and the chains their minimum heights: no view is squeezed under another (seen on Xvfb: a
    wrapped label made the chains view height-for-width, and the box layout then took all of its
    maximum height as its minimum, pushing the samples under the ELBO plot)."""
    from lvm_studio.ui.inpainting.chains_view import MIN_HEIGHT
    from lvm_studio.ui.inpainting.inpainting_panel import InpaintingPanel

    if latent_dim != 2:
        torch.manual_seed(0)
        hub.set_model(VAE(VAEConfig(latent_dim=latent_dim, hidden=(32,))), name=f"tiny VAE-{latent_dim}")
    panel = InpaintingPanel(hub)
    qtbot.addWidget(panel)
    lines = ["MwG, sweep 400 of 400", "acceptance rate 4.9 %", "class mix 7: 80 %, 9: 12 %"]
    lines += ["the chains show 2 digits now", "effective samples 5, 8 per second"]
    panel.chains_view.stats.setText("<br>".join(lines))
    panel.numbers.setText("ELBO of the 392 seen pixels (256 samples): encoder's guess <b>-59.2</b> → fitted q "
        "<b>-50.3</b> nats (<b>+8.9</b>); 392 pixels filled in.<br>best of 6 starts after 100 steps: encoder "
        "(-50.8 nats); the starts agree.")  # fmt: skip
    panel.status.setText("200 Adam steps in 154 ms (done).")
    panel.resize(MAX_W, MAX_H)
    panel.show()
    qtbot.waitExposed(panel)
    results, chains = panel.results, panel.chains_view
    assert results.height() >= results.minimumSizeHint().height()
    assert chains.height() >= MIN_HEIGHT
    views = [panel.mean_view, panel.amortized_view, panel.std_view, panel.samples_view, panel.importance_view]
    plot = panel.elbo_plot.geometry()
    for v in views:
        assert v.height() >= v.minimumHeight() and not v.geometry().intersects(plot), v.geometry()
