"""The staged start-up (ui/startup.py) after usable: while the user gives input, no panel behind a
tab is built (each is a 0.1-0.7 s stall of the window); once the user is idle they all are, then
the warm-up runs, and `ready` carries the window."""

import argparse
import time

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from lvm_studio.ui import startup as su


def test_hidden_panels_wait_while_the_user_works_then_all_are_built(qtbot, settings, monkeypatch):
    monkeypatch.setattr(su, "IDLE_S", 1.0)
    args = argparse.Namespace(checkpoint=None, data=None)
    st = su.Startup(QApplication.instance(), args, smoke=False, launched_at=time.time(), settings=settings)
    ready = []
    st.ready.connect(ready.append)
    st.start()
    try:
        qtbot.waitUntil(lambda: "usable_s" in st.times, timeout=120_000)
        w = st.window
        pending = w.pending_panels
        assert pending > 0, "every panel was on screen: nothing to defer"
        assert not w.pending_on_screen()  # usable: the panels on screen are built
        end = time.monotonic() + 2.5  # a user at work: a key or a mouse move every 100 ms
        i = 0
        while time.monotonic() < end:
            if i % 2:
                QTest.mouseMove(w.training_panel, QPoint(10 + i % 40, 10))
            else:
                qtbot.keyClick(w.training_panel, Qt.Key.Key_Shift)
            i += 1
            qtbot.wait(100)
        assert w.pending_panels == pending, "a panel behind a tab was built while the user was giving input"
        assert not ready
        qtbot.waitUntil(lambda: bool(ready), timeout=120_000)  # idle: the rest, then the warm-up
        assert ready == [w]
        assert w.pending_panels == 0 and not w.panel_errors
        assert "warm_up_s" in st.times
    finally:
        if st.window is not None:
            st.window.ask_before_closing = False
            st.window.close()
        st.loader.close()
