"""Mask presets: right regions, right fractions, True = missing."""

import numpy as np
import pytest

from lvm_studio.core import masks


def test_halves_cover_the_named_region_exactly():
    rows, cols = np.indices((28, 28))
    assert np.array_equal(masks.top_half(), rows < 14)
    assert np.array_equal(masks.bottom_half(), rows >= 14)
    assert np.array_equal(masks.left_half(), cols < 14)
    assert np.array_equal(masks.right_half(), cols >= 14)
    for m in (masks.top_half(), masks.bottom_half(), masks.left_half(), masks.right_half()):
        assert m.dtype == bool and m.shape == (28, 28) and m.sum() == 392


def test_opposite_halves_partition_the_image():
    assert np.array_equal(masks.invert(masks.top_half()), masks.bottom_half())
    assert np.array_equal(masks.invert(masks.left_half()), masks.right_half())
    assert not (masks.top_half() & masks.bottom_half()).any()


def test_centre_box_is_centred_square():
    for size in (1, 12, 14, 28):
        m = masks.centre_box(size)
        r, c = np.nonzero(m)
        assert m.sum() == size * size
        assert r.max() - r.min() + 1 == size and c.max() - c.min() + 1 == size
        # symmetric about the centre of the grid when the size has the grid's parity
        if size % 2 == 0:
            assert np.array_equal(m, m[::-1, ::-1])
    with pytest.raises(ValueError):
        masks.centre_box(0)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.75, 1.0])
def test_random_pixels_has_the_exact_fraction(fraction):
    m = masks.random_pixels(fraction, seed=3)
    assert m.sum() == round(fraction * 784)


def test_random_pixels_is_seeded():
    assert np.array_equal(masks.random_pixels(0.3, seed=7), masks.random_pixels(0.3, seed=7))
    assert not np.array_equal(masks.random_pixels(0.3, seed=7), masks.random_pixels(0.3, seed=8))
    with pytest.raises(ValueError):
        masks.random_pixels(1.5)


def test_box_is_half_open_any_corner_order_and_clipped():
    m = masks.box(2, 3, 5, 10)
    assert m.sum() == 3 * 7 and m[2, 3] and m[4, 9] and not m[5, 9] and not m[4, 10]
    assert np.array_equal(masks.box(5, 10, 2, 3), m)
    assert masks.box(-5, -5, 100, 100).all()
    assert masks.box(30, 30, 40, 40).sum() == 0


def test_brush_paints_a_disk_and_can_erase():
    m = masks.brush(masks.empty(), 10, 10, radius=2)
    rows, cols = np.indices((28, 28))
    assert np.array_equal(m, (rows - 10) ** 2 + (cols - 10) ** 2 <= 4)
    assert masks.brush(masks.empty(), 10, 10, radius=0).sum() == 1
    erased = masks.brush(masks.top_half(), 5, 5, radius=1, missing=False)
    assert erased.sum() == 392 - 5 and not erased[5, 5]
    # the input is not modified
    base = masks.empty()
    masks.brush(base, 3, 3, 2)
    assert not base.any()


def test_brush_stroke_leaves_no_gaps():
    m = masks.brush_stroke(masks.empty(), (14, 0), (14, 27), radius=0)
    assert m[14].all() and m.sum() == 28


def test_invert_is_an_involution_and_check_accepts_flat():
    m = masks.random_pixels(0.4, seed=1)
    assert np.array_equal(masks.invert(masks.invert(m)), m)
    assert masks.invert(m).sum() == 784 - m.sum()
    assert np.array_equal(masks.check(m.reshape(-1)), m)
    with pytest.raises(ValueError):
        masks.check(np.zeros((27, 28), bool))


def test_registry_builds_every_preset():
    for name in masks.PRESETS:
        m = masks.preset(name)
        assert m.shape == (28, 28) and m.dtype == bool and 0 < m.sum() < 784
    assert masks.preset("random_pixels", fraction=0.25, seed=0).sum() == 196
    with pytest.raises(ValueError, match="unknown mask preset"):
        masks.preset("nope")


# --- stroke and outline geometry ---------------------------------------------------------------


def test_segment_distance_and_coverage_closed_forms():
    d = masks.segment_distance(5.0, 3.0, 5.0, 20.0)  # a horizontal segment on row 5
    assert d[5, 3:21] == pytest.approx(0.0, abs=1e-6)
    assert d[8, 10] == pytest.approx(3.0)  # straight above the segment's middle
    assert d[5, 0] == pytest.approx(3.0)  # beyond its end: distance to the end point
    assert d[9, 23] == pytest.approx(5.0)  # 3-4-5 from the end point (5, 20)
    cov = masks.capsule_coverage(5.0, 3.0, 5.0, 20.0, radius=1.0)
    assert cov[5, 10] == 1.0 and cov[6, 10] == pytest.approx(0.5) and cov[7, 10] == 0.0
    assert ((cov >= 0) & (cov <= 1)).all()


def test_mask_runs_and_outline():
    m = masks.box(2, 3, 5, 7)  # 3 × 4 pixels
    assert masks.mask_runs(m) == [(2, 3, 7), (3, 3, 7), (4, 3, 7)]
    assert len(masks.mask_outline(m)) == 2 * (3 + 4)  # the perimeter in unit edges
    assert len(masks.mask_outline(masks.empty())) == 0
    # a mask touching the border is closed by the border; two separate pixels have 4 edges each
    assert len(masks.mask_outline(masks.top_half())) == 2 * (14 + 28)
    two = masks.empty()
    two[0, 0] = two[5, 5] = True
    assert len(masks.mask_outline(two)) == 8
    assert masks.mask_runs(two) == [(0, 0, 1), (5, 5, 6)]
