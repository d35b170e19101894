"""Fuzzing the picture loader (ui.widgets.image_io.load_image_file): random bytes and mutated real PNG,
BMP and JPEG files give ImageLoadError (one message) or a 28×28 digit in [0, 1], never a traceback;
a header that claims a huge picture is decoded scaled down, not allocated in full."""

from __future__ import annotations

import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st

RANDOM_EXAMPLES = 40
MUTATED_EXAMPLES = 60


@pytest.fixture(scope="module")
def references(qapp):
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QColor, QImage, QPainter

    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.fillRect(15, 5, 8, 20, QColor("black"))
    painter.end()
    out = {}
    for fmt in ("PNG", "BMP", "JPG"):
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        assert image.save(buf, fmt)
        out[fmt.lower()] = bytes(data.data())
    return out


def _load(data: bytes, suffix: str):
    from lvm_studio.ui.widgets.image_io import ImageLoadError, load_image_file

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzzed.{suffix}"
        path.write_bytes(data)
        try:
            digit = load_image_file(path)
        except ImageLoadError as e:
            assert str(e) and "Traceback" not in str(e)
            return None
        assert path.read_bytes() == data
    assert digit.shape == (28, 28) and np.isfinite(digit).all() and digit.min() >= 0 and digit.max() <= 1
    return digit


@fuzz(RANDOM_EXAMPLES)
@given(st.binary(max_size=1024), st.sampled_from(["png", "bmp", "jpg", "gif", "txt"]))
def test_random_bytes(qapp, data, suffix):
    _load(data, suffix)


@fuzz(MUTATED_EXAMPLES)
@given(
    st.sampled_from(["png", "bmp", "jpg"]),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
    st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_real_pictures(references, fmt, flips, cut):
    data = bytearray(references[fmt])
    for i, v in flips:
        data[i % len(data)] ^= v
    if cut is not None:
        del data[max(1, cut % len(data)) :]
    _load(bytes(data), fmt)


def _png(width: int, height: int, body: bytes) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def test_a_png_claiming_100000_pixels_square_is_refused_or_scaled(qapp):
    """Its header claims 10¹⁰ pixels (10 GB); the loader reads it scaled to at most 1024 a side."""
    _load(_png(100_000, 100_000, b"\0" * 1000), "png")
