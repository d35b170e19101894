"""Whether a panel is on screen, and when that changes.

A dock in a tab group whose tab is not the current one stays `isVisible()`: Qt places it behind
the current dock instead of hiding it, and choosing its tab sends the panel no Show or Hide event
(measured with the default layout: every tabbed panel reported isVisible() True, and the hidden
latent map, traversals and inpainting panels kept re-encoding, decoding and refitting while the
model trained). So a panel asks `on_screen(self)` (visible and some of it not covered), and
`PanelDock` sends its panel SCREEN_ON / SCREEN_OFF events when its tab is chosen or left, which
`screen_change(event)` reads together with Show and Hide.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QWidget

SCREEN_ON = QEvent.Type(QEvent.registerEventType())  # the panel's dock came to the front of its tab group
SCREEN_OFF = QEvent.Type(QEvent.registerEventType())  # another tab of its group was chosen


def on_screen(widget: QWidget) -> bool:
    """True if some of `widget` can be seen: shown, and not entirely covered (a tab behind another)."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()


def screen_change(event: QEvent) -> bool | None:
    """True for an event that brings a widget on screen (Show, SCREEN_ON), False for one that takes
    it off (Hide, SCREEN_OFF), None for any other event."""
    kind = event.type()
    if kind in (QEvent.Type.Show, SCREEN_ON):
        return True
    if kind in (QEvent.Type.Hide, SCREEN_OFF):
        return False
    return None


def send_screen_change(widget: QWidget, shown: bool) -> None:
    """Tell `widget` (and the event filters on it) that it came on screen or left it."""
    QCoreApplication.sendEvent(widget, QEvent(SCREEN_ON if shown else SCREEN_OFF))
