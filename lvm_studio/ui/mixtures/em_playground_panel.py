"""EM playground: a Gaussian mixture fitted to 2-D points, one half-step at a time.

The shallow latent variable model z ~ Cat(π), x | z ~ N(μ_z, Σ_z): choose a point set (or sample
one from a mixture you set up, or click points in), then press E-step / M-step / Iteration, or Run
to watch EM converge. Each point is coloured Σ_k γ_nk colour_k, so uncertain points look mixed; each
component is drawn as its 1σ and 2σ ellipses with its weight π_k. Below, the free energy F(q, θ)
after every half-step (Neal & Hinton 1998): the E-step raises it to the log-likelihood, the M-step
raises it with q fixed.

The pieces: the state in core.em_playground.EMPlayground (points, generating mixture, settings,
the EMSession and its trace), its change events as a Qt signal (em_playground_signals), the plot
of the points (em_points_view), the free-energy plot (em_trace_plot) and the side column
(em_controls). This panel wires them and runs the animation timer. The model is stepped on the GUI
thread: a few hundred 2-D points cost about 2 ms per iteration (measured 1.7 ms for 300 points,
K = 3, one busy core).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QSplitter, QVBoxLayout, QWidget

from lvm_studio.core.em_playground import CUSTOM, EMPTY, EMPlayground
from lvm_studio.core.em_session import EMSession
from lvm_studio.core.gmm import GMMConfig
from lvm_studio.ui.mixtures.em_controls import EMControls
from lvm_studio.ui.mixtures.em_playground_signals import PlaygroundSignals
from lvm_studio.ui.mixtures.em_points_view import K_MAX, EMPointsView, subscript
from lvm_studio.ui.mixtures.em_trace_plot import FreeEnergyPlot, free_energy_caption
from lvm_studio.ui.visibility import screen_change

__all__ = ["CUSTOM", "EMPTY", "K_MAX", "EMPlaygroundPanel"]

ADD_SPACING_PX = 7.0  # dragging adds a point every this many pixels
ERASE_RADIUS_PX = 12.0
STOPS_THE_RUN = ("points", "reset", "config", "mixture")  # events after which a run makes no sense
# the side column's widgets, reachable as panel attributes (tests, bench/screenshots/mixtures.py)
CONTROL_NAMES = (
    "point_set",
    "n_points",
    "data_seed",
    "true_k",
    "true_table",
    "show_true",
    "sample_info",
    "k_spin",
    "covariance",
    "init",
    "seed",
    "e_button",
    "m_button",
    "iter_button",
    "run_button",
    "reset_button",
    "speed",
    "show_ellipses",
    "density",
    "status",
)


class EMPlaygroundPanel(QWidget):
    stepped = Signal(str)  # 'E', 'M', 'reset': the model changed and the view was redrawn
    points_changed = Signal()
    run_finished = Signal()  # run to convergence stopped (converged, limit, or paused)

    def __init__(self, hub=None, parent=None):
        super().__init__(parent)
        self.hub = hub  # not needed: the playground works on its own points
        self.model = EMPlayground(GMMConfig(n_components=3))
        self.signals = PlaygroundSignals(self.model, self)
        self.view = EMPointsView(self.model)
        self.trace_plot = FreeEnergyPlot()
        self.caption = free_energy_caption()
        self.controls = EMControls(self.model)
        self._last_drag: tuple[float, float] | None = None
        self._expose_parts()
        self._lay_out()
        self._build_timer()
        self._connect()
        self.set_point_set("overlapping blobs")

    # --- building ----------------------------------------------------------------------------------
    def _expose_parts(self) -> None:
        self.plot, self.vb = self.view, self.view.vb
        self.ellipses = self.view.ellipses
        self.component_colours = self.view.component_colours
        self.palette_brushes = self.view.palette_brushes
        self.ll_plot, self.f_curve = self.trace_plot, self.trace_plot.f_curve
        for name in CONTROL_NAMES:
            setattr(self, name, getattr(self.controls, name))

    def _lay_out(self) -> None:
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.view)
        split.addWidget(self.trace_plot)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        left = QVBoxLayout()
        left.addWidget(split, 1)
        left.addWidget(self.caption)  # outside the splitter: it keeps the height its words need
        lay = QHBoxLayout(self)
        lay.addLayout(left, 1)
        lay.addWidget(self.controls)

    def _build_timer(self) -> None:
        self.run_timer = QTimer(self)
        self.run_timer.timeout.connect(self._on_run_tick)
        self._on_speed_changed(self.controls.speed.value())

    def _connect(self) -> None:
        c = self.controls
        self.signals.changed.connect(self._on_model_changed)
        c.point_set_chosen.connect(self.set_point_set)
        c.mouse_mode_changed.connect(self._on_mouse_mode_changed)
        c.sample_one_button.clicked.connect(lambda: self.sample_one())
        c.e_button.clicked.connect(lambda: self.e_step())
        c.m_button.clicked.connect(lambda: self.m_step())
        c.iter_button.clicked.connect(lambda: self.iterate())
        c.reset_button.clicked.connect(lambda: self.reset())
        c.run_button.clicked.connect(self._on_run_clicked)
        c.speed.valueChanged.connect(self._on_speed_changed)
        c.show_ellipses.toggled.connect(self._on_show_ellipses)
        c.show_true.toggled.connect(self._on_show_true)
        c.density.currentIndexChanged.connect(lambda *_: self.view.set_density_mode(c.density.currentData()))
        self.vb.clicked.connect(self._on_canvas_clicked)
        self.vb.dragged.connect(self._on_canvas_dragged)

    # --- the model's state -------------------------------------------------------------------------
    @property
    def session(self) -> EMSession:
        return self.model.session

    @property
    def points(self) -> np.ndarray:
        """The points (N, 2)."""
        return self.model.x

    @property
    def true_labels(self) -> np.ndarray | None:
        return self.model.true_labels

    def config(self) -> GMMConfig:
        return self.model.config

    def true_mixture(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The generating mixture: weights (K,), means (K, 2), covariances (K, 2, 2)."""
        return self.model.mixture.arrays()

    # --- public API (used by the tests and the screenshot script) ------------------------------------
    def set_point_set(self, name: str) -> None:
        self.model.set_point_set(name)  # KeyError for an unknown name
        if name == EMPTY:
            self.set_mouse_mode("add")
        self.controls.sample_info.setText("")
        self.view.clear_sample()
        self.view.fit_view()

    def generate(self) -> None:
        """Draw the chosen point set with the current n and seed, and restart EM from θ₀."""
        self.model.regenerate()

    def set_points(self, x) -> None:
        """Replace the points (N, 2); EM carries on from the current parameters."""
        self.model.set_points(x)

    def add_point(self, x: float, y: float) -> None:
        self.model.add_point(x, y)

    def erase_at(self, x: float, y: float, radius_px: float = ERASE_RADIUS_PX) -> int:
        """Remove the points within radius_px screen pixels of (x, y); returns how many."""
        pw, ph = self.view.pixel_size()
        return self.model.erase_within(x, y, radius_px * pw, radius_px * ph)

    def place_mean(self, x: float, y: float) -> None:
        """Click-to-place initialisation: the next of the K starting means (after K, start over)."""
        self.model.place_mean(x, y)

    def sample_one(self) -> tuple[int, np.ndarray]:
        """The generative process once: z ~ Cat(π), then x ~ N(μ_z, Σ_z); the point is added."""
        z, x = self.model.sample_one()
        self.view.show_sample(z, x)
        w = self.model.mixture.arrays()[0][z]
        k = subscript(z + 1)
        self.controls.sample_info.setText(
            f"z = {z + 1} (chance π{k} = {w:.2f}), then x ~ N(μ{k}, Σ{k}) = ({x[0]:+.2f}, {x[1]:+.2f})"
        )
        return z, x

    def set_mouse_mode(self, mode: str) -> None:
        self.controls.set_mouse_mode(mode)

    def mouse_mode(self) -> str:
        return self.controls.mouse_mode()

    def reset(self) -> bool:
        """θ₀ from the chosen initialisation; False (with the reason shown) when it cannot start yet."""
        return self.model.reset()

    def e_step(self) -> None:
        self.model.e_step()

    def m_step(self) -> None:
        self.model.m_step()

    def iterate(self) -> None:
        self.model.iterate()

    def run(self) -> None:
        """Iterate on a timer, at the chosen speed, until converged."""
        if not self.session.ready:
            return
        self.run_timer.start()
        self.controls.set_running(True)

    def stop(self) -> None:
        was = self.run_timer.isActive()
        self.run_timer.stop()
        self.controls.run_button.setChecked(False)
        self.controls.run_button.setText("Run")
        if was:
            self.controls.refresh_buttons(False)
            self.run_finished.emit()

    def is_running(self) -> bool:
        return self.run_timer.isActive()

    def colours(self) -> np.ndarray:
        """The points' current colours, (N, 3) uint8."""
        return self.view.colours()

    def point_brush_colours(self) -> np.ndarray:
        """The colours of the brushes the scatter actually paints with, (N, 3) uint8."""
        return self.view.point_brush_colours()

    def hover_text(self, i: int) -> str:
        """What hovering point i shows: its γ vector (rich text)."""
        return self.view.hover_text(i)

    def show_hover(self, i: int) -> None:
        """Show point i's γ as if the mouse were over it."""
        self.view.show_hover(i)

    # --- slots -------------------------------------------------------------------------------------
    def _on_model_changed(self, event: str) -> None:
        if event in STOPS_THE_RUN:
            self.stop()
        if event == "mixture":
            self.view.clear_sample()
        self.view.refresh(event)
        self.trace_plot.show_trace(self.session.trace)
        self.controls.sync(self.is_running())
        if event in ("E", "M", "reset"):
            self.stepped.emit(event)
        elif event == "points":
            self.points_changed.emit()

    def _on_mouse_mode_changed(self, mode: str) -> None:
        self.vb.edit_mode = mode
        self.vb.setMouseEnabled(x=True, y=True)

    def _on_show_ellipses(self, shown: bool) -> None:
        self.view.show_ellipses = shown
        self.view.update_components()

    def _on_show_true(self, shown: bool) -> None:
        self.view.show_true = shown
        self.view.update_true_components()

    def _on_speed_changed(self, v: int) -> None:
        self.run_timer.setInterval(int(round(1000 / max(1, v))))

    def _on_run_clicked(self) -> None:
        if self.run_timer.isActive():
            self.stop()
        else:
            self.run()

    def _on_run_tick(self) -> None:
        if not self.session.ready:
            self.stop()
            return
        self.iterate()
        if self.model.finished():
            self.e_step()  # the colours show the responsibilities of the final parameters
            self.stop()

    def _on_canvas_clicked(self, x: float, y: float) -> None:
        mode = self.mouse_mode()
        if mode == "add":
            self.add_point(x, y)
        elif mode == "erase":
            self.erase_at(x, y)
        elif mode == "place":
            self.place_mean(x, y)  # switches the initialisation to 'click to place' if needed

    def _on_canvas_dragged(self, x: float, y: float, phase: str) -> None:
        mode = self.mouse_mode()
        if mode == "erase":
            self.erase_at(x, y)
            return
        if mode != "add":
            return
        if phase == "start" or self._last_drag is None:
            self._last_drag = (x, y)
            self.add_point(x, y)
            return
        pw, ph = self.view.pixel_size()
        lx, ly = self._last_drag
        if math.hypot((x - lx) / pw, (y - ly) / ph) >= ADD_SPACING_PX:
            self._last_drag = (x, y)
            self.add_point(x, y)
        if phase == "finish":
            self._last_drag = None

    def event(self, event) -> bool:
        if screen_change(event) is False:  # hidden, or another tab chosen: no animation behind it
            self.stop()
        return super().event(event)
