"""The shared look: Fusion with a dark palette, and the colours plots use for each quantity.

Panels take their curve colours from COLORS so that, say, log p(x) is the same colour everywhere.
"""

from __future__ import annotations

import colorsys

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QBrush, QColor, QPalette
from PySide6.QtWidgets import QApplication

BACKGROUND = "#1e2127"
PLOT_BACKGROUND = "#16181d"  # also the palette's Base (text fields, lists)
FOREGROUND = "#d7dae0"
MUTED = "#aab1bd"  # secondary text: captions, group-box titles, the status bar; hover guide lines
BORDER = "#3a3f4a"  # frames of hover boxes over plots
ACCENT = "#4fa3e0"
HIGHLIGHT = (255, 215, 0)  # gold: the one thing singled out (the map's target, the component just drawn, a match)
LEGEND_BACKGROUND = (0, 0, 0, 150)  # translucent black behind legends drawn over plots

# one colour per quantity, used by every plot
COLORS = {
    "train_elbo": "#7f8c9f",  # raw training ELBO: quiet grey-blue
    "train_elbo_smooth": "#4fa3e0",
    "val_elbo": "#f0a640",
    "log_px": "#62c48a",
    "gap": (98, 196, 138, 60),  # log p(x) − ELBO, shaded
    "recon": "#c678dd",
    "kl": "#e06c75",
    "iw": ("#a0e0b8", "#62c48a", "#2f9a62", "#1d6b43"),  # IW-k bounds, light (small k) to dark
}
ERROR = COLORS["kl"]  # error text: the palette's red
# one curve per series when there are many (EM restarts): the named colours first, then five more
CURVE_CYCLE = (
    ACCENT,
    COLORS["val_elbo"],
    COLORS["log_px"],
    COLORS["recon"],
    COLORS["kl"],
    "#c8c878",
    "#78c8c8",
    "#b4b4b4",
    "#ff8cb4",
    "#8c8cff",
)


def apply(app: QApplication) -> None:
    """Fusion, a dark palette and pyqtgraph's matching colours; call once before building windows."""
    app.setStyle("Fusion")
    p = QPalette()
    base, window, text = QColor(PLOT_BACKGROUND), QColor(BACKGROUND), QColor(FOREGROUND)
    p.setColor(QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorRole.WindowText, text)
    p.setColor(QPalette.ColorRole.Base, base)
    p.setColor(QPalette.ColorRole.AlternateBase, QColor("#23262d"))
    p.setColor(QPalette.ColorRole.ToolTipBase, QColor("#2b2f37"))
    p.setColor(QPalette.ColorRole.ToolTipText, text)
    p.setColor(QPalette.ColorRole.Text, text)
    p.setColor(QPalette.ColorRole.Button, QColor("#2b2f37"))
    p.setColor(QPalette.ColorRole.ButtonText, text)
    p.setColor(QPalette.ColorRole.BrightText, QColor("#ff6b6b"))
    p.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor("#0b0c0f"))
    p.setColor(QPalette.ColorRole.Link, QColor(ACCENT))
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor("#7f848e"))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b707a"))
    app.setPalette(p)
    app.setStyleSheet(
        "QDockWidget::title { background: #262a31; padding: 4px 6px; }"
        "QGroupBox { border: 1px solid #343842; border-radius: 4px; margin-top: 1.1em; padding-top: 4px; }"
        f"QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 3px; color: {MUTED}; }}"
        f"QStatusBar QLabel {{ padding: 0 6px; color: {MUTED}; }}"
    )
    pg.setConfigOptions(background=PLOT_BACKGROUND, foreground=FOREGROUND)


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
