"""Training across processes and GPUs: `torchrun --standalone --nproc-per-node N -m lvm_studio train ...`.

torchrun starts N copies of the CLI with RANK, WORLD_SIZE, LOCAL_RANK and a rendezvous in the
environment; `setup()` joins them into one process group (NCCL on CUDA, one GPU per process;
gloo on the CPU) and `DistributedTrainer` trains one model with DistributedDataParallel (Li et al.
2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel Training").

How a step is shared. Every process holds the whole training set and draws the same shuffled order
of each epoch (the Trainer's seeded generator), so `--batch-size B` is the GLOBAL batch: each step's
B images are split into N contiguous shards, one per process. Each process binarizes and samples ε
for the whole global batch from one generator seeded alike everywhere and keeps its shard's rows,
so every image gets its own noise, fresh at every step (dynamic binarization), and the run does the
same arithmetic as one process with batch B: the first step's loss agrees to float rounding, and the
learning rate needs no scaling with N. The noise costs B × 784 draws a process, against about
2 × 3 × B × 784 × 512 multiply-adds of its shard's forward and backward pass. Each process scales its
shard's mean loss by (its rows · N / B), so DDP's averaged gradient is the global batch's mean
gradient even when the last batch of an epoch splits unevenly.

Decisions stay collective: a non-finite loss on any process skips the step on all (else one would
wait forever in the gradient all-reduce), and a stop (Ctrl+C reaches every process) ends all at the
same step. Rank 0 alone evaluates, prints and writes the checkpoint (atomically, the usual format:
the model inside DDP is the plain VAE); the others wait for it at the next collective.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from lvm_studio.core.training import Trainer


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    backend: str  # "nccl" or "gloo"
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self, batch_size: int, lr: float) -> str:
        shard = batch_size / self.world_size
        return (
            f"distributed: {self.world_size} processes ({self.backend}, {self.device.type}); global batch "
            f"{batch_size} = {self.world_size} × {shard:g} images a process; lr {lr:g} for the global batch "
            f"(the same steps as one process with --batch-size {batch_size}, so not scaled)"
        )


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) started this process as one of a group."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device_preference: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment; NCCL with one GPU a process when
    CUDA is wanted and present, else gloo on the CPU (then each process gets its share of the cores)."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device_preference != "cpu" and torch.cuda.is_available()
    if device_preference.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but CUDA is not available")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"process {local_rank} of this machine has no GPU ({torch.cuda.device_count()} found): "
                "give --nproc-per-node at most the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))  # the cores, shared out
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, device_id=device if use_cuda else None)
    return DistInfo(rank, world, local_rank, backend, device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class _Loss(nn.Module):
    """The Trainer's loss as a module's forward, so that DDP sees the forward it synchronises."""

    def __init__(self, trainer: DistributedTrainer):
        super().__init__()
        self.vae = trainer.model  # registers the VAE's parameters with DDP
        self._trainer = (trainer,)  # a tuple: not a submodule

    def forward(self, x: torch.Tensor):
        return Trainer._loss(self._trainer[0], x)


class DistributedTrainer(Trainer):
    """The Trainer with its steps shared by the processes of a group (module docstring).

    config.batch_size is the global batch; it must be at least the number of processes."""

    def __init__(self, *args, info: DistInfo, **kwargs):
        super().__init__(*args, **kwargs)
        self.info = info
        w = info.world_size
        if self.config.batch_size < w:
            raise ValueError(f"--batch-size {self.config.batch_size} is smaller than the {w} processes")
        n = len(self.x_train)
        tail = n % self.config.batch_size
        if 0 < tail < w:  # a last batch too small to give every process a row: left out of each epoch
            self.x_train = self.x_train[: n - tail]
        self._rows = (0, 0, 0)  # this process's shard of the current global batch: start, stop, global size
        self.ddp = nn.parallel.DistributedDataParallel(
            _Loss(self), device_ids=[info.device.index] if info.device.type == "cuda" else None
        )
        self._flag = torch.zeros(1, device=info.device)

    def _train_batch(self, idx: torch.Tensor) -> torch.Tensor:
        x = self._augmented_view(self.x_train[idx])  # (B, 784) the global batch, the same on every process
        if self.binarize:
            x = torch.bernoulli(x, generator=self.generator)  # the same draws on every process
        n = len(idx)
        start = self.info.rank * n // self.info.world_size
        stop = (self.info.rank + 1) * n // self.info.world_size
        self._rows = (start, stop, n)
        return x[start:stop]  # (b, 784) this process's shard

    def _reparameterize(self, z_loc: torch.Tensor, z_scale: torch.Tensor, k: int | None = None) -> torch.Tensor:
        start, stop, n = self._rows
        if n == 0:  # not training (never happens in a step): plain draws
            return super()._reparameterize(z_loc, z_scale, k)
        shape = (n, z_loc.shape[-1]) if k is None else (k, n, z_loc.shape[-1])
        eps = torch.randn(shape, generator=self.generator, device=z_loc.device, dtype=z_loc.dtype)
        return z_loc + z_scale * eps[..., start:stop, :]  # (b, latent) or (k, b, latent)

    def _loss(self, x: torch.Tensor):
        loss, elbo, recon, kl = self.ddp(x)
        start, stop, n = self._rows
        # DDP averages the gradients of the N processes; weighting each shard's mean by its share
        # makes that average the gradient of the global batch's mean loss
        scale = (stop - start) * self.info.world_size / n
        return loss * scale, elbo * scale, recon * scale, kl * scale

    def _all_ok(self, ok: bool) -> bool:
        self._flag.fill_(0.0 if ok else 1.0)
        dist.all_reduce(self._flag, op=dist.ReduceOp.MAX)
        return bool(self._flag.item() == 0.0)

    def _window_means(self, acc: torch.Tensor, acc_n: int) -> list[float]:
        total = acc.clone()
        dist.all_reduce(total)  # Σ over processes of the scaled shard means = N × the global means
        return (total / (acc_n * self.info.world_size)).tolist()

    def _sync_stop(self) -> None:
        self._flag.fill_(1.0 if self._stopped else 0.0)
        dist.all_reduce(self._flag, op=dist.ReduceOp.MAX)  # a stop on any process stops them all here
        if self._flag.item() > 0:
            self._stopped, self._paused = True, False

    def _drain_commands(self):
        yield from super()._drain_commands()
        self._sync_stop()

    def _evaluate(self):
        if self.info.is_main:
            yield from super()._evaluate()
        self._sync_stop()  # a stop during rank 0's evaluation reaches the others before the next step

    def describe(self) -> str:
        return self.info.describe(self.config.batch_size, self.lr)
