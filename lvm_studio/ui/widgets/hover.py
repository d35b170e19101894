"""Hovering over a scatter plot: which point, if any, the mouse is over."""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg


def point_under_mouse(vb: pg.ViewBox, scene_pos, nearest: Callable[[float, float], int]) -> int:
    """nearest(u, v) at the view coordinates of a scene position (a sigMouseMoved argument);
    −1 when the mouse is outside the view box."""
    if not vb.sceneBoundingRect().contains(scene_pos):
        return -1
    p = vb.mapSceneToView(scene_pos)
    return nearest(p.x(), p.y())
