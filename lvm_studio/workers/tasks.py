"""Long computations off the GUI thread: progress, cancellation, newest request wins.

    runner = TaskRunner(parent=panel)
    runner.finished.connect(panel._on_fit_finished)
    runner.submit(fit_mixture, x, k=10)   # fit_mixture(ctx, x, k=10); ctx.report(f, payload), ctx.cancelled()

One background thread per runner; tasks run one at a time. submit() cancels the running task
(it should poll ctx.cancelled()) and replaces any task still waiting, so a storm of requests
(a dragged slider, a brush stroke) costs at most one stale computation. Results and progress of
superseded tasks are dropped. The public signals are emitted from the GUI thread, so any slot,
lambda included, runs there.
"""

from __future__ import annotations

import itertools
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from lvm_studio.core import threads

_RUNNERS: weakref.WeakSet[TaskRunner] = weakref.WeakSet()


def shutdown_all(timeout_s: float = 2.0) -> bool:
    """Stop every live runner's thread (at application exit, and after each GUI test)."""
    # a list, not a generator: every runner is shut down even after one fails
    return all([r.shutdown(timeout_s) for r in list(_RUNNERS)])  # noqa: C419


class TaskCancelled(Exception):
    """Raise from a task (or let ctx.check() raise it) to end it early without an error."""


class TaskContext:
    def __init__(self, runner: TaskRunner, task_id: int):
        self._runner = runner
        self.task_id = task_id
        self._cancel = threading.Event()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise TaskCancelled()

    def report(self, fraction: float, payload: Any = None) -> None:
        """Progress in [0, 1] and an optional partial result (must not be mutated afterwards)."""
        self._runner._emit_safely(self._runner._progress_from_thread, self.task_id, float(fraction), payload)


class TaskRunner(QObject):
    started = Signal(int)  # task id
    progressed = Signal(int, float, object)  # task id, fraction, payload
    finished = Signal(int, object)  # task id, result
    failed = Signal(int, str)  # task id, readable message
    cancelled = Signal(int)  # task id

    # emitted in the worker thread; connected to this object's slots, so they arrive queued
    _progress_from_thread = Signal(int, float, object)
    _done_from_thread = Signal(int, str, object)  # id, 'finished'|'failed'|'cancelled', result/message

    _ids = itertools.count(1)

    def __init__(self, name: str = "task", parent: QObject | None = None):
        super().__init__(parent)
        self._name = name
        self._lock = threading.Condition()
        self._pending: tuple | None = None
        self._current: TaskContext | None = None
        self._latest_id = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._progress_from_thread.connect(self._on_progress_from_thread)
        self._done_from_thread.connect(self._on_done_from_thread)
        _RUNNERS.add(self)
        self.destroyed.connect(self._on_destroyed)

    # --- GUI-thread API -------------------------------------------------------------
    def submit(self, fn: Callable, *args, **kwargs) -> int:
        task_id = next(self._ids)
        with self._lock:
            if self._closing:
                return task_id
            self._latest_id = task_id
            if self._current is not None:
                self._current._cancel.set()
            self._pending = (task_id, fn, args, kwargs)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"lvm-{self._name}", daemon=True)
                self._thread.start()
            self._lock.notify_all()
        return task_id

    def cancel(self) -> None:
        with self._lock:
            self._latest_id = next(self._ids)  # nothing outstanding is current any more
            self._pending = None
            if self._current is not None:
                self._current._cancel.set()

    def is_busy(self) -> bool:
        with self._lock:
            return self._pending is not None or self._current is not None

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        """Cancel everything and wait for the thread; True if it ended in time."""
        with self._lock:
            self._closing = True
            self._pending = None
            if self._current is not None:
                self._current._cancel.set()
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True

    def _on_destroyed(self, *_):
        self.shutdown(0.5)

    # --- worker thread --------------------------------------------------------------
    def _loop(self) -> None:
        try:
            threads.use("tasks")  # this thread's torch threads, before its first task (core.threads)
        except ValueError:  # a malformed override, reported at start-up: run on torch's default
            pass
        while True:
            with self._lock:
                while self._pending is None and not self._closing:
                    if not self._lock.wait(timeout=5.0) and self._pending is None:
                        self._thread = None  # idle: let the thread end; submit() starts a new one
                        return
                if self._closing:
                    return
                task_id, fn, args, kwargs = self._pending
                self._pending = None
                ctx = self._current = TaskContext(self, task_id)
            try:
                result = fn(ctx, *args, **kwargs)
                outcome = ("cancelled", None) if ctx.cancelled() else ("finished", result)
            except TaskCancelled:
                outcome = ("cancelled", None)
            except Exception as e:  # the GUI shows the message; the app keeps running
                outcome = ("failed", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
            with self._lock:
                self._current = None
            self._emit_safely(self._done_from_thread, task_id, outcome[0], outcome[1])

    def _emit_safely(self, signal, *args) -> None:
        """Emit from the worker thread; if the owner was deleted meanwhile, cancel quietly."""
        try:
            signal.emit(*args)
        except RuntimeError:  # "Signal source has been deleted": the panel closed mid-task
            with self._lock:
                self._closing = True
                if self._current is not None:
                    self._current._cancel.set()

    # --- back on the GUI thread -----------------------------------------------------
    @Slot(int, float, object)
    def _on_progress_from_thread(self, task_id: int, fraction: float, payload) -> None:
        if task_id == self._latest_id:
            self.progressed.emit(task_id, fraction, payload)

    @Slot(int, str, object)
    def _on_done_from_thread(self, task_id: int, outcome: str, value) -> None:
        if task_id != self._latest_id:
            return  # superseded by a newer request
        if outcome == "finished":
            self.finished.emit(task_id, value)
        elif outcome == "failed":
            self.failed.emit(task_id, str(value))
        else:
            self.cancelled.emit(task_id)
