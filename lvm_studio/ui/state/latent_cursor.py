"""The current z, one per hub: sliders set it; the map and the traversal grid read and set it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal


class LatentCursor(QObject):
    """The z the user is looking at. Sliders set it; the map and the traversal grid read and set it.

    `moved(source)` carries who moved it, so a panel can ignore its own moves.
    """

    moved = Signal(str)

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self._hub = hub
        self._z = np.zeros(hub.latent_dim, dtype=np.float32)
        hub.model_changed.connect(self._on_model_changed)

    @property
    def z(self) -> np.ndarray:
        return self._z.copy()

    def set_z(self, z, source: str = "") -> None:
        z = np.array(z, dtype=np.float32, copy=True).reshape(-1)
        if z.shape != self._z.shape:
            raise ValueError(f"z has {z.size} dimensions, the model has {self._z.size}")
        self._z = z
        self.moved.emit(source)

    def _on_model_changed(self) -> None:
        if self._hub.latent_dim != self._z.size:
            self._z = np.zeros(self._hub.latent_dim, dtype=np.float32)
            self.moved.emit("model")
