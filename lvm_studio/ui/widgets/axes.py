"""Plot axes that say what they show: no automatic SI prefix.

pyqtgraph scales an axis by a power of 1,000 and writes the factor into its label ("epoch
(x0.001)", or "(x0.001)" alone on an empty plot) whenever the values are small or large. Epochs,
nats and EM iterations are read as they are, so every axis of the app turns that off here.
"""

from __future__ import annotations

import pyqtgraph as pg

AXIS_NAMES = ("left", "bottom", "right", "top")


def plain_axis(axis: pg.AxisItem) -> None:
    """No automatic SI prefix on `axis`, and no scale left over from one."""
    # no range enables a prefix: pyqtgraph 0.14's enableAutoSIPrefix(False) still computes a scale
    # from the current range, which would then divide every tick value with no factor in the label
    axis.setSIPrefixEnableRanges(())
    axis.enableAutoSIPrefix(False)


def plain_axes(plot: pg.PlotItem | pg.PlotWidget) -> None:
    """Every axis of `plot` (shown or not) without an automatic SI prefix."""
    item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot
    for name in AXIS_NAMES:
        plain_axis(item.getAxis(name))


def axes_in(view: pg.GraphicsView) -> list[pg.AxisItem]:
    """The axis items in a plot widget's scene (tests check them)."""
    return [item for item in view.scene().items() if isinstance(item, pg.AxisItem)]
