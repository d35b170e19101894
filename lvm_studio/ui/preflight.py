"""Before the QApplication exists: is there a display, and can Qt's platform plugin load?

Qt aborts the process (SIGABRT, after seconds of imports) when it finds no display or when the
xcb plugin's system libraries are missing, and its message names the wrong package
(issue 11, item 7). This module checks first and returns one line that names the fix; the app
prints it and exits 2. It imports nothing from Qt: it finds PySide6's plugin folder by path.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# What Qt 6's xcb platform plugin needs on a minimal Debian or Ubuntu (README, "Install")
APT_LINE = (  # the same line as the README's: from ldd of Qt's xcb plugin, each library to its package
    "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 "
    "libxcb-render-util0 libxcb-shape0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libx11-xcb1 "
    "libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3"
)
HEADLESS_HINT = "the headless commands work without one: lvm-studio train …, lvm-studio eval …"


def platform_name(env: dict | None = None) -> str | None:
    """The platform Qt will use: QT_QPA_PLATFORM's first choice, else what the session offers, else None."""
    env = os.environ if env is None else env
    asked = env.get("QT_QPA_PLATFORM", "").strip()
    if asked:
        return re.split(r"[;:]", asked)[0].strip() or None
    if not sys.platform.startswith("linux"):
        return "native"
    if env.get("WAYLAND_DISPLAY"):
        return "wayland"
    if env.get("DISPLAY"):
        return "xcb"
    return None


def plugin_path(name: str, env: dict | None = None) -> Path | None:
    """The platform plugin's library (QT_QPA_PLATFORM_PLUGIN_PATH first, as Qt looks), or None."""
    env = os.environ if env is None else env
    folders = []
    if env.get("QT_QPA_PLATFORM_PLUGIN_PATH"):
        folders.append(Path(env["QT_QPA_PLATFORM_PLUGIN_PATH"]))
    spec = importlib.util.find_spec("PySide6")
    if spec is not None and spec.origin:
        folders.append(Path(spec.origin).parent / "Qt" / "plugins" / "platforms")
    for folder in folders:
        candidate = folder / f"libq{name}.so"
        if candidate.is_file():
            return candidate
    return None


def missing_libraries(library: Path) -> list[str]:
    """The shared libraries `library` needs that the dynamic loader cannot find (ldd, else a trial load)."""
    ldd = shutil.which("ldd")
    if ldd:
        try:
            out = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        missing = [line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line]
        if missing or out:
            return missing
    try:  # no ldd: load it once and read the loader's complaint
        ctypes.CDLL(str(library), mode=os.RTLD_LAZY | getattr(os, "RTLD_LOCAL", 0))
    except OSError as e:
        found = re.match(r"([^:\s]+\.so[.\d]*): cannot open shared object", str(e).split(": ", 1)[-1])
        return [found.group(1) if found else str(e)]
    return []


def problem(env: dict | None = None) -> str | None:
    """One line naming what stops the window from opening and how to fix it, or None if all is well."""
    env = os.environ if env is None else env
    name = platform_name(env)
    if name is None:
        return (
            "no display: DISPLAY and WAYLAND_DISPLAY are unset. Run it in a desktop session, or under a "
            f"virtual display (xvfb-run lvm-studio); {HEADLESS_HINT}"
        )
    if name != "xcb":  # offscreen, wayland, minimal, a non-Linux platform: Qt reports its own errors
        return None
    library = plugin_path(name, env)
    if library is None:
        return None  # an unusual install: let Qt look for itself
    missing = missing_libraries(library)
    if not missing:
        return None
    return (
        f"Qt's X11 platform plugin cannot load: missing {', '.join(missing)}. On Debian or Ubuntu install "
        f"the system libraries with: {APT_LINE}"
    )
