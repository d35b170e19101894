"""The main window's layout: the default sizes (the layout fits 1,280 × 720), the first launch sized
to the screen, the saved layout, full screen, and the weight-snapshot rate the visible docks need.

A mixin of MainWindow (lvm_studio.ui.main_window), which provides `docks`, `settings`,
`controller` and `_default_state`.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Slot

from lvm_studio.ui.visibility import on_screen

LAYOUT_VERSION = 2  # 2: the layout that fits 1,280 × 720 (training and curves stacked, panels beside)
DEFAULT_SIZE = QSize(1280, 720)
SCREEN_FRACTION = 0.92  # the first launch takes this much of the screen's free area
LEFT_FRACTION = 0.36  # of the width: the training controls and the live curves
TRAINING_HEIGHT = 250  # the training dock's default height: buttons, progress and a few messages
TITLE_ALLOWANCE = 26  # a dock's title bar above its panel, in pixels


class WindowLayout:
    optional_docks: frozenset[str] = frozenset()  # docks Reset layout leaves as they are (the lecture's)

    # --- layout -----------------------------------------------------------------------
    def _apply_default_sizes(self):
        docks = self.docks
        right = [d for k, d in docks.items() if k not in ("training", "curves") and not d.isFloating()]
        w, h = self.width(), self.height()
        if right:  # the training column about 36 % of the width (460 of 1,280), the panels the rest
            left = max(420, int(LEFT_FRACTION * w))
            self.resizeDocks([docks["training"], right[0]], [left, max(300, w - left)], Qt.Orientation.Horizontal)
        # the training controls short (their forms scroll), the live curves the rest
        controls = max(TRAINING_HEIGHT, self.training_panel.minimumSizeHint().height() + TITLE_ALLOWANCE)
        self.resizeDocks(
            [docks["training"], docks["curves"]], [controls, max(200, h - controls - 50)], Qt.Orientation.Vertical
        )

    def fit_to_screen(self) -> None:
        """The first launch: most of the screen's free area, centred (never larger than the screen)."""
        screen = self.screen()
        if screen is None:
            return
        free = screen.availableGeometry()
        w, h = int(free.width() * SCREEN_FRACTION), int(free.height() * SCREEN_FRACTION)
        self.resize(max(min(free.width(), 800), w), max(min(free.height(), 560), h))
        frame = self.frameGeometry()
        frame.moveCenter(free.center())
        self.move(frame.topLeft())
        self._apply_default_sizes()

    def restore_layout(self) -> bool:
        geometry = self.settings.value("layout/geometry")
        state = self.settings.value("layout/state")
        ok = False
        if geometry is not None:
            self.restore_geometry(geometry)
        if state is not None:
            ok = self.restoreState(state, LAYOUT_VERSION)
        return ok

    def restore_geometry(self, geometry) -> None:
        """The saved size and place, but never larger than the screen now (a layout saved on a larger
        screen, or by a version whose window was 2,266 px wide, is fitted to this one)."""
        self.restoreGeometry(geometry)
        screen = self.screen()
        if screen is None or self.isMaximized() or self.isFullScreen():
            return
        free = screen.availableGeometry()
        if self.width() > free.width() or self.height() > free.height():
            self.fit_to_screen()

    def has_saved_layout(self) -> bool:
        return self.settings.value("layout/geometry") is not None

    def save_layout(self) -> None:
        self.settings.setValue("layout/geometry", self.saveGeometry())
        self.settings.setValue("layout/state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()

    @Slot()
    def reset_layout(self) -> None:
        for key, dock in self.docks.items():
            dock.setFloating(False)
            if key not in self.optional_docks:
                dock.show()
        self.restoreState(self._default_state, LAYOUT_VERSION)
        if not self.isMaximized() and not self.isFullScreen():
            self.resize(DEFAULT_SIZE)
        self._apply_default_sizes()
        self.statusBar().showMessage("Layout reset", 3000)

    @Slot()
    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()
        self.full_screen_action.setChecked(self.isFullScreen())

    # --- snapshots only as often as someone looks -------------------------------------
    def snapshot_interval(self) -> float | None:
        """The shortest SNAPSHOT_INTERVAL_S of the panels on screen; None when none uses weights."""
        rates = []
        for dock in self.docks.values():
            widget = dock.widget()
            rate = getattr(type(widget), "SNAPSHOT_INTERVAL_S", None)
            if rate is not None and dock.isVisible() and on_screen(widget):
                rates.append(float(rate))
        return min(rates) if rates else None

    @Slot()
    def update_snapshot_interval(self) -> None:
        if self.controller.is_active() and hasattr(self.controller, "set_snapshot_interval"):
            self.controller.set_snapshot_interval(self.snapshot_interval())
