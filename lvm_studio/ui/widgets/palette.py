"""The dark palette and the Qt half of the shared look: colours, Fusion, QPalette and the stylesheet.

No pyqtgraph and no numpy here, so the loading window (ui/startup.py) is dark from its first paint
without paying for pyqtgraph's import (0.5–2 s); ui/widgets/style.py re-exports every name and
adds the plots' half (pyqtgraph's colours) and the colour tables.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
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


def apply_qt(app: QApplication) -> None:
    """Fusion, the dark palette and the stylesheet (widgets only; style.apply_plots does the plots)."""
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
