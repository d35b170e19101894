"""Per-dimension KL statistics of the hub's model on the validation set, one service per hub."""

from __future__ import annotations

import functools
import time

import shiboken6
from PySide6.QtCore import QObject, QTimer, Signal

from lvm_studio.core.latent import latent_stats_task
from lvm_studio.ui.visibility import on_screen, screen_change
from lvm_studio.workers.tasks import TaskRunner

STATS_REFRESH_S = 10.0  # while training: recompute the statistics at most this often (5,000 encodings each)


class LatentStatsService(QObject):
    """Average KL per dimension, the KL ordering and the active units of the hub's model on the
    validation set (core.latent.LatentStats), recomputed off the GUI thread when the model changes
    and, while training, at most every STATS_REFRESH_S seconds. `stats` is None until the first
    result for the current model arrives.

    Widgets that show the statistics register with add_consumer. While training, new weights are
    taken up only while one of them is visible; hidden, the statistics just go stale and are
    recomputed once when a consumer is shown again (at the same rate limit). With no consumer
    registered, every refresh runs (a hub used without panels)."""

    stats_changed = Signal()
    failed = Signal(str)

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self._hub = hub
        self._stats = None
        self._last_t = -STATS_REFRESH_S
        self._stale = False  # the weights moved since the last computation started
        self._consumers: list[QObject] = []
        self.refreshes = 0  # computations submitted (tests and benchmarks read it)
        self.runner = TaskRunner("latent-stats", self)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timer)
        hub.model_changed.connect(self._on_model_changed)
        hub.weights_updated.connect(self._on_weights_updated)
        hub.data_changed.connect(self.refresh)
        self.refresh()

    @property
    def stats(self):
        """core.latent.LatentStats of the current model, or None until its first result arrives."""
        return self._stats

    @property
    def stale(self) -> bool:
        """True if new weights came that the statistics do not reflect yet (and none is computing them)."""
        return self._stale

    def add_consumer(self, widget) -> None:
        """`widget` shows the statistics: new training weights are used while it (or another) is visible."""
        if widget in self._consumers:
            return
        self._consumers.append(widget)
        widget.installEventFilter(self)
        widget.destroyed.connect(lambda *_: self._forget(widget))

    def _forget(self, widget) -> None:
        if widget in self._consumers:
            self._consumers.remove(widget)

    def consumer_visible(self) -> bool:
        """True if a registered consumer is visible, or none is registered."""
        self._consumers = [w for w in self._consumers if shiboken6.isValid(w)]
        return not self._consumers or any(on_screen(w) for w in self._consumers)

    def refresh(self) -> None:
        try:
            images = self._hub.eval_images
        except Exception as e:  # no data: panels keep the natural order
            self.failed.emit(str(e))
            return
        x_val = functools.partial(images.get, "val", self._hub.config.likelihood)  # made by the task
        self._timer.stop()
        self._stale = False
        self._last_t = time.monotonic()
        self.refreshes += 1
        self.runner.submit(latent_stats_task, self._hub.model, x_val)

    def _on_model_changed(self) -> None:
        self._stats = None
        self.refresh()

    def _on_weights_updated(self, step: int) -> None:
        self._stale = True
        self._schedule()

    def _schedule(self) -> None:
        """A refresh for the stale weights, at most every STATS_REFRESH_S, if someone looks."""
        if self._stale and self.consumer_visible() and not self._timer.isActive():
            self._timer.start(int(1000 * max(0.0, STATS_REFRESH_S - (time.monotonic() - self._last_t))))

    def _on_timer(self) -> None:
        if self.consumer_visible():
            self.refresh()  # else: still stale; the next show of a consumer schedules it

    def eventFilter(self, obj, event) -> bool:
        if screen_change(event) and obj in self._consumers:
            self._schedule()
        return False

    def _on_finished(self, task_id: int, stats) -> None:
        if stats.mean_kl.numel() != self._hub.latent_dim:
            return  # for a model that has since been replaced
        self._stats = stats
        self.stats_changed.emit()

    def _on_failed(self, task_id: int, message: str) -> None:
        self.failed.emit(message)
