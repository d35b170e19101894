"""The training thread: core's Trainer run off the GUI thread, its events forwarded as Qt signals.

    controller = TrainingController(parent=window)
    controller.step_recorded.connect(window._on_step_recorded)
    controller.ended.connect(window._on_training_ended)
    controller.start(TrainingJob(model_config, state_dict, data, TrainConfig(...), device="auto"))
    controller.pause(); controller.resume(); controller.set_lr(3e-4); controller.request_eval()
    controller.set_snapshot_interval(0.5)   # weights for the visible panels; None: no snapshots
    controller.stop_and_wait(1.0)

One plain thread per run, named 'lvm-training'. It owns the model it trains and the optimizer;
the GUI hands it CPU copies of the weights in a TrainingJob and gets back only immutable
records, CPU weight snapshots and, when the run ends, a RunResult with the final weights and
optimizer state on the CPU (docs/architecture.md, the data flow while training). The thread
emits one private signal per event, received by this object's slot in the GUI thread, which
re-emits the typed public signals there: any slot, a lambda included, runs in the GUI thread.
Commands are queued by the Trainer and take effect between steps (or evaluation chunks).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import traceback
import weakref
from dataclasses import dataclass, field

import torch
from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot
from shiboken6 import isValid

from lvm_studio.core import threads
from lvm_studio.core.adam import Adam
from lvm_studio.core.autosave import AUTOSAVE_EVERY_S, Autosaver
from lvm_studio.core.data import MNIST
from lvm_studio.core.device import choose_device
from lvm_studio.core.history import EvalRecord, History, StepRecord
from lvm_studio.core.snapshots import copy_optimizer_state
from lvm_studio.core.training import (
    EvalProgress,
    Notice,
    Progress,
    Snapshot,
    TrainConfig,
    Trainer,
)
from lvm_studio.core.vae import VAE, VAEConfig, copy_state_to_cpu

THREAD_NAME = "lvm-training"
# The training thread (and the OpenMP threads it starts, which inherit it) runs this much "nicer"
# than the GUI thread, so that a repaint gets a core at once instead of its fair third of two.
# On an otherwise idle machine training loses nothing: the GUI uses a few per cent of one core.
# Measured here (2 cores, 20 s runs): event-loop stalls over 20 ms 27-33 with it, 64-66 without.
TRAINING_NICENESS = 5
NICENESS_ENV = "LVM_STUDIO_TRAINING_NICE"  # overrides it (0: as nice as the GUI), e.g. for bench.app_smoke


def training_niceness() -> int:
    """TRAINING_NICENESS, or the value of LVM_STUDIO_TRAINING_NICE when that is a whole number."""
    try:
        return int(os.environ.get(NICENESS_ENV, TRAINING_NICENESS))
    except ValueError:
        return TRAINING_NICENESS


_CONTROLLERS: weakref.WeakSet[TrainingController] = weakref.WeakSet()
UNSET = object()  # no snapshot interval was set on a controller: its runs keep their config's

# states of a controller, as shown by state_changed
IDLE, STARTING, RUNNING, PAUSED, STOPPING = "idle", "starting", "running", "paused", "stopping"


def shutdown_all(timeout_s: float = 2.0) -> bool:
    """Stop every live controller's thread (at exit, and after each GUI test)."""
    # a list, not a generator: every controller is stopped even after one times out
    return all([c.stop_and_wait(timeout_s) for c in list(_CONTROLLERS) if isValid(c)])  # noqa: C419


def warm_up() -> None:
    """Run one tiny training step and evaluation here and now, at start-up, when the user is idle.

    The first calls of the ops a run uses (autograd, Adam's kernel, the evaluation) pay one-off
    set-up costs; paid here, before gc.freeze(), their objects are never scanned again. (The first
    torch.optim.Adam imported torch._dynamo and ~800 modules, 3 s: core.adam does without it.)
    """
    from lvm_studio.core import estimators as est

    model = VAE(VAEConfig(latent_dim=2, hidden=(4,)))
    optimizer = Adam(model.parameters(), lr=1e-3)
    x = torch.bernoulli(torch.full((2, model.config.x_dim), 0.5))  # (2, N_PIXELS)
    loss = -est.elbo(model, x).elbo.mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    optimizer.step()
    copy_optimizer_state(optimizer.state_dict(), "cpu")
    copy_state_to_cpu(model)
    with torch.no_grad():
        log_w = est.sample_log_weights(model, x, 3, "q")  # (3, 2)
        est.iw_bounds_from_weights(log_w, (1, 2))


def _lower_thread_priority(increment: int) -> None:
    """Raise this thread's nice value (Linux, where priorities are per thread); elsewhere do nothing."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except (OSError, AttributeError):
        pass  # not permitted, or not supported: train at the same priority


def live_training_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]


@dataclass(frozen=True)
class TrainingJob:
    """Everything a run needs, as CPU data the GUI will not touch again."""

    model_config: dict  # VAEConfig.to_dict()
    state_dict: dict  # CPU tensors owned by the job
    data: MNIST  # read-only numpy arrays
    config: TrainConfig
    device: str = "auto"  # 'auto', 'cpu', 'cuda' or 'cuda:N'
    optimizer_state: dict | None = None
    history: History = field(default_factory=History)  # a copy; the Trainer appends to it
    step: int = 0
    epoch: float = 0.0
    name: str | None = None
    # the user's data folder: the thread autosaves the run there (core.autosave) every
    # autosave_every_s seconds, between steps, so a crash of the app loses minutes, not the run
    autosave_dir: str | None = None
    autosave_every_s: float = AUTOSAVE_EVERY_S


@dataclass(frozen=True)
class RunResult:
    """How a run ended. reason: finished, stopped, diverged or failed."""

    run_id: int
    reason: str
    message: str = ""
    snapshot: Snapshot | None = None  # final CPU weights (None when the run failed before training)
    optimizer_state: dict | None = None  # on the CPU
    train_config: dict | None = None
    device: str = ""


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


class TrainingController(QObject):
    # public: emitted in the GUI thread
    state_changed = Signal(str)  # idle, starting, running, paused, stopping
    started = Signal(str)  # a description of the device
    step_recorded = Signal(object)  # StepRecord
    evaluated = Signal(object)  # EvalRecord
    eval_progressed = Signal(float)  # fraction of the running evaluation
    progressed = Signal(object)  # Progress
    snapshot_taken = Signal(object)  # Snapshot (CPU weights)
    notice_posted = Signal(object)  # Notice
    failed = Signal(str)  # a readable message; the run has ended
    ended = Signal(object)  # RunResult, after every run, failed ones included

    # private: emitted in the training thread, received queued by this object's slots
    _event_from_thread = Signal(int, object)  # run id, event
    _started_from_thread = Signal(int, str)
    _done_from_thread = Signal(int, object)  # run id, RunResult

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._trainer: Trainer | None = None
        self._run_id = 0
        self._state = IDLE
        self._want_stop = False
        self._want_pause = False
        self._pending_lr: float | None = None
        self._pending_eval = False
        self._snapshot_interval: float | None = UNSET  # UNSET: the job's TrainConfig.snapshot_interval_s
        self._result: RunResult | None = None  # set by the thread just before it ends
        self._delivered: set[int] = set()  # run ids whose RunResult went out on `ended`
        self._event_from_thread.connect(self._on_event_from_thread)
        self._started_from_thread.connect(self._on_started_from_thread)
        self._done_from_thread.connect(self._on_done_from_thread)
        _CONTROLLERS.add(self)
        self.destroyed.connect(self._on_destroyed)

    # --- GUI-thread API ---------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    def is_active(self) -> bool:
        """True from start() until `ended` went out."""
        return self._state != IDLE

    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, job: TrainingJob) -> int:
        """Start a run; a previous run still stopping is waited for (and delivered) first."""
        if self._state not in (IDLE, STOPPING):
            raise RuntimeError(f"training is already {self._state}")
        self.finish_pending(2.0)
        if self.thread_alive():
            raise RuntimeError("the previous training run did not stop")
        with self._lock:
            self._run_id += 1
            run_id = self._run_id
            self._want_stop = self._want_pause = False
            self._pending_lr = None
            self._pending_eval = False
            self._trainer = None
            self._result = None
            self._thread = threading.Thread(target=self._run, args=(run_id, job), name=THREAD_NAME, daemon=True)
        self._set_state(STARTING)
        self._thread.start()
        return run_id

    def pause(self) -> None:
        with self._lock:
            self._want_pause = True
            if self._trainer is not None:
                self._trainer.pause()
        if self._state in (STARTING, RUNNING):
            self._set_state(PAUSED)

    def resume(self) -> None:
        with self._lock:
            self._want_pause = False
            if self._trainer is not None:
                self._trainer.resume()
        if self._state == PAUSED:
            self._set_state(RUNNING)

    def stop(self) -> None:
        with self._lock:
            self._want_stop = True
            if self._trainer is not None:
                self._trainer.stop()
        if self._state in (STARTING, RUNNING, PAUSED):
            self._set_state(STOPPING)

    def set_lr(self, lr: float) -> None:
        with self._lock:
            if self._trainer is not None:
                self._trainer.set_lr(lr)
            else:
                self._pending_lr = float(lr)

    def set_snapshot_interval(self, seconds: float | None) -> None:
        """Weight snapshots at most every `seconds` from now on (None: none at all), for this run and
        the next ones. Until it is first called, a run takes its TrainConfig.snapshot_interval_s."""
        if seconds is not None and not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"snapshot interval must be ≥ 0 seconds or None, got {seconds}")
        with self._lock:
            self._snapshot_interval = None if seconds is None else float(seconds)
            if self._trainer is not None:
                self._trainer.set_snapshot_interval(self._snapshot_interval)

    @property
    def snapshot_interval(self) -> float | None:
        """What set_snapshot_interval last set (UNSET until then)."""
        return self._snapshot_interval

    def request_eval(self) -> None:
        with self._lock:
            if self._trainer is not None:
                self._trainer.request_eval()
            elif self._state != IDLE:
                self._pending_eval = True  # asked for while the Trainer is being built

    def request_save(self, path) -> None:
        """Save a checkpoint (with the optimizer state) from the training thread, between steps."""
        with self._lock:
            if self._trainer is not None:
                self._trainer.request_save(path)

    def stop_and_wait(self, timeout_s: float = 1.0) -> bool:
        """Stop, join the thread and deliver its result now; True if it ended in time."""
        self.stop()
        return self.finish_pending(timeout_s)

    def finish_pending(self, timeout_s: float = 1.0) -> bool:
        """Join a stopping thread and emit `ended` for it synchronously (once); True if none is left."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                return False
        # hand the GUI the run's last records in order, then its ending, before returning
        QCoreApplication.sendPostedEvents(self, 0)
        result = self._result
        if result is not None and result.run_id not in self._delivered:
            self._deliver(result)
        return True

    def _on_destroyed(self, *_):
        _CONTROLLERS.discard(self)
        with self._lock:
            if self._trainer is not None:
                self._trainer.stop()
            self._want_stop = True
            thread = self._thread
        if thread is not None:
            thread.join(1.0)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    # --- training thread --------------------------------------------------------------
    def _run(self, run_id: int, job: TrainingJob) -> None:
        trainer = None
        reason, message, device_text = "failed", "", ""
        _lower_thread_priority(training_niceness())
        try:
            threads.use("training")
            device = choose_device(job.device)
            if device.type == "cuda":
                if device.index is None:
                    device = torch.device("cuda", torch.cuda.current_device())
                torch.cuda.set_device(device)  # this thread's current device, for kernels and allocator
            device_text = describe_device(device)
            model = VAE(VAEConfig.from_dict(dict(job.model_config)))
            model.load_state_dict(job.state_dict)
            for p in model.parameters():
                p.requires_grad_(True)
            trainer = Trainer(
                model,
                job.data,
                job.config,
                device,
                optimizer_state=job.optimizer_state,
                history=job.history,
                step=job.step,
                epoch=job.epoch,
                name=job.name,
            )
            with self._lock:
                self._trainer = trainer
                # commands given while the Trainer was being built
                if abs(trainer.lr - job.config.lr) > 1e-3 * job.config.lr:  # more than the panel's rounding
                    trainer.set_lr(job.config.lr)  # a checkpoint's optimizer carries its own lr
                if self._pending_lr is not None:
                    trainer.set_lr(self._pending_lr)
                if self._snapshot_interval is not UNSET:
                    trainer.set_snapshot_interval(self._snapshot_interval)
                if self._pending_eval:
                    trainer.request_eval()
                if self._want_pause:
                    trainer.pause()
                if self._want_stop:
                    trainer.stop()
            self._started_from_thread.emit(run_id, device_text)
            reason = "stopped"
            autosaver = Autosaver(job.autosave_dir, job.autosave_every_s) if job.autosave_dir else None
            for event in trainer.run():
                if isinstance(event, Notice) and event.kind in ("finished", "stopped", "diverged"):
                    reason = event.kind
                self._event_from_thread.emit(run_id, event)
                # between steps, in this thread that owns the model: weights, optimizer and history
                if autosaver is not None and autosaver.maybe_save(trainer.checkpoint) is not None:
                    notice = Notice("autosaved", f"autosaved at step {trainer.step}", trainer.step)
                    self._event_from_thread.emit(run_id, notice)
        except Exception as e:  # shown to the user; the app keeps running
            reason = "failed"
            tb = traceback.extract_tb(e.__traceback__)
            where = f" (in {tb[-1].name}, {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
            message = f"{type(e).__name__}: {e}{where}"
        snapshot, optimizer_state = None, None
        if trainer is not None and reason != "failed":
            try:
                snapshot = Snapshot(step=trainer.step, epoch=trainer.epoch, state_dict=copy_state_to_cpu(trainer.model))
                optimizer_state = trainer.optimizer_state("cpu")  # the base lr, not a warm-up's fraction
            except Exception as e:
                message = f"could not copy the final weights: {e}"
        result = RunResult(
            run_id=run_id,
            reason=reason,
            message=message,
            snapshot=snapshot,
            optimizer_state=optimizer_state,
            train_config=trainer.config.to_dict() if trainer is not None else job.config.to_dict(),
            device=device_text,
        )
        with self._lock:
            self._trainer = None
            self._result = result
        self._done_from_thread.emit(run_id, result)

    # --- back on the GUI thread -------------------------------------------------------
    @Slot(int, str)
    def _on_started_from_thread(self, run_id: int, device_text: str) -> None:
        if run_id != self._run_id or run_id in self._delivered:
            return
        if self._state == STARTING:
            self._set_state(RUNNING)
        self.started.emit(device_text)

    @Slot(int, object)
    def _on_event_from_thread(self, run_id: int, event) -> None:
        if run_id != self._run_id or run_id in self._delivered:
            return  # a late event of a run already ended
        if isinstance(event, StepRecord):
            self.step_recorded.emit(event)
        elif isinstance(event, Progress):
            self.progressed.emit(event)
        elif isinstance(event, EvalRecord):
            self.evaluated.emit(event)
        elif isinstance(event, EvalProgress):
            self.eval_progressed.emit(event.fraction)
        elif isinstance(event, Snapshot):
            self.snapshot_taken.emit(event)
        elif isinstance(event, Notice):
            if event.kind == "paused" and self._state == RUNNING:
                self._set_state(PAUSED)
            elif event.kind == "resumed" and self._state == PAUSED:
                self._set_state(RUNNING)
            self.notice_posted.emit(event)

    @Slot(int, object)
    def _on_done_from_thread(self, run_id: int, result: RunResult) -> None:
        if run_id in self._delivered:
            return
        thread = self._thread
        if thread is not None:
            thread.join(1.0)  # it emitted this as its last act: the join is immediate
        self._deliver(result)

    def _deliver(self, result: RunResult) -> None:
        self._delivered.add(result.run_id)
        if result.run_id == self._run_id:
            self._set_state(IDLE)
        if result.reason == "failed":
            self.failed.emit(result.message)
        self.ended.emit(result)
