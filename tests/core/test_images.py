"""MNIST-style normalisation: fit 20×20, centre of mass at (14, 14), any input format."""

import numpy as np
import pytest

from lvm_studio.core import images
from lvm_studio.core.data import load_mnist


@pytest.fixture(scope="module")
def digits():
    d = load_mnist()
    return d.x_test[:200].astype(np.float64) / 255.0


def _bbox(img, thr=images.INK_THRESHOLD):
    r = np.nonzero((img > thr).any(1))[0]
    c = np.nonzero((img > thr).any(0))[0]
    return r[-1] - r[0] + 1, c[-1] - c[0] + 1


def test_mnist_itself_follows_the_convention(digits):
    # the convention we copy: centre of mass within half a pixel of (14, 14), longer side 20
    for img in digits[:50]:
        r, c = images.centre_of_mass(img)
        assert abs(r - 14) <= 0.5 + 1e-9 and abs(c - 14) <= 0.5 + 1e-9
        assert max(_bbox(img)) <= 20


def test_centering_a_moved_mnist_digit_restores_it(digits):
    restored = 0
    for img in digits:
        if max(_bbox(img)) != 20:
            continue  # scaling would resample it; tested separately
        moved = np.zeros((40, 50))
        moved[5:33, 13:41] = img  # off-centre in a larger canvas
        out = images.center_by_mass(moved)
        assert np.allclose(out, img, atol=1e-6)
        restored += 1
    assert restored > 100


@pytest.mark.parametrize(
    "shape,box",
    [
        ((100, 60), (10, 5, 70, 35)),
        ((28, 28), (2, 20, 8, 26)),
        ((7, 300), (1, 10, 6, 290)),
        ((500, 500), (400, 400, 495, 420)),
    ],
)
def test_any_blob_fits_20x20_with_centre_of_mass_at_14(shape, box):
    img = np.zeros(shape)
    r0, c0, r1, c1 = box
    img[r0:r1, c0:c1] = 1.0
    img[r0 : (r0 + r1) // 2, c0 : (c0 + c1) // 2] = 0.3  # lopsided mass: the centre of mass is not the box centre
    out = images.center_by_mass(img)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    h, w = _bbox(out)
    assert max(h, w) == 20
    # aspect ratio preserved to within the rounding of one side
    assert abs(h / w - (r1 - r0) / (c1 - c0)) <= max(1 / w, h / w**2) + 1e-9
    r, c = images.centre_of_mass(out)
    assert abs(r - 14) <= 0.5 + 1e-9 and abs(c - 14) <= 0.5 + 1e-9


def test_blank_image_gives_black():
    assert not images.center_by_mass(np.zeros((40, 40))).any()
    assert not images.to_mnist_format(np.full((40, 40), 255, np.uint8)).any()


def test_area_resize_averages_blocks_and_keeps_the_mean():
    a = np.random.default_rng(0).random((12, 8))
    down = images.area_resize(a, 6, 4)
    assert np.allclose(down, a.reshape(6, 2, 4, 2).mean((1, 3)))
    for h, w in ((5, 3), (17, 29), (12, 8)):
        assert np.isclose(images.area_resize(a, h, w).mean(), a.mean())
    assert np.allclose(images.area_resize(a, 12, 8), a)


def test_large_dark_on_light_picture_becomes_the_mnist_digit(digits):
    img = next(d for d in digits if max(_bbox(d)) == 20)
    # a 140×140 scan: 5× upscaled, black ink on off-white paper, as 8-bit RGB
    big = np.kron(img, np.ones((5, 5)))
    paper = 0.9 - 0.8 * big
    rgb = np.repeat((paper * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    out = images.to_mnist_format(rgb)
    assert np.abs(out - img).mean() < 0.02
    r, c = images.centre_of_mass(out)
    assert abs(r - 14) <= 0.5 and abs(c - 14) <= 0.5


def test_to_grey_formats():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: reads as white paper
    assert np.allclose(images.to_grey(rgba), 1.0)
    rgb = np.zeros((2, 2, 3))
    rgb[..., 1] = 1.0
    assert np.allclose(images.to_grey(rgb), 0.587)
    assert np.allclose(images.to_grey(np.array([[0, 65535]], np.uint16)), [[0.0, 1.0]])
    with pytest.raises(ValueError):
        images.to_grey(np.zeros((2, 2, 2)))
