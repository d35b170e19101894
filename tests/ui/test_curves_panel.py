"""Live curves: records become points, the gap is log p̂(x) − ELBO, exports are real files."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage

from lvm_studio.core.history import EvalRecord, History, StepRecord
from lvm_studio.ui.training.curves_panel import SMOOTHING, CurvesPanel


def _step(i, elbo, recon=None, kl=5.0):
    recon = elbo + kl if recon is None else recon
    return StepRecord(
        step=10 * i, epoch=i / 20, elbo=elbo, recon=recon, kl=kl, loss=-elbo, lr=1e-3, beta=1.0, images_per_s=1000.0
    )


def _eval(i, elbo, log_px, iw=()):
    return EvalRecord(
        step=10 * i,
        epoch=i / 20,
        split="val",
        n=50,
        elbo=elbo,
        recon=elbo + 5.0,
        kl=5.0,
        log_px=log_px,
        k=100,
        iw_bounds=tuple(iw),
    )


@pytest.fixture
def panel(qtbot, hub):
    p = CurvesPanel(hub)
    qtbot.addWidget(p)
    p.resize(700, 600)
    p.show()
    return p


def test_curves_receive_points_from_the_history(qtbot, panel, hub):
    elbos = [-540.0, -300.0, -200.0, -150.0, -130.0]
    for i, e in enumerate(elbos, 1):
        hub.add_record(_step(i, e))
    hub.add_record(_eval(5, elbo=-128.0, log_px=-123.5))
    # the redraw timer picks them up: no call from the test
    qtbot.waitUntil(
        lambda: panel.buffers.train_raw.n == 5 and len(panel.train_raw_curve.getData()[0]) == 5, timeout=2_000
    )
    x, y = panel.train_raw_curve.getData()
    np.testing.assert_allclose(x, [i / 20 for i in range(1, 6)])
    np.testing.assert_allclose(y, elbos)
    # smoothed: the bias-corrected exponential average (Kingma & Ba 2015, §3)
    m, expected = 0.0, []
    for t, e in enumerate(elbos, 1):
        m = SMOOTHING * m + (1 - SMOOTHING) * e
        expected.append(m / (1 - SMOOTHING**t))
    np.testing.assert_allclose(panel.train_smooth_curve.getData()[1], expected)
    assert panel.train_smooth_curve.getData()[1][0] == pytest.approx(elbos[0])  # no pull towards zero
    assert list(panel.log_px_curve.getData()[1]) == [-123.5]
    assert list(panel.val_elbo_curve.getData()[1]) == [-128.0]
    assert panel.evals_plotted == 1
    assert "gap (shaded) 4.50 nats" in panel.summary.text()
    # reconstruction on the left axis, KL on the right-hand ViewBox
    assert panel.kl_curve.getViewBox() is panel._kl_vb
    assert panel.recon_curve.getViewBox() is panel.terms_plot.vb


def test_no_redraw_without_new_records(qtbot, panel, hub):
    hub.add_record(_step(1, -200.0))
    qtbot.waitUntil(lambda: panel.redraws >= 2, timeout=2_000)
    n = panel.redraws
    qtbot.wait(250)  # an absence to check: a quarter of a second without new records, and no redraw
    assert panel.redraws == n


def test_buffers_grow_past_their_capacity(panel, hub):
    elbos = -100.0 - np.arange(3000) % 7
    for i, e in enumerate(elbos, 1):
        hub.add_record(_step(i, float(e)))
    panel.redraw()
    np.testing.assert_allclose(panel.buffers.train_raw.ys, elbos)
    assert panel.buffers.train_raw.n == 3000


def test_a_new_history_replaces_the_curves(panel, hub, tiny_model):
    hub.add_record(_step(1, -200.0))
    hub.add_record(_eval(1, -190.0, -185.0))
    panel.redraw()
    assert panel.evals_plotted == 1
    history = History(train=[_step(1, -90.0), _step(2, -89.0)], evals=[])
    hub.set_model(tiny_model, name="other", history=history)
    assert list(panel.train_raw_curve.getData()[1]) == [-90.0, -89.0]
    assert panel.evals_plotted == 0 and "gap" not in panel.summary.text()


def test_iw_bounds_get_one_curve_per_k(panel, hub):
    hub.add_record(_eval(1, -130.0, -125.0, iw=((1, -130.2), (5, -127.0), (50, -125.5))))
    hub.add_record(_eval(2, -120.0, -116.0, iw=((1, -120.1), (5, -118.0), (50, -116.4))))
    panel.redraw()
    assert sorted(panel._iw_curves) == [1, 5, 50]
    assert list(panel._iw_curves[5].getData()[1]) == [-127.0, -118.0]
    panel.show_iw.setChecked(False)
    assert not any(c.isVisible() for c in panel._iw_curves.values())


def test_hover_shows_the_nearest_values(qtbot, panel, hub):
    for i in range(1, 21):
        hub.add_record(_step(i, -200.0 + i))
    hub.add_record(_eval(10, -185.0, -180.25))
    panel.redraw()
    html = panel.hover_html(0.5)  # epoch 0.5 = record 10
    assert "epoch 0.50" in html and "train ELBO -190.00" in html
    assert "log p(x) ≈ -180.25 (IWAE-100)" in html and "gap ≈ KL(q‖p(z|x)) 4.75" in html
    # a real mouse move over the plot shows the read-out
    qtbot.waitUntil(lambda: panel.bounds_plot.vb.width() > 50, timeout=2_000)
    panel.bounds_plot.vb.setRange(xRange=(0.0, 1.0), yRange=(-200.0, -170.0), padding=0)
    scene_pos = panel.bounds_plot.vb.mapViewToScene(QPointF(0.5, -185.0))
    panel._on_mouse_moved((scene_pos,))
    text = panel._hover_text[panel.bounds_plot]
    assert text.isVisible() and "epoch 0.50" in text.toHtml()
    assert all(line.isVisible() and line.value() == pytest.approx(0.5, abs=0.05) for line in panel._hover_lines)


def test_export_png_svg_and_csv(panel, hub, tmp_path):
    for i in range(1, 11):
        hub.add_record(_step(i, -150.0 + i))
    hub.add_record(_eval(10, -141.0, -137.0, iw=((5, -139.0),)))
    png = panel.export_png(tmp_path / "curves.png")
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 2 * panel.view.width() - 2

    svg = panel.export_svg(tmp_path / "curves.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    paths = [e for e in root.iter() if e.tag.endswith(("path", "polyline"))]
    assert len(paths) > 10  # axes, grid and curves drawn as vectors
    assert "epoch" in svg.read_text(encoding="utf-8")

    csv = panel.export_csv(tmp_path / "history.csv").read_text(encoding="utf-8")
    assert csv == hub.history.to_csv()
    lines = csv.strip().splitlines()
    assert len(lines) == 1 + 10 + 1 and lines[0].startswith("kind,step") and "iw_5" in lines[0]


def test_follow_leaves_out_the_first_steps_until_the_user_zooms(qtbot, panel, hub):
    elbos = [-540.0, -400.0] + [-110.0 + 0.01 * i for i in range(998)]
    for i, e in enumerate(elbos, 1):
        hub.add_record(_step(i, e))
    hub.add_record(_eval(1000, -105.0, -100.0))
    panel.redraw()
    lo, hi = panel.bounds_plot.vb.viewRange()[1]
    assert -115.0 < lo < -109.0 and -100.0 < hi < -95.0  # the first records are off-screen
    # a hand-made zoom turns following off and is kept through new data
    panel.bounds_plot.vb.sigRangeChangedManually.emit([True, True])
    assert not panel.follow.isChecked()
    panel.bounds_plot.vb.setYRange(-600.0, 0.0, padding=0)
    hub.add_record(_step(1001, -99.0))
    panel.redraw()
    assert panel.bounds_plot.vb.viewRange()[1] == pytest.approx([-600.0, 0.0])
    panel.follow.setChecked(True)
    assert panel.bounds_plot.vb.viewRange()[1][0] > -115.0


def test_redraws_follow_the_records_not_a_clock(qtbot, panel, hub):
    n = panel.redraws
    hub.add_record(_step(1, -200.0))
    qtbot.waitUntil(lambda: panel.redraws == n + 1, timeout=2_000)
    for i in range(2, 12):  # a burst of records: one redraw for all of them
        hub.add_record(_step(i, -190.0))
    qtbot.waitUntil(lambda: panel.buffers.train_raw.n == 11, timeout=2_000)
    assert panel.redraws == n + 2
    panel.stop_redrawing()  # the window is closing: records no longer schedule a redraw
    hub.add_record(_step(12, -180.0))
    assert not panel._timer.isActive()
    panel.redraw()  # an explicit redraw still draws
    assert panel.buffers.train_raw.n == 12


def test_a_hidden_panel_draws_nothing_and_redraws_once_when_shown(qtbot, hub):
    p = CurvesPanel(hub)
    qtbot.addWidget(p)
    p.resize(700, 600)
    for i in range(1, 31):
        hub.add_record(_step(i, -200.0 + i))
    hub.add_record(_eval(30, -170.0, -166.0))
    qtbot.wait(150)  # an absence to check: no redraw and no timer while hidden
    assert p.redraws == 0 and not p._timer.isActive() and p.buffers.train_raw.n == 0
    p.show()
    qtbot.waitUntil(lambda: p.redraws == 1, timeout=2_000)
    assert p.buffers.train_raw.n == 30 and len(p.train_raw_curve.getData()[0]) == 30 and p.evals_plotted == 1
    qtbot.wait(150)
    assert p.redraws == 1 and not p._timer.isActive()
    p.hide()
    p.show()  # nothing new arrived: no redraw
    qtbot.wait(100)
    assert p.redraws == 1


def test_long_histories_are_drawn_decimated(qtbot, panel, hub):
    n = 50_000
    hub.set_model(
        hub.model,
        name="long",
        history=History(train=[_step(i, -100.0 - (i % 97) * 0.1) for i in range(1, n + 1)], evals=[]),
    )
    panel.redraw()
    panel.view.viewport().repaint()
    assert panel.buffers.train_raw.n == n  # the data keep every point (the hover and the CSV read them) ...
    drawn = len(panel.train_raw_curve.getData()[0])  # ... the curve draws two per pixel column
    assert drawn <= 4 * panel.bounds_plot.vb.width() + 8, drawn
    # min–max decimation keeps the extremes of every column
    ys = panel.train_raw_curve.curve.yData
    assert ys.min() == pytest.approx(-100.0 - 9.6) and ys.max() == pytest.approx(-100.0)


def test_no_axis_shows_an_si_prefix_and_epoch_one_reads_in_epochs(qtbot, panel, hub):
    from lvm_studio.ui.widgets.axes import axes_in

    for i in range(1, 17):  # epochs 0.05 … 0.8: the first epoch
        hub.add_record(_step(i, -200.0 + i))
    panel.redraw()
    panel.view.viewport().repaint()
    axes = axes_in(panel.view)
    assert len(axes) >= 6
    for a in axes:
        assert not a.autoSIPrefix and a.autoSIPrefixScale == 1.0
        assert "(x0" not in a.labelString() and "(x1" not in a.labelString()
    bottom = panel.bounds_plot.getAxis("bottom")
    lo, hi = bottom.range
    assert 0.0 <= lo < 0.1 and 0.8 <= hi <= 1.0  # epochs, not thousandths of one


def test_exported_png_is_1600_pixels_wide_with_a_readable_legend(panel, hub, tmp_path):
    from lvm_studio.ui.training.curves_panel import EXPORT_SIZE

    for i in range(1, 11):
        hub.add_record(_step(i, -150.0 + i))
    hub.add_record(_eval(10, -141.0, -137.0))
    assert (EXPORT_SIZE.width(), EXPORT_SIZE.height()) == (800, 600)
    for width in (700, 1500):  # a narrow and a wide dock give the same figure
        panel.resize(width, 600)
        before = panel.view.ci.geometry()
        image = QImage(str(panel.export_png(tmp_path / f"curves{width}.png")))
        assert (image.width(), image.height()) == (1600, 1200)
        assert panel.view.ci.geometry() == before  # the layout on screen is back as it was


def test_min_max_envelope_keeps_each_buckets_extremes():
    from lvm_studio.ui.training.curve_buffers import MinMaxEnvelope, Series

    rng = np.random.default_rng(3)
    n, buckets = 10_000, 64
    x, y = np.arange(n) / 100.0, rng.normal(size=n).cumsum()
    s = Series(16, envelope=True)
    s.envelope = MinMaxEnvelope(max_buckets=buckets)
    for xi, yi in zip(x, y):
        s.append(float(xi), float(yi))
    env = s.envelope
    assert env.size == 128 and env.k <= 2 * buckets  # 10,000 points in buckets of 128
    full = n // env.size
    np.testing.assert_allclose(env.x[:full], x[: full * env.size : env.size])
    np.testing.assert_allclose(env.y_max[:full], y[: full * env.size].reshape(full, env.size).max(axis=1))
    np.testing.assert_allclose(env.y_min[:full], y[: full * env.size].reshape(full, env.size).min(axis=1))
    np.testing.assert_allclose(env.y_max[full], y[full * env.size :].max())  # the part-filled last bucket
    dx, dy = s.drawn()
    assert len(dx) == 2 * env.k and dy.max() == y.max() and dy.min() == y.min()
    assert s.drawn(decimate=False)[1] is not dy and len(s.drawn(decimate=False)[1]) == n
    short = Series(envelope=True)
    short.append(0.0, 1.0)
    assert short.drawn()[1].tolist() == [1.0]  # no envelope until it is coarser than the data
