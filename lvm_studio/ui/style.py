"""The shared look: Fusion with a dark palette, and the colours plots use for each quantity.

Panels take their curve colours from COLORS so that, say, log p(x) is the same colour everywhere.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

BACKGROUND = "#1e2127"
PLOT_BACKGROUND = "#16181d"
FOREGROUND = "#d7dae0"
ACCENT = "#4fa3e0"

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


def apply(app: QApplication) -> None:
    """Fusion, a dark palette and pyqtgraph's matching colours; call once before building windows."""
    app.setStyle("Fusion")
    p = QPalette()
    base, window, text = QColor("#16181d"), QColor(BACKGROUND), QColor(FOREGROUND)
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
        "QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; color: #aab1bd; }"
        "QStatusBar QLabel { padding: 0 6px; color: #aab1bd; }"
    )
    pg.setConfigOptions(background=PLOT_BACKGROUND, foreground=FOREGROUND)
