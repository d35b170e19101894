"""The inpainting canvas: continuous strokes from simulated mouse drags, the mask tools, undo/redo."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from lvm_studio.core import masks
from lvm_studio.core.masks import segment_distance
from lvm_studio.ui.inpainting.digit_canvas import DigitCanvas
from lvm_studio.ui.inpainting.mask_overlay import masked_digit_qimage

LEFT, RIGHT = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton
NO_MOD = Qt.KeyboardModifier.NoModifier


@pytest.fixture
def canvas(qtbot):
    c = DigitCanvas()
    qtbot.addWidget(c)
    c.resize(336, 336)  # 12 screen pixels per image pixel
    c.show()
    return c


def drag(canvas, points, button=LEFT):
    """Press at the first (row, col), one move event per further point, release at the last.
    Returns the (row, col) the canvas saw for each event (widget positions are whole pixels)."""
    qpts = [canvas.pos_of_pixel(r, c).toPoint() for r, c in points]
    QTest.mousePress(canvas, button, NO_MOD, qpts[0])
    for q in qpts[1:]:
        QTest.mouseMove(canvas, q)
    QTest.mouseRelease(canvas, button, NO_MOD, qpts[-1])
    return [canvas.pixel_at(q.toPointF()) for q in qpts]


def polyline_pixels(path, step=0.05):
    """Every pixel (row, col) that a point of the polyline lies in."""
    hit = set()
    for (r0, c0), (r1, c1) in zip(path[:-1], path[1:]):
        n = max(1, int(np.ceil(np.hypot(r1 - r0, c1 - c0) / step)))
        for t in np.linspace(0, 1, n + 1):
            hit.add((int(np.floor(r0 + t * (r1 - r0) + 0.5)), int(np.floor(c0 + t * (c1 - c0) + 0.5))))
    return sorted(h for h in hit if 0 <= h[0] < 28 and 0 <= h[1] < 28)


def path_distance(path):
    """(28, 28) distance from each pixel centre to the polyline."""
    return np.min([segment_distance(r0, c0, r1, c1) for (r0, c0), (r1, c1) in zip(path[:-1], path[1:])], axis=0)


def test_fast_drag_leaves_a_continuous_stroke(canvas):
    # three mouse events for a long stroke: jumps of 14-21 pixels between events
    path = drag(canvas, [(4.0, 3.0), (4.0, 24.0), (23.0, 10.0), (23.0, 24.0)])
    img = canvas.image()
    on_path = polyline_pixels(path)
    assert len(on_path) > 50
    # every pixel the pen passed over is fully inked: no gaps between the events
    assert min(img[r, c] for r, c in on_path) > 0.99
    # ink only within radius + 1/2 of the path (the anti-aliased edge), none elsewhere
    d = path_distance(path)
    assert (img[d > canvas.brush_radius + 0.5 + 1e-4] == 0).all()
    assert (img[d <= canvas.brush_radius - 0.5] > 0.99).all()
    assert canvas.moves == 3
    assert not canvas.mask().any()


def test_stroke_paints_over_without_darkening_twice(canvas):
    canvas.set_grey_level(0.4)
    drag(canvas, [(14, 4), (14, 24), (14, 4), (14, 24)])  # back and forth in one stroke
    img = canvas.image()
    assert img.max() == pytest.approx(0.4)
    assert img[14, 10] == pytest.approx(0.4)


def test_right_button_and_eraser_erase(canvas):
    drag(canvas, [(14, 2), (14, 25)])
    assert canvas.image()[14, 14] > 0.99
    drag(canvas, [(14, 12), (14, 16)], button=RIGHT)
    img = canvas.image()
    assert img[14, 14] == 0.0 and img[14, 4] > 0.99
    canvas.set_mode("erase")
    drag(canvas, [(14, 2), (14, 6)])
    assert canvas.image()[14, 4] == 0.0 and canvas.image()[14, 22] > 0.99


def test_mask_brush_hides_along_the_path_and_right_button_shows(canvas):
    drag(canvas, [(14, 2), (14, 25)])
    before = canvas.image()
    canvas.set_mode("mask")
    canvas.set_brush_radius(1.0)
    path = drag(canvas, [(3.0, 3.0), (3.0, 24.0), (20.0, 24.0)])
    m = canvas.mask()
    for r, c in polyline_pixels(path):
        assert m[r, c]
    assert not m[path_distance(path) > 1.0 + 1e-4].any()  # the core brush: pixel centres within the radius
    np.testing.assert_array_equal(canvas.image(), before)  # hiding never changes the pixels
    drag(canvas, [(3.0, 3.0), (3.0, 24.0)], button=RIGHT)
    assert not canvas.mask()[3, 3:25].any() and canvas.mask()[12, 24]


def test_box_tool(canvas):
    canvas.set_mode("box")
    drag(canvas, [(10, 12), (7, 9), (5, 6)])  # dragged from the bottom-right corner
    np.testing.assert_array_equal(canvas.mask(), masks.box(5, 6, 11, 13))
    canvas.set_mask(masks.top_half())
    drag(canvas, [(2, 2), (4, 27)], button=RIGHT)  # show a band again
    expected = masks.top_half()
    expected[2:5, 2:28] = False
    np.testing.assert_array_equal(canvas.mask(), expected)


def test_undo_redo_per_stroke(canvas):
    blank = canvas.image()
    drag(canvas, [(5, 5), (5, 20)])
    one = canvas.image()
    drag(canvas, [(20, 5), (20, 20)])
    two = canvas.image()
    canvas.set_mask(masks.left_half())
    assert canvas.can_undo() and not canvas.can_redo()
    canvas.undo()
    np.testing.assert_array_equal(canvas.image(), two)
    assert not canvas.mask().any()
    canvas.undo()
    np.testing.assert_array_equal(canvas.image(), one)
    canvas.undo()
    np.testing.assert_array_equal(canvas.image(), blank)
    assert not canvas.can_undo()
    canvas.redo()
    np.testing.assert_array_equal(canvas.image(), one)
    drag(canvas, [(10, 5), (10, 20)])  # a new edit forgets the redo branch
    assert not canvas.can_redo()
    canvas.set_mode("erase")
    n = len(canvas._undo)
    drag(canvas, [(26, 26), (26, 27)])  # erasing nothing is not an undo step
    assert len(canvas._undo) == n


def test_signals_live_during_a_stroke_and_final_on_release(qtbot, canvas):
    canvas.live_interval_ms = 10
    q = [canvas.pos_of_pixel(14, c).toPoint() for c in (3, 8, 13)]
    finals = []
    canvas.image_edited.connect(finals.append)
    QTest.mousePress(canvas, LEFT, NO_MOD, q[0])
    QTest.mouseMove(canvas, q[1])
    with qtbot.waitSignal(canvas.image_edited, timeout=2000, check_params_cb=lambda final: final is False):
        pass  # throttled: at most one emission per interval while the button is down
    QTest.mouseMove(canvas, q[2])
    QTest.mouseRelease(canvas, LEFT, NO_MOD, q[2])
    assert finals[-1] is True
    assert finals.count(True) == 1


def test_mask_rendering():
    m = masks.box(2, 3, 5, 7)  # 3 × 4 pixels
    img = np.zeros((28, 28), np.float32)
    q = masked_digit_qimage(img, m, scale=4)
    assert (q.width(), q.height()) == (112, 112)
    inside, outside = q.pixelColor(4 * 5 + 2, 4 * 3 + 2), q.pixelColor(4 * 20, 4 * 20)
    assert (outside.red(), outside.green(), outside.blue()) == (0, 0, 0)  # black paper stays black
    assert inside.red() > inside.blue() + 30  # hidden pixels are orange, never black
