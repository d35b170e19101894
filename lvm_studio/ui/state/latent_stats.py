"""Per-dimension KL statistics of the hub's model on the validation set, one service per hub."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from lvm_studio.core.latent import latent_stats_task
from lvm_studio.workers.tasks import TaskRunner

STATS_REFRESH_S = 10.0  # while training: recompute the statistics at most this often (5,000 encodings each)


class LatentStatsService(QObject):
    """Average KL per dimension, the KL ordering and the active units of the hub's model on the
    validation set (core.latent.LatentStats), recomputed off the GUI thread when the model changes
    and, while training, at most every STATS_REFRESH_S seconds. `stats` is None until the first
    result for the current model arrives."""

    stats_changed = Signal()
    failed = Signal(str)

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self._hub = hub
        self._stats = None
        self._last_t = 0.0
        self.runner = TaskRunner("latent-stats", self)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        hub.model_changed.connect(self._on_model_changed)
        hub.weights_updated.connect(self._on_weights_updated)
        hub.data_changed.connect(self.refresh)
        self.refresh()

    @property
    def stats(self):
        """core.latent.LatentStats of the current model, or None until its first result arrives."""
        return self._stats

    def refresh(self) -> None:
        try:
            x_val = self._hub.eval_x("val")
        except Exception as e:  # no data: panels keep the natural order
            self.failed.emit(str(e))
            return
        self._last_t = time.monotonic()
        self.runner.submit(latent_stats_task, self._hub.model, x_val)

    def _on_model_changed(self) -> None:
        self._stats = None
        self.refresh()

    def _on_weights_updated(self, step: int) -> None:
        if not self._timer.isActive():
            self._timer.start(int(1000 * max(0.0, STATS_REFRESH_S - (time.monotonic() - self._last_t))))

    def _on_finished(self, task_id: int, stats) -> None:
        if stats.mean_kl.numel() != self._hub.latent_dim:
            return  # for a model that has since been replaced
        self._stats = stats
        self.stats_changed.emit()

    def _on_failed(self, task_id: int, message: str) -> None:
        self.failed.emit(message)
