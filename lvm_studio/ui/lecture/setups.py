"""How a tour step sets a panel up (its `setup.state`) and shows a reveal where it happens.

Both go through the panels' public methods only. `apply_state(window, view, key, state)` runs
after the step's model is open and its panel is in front; `show_reveal(window, view, step, result)`
after the reveal's numbers are in. Each returns at once; anything animated runs on a QTimer owned by
the Stage, which the controller stops when the step changes.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QObject, QTimer

from lvm_studio.core.tour import Step
from lvm_studio.core.tour_reveals import RevealResult

LECTURE_PANELS = ("lecture_vi_1d",)  # the lecture's own views (docked by the controller)
ANIMATION_MS = 250  # between the animated EM iterations and samples


def panel_keys(window) -> set[str]:
    """Every panel a tour may bring to the front (the lecture dock itself is not one)."""
    return (set(window.docks) | set(LECTURE_PANELS)) - {"lecture"}


def panel_widget(window, key: str):
    dock = window.docks.get(key)
    return None if dock is None else dock.widget()


class Stage(QObject):
    """Runs one step's animation (a few EM iterations, a few samples), one action per tick."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setInterval(ANIMATION_MS)
        self.timer.timeout.connect(self._tick)
        self._actions: list = []

    def play(self, actions: list) -> None:
        self._actions = list(actions)
        if self._actions:
            self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self._actions = []

    def finish(self) -> None:
        """Run what is left at once (tests, the smoke tour)."""
        self.timer.stop()
        while self._actions:
            self._actions.pop(0)()

    @property
    def busy(self) -> bool:
        return bool(self._actions)

    def _tick(self) -> None:
        if not self._actions:
            self.timer.stop()
            return
        self._actions.pop(0)()
        if not self._actions:
            self.timer.stop()


def test_index(window, state: dict) -> int:
    """state 'digit' (a test index) or 'label' (the first test digit with it)."""
    if "label" in state:
        hits = np.flatnonzero(np.asarray(window.hub.labels("test")) == int(state["label"]))
        return int(hits[0]) if len(hits) else 0
    return int(state.get("digit", 0))


def apply_state(window, view, key: str, state: dict) -> None:
    """Put the panel `key` into the step's starting state."""
    panel = panel_widget(window, key)
    if key == "lecture_vi_1d":
        view.vi_view.show_candidates(None)
        view.vi_view.set_q(float(state.get("mu", 0.0)), float(state.get("sigma", 1.0)))
    elif key == "latent_sliders" and state.get("z") == "zero":
        panel.set_z(np.zeros(window.hub.latent_dim, dtype=np.float32))
    elif key == "em_playground":
        play = panel.model  # core.em_playground.EMPlayground, the panel's state
        panel.stop()
        if "n" in state or "data_seed" in state:
            play.set_sampling(n=int(state.get("n", play.n)), data_seed=int(state.get("data_seed", play.data_seed)))
        panel.set_point_set(state.get("point_set", "overlapping blobs"))
        play.set_config(covariance="full", init="kmeans++", seed=int(state.get("seed", 0)))
    elif key == "digit_clusters":
        panel.show_tab(state.get("tab", "clusters"))
    elif key == "latent_map":
        if window.hub.latent_dim == 2:
            panel.set_axes("dims", 0, 1)
        if state.get("manifold"):
            panel.manifold_box.setChecked(True)
            panel.request_manifold()
    elif key == "inpainting":
        panel.load_test_digit(test_index(window, state))
        panel.apply_preset(state.get("mask", "top_half"))
    elif key == "estimator_lab":
        panel.set_digit(test_index(window, state))
    elif key == "pixel_latents":
        panel.set_joint(state.get("joint", "mixture"))
        panel.set_digit(test_index(window, state))
        panel.set_mask(state.get("mask", "top_half"))
    elif key == "posterior":
        panel.set_digit_index(test_index(window, state))
    elif key == "curves":
        panel.redraw()


def reveal_input(window, step: Step, hub_model):
    """(model, None): what the reveal computes with; or (None, signal): wait for the signal first (the
    "Missing pixels as latents" panel's joint, fitted by EM in the background, is reused, not refitted)."""
    if step.reveal.compute == "pixel_latents":
        panel = panel_widget(window, "pixel_latents")
        if panel is None:
            return None, None  # no panel: the reveal fits the mixture itself
        if panel.joint is None:
            if not getattr(panel, "_started", True):
                panel.start()
            return None, panel.joint_ready
        return panel.joint, None
    return hub_model, None


def show_reveal(window, view, stage: Stage, step: Step, result: RevealResult) -> None:
    """Show the reveal's numbers where they happen (the panel of the step)."""
    key, v = step.setup.panel, result.values
    panel = panel_widget(window, key)
    name = result.name
    if name == "factor_of_variation":
        panel.set_z(result.extra["z"].astype(np.float32))
    elif name == "mixture_sampling":
        stage.play([panel.sample_one for _ in range(5)])
    elif name == "em_iterations":
        apply_state(window, view, key, step.setup.state)  # from iteration 0, as the reveal ran
        stage.play([panel.iterate for _ in range(int(v["iterations"]))])
    elif name == "digit_clusters":
        panel.show_clusters(result.extra["result"])
    elif name == "mixture_density":  # the panel fits the largest mixture itself, with the same settings
        args = step.reveal.args
        panel.show_tab("density")
        panel.fit_density(
            k=max(v["ks"]),
            seed=step.reveal.seed,
            max_iter=int(args.get("max_iter", 20)),
            fit_on=args.get("fit_on", "10k"),
            n_vae=0,
        )
    elif name == "infinite_mixture":
        panel.decode_at(*v["best_z"])
    elif name == "partial_observation":
        panel.request_fit()
    elif name == "pixel_latents":  # the answer's φ on the canvas: the panel computes its ELBO (same seed, same n)
        panel.set_phi_preset(v["answer"])
    elif name in ("estimator_lab", "importance_bias"):
        panel.show_sweep(result.extra["sweep"], result.extra["exact"])
    elif name == "tight_bound":
        panel.set_q(v["q_loc"], v["q_scale"])
    elif name == "pick_phi":
        args = step.reveal.args
        qa, qb = args.get("q_a", (2.0, 2.0)), args.get("q_b", (-4.0, 0.5625))
        view.vi_view.set_model(result.extra["model"])
        view.vi_view.show_candidates([(qa[0], math.sqrt(qa[1])), (qb[0], math.sqrt(qb[1]))])
    elif name in ("elbo_gap", "train_together"):
        window.curves_panel.redraw()
