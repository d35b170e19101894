"""The main window's messages and Help: error boxes, exceptions that escape a slot, each panel's
"What am I looking at?", About, the keyboard shortcuts, and the thread settings dialog.

A mixin of MainWindow (lvm_studio.ui.main_window), which provides `errors`, `_errors_shown`,
`panel_help_menu`, `settings`, `statusBar()` and the actions.
"""

from __future__ import annotations

import logging
import traceback

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMessageBox

from lvm_studio.ui import help as help_ui
from lvm_studio.ui.help_texts import PANEL_HELP
from lvm_studio.ui.thread_settings import ThreadSettingsDialog

log = logging.getLogger("lvm_studio.ui.main_window")


class WindowHelp:
    def _add_help_entry(self, key: str) -> None:
        if key in PANEL_HELP:
            action = self.panel_help_menu.addAction(PANEL_HELP[key]["title"])
            action.triggered.connect(lambda _=False, k=key: self.show_panel_help(k))

    # --- messages ---------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """A non-blocking message box (window-modal); the app keeps running."""
        self.errors.append(message)
        log.warning("%s: %s", title, message)
        self.statusBar().showMessage(f"{title}: {message.splitlines()[0] if message else ''}", 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self._error_box = box

    def report_exception(self, exc_type, exc, tb) -> None:
        """An exception escaped a slot (sys.excepthook): log it, say so in the status bar, and show
        a non-modal dialog once per distinct error (same type, message and place)."""
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("uncaught exception in the GUI:\n%s", text)
        frames = traceback.extract_tb(tb) if tb is not None else []
        where = (
            f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}, in {frames[-1].name})" if frames else ""
        )
        summary = f"{exc_type.__name__}: {exc}{where}"
        self.statusBar().showMessage(f"Internal error: {summary.splitlines()[0]}", 15000)
        if summary in self._errors_shown:
            return
        self._errors_shown.add(summary)
        self.errors.append(summary)
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Something went wrong",
            f"An internal error happened; the app goes on, but what you just did may not have finished.\n\n{summary}",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setDetailedText(text)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        self._error_box = box

    # --- help and settings ------------------------------------------------------------
    @Slot(str)
    def show_panel_help(self, key: str):
        return help_ui.show_panel_help(self, key)

    @Slot()
    def show_about(self):
        return help_ui.show_about(self)

    @Slot()
    def _on_thread_settings(self):
        dialog = ThreadSettingsDialog(self.settings, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    @Slot()
    def _on_show_shortcuts(self):
        rows = [
            (a.text().replace("&", ""), a.shortcut().toString(QKeySequence.SequenceFormat.NativeText))
            for a in (
                self.new_action,
                self.open_action,
                self.save_action,
                self.save_as_action,
                self.open_dataset_action,
                self.train_new_action,
                self.start_action,
                self.pause_action,
                self.stop_action,
                self.eval_action,
                self.export_png_action,
                self.export_svg_action,
                self.export_csv_action,
                self.export_shot_action,
                self.reset_layout_action,
                self.full_screen_action,
                self.quit_action,
            )
        ]
        text = (
            "<table>" + "".join(f"<tr><td>{t}</td><td>&nbsp;&nbsp;<b>{k}</b></td></tr>" for t, k in rows) + "</table>"
        )
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
