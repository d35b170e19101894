"""Fuzzing core.checkpoint.load_checkpoint: random bytes and mutated real checkpoints give a
CheckpointError of one line naming the file, or the unchanged contents; the file itself is kept."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from fuzz_settings import fuzz, one_line
from hypothesis import given
from hypothesis import strategies as st

from lvm_studio.core.checkpoint import CheckpointError, load_checkpoint, make_checkpoint, save_checkpoint
from lvm_studio.core.history import History, StepRecord
from lvm_studio.core.vae import VAE, VAEConfig

RANDOM_EXAMPLES = 60
MUTATED_EXAMPLES = 80


def _reference() -> tuple[bytes, dict]:
    torch.manual_seed(0)
    history = History()
    for s in (10, 20):
        history.add(StepRecord(s, s / 100, -150.0, -140.0, 10.0, 150.0, 1e-3, 1.0, 5000.0))
    optimizer = {
        "state": {0: {"step": torch.tensor(2.0), "exp_avg": torch.randn(4, 784)}},
        "param_groups": [{"lr": 1e-3, "params": [0]}],
    }
    ckpt = make_checkpoint(VAE(VAEConfig(latent_dim=2, hidden=(4,))), optimizer=optimizer, history=history)
    with tempfile.TemporaryDirectory() as d:
        path = save_checkpoint(Path(d) / "ref.pt", ckpt)
        return path.read_bytes(), load_checkpoint(path)


REFERENCE, CONTENTS = _reference()


def _same(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        same_kind = torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape
        return same_kind and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _load(data: bytes):
    """Load bytes from a file; returns the contents or the error message. The file is left as it was."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzzed.pt"
        path.write_bytes(data)
        try:
            result = load_checkpoint(path)
        except CheckpointError as e:
            message = str(e)
            assert one_line(message) and message.startswith(str(path)), message
            result = message
        assert path.read_bytes() == data, "loading changed the file"
        assert sorted(p.name for p in Path(d).iterdir()) == ["fuzzed.pt"]
        return result


random_bytes = st.one_of(
    st.binary(max_size=2048),
    st.binary(min_size=1, max_size=64).map(lambda b: b"PK\x03\x04" + b),  # a zip's magic, then garbage
    st.binary(max_size=256).map(lambda b: b"\x80\x02" + b),  # a pickle's PROTO opcode, then garbage
)


@fuzz(RANDOM_EXAMPLES)
@given(random_bytes)
def test_random_bytes_are_refused_in_one_line(data):
    assert isinstance(_load(data), str)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(REFERENCE) - 1), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, len(REFERENCE) - 1), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(REFERENCE)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(REFERENCE) - 1), st.integers(1, 64)),
)


def _mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for kind, i, v in mutations:
        i = min(i, len(out))
        if kind == "flip" and i < len(out):
            out[i] ^= v
        elif kind == "truncate":
            del out[i:]
        elif kind == "insert":
            out[i:i] = bytes([v])
        elif kind == "delete":
            del out[i : i + v]
    return bytes(out)


@fuzz(MUTATED_EXAMPLES)
@given(st.lists(mutation, min_size=1, max_size=3))
def test_mutated_checkpoints_are_refused_or_unchanged(mutations):
    result = _load(_mutate(REFERENCE, mutations))
    assert isinstance(result, str) or _same(result, CONTENTS), "a damaged checkpoint loaded with changed contents"
