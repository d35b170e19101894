"""Reading .npz / .npy files that may lie: every size is checked before anything is allocated.

`np.load` trusts the header: an .npz member whose header claims 10¹² elements makes numpy
allocate 713 TiB before it reads a byte (issue 13, item 7), and a header over numpy's limit
gets a three-line message that suggests `allow_pickle=True`. `load_arrays` reads each header
itself and compares the claimed shape × itemsize with the bytes the file (or, for a zip member,
the member's uncompressed `file_size`) really holds and with a bound, and only then lets numpy
read the data, always with allow_pickle=False. Every problem is one ArrayFileError line that
names the file.
"""

from __future__ import annotations

import io
import lzma
import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP = b"PK\x05\x06"  # an archive with no members starts with its end-of-directory record
# numpy's own default limit on a header (np.load's max_header_size); a real header is ~100 bytes
MAX_HEADER_BYTES = 10_000
DEFAULT_MAX_BYTES = 2**31


class ArrayFileError(ValueError):
    """An array file that cannot be used; the message is one line naming the file and the problem."""


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ArrayFileError("the array header is truncated")
    return data


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length) of the .npy stream at f; f is left at the data."""
    magic = _read_exact(f, 8)
    if magic[:6] != NPY_MAGIC:
        raise ArrayFileError("not a .npy array (bad magic bytes)")
    major = magic[6]
    if major not in (1, 2, 3):
        raise ArrayFileError(f"unsupported .npy format version {major}.{magic[7]}")
    length_bytes = _read_exact(f, 2 if major == 1 else 4)
    (hlen,) = struct.unpack("<H" if major == 1 else "<I", length_bytes)
    if hlen > MAX_HEADER_BYTES:  # checked before reading it: numpy would read all of it first
        raise ArrayFileError(f"its array header claims {_size(hlen)}, over the {MAX_HEADER_BYTES:,} bytes allowed")
    header = io.BytesIO(magic + length_bytes + _read_exact(f, hlen))
    try:  # numpy's own parser (ast.literal_eval of the header dict), on the bytes already bounded
        version = npy_format.read_magic(header)
        # version 3.0 differs from 2.0 only in allowing utf-8 field names
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = reader(header, max_header_size=MAX_HEADER_BYTES)
    # any exception: ast and tokenize raise SyntaxError, TokenError, RecursionError, ... on garbage
    except Exception as e:
        raise ArrayFileError(f"its array header is not readable ({_first_line(e)})") from None
    if (
        not isinstance(shape, tuple)
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        or not isinstance(fortran, bool)
    ):
        raise ArrayFileError("its array header has an invalid shape or order")
    if dtype.hasobject:
        raise ArrayFileError("it holds Python objects (a pickle), which are refused for safety")
    return shape, fortran, dtype, len(header.getvalue())


def _check_claim(what: str, shape, dtype: np.dtype, available: int, budget: int) -> int:
    """The claimed data size in bytes, after checking it fits the real bytes and the budget."""
    claimed = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if claimed > available:
        raise ArrayFileError(
            f"{what} claims shape {shape} of {dtype} ({_size(claimed)}) but holds only {_size(available)}"
        )
    if claimed > budget:
        raise ArrayFileError(f"{what} claims shape {shape} of {dtype} ({_size(claimed)}), over the limit")
    return claimed


def _read_array(f, shape, fortran: bool, dtype: np.dtype) -> np.ndarray:
    count = math.prod(shape)
    if dtype.itemsize == 0 or count == 0:
        return np.zeros(shape, dtype=dtype, order="F" if fortran else "C")
    a = np.empty(count, dtype=dtype)  # the one allocation, of the size checked against the file
    buf = memoryview(a.view(np.uint8))
    done = 0
    while done < len(buf):
        n = f.readinto(buf[done:])
        if not n:
            raise ArrayFileError("its data is truncated")
        done += n
    return a.reshape(shape[::-1]).transpose() if fortran else a.reshape(shape)


# what a damaged zip member or stream can raise while numpy or zipfile reads it
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    struct.error,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,  # an encrypted member
    NotImplementedError,  # an unsupported compression method
    OverflowError,
    TypeError,
    UnicodeDecodeError,
)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def load_arrays(path, *, max_bytes: int = DEFAULT_MAX_BYTES, allow_keys=None) -> dict[str, np.ndarray]:
    """The arrays of an .npz (by key, without '.npy') or of an .npy (key 'arr_0').

    allow_keys: if given, only these keys are read (others are never decompressed); a key that
    is absent is simply not in the result. max_bytes bounds the sum of all arrays read. Raises
    ArrayFileError (a ValueError) with one line naming the file for anything unusable.
    """
    path = Path(path)
    name = str(path)
    allowed = None if allow_keys is None else set(allow_keys)
    try:
        if not path.is_file():
            raise ArrayFileError(f"{name}: no such file")
        size = path.stat().st_size
        kind = ".npy file"
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0)
            if head.startswith(NPY_MAGIC):
                return _load_npy(f, name, size, max_bytes, allowed)
            if head.startswith((ZIP_MAGIC, EMPTY_ZIP)):
                kind = ".npz archive"
                return _load_npz(f, name, max_bytes, allowed)
        raise ArrayFileError(f"{name}: not a .npz or .npy array file")
    except ArrayFileError as e:
        msg = str(e)
        raise ArrayFileError(msg if msg.startswith(name) else f"{name}: {msg}") from None
    except MemoryError:  # the checks bound every allocation; this is the machine being short of memory
        raise ArrayFileError(f"{name}: not enough memory to load the arrays") from None
    except _READ_ERRORS as e:
        raise ArrayFileError(f"{name}: not a readable {kind} ({_first_line(e)})") from None


def array_keys(path) -> list[str]:
    """The keys of an .npz's arrays without reading any of them ([] for anything unreadable)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
    except _READ_ERRORS:
        return []


def _load_npy(f, name: str, size: int, max_bytes: int, allowed) -> dict[str, np.ndarray]:
    if allowed is not None and "arr_0" not in allowed:
        return {}
    shape, fortran, dtype, offset = _read_header(f)
    _check_claim("the array", shape, dtype, size - offset, max_bytes)
    return {"arr_0": _read_array(f, shape, fortran, dtype)}


def _load_npz(f, name: str, max_bytes: int, allowed) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    budget = max_bytes
    with zipfile.ZipFile(f) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy") or info.is_dir():
                continue  # numpy writes only .npy members; anything else is not an array
            key = info.filename[: -len(".npy")]
            if (allowed is not None and key not in allowed) or key in out:
                continue
            with zf.open(info) as member:
                try:
                    shape, fortran, dtype, offset = _read_header(member)
                except ArrayFileError as e:
                    raise ArrayFileError(f"member '{key}': {e}") from None
                # the member's uncompressed size from the archive's directory; zipfile never
                # returns more than it (and checks the CRC at its end)
                claimed = _check_claim(f"member '{key}'", shape, dtype, info.file_size - offset, budget)
                budget -= claimed
                try:
                    out[key] = _read_array(member, shape, fortran, dtype)
                except ArrayFileError as e:
                    raise ArrayFileError(f"member '{key}': {e}") from None
    return out
