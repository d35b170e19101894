"""Training across processes (core/distributed.py): a 2-process gloo group on the CPU, as torchrun runs it.

The two processes are forked from the test (torch.multiprocessing), each running the CLI's `train`
with the environment torchrun would give it; forking keeps torch's import (seconds on a busy machine)
out of the children.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from lvm_studio.cli import main
from lvm_studio.core.checkpoint import history_from_checkpoint, load_checkpoint

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, argv: list[str], port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    code = main(argv)
    if code != 0:
        raise SystemExit(f"rank {rank} exited with {code}")


@pytest.fixture
def tiny_data(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((110, 8, 8)) ** 3 * 255).astype(np.uint8)  # 8 × 8 grey images, mostly dark
    path = tmp_path / "tiny.npz"
    y = np.zeros(110, np.uint8)
    # as `data import` writes it (labelled: False), so a tenth of the training images is held out for validation
    np.savez(path, x_train=x[:100], y_train=y[:100], x_test=x[100:], y_test=y[100:], labelled=np.array(False))
    return path


def _train_args(data, out, epochs=1, resume=None):
    args = ["train", "--data", str(data), "--out", str(out), "--epochs", str(epochs), "--quiet"]
    args += ["--latent-dim", "2", "--hidden", "16", "--batch-size", "20", "--log-every", "1", "--device", "cpu"]
    args += ["--eval-n", "10", "--eval-k", "2"]
    return args + (["--resume", str(resume)] if resume else [])


@pytest.mark.skipif(
    not torch.distributed.is_available() or os.name != "posix", reason="needs torch.distributed and fork"
)
def test_two_gloo_processes_train_as_one_process_with_the_same_global_batch(tiny_data, tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    assert main(_train_args(tiny_data, one)) == 0
    mp.start_processes(_rank, args=(_train_args(tiny_data, two), _free_port()), nprocs=WORLD, start_method="fork")
    a, b = load_checkpoint(one), load_checkpoint(two)  # rank 0 wrote a checkpoint in the usual format
    ha, hb = history_from_checkpoint(a), history_from_checkpoint(b)
    # 90 training images (10 held out for validation), global batch 20: 5 steps, the last of 10 images
    assert a["step"] == b["step"] == 5 and len(hb.train) == 5 and len(hb.evals) == 1
    assert hb.train[0].loss == pytest.approx(ha.train[0].loss, rel=1e-5)
    for ra, rb in zip(ha.train, hb.train):  # the same steps: the same noise, the same shards' mean
        assert rb.loss == pytest.approx(ra.loss, rel=1e-4) and rb.kl == pytest.approx(ra.kl, rel=1e-3, abs=1e-4)
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-4, atol=1e-5)
    # --resume continues the group's checkpoint on two processes
    port = _free_port()
    mp.start_processes(_rank, args=(_train_args(tiny_data, two, 2, two), port), nprocs=WORLD, start_method="fork")
    assert load_checkpoint(two)["step"] == 10
