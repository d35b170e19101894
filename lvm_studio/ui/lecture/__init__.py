"""The lecture as a guided tour: a dock that sets the app up for one idea per step, asks for a
prediction, reveals the answer computed live, and leaves the student in the panel to try it.
The tour's content is data (core/tour.py, resources/tours/vae1.json); what each step computes is
core/tour_reveals.py. `install(window)` adds the dock and the Lecture menu to the main window.
"""

from __future__ import annotations


def install(window):
    """The lecture's controller for `window`: its dock (hidden until a tour starts) and menu."""
    from lvm_studio.ui.lecture.controller import LectureController

    return LectureController(window)
