"""The training loop (lvm_studio.core.training): learning, commands, NaN recovery, objectives, resume.

Tiny model (784-16-2) on a 512-image slice of MNIST, seeded; the generator is driven from the
test thread, except where pausing must block (then from a worker thread with a queue handshake).
"""

from __future__ import annotations

import csv
import io
import math
import queue
import threading

import pytest
import torch

from lvm_studio.core import estimators as est
from lvm_studio.core.adam import Adam
from lvm_studio.core.checkpoint import history_from_checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from lvm_studio.core.data import MNIST
from lvm_studio.core.evaluation import evaluate, evaluation_steps
from lvm_studio.core.history import TRAIN_COLUMNS, EvalRecord, History, StepRecord
from lvm_studio.core.training import EvalProgress, Notice, Progress, Snapshot, TrainConfig, Trainer
from lvm_studio.core.vae import VAE, VAEConfig, copy_state_to_cpu

N_TRAIN = 512
BATCH = 32
STEPS_PER_EPOCH = N_TRAIN // BATCH  # 16
TINY = VAEConfig(latent_dim=2, hidden=(16,))
WAIT_S = 30  # generous bound on a handshake with the worker thread (the machine is shared)


@pytest.fixture(scope="module")
def small(mnist) -> MNIST:
    """512 training, 200 validation and 200 test digits from the shipped copy."""
    return MNIST(
        x_train=mnist.x_train[:N_TRAIN],
        y_train=mnist.y_train[:N_TRAIN],
        x_val=mnist.x_val[:200],
        y_val=mnist.y_val[:200],
        x_test=mnist.x_test[:200],
        y_test=mnist.y_test[:200],
        source="slice",
    )


def make_trainer(data, seed=0, model_config=TINY, **overrides) -> Trainer:
    torch.manual_seed(seed)
    settings = dict(
        epochs=50,
        batch_size=BATCH,
        eval_every=10**9,
        eval_n=100,
        eval_k=20,
        log_every=1,
        snapshot_interval_s=0.0,
        seed=seed,
    )
    settings.update(overrides)
    return Trainer(VAE(model_config), data, TrainConfig(**settings))


def take_until(events, predicate):
    """Consume events up to and including the first one that satisfies predicate; returns them all."""
    seen = []
    for ev in events:
        seen.append(ev)
        if predicate(ev):
            return seen
    raise AssertionError(f"the loop ended before the awaited event; last events: {seen[-5:]}")


def step_records(events):
    return [e for e in events if isinstance(e, StepRecord)]


def notices(events, kind=None):
    return [e for e in events if isinstance(e, Notice) and (kind is None or e.kind == kind)]


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- learning ------------------------------------------------------------------------


def test_elbo_improves_over_a_few_hundred_steps(small):
    trainer = make_trainer(small, epochs=13)  # 208 steps
    events = list(trainer.run())
    records = step_records(events)
    assert trainer.step == 13 * STEPS_PER_EPOCH == records[-1].step
    assert [r.step for r in records] == list(range(1, trainer.step + 1))  # log_every=1: one record per step
    first = sum(r.elbo for r in records[:5]) / 5
    last = sum(r.elbo for r in records[-20:]) / 20
    # an untrained decoder scores about 784·log 2 ≈ 543 nats; a 2-D VAE on 512 digits gets far below
    assert first < -400
    assert last > first + 150, (first, last)
    assert all(math.isfinite(r.elbo) and math.isfinite(r.kl) and r.kl >= 0 for r in records)
    assert notices(events)[0].kind == "started" and notices(events)[-1].kind == "finished"
    # the held-out evaluation at the end of each epoch improves as well
    assert len(trainer.history.evals) == 0  # eval_every was set huge: none ran


def test_epoch_evaluations_improve_and_are_recorded(small):
    trainer = make_trainer(small, epochs=6, eval_every=0)  # one evaluation per epoch
    events = list(trainer.run())
    evals = [e for e in events if isinstance(e, EvalRecord)]
    assert [e.epoch for e in evals] == pytest.approx([1, 2, 3, 4, 5, 6])
    assert evals == trainer.history.evals
    assert evals[-1].elbo > evals[0].elbo
    assert all(e.n == 100 and e.k == 20 and e.split == "val" for e in evals)
    # the progress fractions of each evaluation rise to 1
    fractions = [e.fraction for e in events if isinstance(e, EvalProgress)]
    assert fractions and fractions[-1] == 1.0 and all(0 < f <= 1 for f in fractions)


# --- one evaluation routine: core.evaluation, used by the Trainer and the CLI -------------


def run_steps(steps):
    """Drain an evaluation_steps generator: (its EvalProgress events, its Evaluation)."""
    events = []
    while True:
        try:
            events.append(next(steps))
        except StopIteration as finished:
            return events, finished.value


def test_the_trainers_evaluation_is_core_evaluation(small):
    trainer = make_trainer(small, epochs=1, eval_every=0, eval_k=30, eval_iw_ks=(1, 5, 60), eval_max_rows=600)
    events = list(trainer.run())
    record = [e for e in events if isinstance(e, EvalRecord)][-1]
    # the same model, images and seed through core.evaluation directly: the same numbers
    c = trainer.config
    progress, result = run_steps(
        evaluation_steps(trainer.model, trainer.x_eval, c.eval_k, c.eval_iw_ks, seed=c.seed + 1, batch_size=600 // 60)
    )
    assert [e for e in events if isinstance(e, EvalProgress)] == progress
    assert (record.elbo, record.recon, record.kl, record.log_px, record.n) == (
        result.elbo,
        result.recon,
        result.kl,
        result.log_px,
        result.n,
    )
    assert dict(record.iw_bounds) == result.iw_bounds and not result.stopped
    # IW-60 from 60 weights per image though k = 30: the first 30 give log p̂(x)
    assert result.iw_bounds[1] < result.iw_bounds[5] < result.iw_bounds[60]


def test_evaluation_steps_stop_early_and_leave_the_model_as_it_was(small):
    torch.manual_seed(0)
    model = VAE(TINY).train()
    x = small.binarized("val")[:100]
    steps = evaluation_steps(model, x, 10, batch_size=30, should_stop=lambda: len(seen) == 2)
    seen = []
    for event in steps:  # the consumer's code: grad is not switched off while the generator waits
        seen.append((event.fraction, torch.is_grad_enabled(), model.training))
    assert seen == [(pytest.approx(0.3), True, False), (pytest.approx(0.6), True, False)]
    _, result = run_steps(evaluation_steps(model, x, 10, batch_size=30, should_stop=lambda: True))
    assert result.stopped and result.n == 30 and model.training
    # evaluate() is the same routine run to the end, as the CLI's dict; bounds for j > k are left out
    full = evaluate(model, x, k=10, iw_ks=(1, 50), seed=0, max_rows=300)
    _, direct = run_steps(evaluation_steps(model, x, 10, (1,), seed=0, max_rows=300))
    assert full["n"] == 100 and full["log_px"] == direct.log_px and full["iw_bounds"] == {"1": direct.iw_bounds[1]}
    assert full["gap"] == pytest.approx(full["log_px"] - full["elbo"]) and model.training


# --- commands --------------------------------------------------------------------------


class _Driver:
    """Runs trainer.run() on a worker thread; events arrive on a queue. Always stopped and joined."""

    END = object()

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.events: queue.Queue = queue.Queue()
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _work(self):
        try:
            for ev in self.trainer.run():
                self.events.put(ev)
        except BaseException as e:  # surfaced in the test thread
            self.error.append(e)
        finally:
            self.events.put(self.END)

    def next(self):
        ev = self.events.get(timeout=WAIT_S)
        assert not self.error, self.error
        return ev

    def until(self, predicate):
        seen = []
        while True:
            ev = self.next()
            assert ev is not self.END, f"the loop ended before the awaited event; last: {seen[-5:]}"
            seen.append(ev)
            if predicate(ev):
                return seen

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.trainer.resume()
        self.trainer.stop()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "the training thread did not end"


def test_pause_blocks_until_resume(small):
    trainer = make_trainer(small, epochs=1000)  # never finishes by itself: the driver stops it
    with _Driver(trainer) as d:
        d.until(lambda e: isinstance(e, StepRecord) and e.step >= 20)
        trainer.pause()
        before_pause = d.until(lambda e: isinstance(e, Notice) and e.kind == "paused")
        paused_at = before_pause[-1].step
        assert trainer.step == paused_at >= 20
        # while paused the loop still answers commands, but takes no step
        trainer.request_snapshot()
        snap = d.next()
        assert isinstance(snap, Snapshot) and snap.step == paused_at
        trainer.set_lr(5e-4)
        assert d.next() == Notice("lr_changed", "learning rate set to 0.0005", paused_at)
        with pytest.raises(queue.Empty):  # nothing else happens: the thread waits for a command
            d.events.get(timeout=0.2)
        assert trainer.step == paused_at and d.thread.is_alive()
        trainer.resume()
        resumed = d.next()
        assert isinstance(resumed, Notice) and resumed.kind == "resumed" and resumed.step == paused_at
        after = d.until(lambda e: isinstance(e, StepRecord))
        assert after[-1].step == paused_at + 1 and after[-1].lr == 5e-4


def test_pause_before_the_first_step(small):
    trainer = make_trainer(small, epochs=1)
    trainer.pause()  # queued before the loop starts: it blocks before any step
    with _Driver(trainer) as d:
        assert d.next().kind == "started"
        paused = d.next()
        assert paused.kind == "paused" and paused.step == 0
        trainer.stop()  # a stop also ends a pause
        assert d.next() == Notice("stopped", "stopped at step 0", 0)
        assert d.next() is d.END
    assert trainer.step == 0


def test_stop_takes_effect_within_one_step(small):
    trainer = make_trainer(small, epochs=10)
    events = trainer.run()
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 7)
    trainer.stop()
    rest = list(events)
    assert step_records(rest) == []
    assert notices(rest) == [Notice("stopped", "stopped at step 7", 7)]
    assert trainer.step == 7


def test_stop_during_an_evaluation_skips_the_rest_of_it(small):
    # k·n = 200·200 decoder rows: more than one chunk of est.DEFAULT_MAX_ROWS
    trainer = make_trainer(small, epochs=10, eval_n=200, eval_k=200)
    assert 200 * 200 > est.DEFAULT_MAX_ROWS
    events = trainer.run()
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 3)
    trainer.request_eval()
    first_chunk = take_until(events, lambda e: isinstance(e, EvalProgress))
    assert first_chunk[-1].fraction < 1
    trainer.stop()
    rest = list(events)
    assert not any(isinstance(e, (EvalRecord, StepRecord)) for e in rest)
    assert notices(rest) == [Notice("stopped", "stopped at step 3", 3)]
    assert trainer.history.evals == []


def test_set_lr_changes_the_optimizer_and_emits_a_notice(small):
    trainer = make_trainer(small, epochs=2, lr=1e-3)
    events = trainer.run()
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 4)
    trainer.set_lr(2.5e-4)
    seen = take_until(events, lambda e: isinstance(e, StepRecord))
    assert Notice("lr_changed", "learning rate set to 0.00025", 4) in seen
    assert all(g["lr"] == 2.5e-4 for g in trainer.optimizer.param_groups)
    assert trainer.lr == 2.5e-4 and seen[-1].lr == 2.5e-4 and seen[-1].step == 5
    list(events)
    assert trainer.checkpoint()["optimizer"]["param_groups"][0]["lr"] == 2.5e-4


def test_lr_decay_per_epoch_down_to_the_floor(small):
    trainer = make_trainer(small, epochs=4, lr=1e-3, lr_decay=0.1, min_lr=2e-5)
    records = step_records(trainer.run())
    lr_per_epoch = [records[e * STEPS_PER_EPOCH].lr for e in range(4)]
    assert lr_per_epoch == pytest.approx([1e-3, 1e-4, 2e-5, 2e-5])


def test_snapshot_is_an_independent_copy(small):
    trainer = make_trainer(small, epochs=3)
    events = trainer.run()
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 5)
    trainer.request_snapshot()
    snap = take_until(events, lambda e: isinstance(e, Snapshot))[-1]
    assert snap.step == 5 and snap.epoch == pytest.approx(5 / STEPS_PER_EPOCH)
    live = trainer.model.state_dict()
    assert snap.state_dict.keys() == live.keys()
    live_storages = {v.untyped_storage().data_ptr() for v in live.values()}
    for name, t in snap.state_dict.items():
        assert t.device.type == "cpu" and not t.requires_grad
        assert t.untyped_storage().data_ptr() not in live_storages, name
        assert torch.equal(t, live[name])
    frozen = {k: v.clone() for k, v in snap.state_dict.items()}
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 15)
    assert states_equal(snap.state_dict, frozen)  # more steps do not reach the snapshot
    assert not states_equal(copy_state_to_cpu(trainer.model), frozen)  # while the model moved on
    trainer.stop()
    list(events)


def test_timed_snapshots_and_a_final_snapshot(small):
    trainer = make_trainer(small, epochs=1, snapshot_interval_s=1e-9)  # due after every step
    events = list(trainer.run())
    snaps = [e for e in events if isinstance(e, Snapshot)]
    assert [s.step for s in snaps] == [*range(1, STEPS_PER_EPOCH + 1), STEPS_PER_EPOCH]  # the last at finish
    assert states_equal(snaps[-1].state_dict, copy_state_to_cpu(trainer.model))


def test_request_eval_gives_log_px_above_elbo_and_iw_bounds_rising_with_k(small):
    trainer = make_trainer(small, epochs=10, eval_n=200, eval_k=50, eval_iw_ks=(1, 5, 50))
    events = trainer.run()
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 100)
    trainer.request_eval()
    record = take_until(events, lambda e: isinstance(e, EvalRecord))[-1]
    trainer.stop()
    list(events)
    assert record.step == 100 and record.n == 200 and record.k == 50 and record.split == "val"
    bounds = dict(record.iw_bounds)
    assert set(bounds) == {1, 5, 50}
    # IWAE-k is ≥ the ELBO in expectation (Burda et al. 2016, Thm 1): averaged over 200 digits the
    # gap is an estimate of KL(q ‖ p(z|x)), several nats for a 2-D VAE this young
    assert record.log_px > record.elbo + 0.5
    assert record.gap == pytest.approx(record.log_px - record.elbo)
    assert record.log_px == pytest.approx(bounds[50], abs=1e-3)  # the same 50 samples
    assert bounds[1] < bounds[5] < bounds[50]  # monotone in k (Burda et al. 2016, Thm 1)
    assert bounds[1] == pytest.approx(record.elbo, abs=3.0)  # IW-1 is an ELBO estimate (other samples)
    assert record.elbo == pytest.approx(record.recon - record.kl, abs=1e-3)
    assert trainer.history.evals == [record]


def test_request_save_writes_a_loadable_checkpoint_or_reports_failure(small, tmp_path):
    trainer = make_trainer(small, epochs=2)
    events = trainer.run()
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 3)
    good = tmp_path / "mid.pt"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    trainer.request_save(good)
    trainer.request_save(blocker / "x.pt")  # its parent is a file: the save must fail softly
    seen = take_until(events, lambda e: isinstance(e, StepRecord))
    assert [n.kind for n in notices(seen)] == ["saved", "save_failed"]
    assert str(blocker / "x.pt") in notices(seen)[1].message
    assert load_checkpoint(good)["step"] == 3
    trainer.stop()
    list(events)


# --- non-finite steps -------------------------------------------------------------------


def _nan_loss_when(monkeypatch, bad_step):
    """Make Trainer._loss return a NaN loss whenever bad_step(trainer.step) is true."""
    original = Trainer._loss

    def loss(self, x):
        out = original(self, x)
        if bad_step(self.step):
            return (out[0] * float("nan"), *out[1:])
        return out

    monkeypatch.setattr(Trainer, "_loss", loss)


def test_one_nan_step_restores_the_last_good_weights_and_training_continues(small, monkeypatch):
    bad = Trainer.GOOD_STATE_EVERY + 8  # the step after this one gives a NaN loss, once
    fired = []
    _nan_loss_when(monkeypatch, lambda s: s == bad and not fired and not fired.append(1))
    trainer = make_trainer(small, epochs=5)
    events = trainer.run()
    # the trainer keeps a known-good copy of the weights after steps 0, 50, 100, ..., each taken once
    # the next step's loss and gradient proved finite (issue 13, item 1): take ours at the same moment
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == Trainer.GOOD_STATE_EVERY)
    good = copy_state_to_cpu(trainer.model)
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == bad)
    assert not states_equal(copy_state_to_cpu(trainer.model), good)
    nan = take_until(events, lambda e: isinstance(e, Notice))[-1]
    assert nan.kind == "nan" and nan.step == bad
    assert states_equal(copy_state_to_cpu(trainer.model), good)  # the weights are the last good ones
    assert trainer.step == bad  # the failed step is not counted
    adam = trainer.optimizer.state_dict()["state"]
    assert all(int(s["step"]) == Trainer.GOOD_STATE_EVERY for s in adam.values())  # Adam's state too
    rest = list(events)
    records = step_records(rest)
    assert records[0].step == bad + 1 and records[-1].step == 5 * STEPS_PER_EPOCH - 1
    assert all(math.isfinite(r.loss) for r in records)
    assert notices(rest)[-1].kind == "finished" and not notices(rest, "diverged")
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


def test_non_finite_gradient_with_a_finite_loss_is_caught(small, monkeypatch):
    original = Trainer._loss
    fired = []

    def loss(self, x):
        out = original(self, x)
        if self.step == 5 and not fired:
            fired.append(1)
            # d/dw √(w − w') is infinite at w = w'; times 0 it is NaN, while the value stays 0
            w = next(self.model.parameters())
            poison = 0.0 * torch.sqrt(w - w.detach()).sum()
            return (out[0] + poison, *out[1:])
        return out

    monkeypatch.setattr(Trainer, "_loss", loss)
    trainer = make_trainer(small, epochs=1)
    events = list(trainer.run())
    nans = notices(events, "nan")
    assert [n.step for n in nans] == [5]
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())
    assert notices(events)[-1].kind == "finished"


def test_repeated_nan_reports_divergence_and_ends_the_loop(small, monkeypatch):
    _nan_loss_when(monkeypatch, lambda s: s >= 10)
    trainer = make_trainer(small, epochs=5)
    events = list(trainer.run())
    kinds = [n.kind for n in notices(events)]
    assert kinds == ["started", *["nan"] * Trainer.MAX_CONSECUTIVE_NAN, "diverged"]
    assert "smaller learning rate" in notices(events, "diverged")[0].message
    assert trainer.step == 10 and step_records(events)[-1].step == 10
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


# --- objectives and schedules -----------------------------------------------------------


def test_kl_warmup_weight_rises_linearly_to_beta(small):
    warmup = 2.0
    trainer = make_trainer(small, epochs=3, beta=0.8, kl_warmup_epochs=warmup)
    records = step_records(trainer.run())
    # the record's beta is the weight at the epoch position after the step
    for r in records:
        assert r.beta == pytest.approx(0.8 * min(1.0, r.epoch / warmup), abs=1e-12)
        # the loss of that step used the weight before the step: −(recon − w·KL) (Sønderby et al. 2016)
        w_used = 0.8 * min(1.0, (r.epoch - 1 / STEPS_PER_EPOCH) / warmup)
        assert r.loss == pytest.approx(-(r.recon - w_used * r.kl), rel=1e-5, abs=1e-3)
    betas = [r.beta for r in records]
    rising = betas[: int(warmup * STEPS_PER_EPOCH)]
    increments = [b - a for a, b in zip(rising[:-1], rising[1:])]
    assert increments == pytest.approx([0.8 / (warmup * STEPS_PER_EPOCH)] * len(increments))
    assert betas[int(warmup * STEPS_PER_EPOCH) - 1 :] == pytest.approx([0.8] * (len(betas) - 2 * STEPS_PER_EPOCH + 1))
    assert records[0].elbo == pytest.approx(records[0].recon - records[0].kl, abs=1e-3)  # ELBO stays the true one


def test_iwae_objective_trains_and_its_loss_is_below_the_elbo_loss(small):
    trainer = make_trainer(small, epochs=4, objective="iwae", k=8)
    records = step_records(trainer.run())
    assert records[-1].step == 4 * STEPS_PER_EPOCH
    assert sum(r.loss for r in records[-8:]) / 8 < sum(r.loss for r in records[:8]) / 8 - 50
    # on a fixed batch, −IWAE-k ≤ −ELBO in expectation (Burda et al. 2016, Thm 1); average 20 draws
    x = torch.bernoulli(small.float_images("val")[:128], generator=torch.Generator().manual_seed(3))
    elbo_trainer = Trainer(trainer.model, small, TrainConfig(batch_size=BATCH, seed=1))
    with torch.no_grad():
        iwae_loss = sum(trainer._loss(x)[0].item() for _ in range(20)) / 20
        elbo_loss = sum(elbo_trainer._loss(x)[0].item() for _ in range(20)) / 20
    assert iwae_loss < elbo_loss - 0.5, (iwae_loss, elbo_loss)


def test_gaussian_likelihood_trains_on_grey_levels(small, monkeypatch):
    seen_x = []
    original = Trainer._loss

    def loss(self, x):
        seen_x.append(x.detach().clone())
        return original(self, x)

    monkeypatch.setattr(Trainer, "_loss", loss)
    gaussian = VAEConfig(latent_dim=2, hidden=(16,), likelihood="gaussian")
    trainer = make_trainer(small, model_config=gaussian, epochs=6, eval_every=0)
    events = list(trainer.run())
    assert not trainer.binarize
    x = torch.cat(seen_x)  # (steps · batch, 784)
    grey = (x > 0) & (x < 1)
    assert grey.float().mean() > 0.05  # MNIST has ~10% strictly grey pixels: they are kept as they are
    train_rows = {tuple(r) for r in small.float_images("train").tolist()}
    assert all(tuple(r) in train_rows for r in x.tolist())  # every row is a training image, as it is
    evals = [e for e in events if isinstance(e, EvalRecord)]
    assert torch.equal(trainer.x_eval, small.float_images("val")[:100])  # evaluation on grey levels too
    records = step_records(events)
    assert sum(r.elbo for r in records[-10:]) / 10 > sum(r.elbo for r in records[:10]) / 10 + 100
    assert evals[-1].elbo > evals[0].elbo and all(math.isfinite(e.log_px) for e in evals)


def test_bernoulli_training_binarizes_each_batch_afresh(small, monkeypatch):
    seen_x = []
    original = Trainer._loss

    def loss(self, x):
        seen_x.append(x.detach().clone())
        return original(self, x)

    monkeypatch.setattr(Trainer, "_loss", loss)
    trainer = make_trainer(small, epochs=2)
    list(trainer.run())
    x = torch.cat(seen_x)
    assert set(x.unique().tolist()) == {0.0, 1.0}
    # the same image is binarized differently in epochs 0 and 1 (dynamic binarization)
    assert torch.equal(trainer.x_eval, small.binarized("val")[:100])
    first, second = torch.cat(seen_x[:STEPS_PER_EPOCH]), torch.cat(seen_x[STEPS_PER_EPOCH:])
    assert first.sum(0).ne(second.sum(0)).any()


def test_config_rejects_bad_values():
    for bad in (
        dict(objective="vi"),
        dict(k=0),
        dict(batch_size=0),
        dict(lr=0.0),
        dict(lr=float("nan")),
        dict(epochs=-1),
    ):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    c = TrainConfig(eval_iw_ks=[1, 5], kl_warmup_epochs=2.5)
    assert TrainConfig.from_dict({**c.to_dict(), "unknown_future_key": 1}) == c


# --- resuming -----------------------------------------------------------------------------


def test_resume_mid_epoch_continues_step_count_and_history(small, tmp_path):
    trainer = make_trainer(small, epochs=2, eval_every=0)
    events = trainer.run()
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 8)  # half-way through epoch 0
    path = save_checkpoint(tmp_path / "mid.pt", trainer.checkpoint())
    trainer.stop()
    list(events)

    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 8 and ckpt["epoch"] == pytest.approx(0.5)
    resumed = Trainer(
        model_from_checkpoint(ckpt),
        small,
        TrainConfig.from_dict(ckpt["train_config"]),
        optimizer_state=ckpt["optimizer"],
        history=history_from_checkpoint(ckpt),
        step=ckpt["step"],
        epoch=ckpt["epoch"],
    )
    assert states_equal(copy_state_to_cpu(resumed.model), copy_state_to_cpu(trainer.model))
    new = list(resumed.run())
    records = step_records(new)
    assert records[0].step == 9 and records[0].epoch == pytest.approx(9 / STEPS_PER_EPOCH)
    assert resumed.step == 2 * STEPS_PER_EPOCH and resumed.epoch == pytest.approx(2.0)
    steps = [r.step for r in resumed.history.train]
    assert steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))  # the old 8 records, then the new ones
    assert resumed.history.train[:8] == trainer.history.train[:8]
    assert [e.epoch for e in resumed.history.evals] == pytest.approx([1.0, 2.0])
    adam = resumed.optimizer.state_dict()["state"]
    assert all(int(s["step"]) == 2 * STEPS_PER_EPOCH for s in adam.values())  # Adam's counters continued


def test_resume_at_an_epoch_boundary_starts_the_next_epoch(small):
    trainer = make_trainer(small, epochs=1)
    list(trainer.run())
    more = Trainer(
        trainer.model,
        small,
        TrainConfig(**{**trainer.config.to_dict(), "epochs": 2}),
        optimizer_state=trainer.optimizer.state_dict(),
        history=trainer.history,
        step=trainer.step,
        epoch=trainer.epoch,
    )
    records = step_records(more.run())
    assert [r.step for r in records] == list(range(STEPS_PER_EPOCH + 1, 2 * STEPS_PER_EPOCH + 1))


# --- history --------------------------------------------------------------------------------


def test_history_csv_parses_with_the_csv_module(small):
    trainer = make_trainer(small, epochs=2, eval_every=0, log_every=5, eval_iw_ks=(1, 10), eval_k=20)
    list(trainer.run())
    h = trainer.history
    assert len(h.train) == 2 * 4 and len(h.evals) == 2  # 16 steps: records at 5, 10, 15 and the epoch's end
    rows = list(csv.DictReader(io.StringIO(h.to_csv())))
    assert len(rows) == len(h.train) + len(h.evals)
    train_rows = [r for r in rows if r["kind"] == "train"]
    eval_rows = [r for r in rows if r["kind"] == "eval"]
    assert len(train_rows) == len(h.train) and len(eval_rows) == len(h.evals)
    assert set(TRAIN_COLUMNS) | {"kind", "split", "n", "log_px", "k", "iw_1", "iw_10"} == set(rows[0])
    for row, rec in zip(train_rows, h.train):
        for c in TRAIN_COLUMNS:
            assert float(row[c]) == pytest.approx(float(getattr(rec, c)))
        assert row["log_px"] == "" and row["split"] == ""
    for row, rec in zip(eval_rows, h.evals):
        assert int(row["step"]) == rec.step and row["split"] == "val" and int(row["n"]) == rec.n
        assert float(row["log_px"]) == rec.log_px and int(row["k"]) == rec.k
        assert float(row["iw_10"]) == dict(rec.iw_bounds)[10] and row["lr"] == ""


def test_history_dict_round_trip():
    h = History()
    h.add(
        StepRecord(
            step=10, epoch=0.25, elbo=-200.5, recon=-190.0, kl=10.5, loss=200.5, lr=1e-3, beta=1.0, images_per_s=1234.5
        )
    )
    h.add(
        StepRecord(
            step=20, epoch=0.5, elbo=-150.0, recon=-140.0, kl=10.0, loss=150.0, lr=1e-3, beta=0.5, images_per_s=2000.0
        )
    )
    h.add(
        EvalRecord(
            step=20,
            epoch=0.5,
            split="val",
            n=100,
            elbo=-160.0,
            recon=-150.0,
            kl=10.0,
            log_px=-155.0,
            k=50,
            iw_bounds=((1, -160.5), (5, -157.0)),
            seconds=0.5,
        )
    )
    d = h.to_dict()
    assert History.from_dict(d) == h
    assert History.from_dict(None) == History() == History.from_dict({})
    # only plain containers of numbers and strings: what torch.load(weights_only=True) accepts
    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    assert History.from_dict(torch.load(buf, weights_only=True)) == h
    with pytest.raises(TypeError):
        h.add(Progress(1, 0, 0.1, 1))


# --- snapshots on demand ---------------------------------------------------------------


class FakeClock:
    """perf_counter stand-in: each call moves time on by `tick` seconds."""

    def __init__(self, tick: float):
        self.t, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t


def test_no_snapshot_at_all_when_the_interval_is_none(small):
    trainer = make_trainer(small, epochs=2, snapshot_interval_s=1e-9)  # would be due after every step
    trainer.set_snapshot_interval(None)
    events = list(trainer.run())
    assert not [e for e in events if isinstance(e, Snapshot)]  # not even the final one
    assert notices(events, "finished")


def test_snapshots_come_no_more_often_than_the_interval(small):
    trainer = make_trainer(small, epochs=4)  # 64 steps
    trainer.clock = FakeClock(0.1)  # asked once a step (twice when it snapshots): 0.1 s a step
    trainer.set_snapshot_interval(1.0)
    events = list(trainer.run())
    snaps = [e for e in events if isinstance(e, Snapshot)][:-1]  # the last is the final one
    assert 4 <= len(snaps) <= trainer.clock.t / 1.0
    steps = [s.step for s in snaps]
    assert all(b - a >= 9 for a, b in zip(steps, steps[1:], strict=False))  # ≥ 1 s of 0.1 s steps apart


def test_the_interval_can_change_while_training_runs(small):
    trainer = make_trainer(small, epochs=3)
    trainer.clock = FakeClock(0.1)
    trainer.set_snapshot_interval(None)
    events = trainer.run()
    seen = take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 10)
    assert not [e for e in seen if isinstance(e, Snapshot)]
    trainer.set_snapshot_interval(0.0)  # 0: no timed snapshots either, but a final one
    seen = take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 20)
    assert not [e for e in seen if isinstance(e, Snapshot)]
    trainer.set_snapshot_interval(1e-9)
    seen = take_until(events, lambda e: isinstance(e, Snapshot))
    assert seen[-1].step == 21  # applied before step 21, due after it
    trainer.stop()
    list(events)
    with pytest.raises(ValueError, match="snapshot interval"):
        trainer.set_snapshot_interval(-1.0)


def test_the_cpu_state_copier_hands_over_independent_copies(small):
    from lvm_studio.core.device import StateCopier

    trainer = make_trainer(small, epochs=1)
    copier = StateCopier(trainer.model, "cpu")
    assert copier.poll() is None and not copier.busy
    assert copier.start(3, 0.5) and copier.busy
    assert not copier.start(4, 0.6)  # one at a time
    step, epoch, state = copier.poll()
    assert (step, epoch) == (3, 0.5) and not copier.busy
    assert states_equal(state, copy_state_to_cpu(trainer.model))
    live = {v.untyped_storage().data_ptr() for v in trainer.model.state_dict().values()}
    assert not live & {v.untyped_storage().data_ptr() for v in state.values()}
    assert copier.wait() is None


def test_the_cpu_path_never_touches_cuda(small, monkeypatch):

    def no_cuda(*_, **__):
        raise AssertionError("the CPU path used torch.cuda")

    monkeypatch.setattr(torch.cuda, "Stream", no_cuda)
    monkeypatch.setattr(torch.cuda, "Event", no_cuda)
    trainer = make_trainer(small, epochs=1, snapshot_interval_s=1e-9)
    assert len([e for e in trainer.run() if isinstance(e, Snapshot)]) == STEPS_PER_EPOCH + 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_cuda_state_copier_copies_asynchronously_into_pageable_cpu_tensors():
    from lvm_studio.core.device import StateCopier

    model = VAE(TINY).to("cuda")
    copier = StateCopier(model, "cuda")
    expected = copy_state_to_cpu(model)
    assert copier.start(1, 0.1)
    with torch.no_grad():  # the live weights move on at once; the copy must be of the old ones
        for p in model.parameters():
            p.add_(1.0)
    step, epoch, state = copier.wait()
    assert (step, epoch) == (1, 0.1)
    assert states_equal(state, expected)
    assert all(t.device.type == "cpu" and not t.is_pinned() for t in state.values())
    assert copier.start(2, 0.2)
    again = copier.wait()[2]
    assert states_equal(again, copy_state_to_cpu(model)) and states_equal(state, expected)  # no sharing


# --- continuing a model: learning-rate warm-up ----------------------------------------------


def test_warmup_rises_linearly_from_zero_to_the_base_rate(small):
    trainer = make_trainer(small, epochs=2, lr=1e-3, lr_warmup_steps=8)
    records = step_records(trainer.run())
    lrs = [r.lr for r in records]
    assert lrs[:8] == pytest.approx([1e-3 * (s + 1) / 8 for s in range(8)])
    assert lrs[8:] == pytest.approx([1e-3] * (len(lrs) - 8))
    assert trainer.lr == 1e-3 and trainer.optimizer.param_groups[0]["lr"] == 1e-3


def test_warmup_is_automatic_only_for_a_continued_run_without_optimizer_state(small):
    from lvm_studio.core.training import RESUME_WARMUP_STEPS

    fresh = make_trainer(small, epochs=1)
    assert fresh.warmup_steps == 0
    trained = make_trainer(small, epochs=1)
    list(trained.run())
    ckpt = trained.checkpoint()
    config = TrainConfig.from_dict(ckpt["train_config"])
    config.epochs = 2
    model = model_from_checkpoint(ckpt)
    without = Trainer(model, small, config, step=ckpt["step"], epoch=ckpt["epoch"])
    assert without.warmup_steps == RESUME_WARMUP_STEPS
    assert without.optimizer.param_groups[0]["lr"] == pytest.approx(config.lr / RESUME_WARMUP_STEPS)
    with_state = Trainer(model, small, config, optimizer_state=ckpt["optimizer"], step=ckpt["step"])
    assert with_state.warmup_steps == 0
    config.lr_warmup_steps = 0
    assert Trainer(model, small, config, step=ckpt["step"]).warmup_steps == 0  # asked for none


def test_a_checkpoint_taken_during_warmup_keeps_the_base_rate(small):
    trainer = make_trainer(small, epochs=1, lr=1e-3, lr_warmup_steps=1000)
    list(trainer.run())
    assert trainer.optimizer.param_groups[0]["lr"] < 1e-4  # the optimizer runs at a fraction
    ckpt = trainer.checkpoint()
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert ckpt["train_config"]["lr"] == 1e-3
    resumed = Trainer(model_from_checkpoint(ckpt), small, trainer.config, optimizer_state=ckpt["optimizer"])
    assert resumed.lr == 1e-3


def test_set_lr_during_warmup_sets_the_base_rate(small):
    trainer = make_trainer(small, epochs=2, lr=1e-3, lr_warmup_steps=10)
    events = trainer.run()
    take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 4)
    trainer.set_lr(5e-4)
    records = step_records(take_until(events, lambda e: isinstance(e, StepRecord) and e.step == 12))
    assert records[0].lr == pytest.approx(5e-4 * 5 / 10) and records[-1].lr == pytest.approx(5e-4)
    trainer.stop()
    list(events)


def test_copy_into_reuses_the_buffers_it_can():
    from lvm_studio.core.snapshots import copy_into

    dst = {"a": torch.zeros(3), "b": [torch.zeros(2), 1], "c": torch.zeros(2)}
    src = {"a": torch.ones(3), "b": [torch.full((2,), 2.0), 5], "c": torch.ones(4), "d": "x"}
    a, b0 = dst["a"], dst["b"][0]
    out = copy_into(dst, src)
    assert out["a"] is a and out["b"][0] is b0 and out["b"][1] == 5 and out["d"] == "x"
    assert torch.equal(out["a"], src["a"]) and torch.equal(out["b"][0], src["b"][0])
    assert out["c"] is not src["c"] and torch.equal(out["c"], src["c"])  # another shape: a fresh copy
    src["a"].add_(1)
    assert torch.equal(out["a"], torch.ones(3))  # shares nothing with the source


def _continued(trainer: Trainer, data, **overrides) -> Trainer:
    """A Trainer that continues trainer's model from its checkpoint without the optimizer state."""
    ckpt = trainer.checkpoint()
    config = TrainConfig.from_dict({**ckpt["train_config"], **overrides})
    return Trainer(model_from_checkpoint(ckpt), data, config, step=ckpt["step"], epoch=ckpt["epoch"])


def test_without_warmup_the_first_adam_step_moves_every_weight_by_about_lr(small):
    # Adam's first step is lr · m̂/(√v̂ + ε) = lr · sign(g) (Kingma & Ba 2015, §2.1): every weight at
    # once, however flat the loss is there. The warm-up makes it lr / W.
    trained = make_trainer(small, epochs=2, lr=1e-3)
    list(trained.run())
    for warmup, expected in [(0, 1e-3), (100, 1e-5)]:
        resumed = _continued(trained, small, epochs=3, lr_warmup_steps=warmup)
        before = [p.detach().clone() for p in resumed.model.parameters()]
        events = resumed.run()
        take_until(events, lambda e: isinstance(e, StepRecord))
        moved = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(resumed.model.parameters(), before)])
        moved = moved[moved > 0]
        assert moved.median().item() == pytest.approx(expected, rel=0.05)
        resumed.stop()
        list(events)


def test_continuing_a_converged_model_does_not_lower_its_validation_log_px(small):
    torch.manual_seed(0)
    settings = dict(batch_size=64, eval_every=10**9, log_every=50, snapshot_interval_s=0.0, eval_n=200, eval_k=20)
    trainer = Trainer(VAE(TINY), small, TrainConfig(epochs=60, lr=1e-2, lr_decay=0.93, min_lr=1e-4, **settings))
    list(trainer.run())  # 480 steps, the rate decayed to 1e-4: converged on these 512 digits
    x = trainer.x_eval

    def log_px(model, seed=0):
        return evaluate(model, x, k=20, seed=seed)["log_px"]

    before = log_px(trainer.model)
    noise = abs(log_px(trainer.model, 1) - log_px(trainer.model, 2))  # the estimate's seed-to-seed spread
    # as the app and `train --resume` do: the checkpoint's own settings and rate, no optimizer state,
    # so the automatic warm-up applies (shortened here to fit the test)
    resumed = _continued(trainer, small, epochs=70, lr=trainer.lr, lr_warmup_steps=40)
    assert resumed.warmup_steps == 40
    list(resumed.run())  # 80 steps: through the warm-up and as far again at the full rate
    assert log_px(resumed.model) >= before - max(3 * noise, 0.05)


def test_resume_lr_prefers_the_optimizer_then_the_last_record_then_the_settings():
    from lvm_studio.core.training import resume_lr

    record = StepRecord(step=1, epoch=0.1, elbo=0, recon=0, kl=0, loss=0, lr=2.7e-5, beta=1, images_per_s=0)
    history = History(train=[record])
    optimizer = {"param_groups": [{"lr": 5e-4}], "state": {}}
    assert resume_lr({"lr": 2e-4}, optimizer, history) == 5e-4
    assert resume_lr({"lr": 2e-4}, None, history) == 2.7e-5  # where the run ended, after its decay
    assert resume_lr({"lr": 2e-4}, None, History()) == 2e-4
    assert resume_lr(None) is None


def test_grad_clip_bounds_the_global_norm_and_no_clip_leaves_gradients_alone(small, monkeypatch):
    norms = []
    original = Adam.step

    def step(self, *args, **kwargs):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        norms.append(torch.nn.utils.get_total_norm(grads).item())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Adam, "step", step)
    list(make_trainer(small, epochs=1, grad_clip=0.5).run())
    assert max(norms) <= 0.5 * (1 + 1e-5)
    norms.clear()
    list(make_trainer(small, epochs=1).run())
    assert max(norms) > 0.5  # unclipped (the same seed's gradients are larger)
