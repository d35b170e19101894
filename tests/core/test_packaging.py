"""Packaging invariants: a Qt-free core, a PySide6 release that does not abort, pinned requirements."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUI_PREFIXES = ("PySide6", "shiboken6", "pyqtgraph", "PyQt")


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **env}
    )


def test_core_imports_no_gui_module():
    """Importing lvm_studio.core and every submodule in a fresh interpreter loads no Qt or pyqtgraph."""
    code = f"""
import importlib, pkgutil, sys
import lvm_studio.core as core
names = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "lvm_studio.core."))
for name in names:
    importlib.import_module(name)
gui = sorted(m for m in sys.modules if m.startswith({GUI_PREFIXES!r}))
print("IMPORTED", ",".join(names))
print("GUI", ",".join(gui))
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(("IMPORTED", "GUI")))
    imported = lines["IMPORTED"].split(",")
    for expected in ("data", "vae", "estimators", "linear_gaussian", "device"):
        assert f"lvm_studio.core.{expected}" in imported
    gui = [m for m in lines["GUI"].strip().split(",") if m]
    assert not gui, f"lvm_studio.core pulled in GUI modules: {sorted({m.split('.')[0] for m in gui})}"


def test_pyside6_void_calls_do_not_abort():
    """PySide6 6.12.0 decrefs None on each void call and dies with 'none_dealloc'; ours must not."""
    code = (
        "from PySide6.QtCore import QObject\n"
        "o = QObject()\n"
        "[o.setObjectName('x') for _ in range(200_000)]\n"
        "print('survived')\n"
    )
    result = _run(code, QT_QPA_PLATFORM="offscreen")
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "survived" in result.stdout


def test_pyproject_pins_the_known_good_requirements():
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    requirements = project["dependencies"]
    joined = " ".join(r.replace(" ", "") for r in requirements)
    assert "PySide6-Essentials>=6.8,!=6.12.0" in joined
    assert "torch>=2.4" in joined
    assert any(r.startswith("scipy") for r in requirements)
    test_extra = project["optional-dependencies"]["test"]
    assert any(r.startswith("pytest-qt") for r in test_extra)
