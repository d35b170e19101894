"""The lecture tour in the main window: each step reaches its state, predictions are scored, each
reveal's numbers are the core computation's and the panel shows them, keys, leaving restores what
was open, a malformed tour is one line, presenter mode scales the interface and is remembered."""

import dataclasses
import json
import math

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from lvm_studio.core import tour as T
from lvm_studio.core import vi_1d
from lvm_studio.core.pixel_tasks import binarized_train_subset, fit_mixture_task
from lvm_studio.core.q_elbo import elbo_for_q
from lvm_studio.core.tour_reveals import run_reveal
from lvm_studio.core.training import eval_images
from lvm_studio.ui.panels import PANELS


@pytest.fixture
def lecture(qtbot, make_window, add_panel):
    w = make_window(panel_specs=PANELS)
    w.resize(1366, 768)
    w.show()
    add_panel(w)
    return w.lecture


def wait_revealed(qtbot, lec, timeout=60000):
    with qtbot.waitSignal(lec.revealed, timeout=timeout) as blocker:
        lec.reveal()
    return blocker.args[0]


def quick(tour: T.Tour, **args_by_step) -> T.Tour:
    """The tour with smaller reveal arguments for some steps (the tests' time budget)."""
    steps = []
    for s in tour.steps:
        if s.id in args_by_step:
            s = dataclasses.replace(
                s, reveal=dataclasses.replace(s.reveal, args={**s.reveal.args, **args_by_step[s.id]})
            )
        steps.append(s)
    return dataclasses.replace(tour, steps=tuple(steps))


def test_each_step_reaches_its_state_predictions_are_scored_reveals_are_shown_and_leaving_restores(qtbot, lecture):
    """One window for the whole walk (a window with every panel costs seconds to build)."""
    w, hub, data = lecture.window, lecture.hub, lecture.hub.data
    user_model, user_history = hub.model, hub.history
    hub.set_dirty(True)  # unsaved work of the user's own
    assert not lecture.dock.isVisible()
    small = {"digit-clusters": {"max_iter": 3}, "naive-mc": {"k_max": 100, "runs": 1}, "tight": {"steps": 10, "n": 41}}
    # the pixel panel's joint: a tiny Bernoulli mixture instead of its 50 components fitted at first show
    tiny_joint = fit_mixture_task(None, binarized_train_subset(data, 300), k=3, iters=3)
    w.docks["pixel_latents"].widget().use_joint("mixture", tiny_joint)
    assert lecture.start(quick(lecture.load(), **small))
    tour = lecture.tour
    assert len(tour.steps) == 14 and lecture.dock.isVisible()
    for i, step in enumerate(tour.steps[:-1]):  # the last trains live: below
        assert lecture.go_to(i), step.id
        view = lecture.view
        assert view.progress.value() == i + 1 and f"<b>{i + 1}</b> of 14" in view.position.text()
        if step.setup.model in ("vae2", "vae32"):
            assert hub.path is not None and hub.path.name == f"{step.setup.model}.pt"
        if step.setup.panel in w.docks:
            assert w.docks[step.setup.panel].isVisible()
        assert lecture.vi_dock.isVisible() == (step.setup.panel == "lecture_vi_1d")
        panel = w.docks[step.setup.panel].widget() if step.setup.panel in w.docks else None
        check = STEP_CHECKS.get(step.id)
        if check is not None:
            check(qtbot, lecture, panel, step)
    assert not w.errors, w.errors

    # the keys a presentation clicker sends
    lecture.go_to(5)
    lecture.view.next_button.setFocus()
    qtbot.keyClick(w, Qt.Key.Key_PageDown)
    assert lecture.index == 6
    qtbot.keyClick(w, Qt.Key.Key_Left)
    assert lecture.index == 5
    qtbot.keyClick(w, Qt.Key.Key_Right)
    assert lecture.index == 6

    # the last step: a fresh model trained live; leaving stops it and brings back the user's model
    assert lecture.go_to(13)
    qtbot.waitUntil(lambda: w.controller.state in ("running", "starting"), timeout=20000)
    assert hub.name.startswith("untrained") and w.docks["curves"].isVisible()
    lecture.leave()
    assert not w.controller.is_active()
    assert hub.history is user_history and hub.name == "tiny VAE" and hub.dirty
    assert all((a == b).all() for a, b in zip(user_model.state_dict().values(), hub.model.state_dict().values()))
    assert not lecture.dock.isVisible() and not lecture.active
    del data


def check_factors(qtbot, lecture, panel, step):
    assert lecture.hub.latent_dim == 32 and not np.any(panel.z())
    lecture.predict("bottom")
    out = wait_revealed(qtbot, lecture)
    v = out.result.values
    assert v == run_reveal(step.reveal.compute, lecture.hub.model, lecture.hub.data, step.reveal.args, 0).values
    assert out.score.answer == "top" and not out.score.correct  # a wrong prediction, scored
    assert "✗" in lecture.view.score_label.text()
    z = panel.z()
    assert z[v["top_dim"] - 1] == pytest.approx(2.0) and np.count_nonzero(z) == 1


def check_generative(qtbot, lecture, panel, step):
    lecture.predict(430)
    out = wait_revealed(qtbot, lecture)
    assert out.result.values["count_biggest"] == 422 and out.score.correct  # 430 is within ±50
    assert "within ±50" in out.score.text and "✓" in lecture.view.score_label.text()


def check_em(qtbot, lecture, panel, step):
    assert panel.session.iteration == 0 and panel.points.shape == (300, 2)
    lecture.predict("no")
    out = wait_revealed(qtbot, lecture)
    assert out.score.correct
    lecture.stage.finish()  # the playground's animated iterations, at once
    assert panel.session.iteration == out.result.values["iterations"]
    assert panel.session.log_likelihood() == pytest.approx(out.result.values["last"], abs=1e-4)


def check_clusters(qtbot, lecture, panel, step):
    out = wait_revealed(qtbot, lecture)
    assert panel.result is out.result.extra["result"]
    assert 100 * panel.result.accuracy == pytest.approx(out.result.values["accuracy"], abs=0.01)


def check_density(qtbot, lecture, panel, step):
    assert panel.tabs.currentWidget() is panel.density


def check_masked(qtbot, lecture, panel, step):
    assert panel.canvas.mask()[:14].all() and not panel.canvas.mask()[14:].any()


def check_pixel_latents(qtbot, lecture, panel, step):
    """The 'Missing pixels as latents' panel (issue 15): a 9 with its top half hidden; the reveal computes
    with the panel's own joint and the panel shows the ELBO of the answer's φ, the same number."""
    assert int(lecture.hub.labels("test")[panel.controls.picker.index()]) == 9
    assert panel.missing().reshape(28, 28)[:14].all() and not panel.missing().reshape(28, 28)[14:].any()
    lecture.predict("marginals")
    out = wait_revealed(qtbot, lecture)
    v = out.result.values
    assert out.result.extra["joint"] is panel.joint
    assert v["elbo_half"] < v["log_px_observed"] and v["elbo_marginals"] < v["log_px_observed"]
    assert v["entropy_ones"] == 0 and v["gap_marginals"] >= 0
    qtbot.waitUntil(
        lambda: (
            panel.numbers is not None and panel.numbers.elbo.elbo == pytest.approx(v[f"elbo_{v['answer']}"], abs=1e-3)
        ),
        timeout=30000,
    )


def check_naive(qtbot, lecture, panel, step):
    out = wait_revealed(qtbot, lecture)
    direct = run_reveal("estimator_lab", lecture.hub.model, lecture.hub.data, step.reveal.args, step.reveal.seed)
    assert out.result.values == direct.values  # seeded: the class sees the same numbers
    assert panel.sweep is out.result.extra["sweep"]
    assert panel.naive_mean.yData.tolist() == pytest.approx(direct.values["naive"], abs=1e-3)


def check_elbo(qtbot, lecture, panel, step):
    out = wait_revealed(qtbot, lecture)  # no prediction made
    assert not out.score.correct and "No prediction" in out.score.text
    model = lecture.hub.model
    x = eval_images(lecture.hub.data, "test", "bernoulli")[:1]
    assert out.result.values["elbo"] == pytest.approx(
        float(elbo_for_q(model, x, *model.encode(x), "quadrature").elbo[0])
    )
    assert f"{out.result.values['gap']:.2f}" in lecture.view.explanation.text()


def check_tight(qtbot, lecture, panel, step):
    assert lecture.hub.latent_dim == 2 and panel.x_description == "test digit 0"
    out = wait_revealed(qtbot, lecture)
    v = out.result.values
    assert panel.q_loc.tolist() == pytest.approx(v["q_loc"], abs=1e-4)
    # the panel's own ELBO of φ* (quadrature, its numbers task) is the reveal's
    qtbot.waitUntil(
        lambda: panel.numbers is not None and panel.numbers.elbo == pytest.approx(v["elbo_optimised"], abs=0.01),
        timeout=30000,
    )


def check_pick_phi(qtbot, lecture, panel, step):
    lecture.predict("a")
    out = wait_revealed(qtbot, lecture)
    v = out.result.values
    assert v["kl_a"] == pytest.approx(vi_1d.score_q(vi_1d.Model1D(), 2.0, math.sqrt(2.0)).kl, abs=1e-4)
    assert out.score.correct
    view = lecture.vi_view
    view.set_q(2.0, math.sqrt(2.0))  # the student drags φ onto N(2, 2): the view shows the reveal's numbers
    assert view.score.elbo == pytest.approx(v["elbo_a"], abs=2e-3)
    assert view.score.elbo + view.score.kl == pytest.approx(v["log_px"], abs=1e-3)


STEP_CHECKS = {
    "factors": check_factors,
    "generative": check_generative,
    "em": check_em,
    "digit-clusters": check_clusters,
    "mixture-density": check_density,
    "partial": check_masked,
    "naive-mc": check_naive,
    "elbo": check_elbo,
    "tight": check_tight,
    "pick-phi": check_pick_phi,
    "missing-pixels": check_pixel_latents,
}


def test_tour_files_malformed_and_own_and_presenter_mode(qtbot, make_window, tmp_path):
    """A malformed tour is one line and changes nothing; a teacher's own tour file runs; presenter mode scales
    the interface and is remembered."""
    import pyqtgraph as pg

    w = make_window()  # no panels: a tour file is refused before any panel matters
    lecture = w.lecture
    bad = tmp_path / "mine.json"
    bad.write_text('{"format": "lvm-studio-tour", "version": 1, "title": "x", "steps": [{"id": "a b"}]}')
    assert not lecture.open_tour(bad)
    message = w.errors[-1]
    assert "\n" not in message and "mine.json: steps[0]" in message and "letters, digits" in message
    assert not lecture.active
    # a teacher's own tour, in the same format: one step on the 1-D posterior
    mine = {
        "format": "lvm-studio-tour",
        "version": 1,
        "title": "My lecture",
        "steps": [
            {
                "id": "phi",
                "title": "Pick φ",
                "text": "Two bumps, one posterior.",
                "setup": {"model": "current", "panel": "lecture_vi_1d", "state": {"mu": 1.0, "sigma": 0.5}},
                "question": {"kind": "slider", "prompt": "KL of N(2, 2)?", "min": 0, "max": 5, "answer": "kl_a"}
                | {"tolerance": 0.5},
                "reveal": {"compute": "pick_phi", "seed": 0, "explain": "KL {kl_a:.3f}"},
            }
        ],
    }
    good = tmp_path / "good.json"
    good.write_text(json.dumps(mine), encoding="utf-8")
    assert lecture.open_tour(good) and lecture.active and lecture.tour.title == "My lecture"
    assert not lecture.vi_dock.isHidden() and lecture.vi_view.q() == pytest.approx((1.0, 0.5), abs=0.01)
    lecture.predict(1.0)
    with qtbot.waitSignal(lecture.revealed, timeout=20000) as blocker:
        lecture.reveal()
    assert blocker.args[0].score.correct and "KL 1.050" in lecture.view.explanation.text()
    lecture.leave()

    app = QApplication.instance()
    base = app.font().pointSizeF()
    lecture.set_presenter(True)
    assert app.font().pointSizeF() == pytest.approx(1.5 * base)
    assert w.settings.value("lecture/presenter") in (True, "true")
    axes = [i for v in w.findChildren(pg.GraphicsView) for i in v.scene().items() if isinstance(i, pg.AxisItem)]
    assert axes and all(a.style["tickFont"].pointSizeF() == pytest.approx(1.5 * base) for a in axes)
    lecture.set_presenter(False)
    assert app.font().pointSizeF() == pytest.approx(base)
    assert all(a.style["tickFont"] is None for a in axes)
    assert w.settings.value("lecture/presenter") in (False, "false")
