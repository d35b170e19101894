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
