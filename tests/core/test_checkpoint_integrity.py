"""Checkpoint integrity (issue 13): the digest refuses flipped bytes (item 3), temporary files of killed
saves are cleaned up (item 4), and a refused file gets one line, the project's own (item 10)."""

from __future__ import annotations

import logging
import os
import pickle
import random
import shutil
import time
import warnings
from pathlib import Path

import pytest
import torch

from lvm_studio.core import checkpoint as ck
from lvm_studio.core.checkpoint import (
    CheckpointError,
    checkpoint_digest,
    load_checkpoint,
    make_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from lvm_studio.core.vae import VAE, VAEConfig

N_FLIPS = 16  # ~0.15 s a load; the 40 trials: python -m bench.reliability (docs/reliability.md)
SHIPPED = Path(__file__).resolve().parents[2] / "pretrained"  # this checkout's files, not an installed copy


def _same(a, b) -> bool:
    """Equal as checkpoints: tensors bit for bit (dtype and shape too), everything else by ==."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        return (
            torch.is_tensor(a)
            and torch.is_tensor(b)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)  # NaN == NaN here


def test_flipped_bytes_in_a_shipped_model_are_refused_or_harmless(tmp_path):
    """Random single-byte flips in pretrained/vae2.pt: none loads with changed contents."""
    source = SHIPPED / "vae2.pt"
    original = load_checkpoint(source)
    assert original["digest"] == checkpoint_digest(original)
    data = bytearray(source.read_bytes())
    rng = random.Random(13)
    refused, harmless = 0, 0
    for trial in range(N_FLIPS):
        flipped = bytearray(data)
        i = rng.randrange(len(flipped))
        flipped[i] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flip{trial}.pt"
        path.write_bytes(bytes(flipped))
        try:
            loaded = load_checkpoint(path)
        except CheckpointError as e:
            assert str(path) in str(e) and "\n" not in str(e)
            refused += 1
            continue
        # a flip in bytes nothing reads (zip padding, a local header's copy of a field) changes nothing
        assert _same(loaded, original), f"byte {i} changed the contents and was not refused"
        harmless += 1
    assert refused + harmless == N_FLIPS
    assert refused >= N_FLIPS * 3 // 4, f"only {refused}/{N_FLIPS} refused"


def test_digest_covers_weights_optimizer_and_settings_of_any_kind(tmp_path):
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=2, hidden=(8,)))
    # the shape of Adam's state_dict (a real Adam costs seconds of imports on its first step)
    optimizer = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(8, 784), "exp_avg_sq": torch.rand(8, 784)}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}],
    }
    ckpt = make_checkpoint(model, optimizer=optimizer)
    path = save_checkpoint(tmp_path / "a.pt", ckpt)
    assert "digest" not in ckpt, "the caller's dict is left as it was"
    stored = torch.load(path, weights_only=True)

    def tampered(change):
        bad = torch.load(path, weights_only=True)
        change(bad)
        torch.save(bad, tmp_path / "bad.pt")  # torch.save keeps the old digest: tampering, not a save
        with pytest.raises(CheckpointError, match="damaged"):
            load_checkpoint(tmp_path / "bad.pt")

    tampered(lambda c: c["state_dict"]["encoder.0.weight"].view(-1)[3].add_(1e-3))
    tampered(lambda c: c["optimizer"]["state"][0]["exp_avg_sq"].view(-1)[0].mul_(2))
    tampered(lambda c: c.__setitem__("step", c["step"] + 1))
    tampered(lambda c: c["model_config"].__setitem__("min_scale", 0.5))
    # generic: a dict of another kind, with tensors nested anywhere, and key order irrelevant
    other = {"kind": "made", "nets": [{"w": torch.ones(3)}, (torch.zeros(2, dtype=torch.bfloat16),)], "x": 1}
    d0 = checkpoint_digest(other)
    assert d0 == checkpoint_digest(dict(reversed(list(other.items()))))
    other["nets"][0]["w"][1] = 2.0
    assert checkpoint_digest(other) != d0
    assert checkpoint_digest({"h": [1.0, 2.0]}) != checkpoint_digest({"h": [1.0, 2.0000000000000004]})
    assert checkpoint_digest({"h": [1, 2]}) != checkpoint_digest({"h": [1.0, 2.0]})
    assert stored["digest"] == checkpoint_digest(stored)


def test_a_legacy_checkpoint_without_digest_loads_with_one_warning(tmp_path, caplog):
    ckpt = make_checkpoint(VAE(VAEConfig(latent_dim=2, hidden=(8,))))
    torch.save(ckpt, tmp_path / "old.pt")  # as versions before the digest wrote it
    with caplog.at_level(logging.WARNING, logger="lvm_studio.core.checkpoint"):
        loaded = load_checkpoint(tmp_path / "old.pt")
    assert "digest" not in loaded
    warnings_logged = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_logged) == 1 and "digest" in warnings_logged[0].getMessage()


def test_a_protocol_5_pickle_gets_one_line_and_no_torch_warnings(tmp_path, capfd):
    path = tmp_path / "p5.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": ck.FORMAT, "version": 1, "x": bytearray(b"abc")}, f, protocol=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
    assert caught == [], [str(w.message) for w in caught]
    assert capfd.readouterr().err == ""
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_stale_temporaries_of_dead_writers_are_removed_by_the_next_save(tmp_path):
    target = tmp_path / "X.pt"
    dead = tmp_path / f".X.pt.{2**22 + 12345}-abcd1234.tmp"  # above Linux's pid_max default: no such process
    live = tmp_path / f".X.pt.{os.getppid()}-efgh5678.tmp"  # a live writer's (our parent exists)
    legacy_old = tmp_path / ".X.pt.q1w2e3r4.tmp"  # older versions: no pid; removed once old
    legacy_new = tmp_path / ".X.pt.z9x8c7v6.tmp"
    other = tmp_path / ".Y.pt.1-abc.tmp"  # another target's: not ours to judge
    for p in (dead, live, legacy_old, legacy_new, other):
        p.write_bytes(b"partial")
    old = time.time() - ck.STALE_TMP_AGE_S - 5
    os.utime(legacy_old, (old, old))
    save_checkpoint(target, make_checkpoint(VAE(VAEConfig(latent_dim=2, hidden=(8,)))))
    assert not dead.exists() and not legacy_old.exists()
    assert live.exists() and legacy_new.exists() and other.exists()
    assert load_checkpoint(target)["format"] == ck.FORMAT
    assert remove_stale_temporaries(target) == []


def test_save_cleans_its_own_temporary_file_on_failure(tmp_path, monkeypatch):
    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "X.pt", {"format": ck.FORMAT})
    assert list(tmp_path.iterdir()) == []


def test_copy_of_a_checkpoint_keeps_its_digest(tmp_path):
    """Copying or renaming a checkpoint file is not damage."""
    shutil.copy(SHIPPED / "vae2.pt", tmp_path / "copy.pt")
    assert load_checkpoint(tmp_path / "copy.pt")["digest"].startswith("sha256:")
