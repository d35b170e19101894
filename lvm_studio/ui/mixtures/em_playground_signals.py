"""A thin Qt face on the core EMPlayground: its change events as a signal, so the core stays Qt-free."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from lvm_studio.core.em_playground import EMPlayground


class PlaygroundSignals(QObject):
    """``changed(event)`` after every change of ``model`` (event one of core.em_playground.EVENTS).

    The model is stepped on the GUI thread, so the signal is delivered at once, inside the call
    that made the change.
    """

    changed = Signal(str)

    def __init__(self, model: EMPlayground, parent=None):
        super().__init__(parent)
        self.model = model
        model.subscribe(self._emit)

    def _emit(self, event: str) -> None:
        self.changed.emit(event)
