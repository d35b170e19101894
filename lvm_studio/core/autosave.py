"""Autosaves of a running model, so that a crash (power, kill -9, a driver) loses minutes, not the run.

    saver = Autosaver(data_dir)              # data_dir: the user's data folder, given by the caller
    for event in trainer.run():
        saver.maybe_save(trainer.checkpoint)  # a full checkpoint every AUTOSAVE_EVERY_S seconds
    ...
    saver.remove()                          # a clean exit: nothing to recover

Each process writes its own file, <data_dir>/autosave/autosave-<pid>.pt, through
core.checkpoint.save_checkpoint (atomic, with a digest, the optimizer state and the history), so
two app windows never overwrite each other's. On the next launch `find_autosaves` lists the files
of processes that no longer run (a running one's file is its own business); the app offers to
recover the newest and `adopt` renames it to the new process's name, so that it survives a second
crash and a clean exit removes it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lvm_studio.core.checkpoint import CheckpointError, load_checkpoint, remove_stale_temporaries, save_checkpoint

AUTOSAVE_EVERY_S = 180.0  # "every few minutes": a crash costs at most this much training
FOLDER = "autosave"
_NAME = re.compile(r"^autosave-(\d+)\.pt$")
_TMP_NAME = re.compile(r"^\.(autosave-\d+\.pt)\..*\.tmp$")

log = logging.getLogger(__name__)


def autosave_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / FOLDER


def autosave_path(data_dir: str | Path, pid: int | None = None) -> Path:
    return autosave_dir(data_dir) / f"autosave-{os.getpid() if pid is None else pid}.pt"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but is not ours, or cannot tell: leave its file alone
    return True


@dataclass(frozen=True)
class Autosave:
    """An autosave left by a process that ended without cleaning up (it crashed or was killed)."""

    path: Path
    pid: int
    name: str
    step: int
    epoch: float
    saved_at: float  # the file's modification time (seconds since the epoch)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        return f"{self.name}, step {self.step} (epoch {self.epoch:.2f}), autosaved {when}"


def find_autosaves(data_dir: str | Path) -> list[Autosave]:
    """Recoverable autosaves of processes that no longer run, newest first.

    Temporary files of their interrupted saves are removed; a file that does not load (it cannot
    be half-written, but a disk can damage it) is logged and skipped, never deleted.
    """
    folder = autosave_dir(data_dir)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:  # an autosave killed mid-write leaves its temporary file beside the target
        m = _TMP_NAME.match(entry.name)
        if m is not None:
            remove_stale_temporaries(folder / m.group(1))
    found = []
    for entry in entries:
        m = _NAME.match(entry.name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            ckpt = load_checkpoint(entry)
            saved_at = entry.stat().st_mtime
        except (CheckpointError, OSError) as e:
            log.warning("autosave %s cannot be recovered: %s", entry, e)
            continue
        found.append(
            Autosave(
                path=entry,
                pid=int(m.group(1)),
                name=str(ckpt.get("name") or "model"),
                step=int(ckpt.get("step", 0)),
                epoch=float(ckpt.get("epoch", 0.0)),
                saved_at=saved_at,
            )
        )
    return sorted(found, key=lambda a: a.saved_at, reverse=True)


def adopt(autosave: Autosave, data_dir: str | Path) -> Path:
    """Make a recovered autosave this process's own (a rename): kept on a crash, removed on a clean exit."""
    target = autosave_path(data_dir)
    os.replace(autosave.path, target)
    return target


def discard(autosave: Autosave) -> None:
    try:
        autosave.path.unlink()
    except FileNotFoundError:
        pass


class Autosaver:
    """Writes this process's autosave at most every `every_s` seconds; never raises on a full disk."""

    def __init__(
        self, data_dir: str | Path, every_s: float = AUTOSAVE_EVERY_S, clock: Callable[[], float] = time.monotonic
    ):
        if not every_s > 0:
            raise ValueError(f"autosave interval must be positive, got {every_s}")
        self.path = autosave_path(data_dir)
        self.every_s = float(every_s)
        self.clock = clock
        self._last = clock()
        self.saves = 0
        self.last_error: str | None = None

    def due(self) -> bool:
        return self.clock() - self._last >= self.every_s

    def maybe_save(self, make_checkpoint: Callable[[], dict]) -> Path | None:
        """Save make_checkpoint() when the interval has passed (it is called only then)."""
        if not self.due():
            return None
        return self.save(make_checkpoint())

    def save(self, checkpoint: dict) -> Path | None:
        self._last = self.clock()
        try:
            save_checkpoint(self.path, checkpoint)
        except (OSError, RuntimeError) as e:  # a full disk or a read-only folder must not end the run
            if self.last_error is None:
                log.warning("autosave to %s failed: %s", self.path, e)
            self.last_error = str(e)
            return None
        self.saves += 1
        self.last_error = None
        return self.path

    def remove(self) -> None:
        """A clean exit, or the model saved by the user: nothing left to recover."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not remove the autosave %s: %s", self.path, e)


def remove_own_autosave(data_dir: str | Path) -> None:
    """This process's autosave removed (e.g. at a clean exit), whether or not an Autosaver exists."""
    try:
        autosave_path(data_dir).unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("could not remove the autosave: %s", e)
