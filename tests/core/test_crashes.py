"""Real processes killed with SIGKILL at random moments (issue 13, items 4 and 9): a save leaves the
target loadable and no temporary file survives the next save; a training run's autosave is always
a complete, verified checkpoint with its history and optimizer state, found on the next launch."""

from __future__ import annotations

import atexit
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lvm_studio.core import autosave
from lvm_studio.core.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from lvm_studio.core.vae import VAE, VAEConfig

HARNESS = Path(__file__).resolve().parents[1] / "kill_harness.py"
SAVE_KILLS = 12
TRAIN_KILLS = 6

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the harness forks its victims (POSIX)")


class Harness:
    """tests/kill_harness.py: forks one victim per job; we kill it and wait for its exit status."""

    def __init__(self):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HARNESS.parents[1])}
        self.proc = subprocess.Popen(
            [sys.executable, str(HARNESS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def _line(self, timeout_s: float = 60.0) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        assert ready, "the harness did not answer"
        return self.proc.stdout.readline().strip()

    def kill_after(self, spec: dict, wait_until, delay_s: float) -> int:
        """Start a victim, wait until wait_until() holds (it got going), sleep delay_s, SIGKILL it."""
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        pid = int(self._line())
        deadline = time.monotonic() + 60
        while not wait_until():
            assert time.monotonic() < deadline, "the victim never started its work"
            time.sleep(0.005)
        time.sleep(delay_s)
        os.kill(pid, signal.SIGKILL)
        status = self._line()
        assert status == f"exit {signal.SIGKILL}", status  # killed, not ended by itself
        return pid

    def close(self):
        if self.proc.poll() is not None:
            return
        # our own process, idle between jobs: killed, not left to tear torch down for seconds
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdin.close()
        self.proc.stdout.close()


# Started when pytest collects this module, so that its start (torch's import and Adam's first
# step in a fresh interpreter, seconds) overlaps the tests that run before these on the other core.
_EARLY = Harness() if hasattr(os, "fork") else None
if _EARLY is not None:
    atexit.register(_EARLY.close)  # also when these tests are deselected


@pytest.fixture(scope="module")
def harness():
    """One harness for both tests."""
    yield _EARLY


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_saves_killed_at_random_moments_leave_a_loadable_file_and_no_stray_temporaries(tmp_path, harness):
    target = tmp_path / "X.pt"
    save_checkpoint(target, make_checkpoint(VAE(VAEConfig(latent_dim=2, hidden=(8,)))))  # a previous good file
    rng = random.Random(4)
    mid_save, seen_steps = 0, set()
    for _ in range(SAVE_KILLS):
        # wait until the victim is writing, then kill it somewhere in this save or the next ones
        harness.kill_after({"job": "save", "path": str(target)}, lambda: _temporaries(tmp_path), rng.uniform(0, 0.2))
        left = _temporaries(tmp_path)
        assert len(left) <= 1  # the killed save's own, if it was killed mid-write
        mid_save += bool(left)
        ckpt = load_checkpoint(target)  # complete and verified by its digest, whatever the moment
        seen_steps.add(ckpt["step"])
    assert mid_save >= 1, "no kill landed inside a save: the test did not test anything"
    # each victim's first save already removed the previous victim's temporary file; so does a clean save
    save_checkpoint(target, load_checkpoint(target))
    assert _temporaries(tmp_path) == []
    print(f"{SAVE_KILLS} kills, {mid_save} mid-save, steps seen {sorted(seen_steps)}")


def test_training_killed_at_random_moments_leaves_a_recoverable_autosave(tmp_path, harness):
    rng = random.Random(9)
    recovered = []
    for trial in range(TRAIN_KILLS):
        data_dir = tmp_path / f"run{trial}"
        folder = autosave.autosave_dir(data_dir)

        def autosaved(folder=folder):
            return folder.is_dir() and any(p.suffix == ".pt" for p in folder.iterdir())

        pid = harness.kill_after(
            {"job": "train", "dir": str(data_dir), "every_s": 0.05}, autosaved, rng.uniform(0, 0.3)
        )
        found = autosave.find_autosaves(data_dir)  # what the next launch offers
        assert [a.pid for a in found] == [pid]
        assert _temporaries(folder) == [], "an interrupted autosave's temporary file is cleared"
        ckpt = load_checkpoint(found[0].path)
        assert ckpt["name"] == "killed run" and ckpt["step"] > 0 and found[0].step == ckpt["step"]
        assert ckpt["optimizer"] is not None and ckpt["optimizer"]["state"], "with the optimizer state"
        assert len(ckpt["history"]["train"]["step"]) > 0, "with its history"
        # recovering makes it this process's file; a clean exit removes it
        mine = autosave.adopt(found[0], data_dir)
        assert mine == autosave.autosave_path(data_dir) and autosave.find_autosaves(data_dir) == []
        autosave.remove_own_autosave(data_dir)
        assert not mine.exists()
        recovered.append(ckpt["step"])
    print(f"{TRAIN_KILLS} kills, autosaves recovered at steps {recovered}")
