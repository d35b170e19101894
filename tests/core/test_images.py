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


# --- one placement for a digit and its mask -------------------------------------------------------


def test_placement_of_a_uniform_box_in_closed_form():
    img = np.zeros((28, 28))
    img[3:13, 7:12] = 1.0  # 10 × 5: scaled by 2 to 20 × 10, centre of mass (9.5, 4.5) in the resized crop
    p = images.find_placement(img)
    assert (p.r0, p.c0, p.h, p.w) == (3, 7, 10, 5)
    assert (p.new_h, p.new_w) == (20, 10)
    assert (p.top, p.left) == (5, 10)  # floor(14 − 9.5 + ½), floor(14 − 4.5 + ½)
    out = images.center_by_mass(img)
    expected = np.zeros((28, 28), np.float32)
    expected[5:25, 10:20] = 1.0
    np.testing.assert_array_equal(out, expected)
    assert images.find_placement(np.zeros((28, 28))) is None


def test_center_by_mass_is_its_placement_applied(digits):
    for img in digits[:20]:
        moved = np.roll(img, (2, -3), (0, 1))
        out, none = images.apply_placement(images.find_placement(moved), moved)
        assert none is None
        np.testing.assert_array_equal(out, images.center_by_mass(moved))


@pytest.mark.parametrize("box", [(2, 1, 22, 9), (15, 10, 25, 16), (0, 18, 6, 28)])  # scale 1, 2 and 2 (at the border)
def test_image_and_mask_stay_aligned_pixel_for_pixel(box):
    # integer scales (longer side 20 or 10): every centred pixel is one input pixel, so the mask
    # carried along must hide exactly the pixels whose values it hid before
    rng = np.random.default_rng(sum(box))
    r0, c0, r1, c1 = box
    img = np.zeros((28, 28))
    img[r0:r1, c0:c1] = rng.uniform(0.2, 1.0, (r1 - r0, c1 - c0))
    mask = rng.random((28, 28)) < 0.4
    out, out_mask = images.centre_with_mask(img, mask)
    p = images.find_placement(img)
    assert max(p.h, p.w) in (10, 20)
    src_r, src_c = p.source_pixels(img.shape)
    rows = slice(max(p.top, 0), min(p.top + p.new_h, 28))
    cols = slice(max(p.left, 0), min(p.left + p.new_w, 28))
    np.testing.assert_allclose(out[rows, cols], img[np.ix_(src_r, src_c)][rows, cols], atol=1e-6)
    np.testing.assert_array_equal(out_mask, mask[np.ix_(src_r, src_c)])
    # the hidden ink is the same ink: the same values, as many times as the scale repeats them
    scale = p.new_h // p.h
    hidden_before = np.sort(np.repeat(img[mask & (img > 0)], scale * scale))
    hidden_after = np.sort(out[out_mask & (out > 0)].astype(np.float64))
    np.testing.assert_allclose(hidden_after, hidden_before, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_an_ink_mask_follows_the_ink_at_any_scale(seed):
    # a blob of any size: the mask "ink" carried along hides every fully inked centred pixel and
    # no blank one (inside the pasted digit; outside it the mask's edges are extended)
    rng = np.random.default_rng(seed)
    h, w = rng.integers(3, 25, 2)
    r0, c0 = rng.integers(1, 28 - h), rng.integers(1, 28 - w)
    img = np.zeros((28, 28))
    img[r0 : r0 + h, c0 : c0 + w] = rng.random((h, w)) < 0.6
    out, out_mask = images.centre_with_mask(img, img > 0)
    p = images.find_placement(img)
    inside = np.zeros((28, 28), bool)
    inside[max(p.top, 0) : p.top + p.new_h, max(p.left, 0) : p.left + p.new_w] = True
    assert out_mask[inside & (out >= 1 - 1e-6)].all()
    assert not out_mask[inside & (out == 0)].any()


def test_centre_with_mask_moves_the_mask_with_the_ink():
    rng = np.random.default_rng(0)
    blob = np.zeros((28, 28))
    blob[6:18, 9:15] = rng.uniform(0.5, 1.0, (12, 6))
    centred = images.center_by_mass(blob)
    mask = np.zeros((28, 28), bool)
    mask[:14] = True
    # an already centred digit stays put, and so does its mask
    img2, mask2 = images.centre_with_mask(centred, mask)
    np.testing.assert_array_equal(img2, centred)
    np.testing.assert_array_equal(mask2, mask)
    # shifted away: centring brings back the digit and the mask, shifted alike
    shifted, shifted_mask = np.roll(centred, (3, -2), (0, 1)), np.roll(mask, (3, -2), (0, 1))
    shifted_mask[:3] = True  # the rolled-in rows: extend the hidden band
    img3, mask3 = images.centre_with_mask(shifted, shifted_mask)
    np.testing.assert_array_equal(img3, centred)
    np.testing.assert_array_equal(mask3, mask)


def test_centre_with_mask_leaves_a_blank_drawing_and_its_mask():
    mask = np.zeros((28, 28), bool)
    mask[3:9, 4:20] = True
    img, out_mask = images.centre_with_mask(np.zeros(784), mask.reshape(-1))
    assert img.shape == (28, 28) and img.dtype == np.float32 and not img.any()
    np.testing.assert_array_equal(out_mask, mask)


# --- back from a placement's frame (the inpainting panel centres for the model only) ----------------


def test_unapply_placement_undoes_a_shift_and_an_integer_enlargement_exactly():
    rng = np.random.default_rng(3)
    for box in ((3, 7, 13, 12), (2, 1, 22, 9), (15, 10, 25, 16)):  # scale 2, 1 (a shift) and 2 (near the edge)
        img = np.zeros((28, 28))
        r0, c0, r1, c1 = box
        img[r0:r1, c0:c1] = rng.uniform(0.2, 1.0, (r1 - r0, c1 - c0))
        p = images.find_placement(img)
        placed, _ = images.apply_placement(p, img)
        np.testing.assert_allclose(images.unapply_placement(p, placed), img, atol=1e-6)


def test_back_weights_in_closed_form():
    # the 10 × 5 box of test_placement_of_a_uniform_box_in_closed_form: rows ×2 from row 3 to row 5
    img = np.zeros((28, 28))
    img[3:13, 7:12] = 1.0
    w_rows, w_cols = images.find_placement(img).back_weights()
    # canvas row u lies at placed rows [5 + 2(u − 3), 7 + 2(u − 3)): half of each of two cells
    for u in range(28):
        expected = np.zeros(28)
        for i in (5 + 2 * (u - 3), 6 + 2 * (u - 3)):
            if 0 <= i < 28:
                expected[i] = 0.5
        np.testing.assert_allclose(w_rows[u], expected, atol=1e-12)
    assert w_rows.sum(1).max() == pytest.approx(1.0)
    assert w_rows[0].sum() == pytest.approx(0.5)  # half of it lies above the frame: black there
    # a shrink (a 28-pixel-long stroke to 20): every canvas row inside the frame keeps weight 1
    tall = np.zeros((28, 28))
    tall[:, 13:15] = 1.0
    w_rows, _ = images.find_placement(tall).back_weights()
    np.testing.assert_allclose(w_rows.sum(1), 1.0, atol=1e-12)
    assert images.unapply_placement(None, img).shape == (28, 28)
