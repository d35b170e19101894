"""Fuzzing core.array_files.load_arrays and core.data.load_mnist: random bytes, mutated real .npz/.npy
files and headers with random shapes give one-line ArrayFileError/DataError or arrays within the
bound, never a traceback, and never an allocation near what a header claims."""

from __future__ import annotations

import io
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
from fuzz_settings import fuzz, one_line
from hypothesis import given
from hypothesis import strategies as st

from lvm_studio.core.array_files import ArrayFileError, load_arrays
from lvm_studio.core.data import DataError, load_mnist

RANDOM_EXAMPLES = 60
MUTATED_EXAMPLES = 80
HEADER_EXAMPLES = 60
MAX_BYTES = 2**20  # the bound the fuzzed loads run under
PEAK_BYTES = 8 * 2**20  # what a refused or accepted load may allocate in all (files here are < 100 kB)


def _reference_files() -> dict[str, bytes]:
    g = np.random.default_rng(0)
    arrays = {
        "x_train": g.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "y_train": g.integers(0, 10, 12, dtype=np.uint8),
        "x_test": g.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": g.integers(0, 10, 3, dtype=np.uint8),
        "f": g.normal(size=(5, 3)).astype(">f4"),
    }
    out = {}
    for name, save in (("plain.npz", np.savez), ("packed.npz", np.savez_compressed)):
        buf = io.BytesIO()
        save(buf, **arrays)
        out[name] = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(arrays["f"]))
    out["one.npy"] = buf.getvalue()
    return out


REFERENCES = _reference_files()


def _load(data: bytes, name: str = "fuzzed.npz"):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        tracemalloc.start()
        try:
            try:
                result = load_arrays(path, max_bytes=MAX_BYTES)
            except ArrayFileError as e:
                assert one_line(str(e)) and str(e).startswith(str(path)), str(e)
                result = None
            try:
                load_mnist(path, n_validation=2)
            except DataError as e:
                assert one_line(str(e)) and str(e).startswith(str(path)), str(e)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < PEAK_BYTES, f"allocated {peak} bytes"
        assert path.read_bytes() == data
    if result is not None:
        assert sum(a.nbytes for a in result.values()) <= MAX_BYTES
    return result


@fuzz(RANDOM_EXAMPLES)
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=512).map(lambda b: b"PK\x03\x04" + b),
        st.binary(max_size=512).map(lambda b: b"\x93NUMPY" + b),
    )
)
def test_random_bytes(data):
    _load(data)


@fuzz(MUTATED_EXAMPLES)
@given(
    st.sampled_from(sorted(REFERENCES)),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
    st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_real_files(name, flips, cut):
    data = bytearray(REFERENCES[name])
    for i, v in flips:
        data[i % len(data)] ^= v
    if cut is not None:
        del data[cut % len(data) :]
    _load(bytes(data), name)


descr = st.sampled_from(["<f8", "|u1", "<i4", ">f4", "|b1", "<c16", "|O", "<U10", "|V8", "bogus", "<f8 "])
shape = st.lists(st.integers(-2, 10**13), max_size=4).map(tuple)


@fuzz(HEADER_EXAMPLES)
@given(descr, shape, st.booleans(), st.integers(0, 200), st.booleans())
def test_headers_claiming_any_shape(descr_, shape_, fortran, payload, in_zip):
    header = repr({"descr": descr_, "fortran_order": fortran, "shape": shape_}).encode() + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * payload
    if in_zip:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("x_train.npy", npy)
        npy = buf.getvalue()
    _load(npy, "claims.npz" if in_zip else "claims.npy")
