"""The latent statistics follow training only while a panel that shows them is visible."""

from PySide6.QtWidgets import QWidget

from lvm_studio.core.vae import copy_state_to_cpu
from lvm_studio.ui.state import latent_stats

WAIT_MS = 20000  # generous: the machine is shared


def _new_weights(hub):
    hub.load_state(copy_state_to_cpu(hub.model), hub.step + 1, hub.epoch)


def _settled(qtbot, service):
    qtbot.waitUntil(lambda: service.stats is not None and not service.runner.is_busy(), timeout=WAIT_MS)


def test_a_hidden_consumer_leaves_the_stats_stale_until_it_is_shown(qtbot, hub, monkeypatch):
    monkeypatch.setattr(latent_stats, "STATS_REFRESH_S", 0.0)
    service = hub.latent_stats
    _settled(qtbot, service)
    panel = QWidget()
    qtbot.addWidget(panel)
    service.add_consumer(panel)
    before = service.refreshes
    for _ in range(3):
        _new_weights(hub)
    qtbot.wait(50)  # the event loop runs: nothing may be scheduled for a hidden consumer
    assert service.refreshes == before and service.stale and not service.consumer_visible()
    panel.show()
    qtbot.waitUntil(lambda: service.refreshes == before + 1, timeout=WAIT_MS)  # once, for all three
    assert not service.stale
    _settled(qtbot, service)
    qtbot.wait(50)
    assert service.refreshes == before + 1


def test_a_visible_consumer_gets_new_weights_and_no_consumer_means_every_refresh(qtbot, hub, monkeypatch):
    monkeypatch.setattr(latent_stats, "STATS_REFRESH_S", 0.0)
    service = hub.latent_stats
    _settled(qtbot, service)
    before = service.refreshes
    assert service.consumer_visible()  # nobody registered: a hub without panels keeps refreshing
    _new_weights(hub)
    qtbot.waitUntil(lambda: service.refreshes == before + 1, timeout=WAIT_MS)
    panel = QWidget()
    qtbot.addWidget(panel)
    service.add_consumer(panel)
    service.add_consumer(panel)  # registering twice is harmless
    panel.show()
    _settled(qtbot, service)
    _new_weights(hub)
    qtbot.waitUntil(lambda: service.refreshes == before + 2, timeout=WAIT_MS)
    _settled(qtbot, service)
    panel.hide()
    _new_weights(hub)
    qtbot.wait(50)
    assert service.refreshes == before + 2 and service.stale
