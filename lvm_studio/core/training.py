"""The training loop: plain Python, no Qt, driven as a generator of events.

    trainer = Trainer(model, data, TrainConfig(epochs=10))
    for event in trainer.run():
        ...  # StepRecord, EvalRecord, EvalProgress, Snapshot, Progress, Notice

Commands (pause, resume, stop, set_lr, set_snapshot_interval, request_eval, request_snapshot,
request_save) may be called from any thread; they are queued and applied between steps, so
stopping takes effect within one step (or one evaluation chunk).

A run that continues a model without its optimizer state warms the learning rate up from 0
(TrainConfig.lr_warmup_steps): Adam's first steps with empty moments move every weight by
about lr at once (Kingma & Ba 2015, §2.1), which knocks a converged model off its optimum.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from lvm_studio.core import estimators as est
from lvm_studio.core.adam import Adam
from lvm_studio.core.checkpoint import headline_metrics, make_checkpoint, save_checkpoint
from lvm_studio.core.data import MNIST, check_fits
from lvm_studio.core.device import StateCopier
from lvm_studio.core.evaluation import (  # noqa: F401  (EvalProgress: one of run()'s events; eval_images: its home was here)
    EvalProgress,
    eval_images,
    evaluation_steps,
)
from lvm_studio.core.history import EvalRecord, History, StepRecord
from lvm_studio.core.mixture_prior import cluster_scores
from lvm_studio.core.mixture_training import augment, autoencoder_loss, init_prior_by_em
from lvm_studio.core.snapshots import copy_into, copy_optimizer_state
from lvm_studio.core.vae import VAE, copy_state_to_cpu

OBJECTIVES = ("elbo", "iwae")
# Adam's moments start empty on a continued run; an untuned linear warm-up of 2 / (1 − β2) steps
# (Ma & Yarats 2021, "On the adequacy of untuned warmup for adaptive optimization") lets the
# second-moment estimate settle before the steps reach full size. β2 = 0.999 gives 2,000.
RESUME_WARMUP_STEPS = 2000
# Adam's first step moves a weight by lr / (1 − β1^1) = 10·lr (Kingma & Ba 2015, Algorithm 1),
# a float32 that overflows from lr ≈ 3.4e37 (issue 13, item 2); nothing trains anywhere near 1e6
MAX_LR = 1e6


def check_lr(lr: float, what: str = "learning rate") -> float:
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and 0 < lr <= MAX_LR):
        raise ValueError(f"{what} must be in (0, {MAX_LR:g}], got {lr}")
    return float(lr)


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 1.0  # the learning rate is multiplied by this after every epoch
    min_lr: float = 1e-5  # decay stops here
    objective: str = "elbo"  # 'elbo' (β-weighted) or 'iwae' (Burda et al. 2016, eq. 8)
    k: int = 1  # importance samples in the IWAE objective
    beta: float = 1.0  # weight of the KL term in the ELBO (Higgins et al. 2017); 1 is the true ELBO
    kl_warmup_epochs: float = 0.0  # KL weight rises linearly from 0 to β (Sønderby et al. 2016, §2.2)
    grad_clip: float = 0.0  # max global gradient norm; 0 turns clipping off
    eval_every: int = 0  # steps between evaluations; 0 = once per epoch
    # the per-epoch evaluation: IWAE-k on a fixed subset costs n·k decoder rows, against about
    # 150,000 row-equivalents for an epoch of training. k=20 on 500 images (10,000 rows) is about
    # 5 % of an epoch on one core (IWAE-100 on 1,000: 43 %); its bound sits about 0.8 nat below
    # IWAE-100's, the same amount at every evaluation, so the curve keeps its shape.
    eval_k: int = 20  # importance samples for the log p(x) estimate
    eval_n: int = 500  # size of the fixed validation subset
    eval_split: str = "val"
    eval_iw_ks: tuple[int, ...] = ()  # extra IW-k bounds reported at each evaluation, e.g. (1, 5, 50)
    eval_max_rows: int = (
        0  # decoder rows per evaluation chunk (0 = estimators' default); smaller chunks honour a stop sooner
    )
    log_every: int = 10  # steps averaged into one StepRecord
    snapshot_interval_s: float = 1.0  # CPU weight snapshots at most this often (0 = never unasked)
    # linear learning-rate warm-up from 0 over this many steps of the run; None = automatic:
    # RESUME_WARMUP_STEPS when continuing a model (step > 0) without its optimizer state, else none
    lr_warmup_steps: int | None = None
    seed: int = 0
    # a mixture prior (core/mixture_training.py): autoencoder epochs before EM initialises the prior,
    # and the test images whose clustering (labels only score) each evaluation reports
    pretrain_epochs: int = 0
    pretrain_augment: bool = False  # those epochs on randomly shifted and rotated digits (DEC-DA)
    joint_augment: bool = False  # the joint epochs of a mixture prior too (DEC-DA's clustering phase)
    cluster_n: int = 10000

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.k < 1 or self.eval_k < 1 or self.batch_size < 1 or self.epochs < 0:
            raise ValueError("k, eval_k and batch_size must be ≥ 1 and epochs ≥ 0")
        check_lr(self.lr)
        if self.lr_warmup_steps is not None and self.lr_warmup_steps < 0:
            raise ValueError(f"lr_warmup_steps must be ≥ 0 or None, got {self.lr_warmup_steps}")
        self.eval_iw_ks = tuple(int(k) for k in self.eval_iw_ks)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eval_iw_ks"] = list(self.eval_iw_ks)
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in (d or {}).items() if k in known}
        if "eval_iw_ks" in d:
            d["eval_iw_ks"] = tuple(d["eval_iw_ks"])
        return cls(**d)


# --- events -----------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    step: int
    epoch: int  # 0-based index of the running epoch
    epoch_fraction: float  # within the running epoch, 0..1
    total_epochs: int


@dataclass(frozen=True)
class Snapshot:
    """A CPU copy of the weights that shares no storage with the live model."""

    step: int
    epoch: float
    state_dict: dict


@dataclass(frozen=True)
class Notice:
    """Something a user should be told. kind: started, paused, resumed, lr_changed, nan,
    prior_initialised, saved, save_failed, stopped, finished, diverged."""

    kind: str
    message: str
    step: int = 0


class Trainer:
    """Owns the model being trained and its optimizer; run() is the loop."""

    MAX_CONSECUTIVE_NAN = 5
    GOOD_STATE_EVERY = 50  # steps between copies of the last known-good weights

    def __init__(
        self,
        model: VAE,
        data: MNIST,
        config: TrainConfig | None = None,
        device: torch.device | str = "cpu",
        optimizer_state: dict | None = None,
        history: History | None = None,
        step: int = 0,
        epoch: float = 0.0,
        name: str | None = None,
    ):
        check_fits(model.config.x_dim, data)  # an imported dataset's side must be the model's
        self.config = config or TrainConfig()
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.name = name
        self.history = history or History()
        self.step = int(step)
        self.epoch = float(epoch)
        self._commands: queue.Queue = queue.Queue()
        self._paused = False
        self._stopped = False
        self._lr = self.config.lr  # the base rate; the optimizer runs at it times the warm-up factor
        self._params = list(self.model.parameters())  # the step's gradient check walks these
        self.optimizer, self._fused = _adam(self._params, self._lr)
        if optimizer_state:
            self.optimizer.load_state_dict(optimizer_state)  # torch.optim.Adam's format (core.adam)
            self._lr = check_lr(self.optimizer.param_groups[0]["lr"], "the optimizer state's learning rate")
        warmup = self.config.lr_warmup_steps
        if warmup is None:  # automatic: only a continued run with empty Adam moments needs it
            warmup = RESUME_WARMUP_STEPS if self.step > 0 and not optimizer_state else 0
        self.warmup_steps = int(warmup)
        self._run_steps = 0  # optimizer steps taken by this Trainer (the warm-up counts these)
        self._apply_lr()
        self.clock = time.perf_counter  # the timed snapshots' clock (a test may replace it)
        self._snapshot_interval: float | None = self.config.snapshot_interval_s
        self._copier = StateCopier(self.model, self.device)
        self._good: tuple[dict, dict] | None = None  # last known-good weights and optimizer state
        self.generator = torch.Generator(device=self.device).manual_seed(self.config.seed + self.step)
        self._cpu_generator = torch.Generator().manual_seed(self.config.seed * 7919 + self.step)
        # training pixels as grey levels on the device; a Bernoulli model sees each batch binarized
        # afresh, a Gaussian one models the grey levels themselves
        self.binarize = model.config.likelihood == "bernoulli"
        self.x_train = data.float_images("train", self.device)  # (N, 784)
        self.x_eval = eval_images(data, self.config.eval_split, model.config.likelihood, self.device)[
            : self.config.eval_n
        ]
        self.mixture = getattr(model, "mixture", None) is not None
        self._pretraining = False
        if self.mixture:  # labelled test digits, only ever scored
            n = self.config.cluster_n
            self.x_cluster = eval_images(data, "test", model.config.likelihood, self.device)[:n]
            self.y_cluster = data.y_test[:n]

    # --- commands, callable from any thread ---------------------------------------
    def pause(self):
        self._commands.put(("pause", None))

    def resume(self):
        self._commands.put(("resume", None))

    def stop(self):
        self._commands.put(("stop", None))

    def set_lr(self, lr: float):
        """Refused here, in the caller's thread, when out of range (ValueError)."""
        self._commands.put(("lr", check_lr(float(lr))))

    def set_snapshot_interval(self, seconds: float | None):
        """Timed weight snapshots at most every `seconds`; None: none at all (not even the final one)."""
        if seconds is not None and not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"snapshot interval must be ≥ 0 seconds or None, got {seconds}")
        self._commands.put(("snapshot_interval", None if seconds is None else float(seconds)))

    def request_eval(self):
        self._commands.put(("eval", None))

    def request_snapshot(self):
        self._commands.put(("snapshot", None))

    def request_save(self, path: str | Path):
        self._commands.put(("save", str(path)))

    @property
    def lr(self) -> float:
        """The base learning rate (what set_lr set, after decay), without the warm-up factor."""
        return self._lr

    @property
    def snapshot_interval(self) -> float | None:
        return self._snapshot_interval

    def warmup_factor(self) -> float:
        """Linear warm-up: (s + 1) / W for the run's s-th optimizer step, 1 once s + 1 ≥ W."""
        if self.warmup_steps <= 0:
            return 1.0
        return min(1.0, (self._run_steps + 1) / self.warmup_steps)

    def effective_lr(self) -> float:
        return self._lr * self.warmup_factor()

    def _apply_lr(self):
        lr = self.effective_lr()
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def _set_lr(self, lr: float):
        self._lr = lr
        self._apply_lr()

    # --- state --------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """A CPU copy of the weights now (waits for the copy; the timed ones do not)."""
        return Snapshot(step=self.step, epoch=self.epoch, state_dict=copy_state_to_cpu(self.model))

    def _keep_good_state(self):
        """Copy the weights and optimizer state into the known-good buffers, on the training device.

        The buffers are allocated once and overwritten in place, so this allocates nothing after
        the first time (a fresh 3× model-sized copy every 50 steps churned the allocator).
        """
        weights, opt = self.model.state_dict(), self.optimizer.state_dict()
        if self._good is None:
            self._good = ({k: v.detach().clone() for k, v in weights.items()}, copy_optimizer_state(opt))
        else:
            self._good = (copy_into(self._good[0], weights), copy_into(self._good[1], opt))

    def _restore_good_state(self):
        if self._good is None:
            return
        self.model.load_state_dict(self._good[0])
        # a copy: Adam adopts same-device tensors as its live state, which must not be the buffers
        self.optimizer.load_state_dict(copy_optimizer_state(self._good[1]))
        self._apply_lr()

    def optimizer_state(self, device: torch.device | str | None = None) -> dict:
        """A copy of the optimizer state with the base learning rate (not a warm-up's fraction of it)."""
        state = copy_optimizer_state(self.optimizer.state_dict(), device)
        for g in state["param_groups"]:
            g["lr"] = self._lr
        return state

    def checkpoint(self) -> dict:
        return make_checkpoint(
            self.model,
            name=self.name,
            optimizer=self.optimizer_state("cpu"),
            train_config=self.config.to_dict(),
            step=self.step,
            epoch=self.epoch,
            history=self.history,
            metrics=headline_metrics(self.history),
        )

    def kl_weight(self) -> float:
        c = self.config
        if c.kl_warmup_epochs <= 0:
            return c.beta
        return c.beta * min(1.0, self.epoch / c.kl_warmup_epochs)

    # --- the loop -----------------------------------------------------------------
    def _drain_commands(self) -> Iterator:
        """Apply queued commands; block here while paused. Yields the events they cause."""
        while True:
            try:
                cmd, arg = self._commands.get(block=self._paused)
            except queue.Empty:
                return
            if cmd == "pause" and not self._paused:
                self._paused = True
                yield Notice("paused", f"paused at step {self.step}", self.step)
            elif cmd == "resume" and self._paused:
                self._paused = False
                yield Notice("resumed", f"resumed at step {self.step}", self.step)
            elif cmd == "stop":
                self._stopped = True
                self._paused = False
                return
            elif cmd == "lr":
                self._set_lr(arg)
                yield Notice("lr_changed", f"learning rate set to {arg:g}", self.step)
            elif cmd == "snapshot":
                yield self.snapshot()
            elif cmd == "snapshot_interval":
                self._snapshot_interval = arg
            elif cmd == "eval":
                yield from self._evaluate()
            elif cmd == "save":
                try:
                    save_checkpoint(arg, self.checkpoint())
                    yield Notice("saved", f"saved {arg}", self.step)
                except OSError as e:
                    yield Notice("save_failed", f"could not save {arg}: {e}", self.step)
            if not self._paused and self._commands.empty():
                return

    def _evaluate(self) -> Iterator:
        """ELBO and IWAE-k log p(x) on the fixed subset by core.evaluation, in chunks so a stop is
        honoured quickly; yields its EvalProgress events, then the EvalRecord."""
        c = self.config
        k_max = max([c.eval_k, *c.eval_iw_ks])
        # eval_max_rows sizes the chunks (how soon a stop is seen); the sampling keeps the default rows
        batch = max(1, (c.eval_max_rows or est.DEFAULT_MAX_ROWS) // k_max)
        result = yield from evaluation_steps(
            self.model,
            self.x_eval,
            c.eval_k,
            c.eval_iw_ks,
            seed=c.seed + 1,  # same draws every evaluation
            batch_size=batch,
            should_stop=self._stop_requested,
        )
        if self._stopped:
            return
        record = EvalRecord(
            step=self.step,
            epoch=self.epoch,
            split=c.eval_split,
            n=result.n,
            elbo=result.elbo,
            recon=result.recon,
            kl=result.kl,
            log_px=result.log_px,
            k=c.eval_k,
            iw_bounds=tuple((k, result.iw_bounds[k]) for k in c.eval_iw_ks if k in result.iw_bounds),
            seconds=result.seconds,
            **self._cluster_fields(),
        )
        self.history.add(record)
        yield record

    def _cluster_fields(self) -> dict:
        if not self.mixture or not len(self.x_cluster):
            return {}
        scores = cluster_scores(self.model, self.x_cluster, self.y_cluster)
        return {"cluster_acc": scores.accuracy, "cluster_nmi": scores.nmi}

    def _init_prior(self) -> Notice:
        """VaDE's step 2: the prior from EM on the training codes (no labels)."""
        x = torch.bernoulli(self.x_train, generator=self.generator) if self.binarize else self.x_train
        fit = init_prior_by_em(self.model, x, seed=self.config.seed)
        return Notice(
            "prior_initialised",
            f"mixture prior initialised by EM on {fit.n} codes ({fit.restarts} restarts, "
            f"{fit.n_iter} iterations, mean log p(z) {fit.log_likelihood:.2f})",
            self.step,
        )

    def _stop_requested(self) -> bool:
        """A stop queued during an evaluation ends it; other commands wait for the next step."""
        if any(cmd == "stop" for cmd, _ in list(self._commands.queue)):
            self._stopped = True
        return self._stopped

    def _loss(self, x: torch.Tensor):
        """Returns (loss, elbo, recon, kl) as 0-d tensors, per image averages."""
        c = self.config
        if self._pretraining:
            return autoencoder_loss(self.model, x)
        z_loc, z_scale = self.model.encode(x)  # (b, latent)
        kl = self.model.kl_to_prior(z_loc, z_scale)  # (b,) KL(q(z|x) ‖ p(z))
        if c.objective == "iwae" and c.k > 1:
            z = self._reparameterize(z_loc, z_scale, c.k)  # (k, b, latent)
            log_px_z = self.model.log_px_given_z(x, z)  # (k, b)
            log_w = est.log_weights(log_px_z, z, z_loc, z_scale, self.model)  # (k, b)
            bound = torch.logsumexp(log_w, 0) - math.log(c.k)  # (b,)  Burda et al. 2016, eq. 8
            recon = log_px_z.mean(0)  # (b,) a k-sample estimate of E_q[log p(x|z)], for reporting
            loss = -bound.mean()
        else:
            z = self._reparameterize(z_loc, z_scale)  # (b, latent)
            recon = self.model.log_px_given_z(x, z)  # (b,)
            loss = -(recon - self.kl_weight() * kl).mean()
        return loss, (recon - kl).mean().detach(), recon.mean().detach(), kl.mean().detach()

    # --- what a distributed run (core/distributed.py) replaces -------------------------
    def _reparameterize(self, z_loc: torch.Tensor, z_scale: torch.Tensor, k: int | None = None) -> torch.Tensor:
        return est.reparameterize(z_loc, z_scale, k, self.generator)

    def _train_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """The images of one step, (b, N_PIXELS): a Bernoulli model's binarized afresh."""
        x = self._augmented_view(self.x_train[idx])  # (b, 784)
        return torch.bernoulli(x, generator=self.generator) if self.binarize else x  # dynamic binarization

    def _augmented_view(self, x: torch.Tensor) -> torch.Tensor:
        """A batch shifted and rotated (core/mixture_training.augment) in a mixture prior's
        autoencoder epochs with config.pretrain_augment, in its joint ones with config.joint_augment;
        else x as it is."""
        c = self.config
        if self.mixture and (c.pretrain_augment if self._pretraining else c.joint_augment):
            return augment(x, self.generator)  # (b, 784)
        return x

    def _all_ok(self, ok: bool) -> bool:
        """Whether every process may take the step (one process: its own finite loss)."""
        return ok

    def _window_means(self, acc: torch.Tensor, acc_n: int) -> list[float]:
        """Loss, ELBO, reconstruction and KL averaged over a window of steps (and processes)."""
        return (acc / acc_n).tolist()

    def run(self) -> Iterator:
        c = self.config
        n_train = len(self.x_train)
        steps_per_epoch = math.ceil(n_train / c.batch_size)
        start_epoch = int(self.epoch + 1e-9)
        last_snapshot = self.clock()
        consecutive_nan = 0
        yield Notice("started", f"training on {self.device.type} from step {self.step}", self.step)
        self.model.train()
        for epoch in range(start_epoch, c.epochs):
            perm = torch.randperm(n_train, generator=self._cpu_generator).to(self.device)
            # resume mid-epoch where the checkpoint left off
            first = int(round((self.epoch - epoch) * steps_per_epoch)) if epoch == start_epoch else 0
            if self.mixture and epoch == c.pretrain_epochs and first <= 0:
                yield self._init_prior()
            self._pretraining = self.mixture and epoch < c.pretrain_epochs
            acc = torch.zeros(4, device=self.device)  # loss, elbo, recon, kl sums over the window
            acc_n, t_window = 0, time.perf_counter()
            for i in range(max(0, first), steps_per_epoch):
                yield from self._drain_commands()
                if self._stopped:
                    yield Notice("stopped", f"stopped at step {self.step}", self.step)
                    return
                x = self._train_batch(perm[i * c.batch_size : (i + 1) * c.batch_size])  # (b, 784)
                loss, elbo_b, recon_b, kl_b = self._loss(x)
                self.optimizer.zero_grad(set_to_none=True)
                ok = self._all_ok(bool(torch.isfinite(loss)))
                if ok:
                    loss.backward()
                    grads = [p.grad for p in self._params if p.grad is not None]
                    # the norm alone (one read of the gradients) catches a non-finite one; scaling
                    # them, another read and write of every gradient, only when clipping is on
                    grad_norm = torch.nn.utils.get_total_norm(grads)
                    ok = bool(torch.isfinite(grad_norm))
                    if ok and c.grad_clip > 0:
                        torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), c.grad_clip, grad_norm)
                if not ok:
                    consecutive_nan += 1
                    self._restore_good_state()
                    yield Notice(
                        "nan",
                        f"non-finite loss or gradient at step {self.step}; the step was "
                        f"skipped and the last good weights restored",
                        self.step,
                    )
                    if consecutive_nan >= self.MAX_CONSECUTIVE_NAN:
                        yield Notice(
                            "diverged",
                            f"{consecutive_nan} non-finite steps in a row: training "
                            f"stopped. Try a smaller learning rate.",
                            self.step,
                        )
                        return
                    continue
                consecutive_nan = 0
                if self._good is None or self.step % self.GOOD_STATE_EVERY == 0:
                    # issue 13, item 1: the known-good copy is of weights that have just given a
                    # finite loss and gradient, taken before the step changes them unchecked
                    self._keep_good_state()
                if self._run_steps < self.warmup_steps:
                    self._apply_lr()  # the warm-up's rate for this step
                lr_used = self.optimizer.param_groups[0]["lr"]
                self.optimizer.step()
                self._run_steps += 1
                if self._run_steps == self.warmup_steps:
                    self._apply_lr()  # warm-up over: the base rate from now on
                self.step += 1
                self.epoch = epoch + (i + 1) / steps_per_epoch
                acc += torch.stack([loss.detach(), elbo_b, recon_b, kl_b])
                acc_n += 1
                if acc_n >= c.log_every or i == steps_per_epoch - 1:
                    a = self._window_means(acc, acc_n)
                    dt = time.perf_counter() - t_window
                    record = StepRecord(
                        step=self.step,
                        epoch=self.epoch,
                        elbo=a[1],
                        recon=a[2],
                        kl=a[3],
                        loss=a[0],
                        lr=lr_used,  # the last step's (a warm-up raises it step by step)
                        beta=self.kl_weight(),
                        images_per_s=acc_n * c.batch_size / max(dt, 1e-9),
                    )
                    self.history.add(record)
                    yield record
                    yield Progress(self.step, epoch, (i + 1) / steps_per_epoch, c.epochs)
                    acc.zero_()
                    acc_n, t_window = 0, time.perf_counter()
                if c.eval_every and self.step % c.eval_every == 0:
                    yield from self._evaluate()
                interval = self._snapshot_interval
                if interval and not self._copier.busy and self.clock() - last_snapshot >= interval:
                    self._copier.start(self.step, self.epoch)  # on CUDA: an asynchronous copy
                    last_snapshot = self.clock()
                ready = self._copier.poll()
                if ready is not None:
                    yield Snapshot(*ready)
            if not c.eval_every:
                yield from self._evaluate()
            if self._stopped:
                yield Notice("stopped", f"stopped at step {self.step}", self.step)
                return
            self._set_lr(max(c.min_lr, self._lr * c.lr_decay) if c.lr_decay != 1.0 else self._lr)
        if self._snapshot_interval is not None:  # None: nobody looks at weights
            yield self.snapshot()
        yield Notice("finished", f"finished {c.epochs} epochs at step {self.step}", self.step)


def _adam(params: list, lr: float) -> tuple[Adam, bool]:
    """Adam (core.adam: torch's fused kernel without torch.optim's seconds of imports), fused where
    torch has the kernel (CPU and CUDA): one kernel per parameter for the whole update instead of
    about ten. Measured for 784-400-400-20 at batch 128 on one CPU thread: 20.5 ms a step against
    22.5–25 ms unfused (interleaved rounds, quiet). Returns (optimizer, fused)."""
    optimizer = Adam(params, lr=lr)
    return optimizer, optimizer.fused


def resume_lr(train_config: dict | None, optimizer_state: dict | None = None, history: History | None = None):
    """The learning rate a continued run starts from, or None when the checkpoint records none.

    The optimizer state's own rate if there is one; else the last training record's (where the run
    really ended, after any per-epoch decay: the shipped VAE-32 ended at 2.7e-5 although its
    train_config says 2e-4); else the train_config's. Pair it with the automatic warm-up (a run
    that starts at step > 0 without optimizer state), and a continued model keeps its quality.
    """
    if optimizer_state and optimizer_state.get("param_groups"):
        return float(optimizer_state["param_groups"][0]["lr"])
    if history is not None and history.train:
        return float(history.train[-1].lr)
    if train_config and train_config.get("lr"):
        return float(train_config["lr"])
    return None
