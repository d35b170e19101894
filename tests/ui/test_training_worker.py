"""The training thread: commands between steps, immutable outputs, errors as messages, clean stops."""

import math
import os
import sys
import threading
import time

import pytest
import torch

from lvm_studio.core.history import History, StepRecord
from lvm_studio.core.training import Notice, Snapshot, Trainer
from lvm_studio.workers import training_worker
from lvm_studio.workers.training_worker import (
    THREAD_NAME,
    TRAINING_NICENESS,
    RunResult,
    TrainingController,
    TrainingJob,
    live_training_threads,
)


@pytest.fixture
def controller(qtbot):
    c = TrainingController()
    yield c
    c.stop_and_wait(2.0)


class Recorder:
    """Collects what the controller emits, in the GUI thread."""

    def __init__(self, c: TrainingController):
        self.steps: list[StepRecord] = []
        self.snapshots: list[Snapshot] = []
        self.notices: list[Notice] = []
        self.evals = []
        self.ended: list[RunResult] = []
        self.failed: list[str] = []
        self.states: list[str] = []
        c.step_recorded.connect(self.steps.append)
        c.snapshot_taken.connect(self.snapshots.append)
        c.notice_posted.connect(self.notices.append)
        c.evaluated.connect(self.evals.append)
        c.ended.connect(self.ended.append)
        c.failed.connect(self.failed.append)
        c.state_changed.connect(self.states.append)

    def kinds(self):
        return [n.kind for n in self.notices]


def _job(model, data, config, **kw):
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrainingJob(
        model_config=model.config.to_dict(),
        state_dict=state,
        data=data,
        config=config,
        device="cpu",
        history=History(),
        **kw,
    )


def test_start_pause_resume_stop(qtbot, controller, tiny_model, small_mnist, tiny_config):
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config()))
    assert controller.state == "starting"
    qtbot.waitUntil(lambda: len(rec.steps) >= 3, timeout=10_000)
    assert controller.state == "running"

    controller.pause()
    qtbot.waitUntil(lambda: "paused" in rec.kinds(), timeout=5_000)
    assert controller.state == "paused"
    paused_at = next(n.step for n in rec.notices if n.kind == "paused")
    with qtbot.assertNotEmitted(controller.step_recorded, wait=300):  # the event loop runs on; no step while paused
        pass
    assert all(r.step <= paused_at for r in rec.steps)

    controller.resume()
    qtbot.waitUntil(lambda: any(r.step > paused_at for r in rec.steps), timeout=5_000)
    assert controller.state == "running"

    t0 = time.perf_counter()
    with qtbot.waitSignal(controller.ended, timeout=5_000) as ended:
        controller.stop()
    assert time.perf_counter() - t0 < 1.0
    result = ended.args[0]
    assert result.reason == "stopped" and result.message == ""
    assert controller.state == "idle" and not controller.thread_alive()
    # the final weights and optimizer state come back on the CPU, at the last step taken
    assert result.snapshot.step >= rec.steps[-1].step
    assert all(t.device.type == "cpu" for t in result.snapshot.state_dict.values())
    exp_avg = [s["exp_avg"] for s in result.optimizer_state["state"].values()]
    assert exp_avg and all(t.device.type == "cpu" for t in exp_avg)
    assert rec.states == ["starting", "running", "paused", "running", "stopping", "idle"]


def test_snapshots_are_copies_that_never_change(qtbot, controller, tiny_model, small_mnist, tiny_config):
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config()))
    qtbot.waitUntil(lambda: len(rec.snapshots) >= 1, timeout=10_000)
    first = rec.snapshots[0]
    frozen = {k: v.clone() for k, v in first.state_dict.items()}
    qtbot.waitUntil(lambda: len(rec.snapshots) >= 3 and rec.snapshots[-1].step > first.step + 5, timeout=10_000)
    controller.stop_and_wait(2.0)
    # training went on, yet the first snapshot still holds the weights of its own step
    later = rec.snapshots[-1].state_dict
    assert any(not torch.equal(later[k], frozen[k]) for k in frozen)
    assert all(torch.equal(first.state_dict[k], frozen[k]) for k in frozen)


def test_stop_while_paused_and_before_the_trainer_exists(
    qtbot, controller, tiny_model, small_mnist, tiny_config, monkeypatch
):
    import threading

    built = threading.Event()
    original_init = Trainer.__init__

    def slow_init(self, *args, **kwargs):
        assert built.wait(5.0)  # hold the thread here until the test has given its command
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "__init__", slow_init)
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config()))
    controller.stop()  # before the thread has built its Trainer: applied as soon as it has
    built.set()
    qtbot.waitUntil(lambda: len(rec.ended) == 1, timeout=5_000)
    assert rec.ended[0].reason == "stopped" and rec.steps == []
    monkeypatch.setattr(Trainer, "__init__", original_init)

    controller.start(_job(tiny_model, small_mnist, tiny_config()))
    controller.pause()
    qtbot.waitUntil(lambda: "paused" in rec.kinds(), timeout=5_000)
    t0 = time.perf_counter()
    assert controller.stop_and_wait(1.0)
    assert time.perf_counter() - t0 < 1.0
    assert rec.ended[-1].reason == "stopped" and not controller.thread_alive()


def test_learning_rate_changes_between_steps(qtbot, controller, tiny_model, small_mnist, tiny_config):
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config(lr=1e-3)))
    qtbot.waitUntil(lambda: len(rec.steps) >= 1, timeout=10_000)
    controller.set_lr(2.5e-4)
    qtbot.waitUntil(lambda: "lr_changed" in rec.kinds(), timeout=5_000)
    changed_at = next(n.step for n in rec.notices if n.kind == "lr_changed")
    qtbot.waitUntil(lambda: any(r.step > changed_at + 2 for r in rec.steps), timeout=5_000)
    controller.stop_and_wait(2.0)
    assert all(r.lr == pytest.approx(2.5e-4) for r in rec.steps if r.step > changed_at + 2)
    assert all(r.lr == pytest.approx(1e-3) for r in rec.steps if r.step <= changed_at)
    assert rec.ended[-1].train_config["lr"] == pytest.approx(1e-3)  # the run's settings, not its last lr
    assert rec.ended[-1].optimizer_state["param_groups"][0]["lr"] == pytest.approx(2.5e-4)


def test_evaluate_now_gives_an_estimate_above_the_elbo(qtbot, controller, tiny_model, small_mnist, tiny_config):
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config(eval_k=20)))
    qtbot.waitUntil(lambda: len(rec.steps) >= 1, timeout=10_000)
    controller.request_eval()
    qtbot.waitUntil(lambda: len(rec.evals) >= 1, timeout=10_000)
    controller.stop_and_wait(2.0)
    e = rec.evals[0]
    assert e.k == 20 and e.n == 50
    # IWAE-k ≥ ELBO in expectation (Burda et al. 2016, Thm 1); with 50 images the average gap is positive
    assert e.log_px > e.elbo and math.isfinite(e.log_px)


def test_an_exception_in_the_worker_becomes_a_message(
    qtbot, controller, tiny_model, small_mnist, tiny_config, monkeypatch
):
    original = Trainer._loss

    def failing_loss(self, x):
        if self.step >= 3:
            raise RuntimeError("simulated failure inside the training step")
        return original(self, x)

    monkeypatch.setattr(Trainer, "_loss", failing_loss)
    rec = Recorder(controller)
    with qtbot.waitSignal(controller.failed, timeout=10_000) as failed:
        controller.start(_job(tiny_model, small_mnist, tiny_config(log_every=1)))
    message = failed.args[0]
    assert "RuntimeError" in message and "simulated failure inside the training step" in message
    assert "_loss" in message or "failing_loss" in message  # where it happened
    qtbot.waitUntil(lambda: len(rec.ended) == 1, timeout=5_000)
    assert rec.ended[0].reason == "failed" and controller.state == "idle"
    assert [r.step for r in rec.steps] == [1, 2, 3]
    assert not controller.thread_alive()

    # the controller is usable again
    monkeypatch.setattr(Trainer, "_loss", original)
    controller.start(_job(tiny_model, small_mnist, tiny_config()))
    qtbot.waitUntil(lambda: len(rec.steps) >= 5, timeout=10_000)
    assert controller.stop_and_wait(2.0)


def test_a_nan_loss_is_skipped_and_training_goes_on(
    qtbot, controller, tiny_model, small_mnist, tiny_config, monkeypatch
):
    original = Trainer._loss
    calls = {"n": 0}

    def nan_at_fifth_call(self, x):
        calls["n"] += 1
        loss, elbo, recon, kl = original(self, x)
        if calls["n"] == 5:
            return loss * float("nan"), elbo, recon, kl
        return loss, elbo, recon, kl

    monkeypatch.setattr(Trainer, "_loss", nan_at_fifth_call)
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config(log_every=1)))
    qtbot.waitUntil(lambda: "nan" in rec.kinds(), timeout=10_000)
    nan_step = next(n.step for n in rec.notices if n.kind == "nan")
    assert nan_step == 4  # four good steps, then the fifth was skipped
    qtbot.waitUntil(lambda: any(r.step >= nan_step + 5 for r in rec.steps), timeout=10_000)
    controller.stop_and_wait(2.0)
    assert rec.failed == [] and rec.ended[-1].reason == "stopped"
    assert all(math.isfinite(r.elbo) for r in rec.steps)
    assert [r.step for r in rec.steps] == list(range(1, len(rec.steps) + 1))  # no step number was used twice


def test_twenty_rapid_start_stop_cycles_leave_no_thread(qtbot, controller, tiny_model, small_mnist, tiny_config):
    rec = Recorder(controller)
    for i in range(20):
        controller.start(_job(tiny_model, small_mnist, tiny_config()))
        if i % 3 == 0:  # now and then let it really train before stopping
            qtbot.waitUntil(lambda: controller.state == "running", timeout=5_000)
        controller.stop()  # no wait: the next start() first waits for this run to end
    assert controller.finish_pending(2.0)
    assert len(rec.ended) == 20 and {r.reason for r in rec.ended} == {"stopped"}
    assert sorted(r.run_id for r in rec.ended) == [r.run_id for r in rec.ended]
    assert controller.state == "idle"
    assert live_training_threads() == []


def test_cuda_request_without_cuda_is_a_message(qtbot, controller, tiny_model, small_mnist, tiny_config):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    job = _job(tiny_model, small_mnist, tiny_config())
    job = TrainingJob(**{**job.__dict__, "device": "cuda"})
    with qtbot.waitSignal(controller.failed, timeout=5_000) as failed:
        controller.start(job)
    assert "CUDA is not available" in failed.args[0]
    qtbot.waitUntil(lambda: controller.state == "idle", timeout=5_000)


def test_thread_name(qtbot, controller, tiny_model, small_mnist, tiny_config):
    controller.start(_job(tiny_model, small_mnist, tiny_config()))
    assert [t.name for t in live_training_threads()] == [THREAD_NAME]
    assert controller.stop_and_wait(2.0)


def test_commands_given_before_the_trainer_exists_are_kept(
    qtbot, controller, tiny_model, small_mnist, tiny_config, monkeypatch
):
    import threading

    built = threading.Event()
    original_init = Trainer.__init__

    def slow_init(self, *args, **kwargs):
        assert built.wait(5.0)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "__init__", slow_init)
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config(lr=1e-3)))
    controller.request_eval()  # the thread is still building its Trainer
    controller.set_lr(5e-4)
    built.set()
    qtbot.waitUntil(lambda: len(rec.evals) == 1 and len(rec.steps) >= 2, timeout=10_000)
    controller.stop_and_wait(2.0)
    assert rec.evals[0].step == 0  # evaluated before the first step
    assert all(r.lr == pytest.approx(5e-4) for r in rec.steps)


def test_cuda_device_is_set_in_the_training_thread(
    qtbot, controller, tiny_model, small_mnist, tiny_config, monkeypatch
):
    import threading

    from lvm_studio.workers import training_worker

    calls = []
    monkeypatch.setattr(training_worker, "choose_device", lambda pref: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append((threading.current_thread().name, d)))
    monkeypatch.setattr(training_worker, "describe_device", lambda d: str(d))
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config()))
    qtbot.waitUntil(lambda: len(rec.ended) == 1, timeout=10_000)
    assert calls == [(THREAD_NAME, torch.device("cuda", 0))]
    if not torch.cuda.is_available():  # the CPU build then fails to move the model: reported, not raised
        assert rec.ended[0].reason == "failed" and rec.failed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are a Linux feature")
def test_the_training_thread_runs_nicer_than_the_gui(qtbot, controller, tiny_model, small_mnist, tiny_config):
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config()))
    qtbot.waitUntil(lambda: len(rec.steps) >= 1, timeout=10_000)
    (thread,) = live_training_threads()
    gui = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, gui + TRAINING_NICENESS)
    assert controller.stop_and_wait(2.0)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == gui  # the GUI thread is untouched


def test_no_snapshot_while_the_interval_is_none_then_snapshots_at_the_rate_asked(
    qtbot, controller, tiny_model, small_mnist, tiny_config
):
    rec = Recorder(controller)
    assert controller.snapshot_interval is training_worker.UNSET  # runs keep their config's rate
    controller.set_snapshot_interval(None)  # before the run: no panel shows weights
    controller.start(_job(tiny_model, small_mnist, tiny_config(snapshot_interval_s=0.01)))
    qtbot.waitUntil(lambda: len(rec.steps) >= 20, timeout=10_000)
    assert rec.snapshots == []
    controller.set_snapshot_interval(0.01)  # a panel became visible
    qtbot.waitUntil(lambda: len(rec.snapshots) >= 2, timeout=10_000)
    controller.set_snapshot_interval(None)
    qtbot.wait(200)  # let snapshots taken before the command arrive
    count = len(rec.snapshots)
    steps = len(rec.steps)
    qtbot.waitUntil(lambda: len(rec.steps) >= steps + 10, timeout=10_000)
    controller.stop_and_wait(2.0)
    assert len(rec.snapshots) == count  # none after the command reached the trainer, none at the end
    assert rec.ended[-1].snapshot is not None  # the final weights still come back with the result
    with pytest.raises(ValueError, match="snapshot interval"):
        controller.set_snapshot_interval(float("nan"))


def test_the_training_thread_takes_the_training_thread_count(
    qtbot, controller, tiny_model, small_mnist, tiny_config, monkeypatch
):
    from lvm_studio.core import threads

    seen = []
    original = threads.use
    monkeypatch.setattr(
        threads, "use", lambda role: seen.append((threading.current_thread().name, role)) or original(role)
    )
    rec = Recorder(controller)
    controller.start(_job(tiny_model, small_mnist, tiny_config()))
    qtbot.waitUntil(lambda: len(rec.steps) >= 1, timeout=10_000)
    controller.stop_and_wait(2.0)
    assert (THREAD_NAME, "training") in seen


def test_task_threads_take_the_tasks_thread_count(qtbot, monkeypatch):
    from lvm_studio.core import threads
    from lvm_studio.workers.tasks import TaskRunner

    threads.configure(threads.ThreadPolicy(training=1, tasks=2))
    try:
        runner = TaskRunner("probe")
        done = []
        runner.finished.connect(lambda _id, value: done.append(value))
        runner.submit(lambda ctx: (threading.current_thread().name, torch.get_num_threads()))
        qtbot.waitUntil(lambda: bool(done), timeout=10_000)
        assert done == [("lvm-probe", 2)]
        runner.shutdown(2.0)
    finally:
        threads.configure(None)
