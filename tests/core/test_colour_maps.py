"""Colour maps as array maths: the inferno table, linear interpolation between its stops, the uncertainty map."""

import numpy as np
import pytest

from lvm_studio.core import colour_maps as cm


def test_inferno_table_runs_from_black_to_pale_yellow():
    assert cm.INFERNO.shape == (256, 3) and cm.INFERNO.dtype == np.uint8
    np.testing.assert_array_equal(cm.INFERNO[0], (0, 0, 4))
    np.testing.assert_array_equal(cm.INFERNO[-1], (252, 255, 164))
    luma = cm.INFERNO.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert (np.diff(luma) > 0).all()  # perceptually ordered: lighter all the way


def test_inferno_hits_its_stops_and_interpolates_between():
    stops = np.linspace(0.0, 1.0, 256)
    np.testing.assert_array_equal(cm.inferno(stops), cm.INFERNO)
    mid = (stops[:-1] + stops[1:]) / 2  # half-way between neighbouring stops: the mean, truncated to a byte
    lo, hi = cm.INFERNO[:-1].astype(np.int64), cm.INFERNO[1:].astype(np.int64)
    got = cm.inferno(mid).astype(np.int64)
    assert (np.abs(got - (lo + hi) / 2) <= 1).all()  # within a byte: truncated, after float rounding
    assert ((got >= np.minimum(lo, hi)) & (got <= np.maximum(lo, hi))).all()
    np.testing.assert_array_equal(cm.inferno([-1.0, 2.0]), cm.INFERNO[[0, -1]])  # clipped
    assert cm.inferno(np.zeros((2, 3, 4))).shape == (2, 3, 4, 3)


@pytest.mark.parametrize("shape", [(28, 28), (784,)])
def test_uncertainty_rgb(shape):
    std = np.linspace(0.0, cm.STD_LEVEL, 784).reshape(shape)
    rgb = cm.uncertainty_rgb(std)
    assert rgb.shape == (28, 28, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb[0, 0], cm.INFERNO[0])  # certain: black
    np.testing.assert_array_equal(rgb[-1, -1], cm.INFERNO[-1])  # std STD_LEVEL: the top of the scale
    np.testing.assert_array_equal(cm.uncertainty_rgb(np.full(shape, 3.0)), cm.uncertainty_rgb(np.full(shape, 0.5)))
