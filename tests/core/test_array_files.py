"""core.array_files.load_arrays: arrays read back exactly, and files that lie about their size refused
before numpy allocates anything (issue 13, item 7), each with one line naming the file."""

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from lvm_studio.core.array_files import MAX_HEADER_BYTES, ArrayFileError, load_arrays
from lvm_studio.core.data import DataError, load_mnist


def _header(shape, descr="<f8", fortran=False, version=(1, 0)) -> bytes:
    buf = io.BytesIO()
    d = {"descr": descr, "fortran_order": fortran, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, d)
    else:
        np.lib.format.write_array_header_2_0(buf, d)
    return buf.getvalue()


def _error(path, **kw) -> str:
    with pytest.raises(ArrayFileError) as info:
        load_arrays(path, **kw)
    message = str(info.value)
    assert message.startswith(str(path)), "the message names the file"
    assert "\n" not in message, "one line"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    return message


def test_round_trip_of_npz_and_npy(tmp_path):
    g = np.random.default_rng(0)
    arrays = {
        "a": g.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "b": g.normal(size=(3, 4)).astype(">f4"),  # big-endian
        "c": np.asfortranarray(g.normal(size=(4, 6))),
        "empty": np.zeros((0, 3), np.int16),
        "scalar": np.array(3.5),
        "rec": np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]),
    }
    np.savez(tmp_path / "plain.npz", **arrays)
    np.savez_compressed(tmp_path / "packed.npz", **arrays)
    for name in ("plain.npz", "packed.npz"):
        out = load_arrays(tmp_path / name)
        assert set(out) == set(arrays)
        for k, v in arrays.items():
            assert out[k].dtype == v.dtype and out[k].shape == v.shape
            np.testing.assert_array_equal(out[k], v)
            assert out[k].flags.writeable
    np.save(tmp_path / "one.npy", arrays["c"])
    np.testing.assert_array_equal(load_arrays(tmp_path / "one.npy")["arr_0"], arrays["c"])


def test_allow_keys_reads_only_those(tmp_path):
    path = tmp_path / "f.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("good.npy", _header((2,), "<i8") + np.arange(2, dtype="<i8").tobytes())
        z.writestr("liar.npy", _header((10**12,)) + b"\0" * 80)  # never opened when not allowed
    assert list(load_arrays(path, allow_keys=["good", "absent"])) == ["good"]
    assert "liar" in _error(path)


@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npz_member_claiming_a_terabyte_is_refused_before_allocating(tmp_path, compress):
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        z.writestr("x_train.npy", _header((10**12,)) + b"\0" * 80)
    tracemalloc.start()
    message = _error(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "x_train" in message and "7.3 TiB" in message and "holds only 80 bytes" in message
    assert peak < 5 * 2**20, f"allocated {peak} bytes for a refused file"


def test_claim_within_the_file_but_over_max_bytes(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(1000, np.float64))
    assert "over the limit" in _error(tmp_path / "a.npy", max_bytes=4000)
    assert load_arrays(tmp_path / "a.npy", max_bytes=8000)["arr_0"].shape == (1000,)
    np.savez(tmp_path / "two.npz", a=np.zeros(600), b=np.zeros(600))  # 4800 bytes each, 9600 together
    assert "'b'" in _error(tmp_path / "two.npz", max_bytes=8000)


def test_truncated_npy_data(tmp_path):
    path = tmp_path / "t.npy"
    path.write_bytes(_header((100,), "<f4") + b"\0" * 40)
    assert "holds only 40 bytes" in _error(path)


def test_huge_header_is_one_line_without_pickle_advice(tmp_path):
    """A 20 MB header: numpy's own message is three lines and suggests allow_pickle=True."""
    path = tmp_path / "h.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + (20_000_000).to_bytes(4, "little") + b" " * 1000)
    message = _error(path)
    assert "array header claims 19.1 MiB" in message and f"{MAX_HEADER_BYTES:,}" in message
    assert "pickle" not in message


@pytest.mark.parametrize(
    "header",
    [b"(" * 9000, b"{'descr': '<f8', 'shape': (-1,), 'fortran_order': False}", b"\xff\xfe garbage", b"{}"],
    ids=["nested", "negative-shape", "bytes", "empty-dict"],
)
def test_unreadable_headers(tmp_path, header):
    path = tmp_path / "g.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    assert "header" in _error(path)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "refused for safety" in _error(tmp_path / "o.npy")


@pytest.mark.parametrize("content", [b"", b"hello world", b"PK\x03\x04 cut short", b"\x93NUMPY\x01"])
def test_not_array_files(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    _error(path)


def test_mnist_loader_and_the_test_set_path_use_the_checks(tmp_path):
    """load_mnist (train, eval, the app's test set) refuses a lying member with DataError, one line."""
    path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x_train.npy", _header((10**12, 28, 28), "|u1") + b"\0" * 80)
        for k in ("y_train", "x_test", "y_test"):
            z.writestr(f"{k}.npy", _header((1,), "|u1") + b"\0")
    with pytest.raises(DataError) as info:
        load_mnist(path)
    assert str(path) in str(info.value) and "x_train" in str(info.value) and "\n" not in str(info.value)
