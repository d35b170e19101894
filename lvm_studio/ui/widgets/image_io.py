"""Reading picture files (PNG, JPEG, BMP, GIF, TIFF, WebP, ...) as MNIST-style digits.

Decoding needs an image codec; Qt's QImageReader is already a dependency, so it lives here
in the UI layer, and lvm_studio.core.images does the array maths (grey, invert, fit 20×20,
centre by mass). Every failure raises ImageLoadError with a message fit for a dialog box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QImageReader

from lvm_studio.core.images import to_grey, to_mnist_format

MAX_SIDE = 1024  # larger pictures are scaled down by Qt first; a 28×28 result needs no more


class ImageLoadError(ValueError):
    """A file that cannot be read as a picture; str(e) is a complete message for the user."""


def supported_suffixes() -> list[str]:
    """File suffixes Qt can decode here, e.g. ['bmp', 'gif', 'jpeg', 'jpg', 'png', ...]."""
    return sorted(bytes(f).decode() for f in QImageReader.supportedImageFormats())


def file_dialog_filter() -> str:
    """A QFileDialog name filter for every readable picture format."""
    pats = " ".join(f"*.{s}" for s in supported_suffixes())
    return f"Images ({pats});;All files (*)"


def read_grey(path: str | Path) -> np.ndarray:
    """Decode a picture file to (H, W) float64 grey levels in [0, 1] (transparency reads as white)."""
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"Cannot open {path.name}: no such file ({path}).")
    if not path.is_file():
        raise ImageLoadError(f"Cannot open {path.name}: it is a folder, not an image file.")
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)  # honour EXIF rotation of photos
    size = reader.size()  # from the header, nothing decoded yet
    if size.isValid() and max(size.width(), size.height()) > MAX_SIDE:
        # decode straight to at most MAX_SIDE: a header claiming 100,000² pixels allocates no 40 GB
        reader.setScaledSize(size.scaled(MAX_SIDE, MAX_SIDE, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        kinds = ", ".join(s.upper() for s in ("png", "jpg", "bmp", "gif", "tiff", "webp") if s in supported_suffixes())
        raise ImageLoadError(
            f"{path.name} is not an image file that can be read "
            f"({reader.errorString()}). Choose a picture such as {kinds}."
        )
    if max(image.width(), image.height()) > MAX_SIDE:
        image = image.scaled(
            MAX_SIDE, MAX_SIDE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
    return qimage_to_grey(image)


def qimage_to_grey(image: QImage) -> np.ndarray:
    """A QImage of any format -> (H, W) float64 grey in [0, 1]; a copy that shares nothing with Qt."""
    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = rgba.height(), rgba.width()
    buf = np.frombuffer(rgba.constBits(), dtype=np.uint8, count=h * rgba.bytesPerLine())
    pixels = buf.reshape(h, rgba.bytesPerLine())[:, : 4 * w].reshape(h, w, 4).copy()  # (H, W, 4)
    return to_grey(pixels)


def load_image_file(path: str | Path, invert_if_light_background: bool = True) -> np.ndarray:
    """A picture file -> MNIST-style (28, 28) float32 in [0, 1]: grey, ink bright, fit 20×20, centred by mass.

    Raises ImageLoadError when the file is missing, not a picture, or shows nothing (a blank page).
    """
    grey = read_grey(path)
    digit = to_mnist_format(grey, invert_if_light_background=invert_if_light_background)
    if not digit.any():
        raise ImageLoadError(f"{Path(path).name} is blank: no digit could be found in it.")
    return digit
