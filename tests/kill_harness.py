"""A process the crash tests kill with SIGKILL at random moments (issue 13, items 4 and 9).

Run as `python tests/kill_harness.py`; it imports torch once, then for each JSON line on stdin
forks a child that runs one job until it is killed, prints the child's pid, waits for it and
prints its exit status. Forking keeps each kill cheap (no new torch import) while every victim
is still a real process that the kernel stops wherever it happens to be.

Jobs:
    {"job": "save", "path": P}            save a ~1.6 MB checkpoint to P in a loop
    {"job": "train", "dir": D, "every_s": S}   train a tiny VAE, autosaving into D every S seconds
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

torch.set_num_threads(1)

from lvm_studio.core.checkpoint import make_checkpoint, save_checkpoint  # noqa: E402
from lvm_studio.core.vae import VAE, VAEConfig  # noqa: E402


def tiny_mnist(n_train: int = 600, n_test: int = 50):
    from lvm_studio.core.data import MNIST

    g = np.random.default_rng(0)
    x = (g.random((n_train + n_test, 28, 28)) < 0.2).astype(np.uint8) * 255
    y = g.integers(0, 10, n_train + n_test).astype(np.uint8)
    n_fit = n_train - 100
    return MNIST(x[:n_fit], y[:n_fit], x[n_fit:n_train], y[n_fit:n_train], x[n_train:], y[n_train:], "tiny")


def job_save(path: str) -> None:
    torch.manual_seed(0)
    ckpt = make_checkpoint(VAE(VAEConfig(latent_dim=16, hidden=(256,))))  # ~1.6 MB
    i = 0
    while True:
        ckpt["step"] = i
        save_checkpoint(path, ckpt)
        i += 1


def job_train(folder: str, every_s: float) -> None:
    from lvm_studio.core.autosave import Autosaver
    from lvm_studio.core.training import TrainConfig, Trainer

    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=2, hidden=(32,)))
    config = TrainConfig(epochs=10**6, batch_size=50, eval_n=20, eval_k=2, snapshot_interval_s=0.0)
    trainer = Trainer(model, tiny_mnist(), config, name="killed run")
    autosaver = Autosaver(folder, every_s=every_s)
    for _ in trainer.run():
        autosaver.maybe_save(trainer.checkpoint)


def warm_up() -> None:
    """Pay the first Adam step's imports (torch._dynamo, seconds) once, before any fork."""
    model = VAE(VAEConfig(latent_dim=2, hidden=(4,)))
    optimizer = torch.optim.Adam(model.parameters())
    model.encode(torch.rand(2, 784))[0].sum().backward()
    optimizer.step()
    optimizer.state_dict()


def main() -> int:
    warm_up()
    for line in sys.stdin:
        spec = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: run until killed
            try:
                if spec["job"] == "save":
                    job_save(spec["path"])
                elif spec["job"] == "train":
                    job_train(spec["dir"], float(spec["every_s"]))
            finally:
                os._exit(3)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
