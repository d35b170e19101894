"""Panels behind another tab are off screen: they skip new weights and catch up when their tab is chosen.

Qt keeps a tabbed dock that is not the current tab isVisible() and sends it no Show or Hide when
its tab is chosen (ui/visibility.py); before this, every tabbed panel of the default layout kept
re-encoding, decoding and refitting while the model trained.
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from lvm_studio.ui.panels import PanelSpec
from lvm_studio.ui.visibility import on_screen
from lvm_studio.ui.widgets.snapshots import SnapshotGate

WAIT_MS = 10_000


class GatedProbe(QWidget):
    """A panel that refreshes for new weights through a SnapshotGate, as the decoding panels do."""

    SNAPSHOT_INTERVAL_S = 0.0

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        QVBoxLayout(self).addWidget(QLabel("probe"))
        self.snapshots = SnapshotGate(self, hub, self._refresh, self.SNAPSHOT_INTERVAL_S)
        self.refreshed_at_version: list[int] = []
        self._hub = hub

    def _refresh(self) -> None:
        self.refreshed_at_version.append(self._hub.version)


FRONT = PanelSpec("front", "Front", __name__, "GatedProbe", "right", "explore")
BACK = PanelSpec("back", "Back", __name__, "GatedProbe", "right", "explore")


def _new_weights(hub) -> None:
    hub.load_state({k: v.clone() for k, v in hub.model.state_dict().items()}, hub.step + 1, hub.epoch)


def test_a_panel_behind_another_tab_is_off_screen_and_catches_up_when_its_tab_is_chosen(qtbot, make_window):
    window = make_window(panel_specs=(FRONT, BACK))
    window.show()
    qtbot.waitExposed(window)
    front, back = window.docks["front"], window.docks["back"]
    window.tabifyDockWidget(front, back)
    front.raise_()
    qtbot.waitUntil(lambda: on_screen(front.widget()) and not on_screen(back.widget()), timeout=WAIT_MS)
    assert back.widget().isVisible()  # what Qt says of a tab behind another: why on_screen exists

    _new_weights(window.hub)
    qtbot.waitUntil(lambda: front.widget().refreshed_at_version == [window.hub.version], timeout=WAIT_MS)
    qtbot.wait(50)
    assert back.widget().refreshed_at_version == [] and back.widget().snapshots.stale

    back.raise_()  # its tab chosen: one refresh for the weights it missed
    qtbot.waitUntil(lambda: back.widget().refreshed_at_version == [window.hub.version], timeout=WAIT_MS)
    assert not on_screen(front.widget())
    _new_weights(window.hub)
    qtbot.waitUntil(lambda: len(back.widget().refreshed_at_version) == 2, timeout=WAIT_MS)
    qtbot.wait(50)
    assert len(front.widget().refreshed_at_version) == 1  # now the one behind: skips them
