"""The main window's docks: each panel in a scroll area, under a title bar with a "?" for its help.

A panel larger than the room its dock has scrolls instead of widening the window (issue 11,
item 2: the window's minimum size no longer grows with the panels or with the numbers they show).
`PanelDock.widget()` returns the panel itself, so callers never see the scroll area.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QToolButton,
    QWidget,
)

from lvm_studio.ui.visibility import send_screen_change

MIN_DOCK_WIDTH = 300  # a panel's dock never asks for more than this: the rest scrolls
MIN_DOCK_HEIGHT = 200


class PanelDock(QDockWidget):
    def __init__(
        self, key: str, title: str, panel: QWidget, parent: QWidget, has_help: bool = False, scroll: bool = True
    ):
        super().__init__(title, parent)
        self.key = key
        self.setObjectName(f"dock_{key}")  # saveState/restoreState key
        self._panel: QWidget | None = None
        self._scroll: QScrollArea | None = None
        if scroll:
            self._scroll = QScrollArea()
            self._scroll.setWidgetResizable(True)  # the panel fills the dock when there is room
            self._scroll.setFrameShape(QFrame.Shape.NoFrame)
            self.setWidget(self._scroll)
        self.set_panel(panel)
        self.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.title_bar = DockTitleBar(self, key, has_help)
        self.setTitleBarWidget(self.title_bar)
        # a tab chosen or left sends the panel no Show or Hide (ui/visibility.py): tell it
        self.visibilityChanged.connect(self._on_visibility_changed)

    @Slot(bool)
    def _on_visibility_changed(self, visible: bool) -> None:
        # after the layout has moved the docks, so that on_screen() already agrees with the event
        QTimer.singleShot(0, self._tell_panel_on_screen if visible else self._tell_panel_off_screen)

    @Slot()
    def _tell_panel_on_screen(self) -> None:
        if self._panel is not None and self.isVisible():
            send_screen_change(self._panel, True)

    @Slot()
    def _tell_panel_off_screen(self) -> None:
        if self._panel is not None:
            send_screen_change(self._panel, False)

    def set_panel(self, panel: QWidget) -> None:
        """Put `panel` in the dock (replacing a placeholder, which is deleted)."""
        old = self._panel if self._panel is not panel else None
        self._panel = panel
        if self._scroll is None:
            self.setWidget(panel)
        else:
            self._scroll.takeWidget()
            self._scroll.setWidget(panel)
            # below its own minimum the panel scrolls; the dock keeps a usable least size
            least = panel.minimumSizeHint().expandedTo(panel.minimumSize())
            self._scroll.setMinimumSize(min(least.width(), MIN_DOCK_WIDTH), min(least.height(), MIN_DOCK_HEIGHT))
        if old is not None:
            old.deleteLater()

    def widget(self) -> QWidget:
        """The panel (Qt itself sees the scroll area around it)."""
        return self._panel

    def scroll_area(self) -> QScrollArea | None:
        return self._scroll


class DockTitleBar(QWidget):
    """A dock's title: its name (elided, so a long title never widens the window), a "?" that asks
    for the panel's help, and the float and close buttons a native title bar has. Dragging the
    title moves the dock as usual (the label does not take the mouse)."""

    help_requested = Signal(str)  # the dock's key

    def __init__(self, dock: QDockWidget, key: str, has_help: bool):
        super().__init__(dock)
        self._dock = dock
        self._key = key
        self.title = QLabel(dock.windowTitle())
        self.title.setMinimumWidth(20)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 1, 2, 1)
        layout.setSpacing(2)
        layout.addWidget(self.title, 1)
        self.help_button = self._button("?", f"What am I looking at? ({dock.windowTitle()})")
        self.help_button.clicked.connect(lambda: self.help_requested.emit(self._key))
        self.help_button.setVisible(has_help)
        style = self.style()
        self.float_button = self._button("", "Float or dock this panel")
        self.float_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_TitleBarNormalButton))
        self.float_button.clicked.connect(lambda: dock.setFloating(not dock.isFloating()))
        self.close_button = self._button("", "Close this panel (View menu brings it back)")
        self.close_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        self.close_button.clicked.connect(dock.close)
        for b in (self.help_button, self.float_button, self.close_button):
            layout.addWidget(b)
        dock.windowTitleChanged.connect(lambda _title: self._elide())

    def _button(self, text: str, tip: str) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return b

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        text = self._dock.windowTitle()
        self.title.setText(
            self.title.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, max(10, self.title.width()))
        )
