"""Help: About (versions, licence, data credit) and each panel's "What am I looking at?"; the
dock title bar (ui/docks.py) carries a "?" for it. The texts are data, in ui/help_texts.py.
"""

from __future__ import annotations

import platform
import sys

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from lvm_studio.ui.help_texts import APP_NAME, DATA_CREDIT, LICENCE, panel_help


def versions() -> dict[str, str]:
    """The versions About shows: the app, Python, and the libraries it runs on."""
    import lvm_studio

    found = {APP_NAME: lvm_studio.__version__, "Python": platform.python_version()}
    for name in ("torch", "PySide6", "pyqtgraph", "numpy"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                found[name] = "not installed"
                continue
        found[name] = str(getattr(module, "__version__", "?"))
    return found


def about_text() -> str:
    rows = "".join(f"<tr><td>{k}</td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in versions().items())
    return (
        f"<h3>{APP_NAME}</h3><p>See latent variable models work: VAEs, mixtures, EM and inpainting on MNIST.</p>"
        f"<table>{rows}</table><p>{LICENCE}.</p><p>{DATA_CREDIT}</p>"
    )


def _message(parent: QWidget, title: str, text: str) -> QMessageBox:
    """A non-modal information box that deletes itself when closed."""
    box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.show()
    return box


def show_about(parent: QWidget) -> QMessageBox:
    return _message(parent, f"About {APP_NAME}", about_text())


def show_panel_help(parent: QWidget, key: str) -> QMessageBox | None:
    found = panel_help(key)
    if found is None:
        return None
    title, body = found
    return _message(parent, f"What am I looking at? — {title}", body)
