"""Loading picture files as MNIST digits; a file that is not an image gives a clear message."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtGui import QImage

from lvm_studio.core.images import centre_of_mass
from lvm_studio.ui.widgets.image_io import ImageLoadError, load_image_file, supported_suffixes


def _save_grey(path, grey_uint8: np.ndarray, fmt: str):
    h, w = grey_uint8.shape
    data = np.ascontiguousarray(grey_uint8)
    img = QImage(data.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    assert img.save(str(path), fmt)


def test_non_image_file_gives_a_clear_message(tmp_path):
    f = tmp_path / "notes.png"  # the suffix lies: it is text
    f.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageLoadError) as e:
        load_image_file(f)
    msg = str(e.value)
    assert "notes.png" in msg and "not an image file" in msg and "PNG" in msg


def test_missing_file_and_folder_give_clear_messages(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image_file(tmp_path / "gone.png")
    with pytest.raises(ImageLoadError, match="folder"):
        load_image_file(tmp_path)


def test_blank_picture_is_reported(tmp_path):
    f = tmp_path / "blank.png"
    _save_grey(f, np.full((50, 40), 255, np.uint8), "PNG")
    with pytest.raises(ImageLoadError, match="blank"):
        load_image_file(f)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "JPG"])
def test_scanned_digit_round_trips_to_mnist(tmp_path, mnist, fmt):
    if fmt.lower() not in supported_suffixes():
        pytest.skip(f"{fmt} not supported by this Qt build")
    digits = mnist.x_test[:50].astype(np.float64) / 255
    full = [d for d in digits if max(np.ptp(np.nonzero(d.any(1))[0]), np.ptp(np.nonzero(d.any(0))[0])) == 19]
    img = full[4]  # a 20-pixel-tall digit, so no resampling: the result should be the digit itself
    scan = (255 * (1 - np.kron(img, np.ones((4, 4))))).round().astype(np.uint8)  # dark ink on white, 112×112
    f = tmp_path / f"digit.{fmt.lower()}"
    _save_grey(f, scan, fmt)
    out = load_image_file(f)
    assert out.shape == (28, 28) and out.dtype == np.float32
    if fmt != "JPG":
        assert np.abs(out - img).mean() < 0.01
    else:
        # lossy coding drops the faintest edge pixels: the box is resampled slightly and may move a pixel
        err = min(np.abs(np.roll(out, (dr, dc), (0, 1)) - img).mean() for dr in (-1, 0, 1) for dc in (-1, 0, 1))
        assert err < 0.03
    r, c = centre_of_mass(out)
    assert abs(r - 14) <= 0.5 and abs(c - 14) <= 0.5


def test_a_digit_image_caption_is_elided_to_its_width(qtbot):
    from PySide6.QtGui import QFontMetrics

    from lvm_studio.ui.widgets.digit_image import DigitImage

    caption = "completion, step 200 of 200, ELBO −93.2 nats"
    image = DigitImage(min_side=40, hint_side=60, caption=caption)
    qtbot.addWidget(image)
    image.resize(60, 80)
    shown = image.caption_shown()
    assert shown != caption and shown.endswith("…")
    assert QFontMetrics(image.font()).horizontalAdvance(shown) <= image.width()
    image.resize(600, 80)
    assert image.caption_shown() == caption
    image.grab()  # paints with it
