"""Presenter mode: one switch that scales the whole interface for a projector, and back.

The application font is scaled, through the application's style sheet (with a style sheet set, Qt
resolves widget fonts from it, so QApplication.setFont alone would not reach existing widgets) and
QApplication.setFont (for what paints with the application font); widgets that set their own font
are scaled from the size they had; pyqtgraph's axes get the scaled font for their tick values and
labels. Off restores the style sheet and every remembered size. The choice is kept in
QSettings ("lecture/presenter") and applied again at start-up and to panels built later.
"""

from __future__ import annotations

import weakref

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QWidget

SCALE = 1.5
SETTING = "lecture/presenter"


def _scaled(font: QFont, factor: float) -> QFont:
    f = QFont(font)
    if f.pointSizeF() > 0:
        f.setPointSizeF(font.pointSizeF() * factor)
    elif f.pixelSize() > 0:
        f.setPixelSize(max(1, round(font.pixelSize() * factor)))
    return f


class PresenterMode(QObject):
    def __init__(self, settings, parent=None):
        super().__init__(parent)
        self.settings = settings
        app = QApplication.instance()
        self._app_font = QFont(app.font())
        self._style_sheet = app.styleSheet()
        self._own_fonts: weakref.WeakKeyDictionary[QWidget, QFont] = weakref.WeakKeyDictionary()
        self.enabled = False

    @property
    def factor(self) -> float:
        return SCALE if self.enabled else 1.0

    def saved(self) -> bool:
        value = self.settings.value(SETTING, False)
        return value in (True, "true", "1", 1)

    def set_enabled(self, on: bool, remember: bool = True) -> None:
        on = bool(on)
        if on != self.enabled:
            self.enabled = on
            app = QApplication.instance()
            # widgets with a font of their own: remembered once, at their original size
            for w in app.allWidgets():
                if w.testAttribute(Qt.WidgetAttribute.WA_SetFont) and w not in self._own_fonts:
                    self._own_fonts[w] = QFont(w.font())
            font = _scaled(self._app_font, self.factor)
            app.setFont(font)
            size = font.pointSizeF() if font.pointSizeF() > 0 else None
            rule = f"\n* {{ font-size: {size:.1f}pt; }}" if on and size else ""
            app.setStyleSheet(self._style_sheet + rule)
            for w, font in list(self._own_fonts.items()):
                w.setFont(_scaled(font, self.factor))
        self.apply_to_plots()
        if remember:
            self.settings.setValue(SETTING, on)

    def apply_to_plots(self) -> None:
        """The axes of every plot (built so far) in the current font size."""
        font = _scaled(self._app_font, self.factor)
        for w in QApplication.instance().allWidgets():
            if isinstance(w, pg.GraphicsView) and w.scene() is not None:
                for item in w.scene().items():
                    if isinstance(item, pg.AxisItem):
                        item.setTickFont(font if self.enabled else None)
                        item.label.setFont(font)
                        item.resizeEvent()
