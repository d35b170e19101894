"""File › Open dataset…: the import dialog (ui/data/dataset_dialog.py) and switching the window's dataset."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lvm_studio.core.data import load_mnist
from lvm_studio.ui.data import datasets
from lvm_studio.ui.data.dataset_dialog import DatasetDialog
from lvm_studio.ui.panels import PANELS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setattr(datasets, "datasets_dir", lambda: folder)
    return folder


@pytest.fixture
def letters(tmp_path):
    """a/ and b/: 6 light-background pictures each, and one text file named .png."""
    root = tmp_path / "letters"
    for k, label in enumerate("ab"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            img = np.full((40, 40), 255, np.uint8)
            img[8:32, 6 + 3 * i : 12 + 3 * i + 8 * k] = 0
            Image.fromarray(img).save(root / label / f"{i}.png")
    (root / "b" / "broken.png").write_text("not a picture")
    return root


def _dialog(qtbot, settings):
    dialog = DatasetDialog(None, settings)
    qtbot.addWidget(dialog)
    return dialog


def test_import_shows_preview_counts_labels_and_refusals(qtbot, settings, cache, letters, tmp_path):
    dialog = _dialog(qtbot, settings)
    dialog.source.setText(str(letters))
    dialog.side.setValue(16)
    assert dialog.start_import()
    qtbot.waitUntil(dialog.use_button.isEnabled, timeout=20000)
    outcome = dialog.outcome()
    assert outcome.data.side == 16 and outcome.data.label_names == ("a", "b")
    assert outcome.path.parent == cache and load_mnist(outcome.path).n_pixels == 256
    assert "12 images from 40×40 -> 16×16 grey" in dialog.summary.text()
    assert "a 6, b 6" in dialog.label_counts.text()
    assert dialog.refused.count() == 1 and dialog.refused.item(0).text().startswith("b/broken.png: not an image")
    assert dialog.preview.image_array() is not None and dialog.preview.image_array().max() > 0
    # it is on the recent list, and re-opens from there without converting again
    assert dialog.recent.count() == 1 and dialog.recent.currentData() == str(outcome.path)
    shown = dialog.outcome()

    # a bad source: one line in the dialog, the dataset shown stays
    empty = tmp_path / "empty"
    empty.mkdir()
    dialog.source.setText(str(empty))
    dialog.start_import()
    qtbot.waitUntil(lambda: dialog.import_button.isEnabled(), timeout=20000)
    assert "Not imported:" in dialog.status.text() and "the folder is empty" in dialog.status.text()
    assert dialog.outcome() is shown and dialog.use_button.isEnabled()

    again = _dialog(qtbot, settings)
    assert again.open_recent()
    qtbot.waitUntil(again.use_button.isEnabled, timeout=20000)
    assert again.outcome().data.side == 16 and "16×16, 12 images" in again.summary.text()


def test_cancel_leaves_nothing_in_use(qtbot, settings, cache, letters):
    dialog = _dialog(qtbot, settings)
    dialog.source.setText(str(letters))
    dialog.start_import()
    dialog.cancel_import()
    assert "cancelled" in dialog.status.text() and dialog.import_button.isEnabled()
    assert dialog.outcome() is None and not dialog.use_button.isEnabled()


def test_a_dataset_of_another_size_comes_with_a_model_for_it(qtbot, make_window, cache, letters, settings):
    spec = next(s for s in PANELS if s.key == "latent_map")
    window = make_window(panel_specs=(spec,))
    dialog = _dialog(qtbot, settings)
    dialog.source.setText(str(letters))
    dialog.side.setValue(16)
    dialog.start_import()
    qtbot.waitUntil(dialog.use_button.isEnabled, timeout=20000)
    hub = window.hub
    old_data = hub.data
    assert window.use_dataset(dialog.outcome().data, dialog.outcome().path)
    assert hub.config.x_dim == 256 and hub.data.side == 16 and hub.data is not old_data
    assert hub.name.startswith("untrained VAE 256-") and "data: letters" in window.data_label.text()
    assert "16×16" in window.data_label.text()
    # the latent map encodes the new test set and colours it by the two labels
    panel = window.docks["latent_map"].widget()
    qtbot.waitUntil(lambda: panel.codes is not None and len(panel.codes) == len(hub.data.x_test), timeout=20000)
    panel.set_colour_mode("label")
    names = [label.text for _, label in panel.legend.items]
    assert names == ["a", "b"]
    # training starts on it and a step reaches the curves
    assert window.start_training()
    qtbot.waitUntil(lambda: len(hub.history.train) > 0, timeout=30000)
    window.stop_training()
    qtbot.waitUntil(lambda: window.controller.state == "idle", timeout=10000)


def test_the_28x28_panels_say_so_for_another_size(qtbot, add_panel, hub, cache, letters):
    """Inpainting and the missing-pixels panel draw on 28×28 canvases: for a 16×16 dataset they explain."""
    from lvm_studio.core.dataset_import import ImportOptions, import_dataset
    from lvm_studio.core.vae import VAE, VAEConfig
    from lvm_studio.ui.inpainting.inpainting_panel import InpaintingPanel
    from lvm_studio.ui.inpainting.pixel_latents_panel import PixelLatentsPanel

    data = load_mnist(import_dataset(letters, ImportOptions(side=16)).save(cache / "small.npz"))
    inpainting, pixels = add_panel(InpaintingPanel(hub)), add_panel(PixelLatentsPanel(hub))
    hub.set_data(data, model=VAE(VAEConfig(latent_dim=2, hidden=(8,), x_dim=256)))
    pixels.start()
    inpainting.request_fit()
    for panel in (inpainting, pixels):
        assert "works on 28×28 images" in panel.status.text() and "16×16" in panel.status.text()
