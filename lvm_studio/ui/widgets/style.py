"""The shared look: Fusion with a dark palette, and the colours plots use for each quantity.

Panels take their curve colours from COLORS so that, say, log p(x) is the same colour everywhere.
The colours and the widgets' half live in ui/widgets/palette.py (no pyqtgraph: the loading window
uses it); this module adds pyqtgraph's half (apply_plots), the label and component colours, and
apply(app), the two halves at once.
"""

from __future__ import annotations

import colorsys

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QApplication

from lvm_studio.ui.widgets.palette import (  # noqa: F401  (re-exported: the one palette)
    ACCENT,
    BACKGROUND,
    BORDER,
    COLORS,
    CURVE_CYCLE,
    ERROR,
    FOREGROUND,
    HIGHLIGHT,
    LEGEND_BACKGROUND,
    MUTED,
    PLOT_BACKGROUND,
    apply_qt,
)


def apply_plots() -> None:
    """pyqtgraph's colours to match the palette; call before the first plot is built."""
    pg.setConfigOptions(background=PLOT_BACKGROUND, foreground=FOREGROUND)


def apply(app: QApplication) -> None:
    """Fusion, a dark palette and pyqtgraph's matching colours; call once before building windows."""
    apply_qt(app)
    apply_plots()


# Ten label colours (matplotlib's tab10): distinct, and fine for the common colour-vision deficiencies
LABEL_COLOURS = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ],
    dtype=np.uint8,
)

LEVEL = 17  # 255 / 15: the palette has 16 levels per channel

# matplotlib's tab20 light shades, after tab10 (LABEL_COLOURS)
_TAB20_LIGHT = np.array(
    [
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (199, 199, 199),
        (219, 219, 141),
        (158, 218, 229),
    ],
    dtype=np.float64,
)


def snap(rgb) -> np.ndarray:
    """Round each channel to the nearest multiple of 17 (the BrushPalette grid), uint8."""
    a = np.asarray(rgb, dtype=np.float64)
    return (np.clip(np.floor(a / LEVEL + 0.5), 0, 15) * LEVEL).astype(np.uint8)


def component_colours(k: int) -> np.ndarray:
    """(K, 3) uint8 colours for K components, on the palette grid (see snap)."""
    base = [LABEL_COLOURS.astype(np.float64), _TAB20_LIGHT]
    extra = []
    for i in range(max(0, int(k) - 20)):
        hue = (0.13 + 0.618033988749895 * i) % 1.0
        extra.append([255 * c for c in colorsys.hsv_to_rgb(hue, 0.55 + 0.3 * (i % 2), 0.92)])
    if extra:
        base.append(np.array(extra))
    return snap(np.concatenate(base)[: int(k)])


def cluster_colours(k: int, mapping: dict, n_labels: int = 10) -> np.ndarray:
    """(K, 3) colours: a component matched to digit d takes digit d's colour (the map's label colours,
    so 'mixture' and 'label' colourings compare at a glance); the others take further palette colours."""
    palette = component_colours(n_labels + k)
    out = np.zeros((k, 3), dtype=np.uint8)
    extra = n_labels
    for c in range(k):
        if c in mapping and 0 <= int(mapping[c]) < n_labels:
            out[c] = palette[int(mapping[c])]
        else:
            out[c] = palette[extra]
            extra += 1
    return out


class BrushPalette:
    """QBrushes for colours quantised to 16 levels per channel, made once and reused.

    brushes(rgb) maps (N, 3) uint8 colours to a list of N references into the cache (at most
    4,096 distinct QBrush objects ever), which a ScatterPlotItem accepts as per-point brushes.
    Colours on the grid (component_colours) come back exactly.
    """

    def __init__(self):
        self._cache: dict[int, QBrush] = {}

    @staticmethod
    def codes(rgb: np.ndarray) -> np.ndarray:
        q = np.clip((np.asarray(rgb, dtype=np.int64) + LEVEL // 2) // LEVEL, 0, 15)  # (N, 3)
        return q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2]

    def brush(self, code: int) -> QBrush:
        b = self._cache.get(code)
        if b is None:
            r, g, bl = (code >> 8) & 15, (code >> 4) & 15, code & 15
            b = self._cache[code] = QBrush(QColor(r * LEVEL, g * LEVEL, bl * LEVEL))
        return b

    def brushes(self, rgb: np.ndarray) -> list:
        return [self.brush(int(c)) for c in self.codes(rgb)]

    def __len__(self) -> int:
        return len(self._cache)
