"""New training weights reach a panel only while someone looks at it.

A panel that decodes or re-encodes on `hub.weights_updated` keeps a SnapshotGate. While the panel
is hidden (or behind another tab: ui/visibility.py) a new snapshot costs nothing: the hub's version
moves past the one the panel last drew, and that is all. When the panel is shown again (or its tab
chosen) it refreshes once, if the version moved. While it is shown, refreshes come at most every
`interval_s` seconds (the panel's SNAPSHOT_INTERVAL_S, the rate the main window asks the training
thread to copy weights at), through one single-shot timer that runs only while a refresh is pending
(docs/architecture.md, the data flow while training).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QWidget

from lvm_studio.ui.visibility import on_screen, screen_change


class SnapshotGate(QObject):
    """Calls `refresh()` for new weights while `panel` is visible, rate-limited; once on show if stale.

    refreshes counts the calls (tests and benchmarks read it). A new model (hub.model_changed) is
    the panel's own business (it rebuilds): the gate drops a pending refresh and takes the new
    version as seen.
    """

    def __init__(self, panel: QWidget, hub, refresh: Callable[[], None], interval_s: float):
        super().__init__(panel)
        self._panel = panel
        self._hub = hub
        self._refresh = refresh
        self.interval_s = float(interval_s)
        self.refreshes = 0
        self._seen = hub.version  # the hub version the panel last refreshed for
        self._last_t = -math.inf
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._run)
        panel.installEventFilter(self)
        hub.weights_updated.connect(self._on_weights_updated)
        hub.model_changed.connect(self.caught_up)

    @property
    def stale(self) -> bool:
        """True if the hub's weights moved since the panel last refreshed for them."""
        return self._hub.version != self._seen

    def pending(self) -> bool:
        return self._timer.isActive()

    @Slot()
    def caught_up(self) -> None:
        """The panel now shows the hub's current weights (it rebuilt for a new model)."""
        self._timer.stop()
        self._seen = self._hub.version

    @Slot(int)
    def _on_weights_updated(self, step: int) -> None:
        if not on_screen(self._panel) or self._timer.isActive():
            return  # off screen: stale until shown; or a refresh is already due and will take these weights
        wait_s = max(0.0, self.interval_s - (time.monotonic() - self._last_t))
        self._timer.start(int(round(1000 * wait_s)))

    @Slot()
    def _run(self) -> None:
        self._seen = self._hub.version
        self._last_t = time.monotonic()
        self.refreshes += 1
        self._refresh()

    def eventFilter(self, obj, event) -> bool:
        if obj is self._panel:
            change = screen_change(event)  # Show/Hide, or its tab chosen/left
            if change and self.stale and not self._timer.isActive():
                self._timer.start(0)  # one refresh for everything missed while hidden
            elif change is False:
                self._timer.stop()  # still stale: the next show catches up
        return False
