"""End to end: `lvm-studio --smoke 5 --screenshot PNG` opens the window, trains, reports and exits 0."""

import json
import os
import subprocess
import sys

from PySide6.QtGui import QImage


def test_smoke_run_reports_and_saves_a_screenshot(tmp_path):
    shot = tmp_path / "smoke.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", "lvm_studio", "--smoke", "5", "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, proc.stdout
    report = json.loads(lines[0])
    for key in ("steps", "images_per_s", "evals", "max_event_loop_stall_ms"):
        assert key in report, report
    assert report["steps"] > 0 and report["images_per_s"] > 0
    assert report["evals"] >= 1  # an importance-sampled log p(x) was plotted
    assert report["max_event_loop_stall_ms"] >= 10.0  # at least one 10 ms timer period: the meter ran
    assert report["device"].startswith("cpu") and report["stopped_cleanly"] is True
    image = QImage(str(shot))
    assert not image.isNull() and image.width() > 800 and image.height() > 500


def _env_without_display(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(extra)
    return env


def test_no_display_gives_one_line_and_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lvm_studio"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env_without_display(),
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "xvfb-run" in lines[0], proc.stderr
    assert "Aborted" not in proc.stderr


def test_a_platform_plugin_that_cannot_load_names_the_fix(tmp_path):
    """A copy of the xcb plugin outside PySide6 cannot find its Qt libraries: the same path as a
    minimal Linux without libxcb-icccm4 and friends."""
    import shutil

    from lvm_studio.ui import preflight

    real = preflight.plugin_path("xcb", {})
    assert real is not None and preflight.missing_libraries(real) == []  # this machine has the libraries
    plugins = tmp_path / "platforms"
    plugins.mkdir()
    shutil.copy(real, plugins / real.name)
    env = _env_without_display(DISPLAY=":99", QT_QPA_PLATFORM_PLUGIN_PATH=str(plugins))
    missing = preflight.missing_libraries(plugins / real.name)
    assert missing and all(".so" in name for name in missing)
    assert preflight.problem(env).startswith("Qt's X11 platform plugin cannot load")
    proc = subprocess.run(
        [sys.executable, "-m", "lvm_studio"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and missing[0] in lines[0] and "sudo apt-get install libxcb-cursor0" in lines[0], proc.stderr
    # offscreen (CI) and a working xcb are let through
    assert preflight.problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert preflight.problem({"DISPLAY": ":99"}) is None
