"""The EM playground panel against the core (split from the mixture panels' tests).

The playground's buttons must move the model exactly as the core's own E-step, M-step and
iteration do from the same start; the free energy it plots never falls while it runs; colours mix
component colours by γ; clicks add, erase and place; the generating-mixture table drives the
points. (The free energy per half-step without Qt: tests/core/test_em_session.py.)
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from lvm_studio.core.clustering import hungarian_accuracy
from lvm_studio.core.colours import mix_colours
from lvm_studio.core.gmm import GaussianMixture, GMMConfig
from lvm_studio.core.points2d import SUGGESTED_COMPONENTS
from lvm_studio.ui.mixtures.em_playground_panel import EMPTY, EMPlaygroundPanel
from lvm_studio.ui.widgets.style import BrushPalette, component_colours

WAIT_MS = 60000  # generous: the machine is shared


def params(gmm):
    p = gmm.get_parameters()
    return p.weights.numpy(), p.means.numpy(), p.covariances.numpy()


def assert_same_parameters(a, b):
    for x, y in zip(params(a), params(b)):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


@pytest.fixture
def playground(qtbot, add_panel):
    panel = add_panel(EMPlaygroundPanel(None))
    panel.set_point_set("overlapping blobs")
    return panel


# --- the playground drives the core ----------------------------------------------------------------


def test_buttons_drive_the_core(qtbot, playground):
    p = playground
    x = torch.as_tensor(p.points)
    assert p.points.shape == (300, 2) and p.k_spin.value() == SUGGESTED_COMPONENTS["overlapping blobs"]
    ref = GaussianMixture(
        GMMConfig(n_components=3, covariance="full", init="kmeans++", seed=0), dtype=torch.float64
    ).initialize(x)
    assert_same_parameters(p.session.gmm, ref)
    assert p.session.log_q is None and not p.m_button.isEnabled()

    qtbot.mouseClick(p.e_button, Qt.MouseButton.LeftButton)
    log_resp, ll = ref.e_step(x)
    np.testing.assert_allclose(p.session.log_q.numpy(), log_resp.numpy(), atol=1e-12)
    assert p.session.trace[-1].kind == "E" and p.session.trace[-1].log_likelihood == pytest.approx(ll, abs=1e-12)
    assert not p.e_button.isEnabled() and p.m_button.isEnabled()

    qtbot.mouseClick(p.m_button, Qt.MouseButton.LeftButton)
    ref.m_step(x, log_resp)
    assert_same_parameters(p.session.gmm, ref)
    assert p.e_button.isEnabled() and not p.m_button.isEnabled()

    for _ in range(3):
        qtbot.mouseClick(p.iter_button, Qt.MouseButton.LeftButton)
        ref.step(x)
        assert_same_parameters(p.session.gmm, ref)
    assert [s.kind for s in p.session.trace] == ["init"] + ["E", "M"] * 4
    assert p.session.iteration == 4

    qtbot.mouseClick(p.reset_button, Qt.MouseButton.LeftButton)
    fresh = GaussianMixture(GMMConfig(n_components=3, seed=0), dtype=torch.float64).initialize(x)
    assert_same_parameters(p.session.gmm, fresh)
    assert p.session.log_q is None and len(p.session.trace) == 1


def test_controls_set_the_configuration(qtbot, playground):
    p = playground
    p.k_spin.setValue(5)
    p.covariance.setCurrentIndex(p.covariance.findData("diag"))
    p.seed.setValue(7)
    ref = GaussianMixture(GMMConfig(n_components=5, covariance="diag", seed=7), dtype=torch.float64).initialize(
        torch.as_tensor(p.points)
    )
    assert_same_parameters(p.session.gmm, ref)
    p.init.setCurrentIndex(p.init.findData("random"))
    ref = GaussianMixture(
        GMMConfig(n_components=5, covariance="diag", init="random", seed=7), dtype=torch.float64
    ).initialize(torch.as_tensor(p.points))
    assert_same_parameters(p.session.gmm, ref)
    shown = [one.isVisible() for one, _, _ in p.ellipses]
    assert shown == [True] * 5 + [False] * (len(p.ellipses) - 5)


def test_run_to_convergence_animates_and_stops(qtbot, playground):
    p = playground
    p.set_point_set("well-separated blobs")
    p.speed.setValue(60)
    with qtbot.waitSignal(p.run_finished, timeout=WAIT_MS):
        qtbot.mouseClick(p.run_button, Qt.MouseButton.LeftButton)
        assert p.is_running() and not p.e_button.isEnabled()
    assert not p.is_running()
    assert p.session.converged(1e-6) and p.session.trace[-1].kind == "E"  # final E-step: colours are current
    lls = [h.log_likelihood for h in p.session.trace if h.kind in ("init", "M")]
    assert len(lls) > 3 and np.all(np.diff(lls) >= -1e-10)
    xs, ys = p.f_curve.getData()
    assert len(xs) == len([h for h in p.session.trace if h.kind != "init"])
    assert np.all(np.diff(ys) >= -1e-10)
    # separated blobs: EM finds the generating components
    q = p.session.responsibilities()
    assert hungarian_accuracy(p.true_labels, q.argmax(1)) > 0.99


# --- colours ------------------------------------------------------------------------------------------


def test_colour_mixing():
    colours = component_colours(12)
    assert len({tuple(c) for c in colours}) == 12
    np.testing.assert_array_equal(mix_colours(np.eye(12), colours), colours)  # γ = e_k: exactly colour k
    half = mix_colours(np.array([[0.5, 0.5] + [0.0] * 10]), colours)[0]
    np.testing.assert_allclose(half, (colours[0].astype(float) + colours[1]) / 2, atol=0.51)
    palette = BrushPalette()
    brushes = palette.brushes(colours)
    got = np.array([[b.color().red(), b.color().green(), b.color().blue()] for b in brushes])
    np.testing.assert_array_equal(got, colours)  # palette colours come back exactly
    again = palette.brushes(np.repeat(colours, 50, 0))
    assert len(palette) == 12 and again[0] is brushes[0]  # reused, not made per point


def test_points_are_coloured_by_responsibilities(qtbot, playground):
    p = playground
    assert (p.colours() == 204).all()  # no E-step yet: unassigned grey
    p.e_step()  # overlapping blobs, first E-step: many uncertain points
    q = p.session.responsibilities()
    np.testing.assert_array_equal(p.colours(), mix_colours(q, p.component_colours[:3]))
    painted = p.point_brush_colours()
    unsure = int(np.argmin(q.max(1)))
    assert q[unsure].max() < 0.6
    assert not any((painted[unsure] == c).all() for c in p.component_colours[:3])  # a mixed colour
    text = p.hover_text(unsure)
    assert text.count("■") == 3 and f"{q[unsure, 0]:.3f}" in text

    p.set_point_set("well-separated blobs")
    for _ in range(5):
        p.iterate()
    p.e_step()
    q = p.session.responsibilities()
    painted = p.point_brush_colours()
    sure = np.flatnonzero(q.max(1) > 1 - 1e-9)
    assert len(sure) > 100
    for i in sure:  # γ = e_k: painted in exactly component k's colour
        np.testing.assert_array_equal(painted[i], p.component_colours[q[i].argmax()])
    assert len(p.palette_brushes) <= 4096


# --- mouse ------------------------------------------------------------------------------------------


def _widget_pos(panel, x, y):
    return panel.plot.mapFromScene(panel.vb.mapViewToScene(QPointF(x, y)))


def test_clicks_add_erase_and_place(qtbot, qapp, add_panel):
    p = add_panel(EMPlaygroundPanel(None))
    p.resize(1000, 750)
    p.show()
    qtbot.waitExposed(p)
    p.set_point_set(EMPTY)
    assert p.points.shape == (0, 2) and p.mouse_mode() == "add" and not p.session.ready
    vp = p.plot.viewport()
    targets = [(1.0, 1.0), (-2.0, 0.5), (2.5, -1.5), (-1.0, -3.0), (0.0, 2.5)]
    for x, y in targets:
        qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=_widget_pos(p, x, y))
    pw, ph = p.vb.viewPixelSize()
    assert p.points.shape == (5, 2)
    np.testing.assert_allclose(p.points, np.array(targets), atol=2 * max(pw, ph))
    assert p.session.ready and p.session.gmm.n_components == 3  # enough points: initialised

    # drag adds a trail of points (pyqtgraph drops moves closer than 1/mouseRateLimit s: lift the limit)
    rate = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", 0)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _widget_pos(p, -4.0, 4.0))
    for i in range(1, 16):
        QTest.mouseMove(vp, _widget_pos(p, -4.0 + 0.25 * i, 4.0))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _widget_pos(p, -0.25, 4.0))
    pg.setConfigOption("mouseRateLimit", rate)
    trail = p.points[5:]
    assert len(trail) >= 5 and np.allclose(trail[:, 1], 4.0, atol=3 * ph)

    p.set_mouse_mode("erase")
    n = len(p.points)
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=_widget_pos(p, 2.5, -1.5))
    assert len(p.points) == n - 1 and not np.any(np.all(np.abs(p.points - (2.5, -1.5)) < 0.05, 1))

    # click-to-place initialisation: K clicks set the starting means
    p.k_spin.setValue(2)
    p.init.setCurrentIndex(p.init.findData("given"))
    assert p.mouse_mode() == "place" and not p.session.ready
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=_widget_pos(p, -3.0, 3.0))
    assert not p.session.ready and not p.e_button.isEnabled()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=_widget_pos(p, 1.0, -1.0))
    assert p.session.ready
    np.testing.assert_allclose(p.session.gmm.means.numpy(), [[-3.0, 3.0], [1.0, -1.0]], atol=2 * max(pw, ph))


def test_sample_one_follows_the_generative_process(qtbot, playground):
    p = playground
    p.set_point_set("mixture you set up")
    assert p.points.shape == (300, 2) and p.k_spin.value() == 3
    w, mu, cov = p.true_mixture()
    assert w.sum() == pytest.approx(1.0) and cov.shape == (3, 2, 2)
    z, x = p.sample_one()
    assert p.points.shape == (301, 2) and np.allclose(p.points[-1], x) and p.true_labels[-1] == z
    assert p.session.ready  # θ kept: EM carries on with the new point
    # editing the generating mixture redraws the points from it: move component 1's mean far away
    p.true_table.item(0, 1).setText("40")
    assert p.points.shape == (300, 2)
    far = p.points[:, 0] > 30
    np.testing.assert_array_equal(far, p.true_labels == 0)
    p.true_k.setValue(4)
    assert p.k_spin.value() == 4 and p.session.gmm.n_components == 4 and p.true_table.rowCount() == 4


def test_generating_mixture_table_is_a_view_of_the_session(qtbot, playground):
    p = playground
    p.set_point_set("mixture you set up")
    p.model.set_true_value(1, "mu2", 2.5)  # the session's data, shown in the table
    assert p.true_table.item(1, 2).text() == "2.5"
    p.true_table.item(1, 2).setText("abc")  # not a number: the session's value comes back
    assert p.true_table.item(1, 2).text() == "2.5" and p.model.mixture.components[1].mu2 == 2.5
    p.true_table.item(1, 2).setText("−1.5")  # a typographic minus is a minus
    assert p.model.mixture.components[1].mu2 == -1.5 and p.true_table.item(1, 2).text() == "-1.5"
    p.true_k.setValue(2)
    assert p.true_table.rowCount() == 2 and p.model.mixture.k == 2
    p.true_k.setValue(3)  # the third row comes back from the defaults
    assert p.true_table.item(2, 0).text() == "0.2"


def test_nothing_overlaps(qtbot, add_panel):
    """The free-energy legend sits beside the axes (never over the first iterations), and the
    explanation under the plots clears the x-axis label."""
    p = add_panel(EMPlaygroundPanel(None))
    p.resize(1200, 700)
    p.show()
    qtbot.waitExposed(p)
    for _ in range(2):
        p.iterate()
    plot = p.trace_plot
    qtbot.waitUntil(lambda: plot.legend.sceneBoundingRect().width() > 0)
    vb = plot.plot_item.getViewBox().sceneBoundingRect()
    assert not plot.legend.sceneBoundingRect().intersects(vb)
    bottom_axis = plot.plot_item.getAxis("bottom").sceneBoundingRect()
    plot_bottom = plot.mapTo(p, plot.mapFromScene(bottom_axis.bottomLeft()).toPointF().toPoint()).y()
    assert plot_bottom <= p.caption.mapTo(p, p.caption.rect().topLeft()).y()


def test_hover_asked_for_follows_its_point(qtbot, playground):
    p = playground
    p.resize(1000, 700)
    p.show()
    qtbot.waitExposed(p)
    p.e_step()
    p.show_hover(0)
    assert p.view.hover_label.isVisible() and "γ (last E-step)" in p.view.hover_label.text()
    p.vb.setRange(xRange=(-5, 5), yRange=(-5, 5), padding=0)  # a pan or a layout change keeps it
    assert p.view.hover_label.isVisible()
    p.add_point(0.0, 0.0)  # new points: indices change, the hover goes
    assert not p.view.hover_label.isVisible()
