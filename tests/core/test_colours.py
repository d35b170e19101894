"""core.colours.mix_colours: Σ_k γ_nk colour_k, rounded to the nearest integer or truncated."""

import numpy as np
import pytest

from lvm_studio.core.colours import mix_colours

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)


@pytest.mark.parametrize("rounding", ["nearest", "truncate"])
def test_a_certain_point_gets_exactly_its_components_colour(rounding):
    np.testing.assert_array_equal(mix_colours(np.eye(4), COLOURS, rounding), COLOURS)


def test_nearest_rounds_the_weighted_sum_and_renormalises_rows():
    resp = np.array([[0.5, 0.5, 0, 0], [0.2, 0.3, 0.5, 0], [2.0, 0, 0, 0], [0, 0, 0, 0]])
    out = mix_colours(resp, COLOURS)
    # 0.5 · 255 = 127.5 → 128; 0.2 · 255 = 51, 0.3 · 255 = 76.5 → 77, 0.5 · 255 → 128
    np.testing.assert_array_equal(out, [[128, 128, 0], [51, 77, 128], [255, 0, 0], [0, 0, 0]])


def test_truncate_keeps_the_rows_as_given_and_rounds_toward_zero():
    resp = np.array([[0.5, 0.5, 0, 0], [0.2, 0.3, 0.5, 0], [2.0, 0, 0, 0]], dtype=np.float32)
    out = mix_colours(resp, COLOURS, rounding="truncate")
    expected = np.clip(resp @ COLOURS.astype(np.float32), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out[0], [127, 127, 0])
    np.testing.assert_array_equal(out[2], [255, 0, 0])  # clipped, not renormalised


def test_unknown_rounding_is_refused():
    with pytest.raises(ValueError):
        mix_colours(np.eye(4), COLOURS, rounding="up")
