"""Missing pixels as latents: the lecture's own example, where the hidden pixels x_m are the latent z.

q(x_m; φ) = Π_i φ_i^{x_i} (1 − φ_i)^{1 − x_i} over the hidden pixels of a binarized test digit;
ELBO(φ) = E_q[log p(x_o, x_m)] + H(q) ≤ log p(x_o), gap = KL(q ‖ p(x_m | x_o)) (core/pixel_inference.py).
The joint p(x) is the project's Bernoulli mixture (fitted here by EM on 10,000 training digits, once:
log p(x_o), p(x_i | x_o) and p(x_m | x_o) exact) or the shipped MADE (exact log p(x); log p(x_o)
estimated by importance sampling with an optimised q). The user hides pixels, paints φ on them
(a heat map under the hatch), presses the lecture's choices, and sees ELBO(φ), log p(x_o) and the
gap as they paint, samples of q beside samples of the model's own conditional, the ELBO trace of
an optimisation, and naive Monte Carlo against importance sampling as k grows.

Everything is computed off the GUI thread (workers.tasks.TaskRunner; newest request wins):
the joint (EM fit / checkpoint load), the reference (log p(x_o), marginals, an optimised φ from
0.5, conditional samples) when the joint, digit or mask changes, the numbers when φ changes,
the optimisation and the sweep on request.

Public API (the lecture tour, issue 14, drives it; tests use it too):
    set_joint(key)              "mixture" or "made" (loads or fits it in the background)
    set_digit(index)            a test digit (binarized with the project's fixed seed)
    set_mask(mask)              a core.masks preset name ("top_half", ...) or a (28, 28) bool array
    set_phi_preset(name)        "half" | "ones" | "zeros" | "marginals" | "optimised" (starts a fit)
    run_estimates(k_max, runs)  naive vs importance sampling for k = 1 … k_max
    use_joint(key, joint)       install a ready joint (a test's tiny mixture), no loading
Signals: joint_ready(str), reference_ready(), numbers_updated(), optimise_finished(), sweep_finished(),
failed(str). Results: .numbers (PhiNumbers), .reference (Reference), .fit (PhiFit), .sweep (PixelSweep).
"""

from __future__ import annotations

import torch
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QTabWidget, QVBoxLayout, QWidget

from lvm_studio.core import masks
from lvm_studio.core import pixel_inference as pi
from lvm_studio.core import pixel_phi as pp
from lvm_studio.core import pixel_tasks as pt
from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.pixel_joint import joint_name
from lvm_studio.ui.inpainting.phi_canvas import PhiCanvas, PhiColourBar
from lvm_studio.ui.inpainting.pixel_latents_controls import PixelLatentControls
from lvm_studio.ui.inpainting.pixel_latents_views import SampleStrips, SweepPlot, TracePlot, numbers_html
from lvm_studio.ui.visibility import on_screen, screen_change
from lvm_studio.workers.tasks import TaskRunner


def load_made_task(ctx, path):
    from lvm_studio.core.checkpoint import load_checkpoint
    from lvm_studio.core.made_training import made_from_checkpoint

    return made_from_checkpoint(load_checkpoint(path))


class PixelLatentsPanel(QWidget):
    joint_ready = Signal(str)
    reference_ready = Signal()
    numbers_updated = Signal()
    optimise_finished = Signal()
    sweep_finished = Signal()
    failed = Signal(str)

    MIXTURE_K = pt.MIXTURE_K
    MIXTURE_N = pt.MIXTURE_N

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.joints: dict[str, object] = {}
        self.key = "mixture"
        self.numbers: pt.PhiNumbers | None = None
        self.reference: pt.Reference | None = None
        self.fit: pp.PhiFit | None = None
        self.sweep: pi.PixelSweep | None = None
        self._x: torch.Tensor | None = None
        self._started = False

        self.runners = {}
        for name, done in (
            ("joint", self._on_joint_loaded),
            ("reference", self._on_reference),
            ("numbers", self._on_numbers),
            ("optimise", self._on_optimised),
            ("sweep", self._on_sweep_done),
        ):
            r = TaskRunner(f"pixels-{name}", self)
            r.finished.connect(done)
            r.failed.connect(self._on_failed)
            self.runners[name] = r
        self.runners["joint"].progressed.connect(self._on_joint_progress)
        self.runners["optimise"].progressed.connect(self._on_optimise_progress)
        self.runners["sweep"].progressed.connect(self._on_sweep_progress)

        self.controls = PixelLatentControls(hub)
        c = self.controls
        self.canvas = PhiCanvas()
        self.numbers_label = QLabel()
        self.numbers_label.setTextFormat(Qt.TextFormat.RichText)
        self.numbers_label.setWordWrap(True)
        self.numbers_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: gray;")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        self.strips = SampleStrips()
        self.trace_plot = TracePlot()
        self.sweep_plot = SweepPlot()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.trace_plot, "ELBO(φ) trace")
        self.tabs.addTab(self.sweep_plot, "naive vs importance")

        left = QVBoxLayout()
        left.addWidget(self.canvas, 1)
        self.colour_bar = PhiColourBar()
        left.addWidget(self.colour_bar)
        left.addWidget(self.progress)
        left.addWidget(self.status)
        right = QVBoxLayout()
        right.addWidget(self.numbers_label)
        right.addWidget(self.tabs, 1)
        middle = QHBoxLayout()
        middle.addLayout(left, 3)
        middle.addWidget(self.strips, 1)
        middle.addLayout(right, 3)
        lay = QVBoxLayout(self)
        lay.addWidget(c)
        lay.addLayout(middle, 1)

        c.joint_chosen.connect(self.set_joint)
        c.picker.picked.connect(self.set_digit)
        c.mask_chosen.connect(self.set_mask)
        c.tool_chosen.connect(self.canvas.set_mode)
        c.value.valueChanged.connect(lambda v: self.canvas.set_value(v / 100))
        c.brush.valueChanged.connect(self.canvas.set_brush_radius)
        c.phi_preset_chosen.connect(self.set_phi_preset)
        c.stop_clicked.connect(self.stop)
        c.sweep_clicked.connect(self.run_estimates)
        hub.data_changed.connect(self._on_data_changed)
        self.canvas.phi_edited.connect(self._on_phi_edited)
        self.canvas.mask_edited.connect(self._on_mask_edited)
        self._refresh_numbers()

    # --- public API ------------------------------------------------------------------------------
    @property
    def joint(self):
        return self.joints.get(self.key)

    def x(self) -> torch.Tensor:
        """The digit, binarized with the project's fixed test seed, (D,)."""
        if self._x is None:
            i = self.controls.picker.index()
            self._x = self.hub.data.binarized("test")[i].clone()
        return self._x

    def missing(self) -> torch.Tensor:
        return pi.flat_mask(self.canvas.mask())

    def phi(self) -> torch.Tensor:
        return torch.from_numpy(self.canvas.phi())

    def start(self) -> None:
        """Load or fit the chosen joint and compute (the first time the panel is on screen does this)."""
        self._started = True
        if self.hub.data.n_pixels != N_PIXELS:  # an imported dataset of another side (issue 18)
            self.status.setText(
                f"This panel works on 28×28 images; the current dataset's are {self.hub.data.side}×"
                f"{self.hub.data.side}. Import it at 28×28 to use it here."
            )
            return
        self.canvas.set_image(self.x().numpy())
        self._ensure_joint()

    def set_joint(self, key: str) -> None:
        if self.controls.joint.currentData() != key:
            self.controls.set_joint_key(key)  # emits joint_chosen → here again
            return
        self.key = key
        self.reference = self.numbers = self.fit = self.sweep = None
        self.sweep_plot.show_sweep(None, None)
        self.controls.preset_buttons["marginals"].setEnabled(key == "mixture")
        if self._started:
            self._ensure_joint()

    def use_joint(self, key: str, joint) -> None:
        self.joints[key] = joint
        self._started = True
        self.canvas.set_image(self.x().numpy())
        self.set_joint(key)  # computes: the joint is there

    def set_digit(self, index: int) -> None:
        if self.controls.picker.index() != int(index):
            self.controls.picker.set_index(int(index), emit=False)
        self._x = None
        self.canvas.set_image(self.x().numpy())
        self._recompute()

    def set_mask(self, mask) -> None:
        self.canvas.set_mask(masks.preset(mask) if isinstance(mask, str) else mask)

    def set_phi_preset(self, name: str) -> None:
        if self.joint is None:
            self.status.setText("The joint is not ready yet.")
            return
        if name == "optimised":
            self._optimise()
            return
        try:
            phi = pp.phi_preset(name, self.joint, self.x(), self.missing())
        except ValueError as e:
            self.status.setText(str(e))
            return
        self.canvas.set_phi(phi.numpy())

    def run_estimates(self, k_max: int | None = None, runs: int | None = None) -> None:
        if self.joint is None or not int(self.missing().sum()):
            self.status.setText("Hide some pixels and wait for the joint first.")
            return
        if k_max:
            self.controls.set_k_max(int(k_max))
        if runs:
            self.controls.runs.setValue(int(runs))
        self.sweep = None
        self.tabs.setCurrentWidget(self.sweep_plot)
        self.sweep_plot.summary.setText("Sampling …")
        self.controls.stop_button.setEnabled(True)
        self.runners["sweep"].submit(
            pi.pixel_sweep,
            self.joint,
            self.x(),
            self.missing(),
            self.phi(),
            int(self.controls.k_max.currentData()),
            int(self.controls.runs.value()),
        )

    def stop(self) -> None:
        """Stop the optimisation (φ keeps its last value) and the sweep (its finished runs stay drawn)."""
        sweeping, optimising = self.runners["sweep"].is_busy(), self.runners["optimise"].is_busy()
        self.runners["optimise"].cancel()  # a cancel() emits nothing: the runner drops the task's outcome
        self.runners["sweep"].cancel()
        self.controls.stop_button.setEnabled(False)
        if sweeping:
            self._on_sweep_stopped(0)
        if optimising:
            self._on_optimise_stopped(0)

    # --- joints ----------------------------------------------------------------------------------
    def event(self, event) -> bool:
        # the first time it is really on screen (a tab behind another gets Show too: ui/visibility.py),
        # the joint is loaded or fitted; checked once the layout has placed it
        if screen_change(event) and not self._started:
            QTimer.singleShot(0, self._start_if_on_screen)
        return super().event(event)

    def _start_if_on_screen(self) -> None:
        if not self._started and on_screen(self):
            self.start()

    def _ensure_joint(self) -> None:
        if self.joint is not None:
            self._recompute()
            return
        self.reference = self.numbers = None
        self._refresh_numbers()
        if self.key == "mixture":
            x = pt.binarized_train_subset(self.hub.data, min(self.MIXTURE_N, len(self.hub.data.x_train)))
            self.status.setText(f"Fitting a {self.MIXTURE_K}-component Bernoulli mixture by EM on {len(x):,} digits …")
            self.runners["joint"].submit(_keyed, "mixture", pt.fit_mixture_task, x, self.MIXTURE_K)
        else:
            from lvm_studio.core.pretrained import made_checkpoint_path

            path = made_checkpoint_path()
            if path is None:
                self._on_failed(0, "no MADE is shipped in pretrained/ (train one with lvm-studio train-made)")
                return
            self.status.setText(f"Loading {path.name} …")
            self.runners["joint"].submit(_keyed, "made", load_made_task, path)

    def _on_joint_progress(self, _id, fraction: float, _payload) -> None:
        self.progress.setValue(int(1000 * fraction))

    def _on_joint_loaded(self, _id, result) -> None:
        key, joint = result
        self.joints[key] = joint
        self.progress.setValue(1000)
        self.status.setText(f"{joint_name(joint)} ready.")
        self.joint_ready.emit(key)
        if key == self.key:
            self._recompute()

    # --- computing -------------------------------------------------------------------------------
    def _recompute(self) -> None:
        """The joint, digit or mask changed: the reference and the numbers are owed."""
        self.reference = self.numbers = None
        self.runners["optimise"].cancel()
        self._refresh_numbers()
        if self.joint is None or not self._started:
            return
        if not int(self.missing().sum()):
            self.status.setText("Nothing is hidden: hide some pixels (a preset or the hide brush).")
            return
        self.status.setText("Computing log p(x_o) and the model's conditional …")
        self.runners["reference"].submit(pt.reference_task, self.joint, self.x(), self.missing())
        self._submit_numbers()

    def _submit_numbers(self) -> None:
        if self.joint is not None and self._started and int(self.missing().sum()):
            self.runners["numbers"].submit(pt.numbers_task, self.joint, self.x(), self.missing(), self.phi())

    def _on_phi_edited(self, _final: bool) -> None:
        self._submit_numbers()

    def _on_mask_edited(self, final: bool) -> None:
        if final:
            self._recompute()

    def _on_reference(self, _id, ref: pt.Reference) -> None:
        self.reference = ref
        self.status.setText(f"log p(x_o): {ref.label} ({ref.seconds:.1f} s).")
        self.strips.show_conditional(self.x(), self.missing(), ref.conditional)
        self.trace_plot.show_reference(ref.log_px_o, ref.exact)
        if self.fit is None:
            self.trace_plot.show_trace(ref.trace, f"from φ = 0.5: {ref.method}")
        self._refresh_numbers()
        self.reference_ready.emit()

    def _on_numbers(self, _id, numbers: pt.PhiNumbers) -> None:
        self.numbers = numbers
        self.strips.show_q(self.x(), self.missing(), numbers.q_samples)
        self._refresh_numbers()
        self.numbers_updated.emit()

    def _refresh_numbers(self) -> None:
        label = joint_name(self.joint) if self.joint is not None else "(joint loading)"
        self.numbers_label.setText(numbers_html(self.numbers, self.reference, label))

    # --- optimising ------------------------------------------------------------------------------
    def _optimise(self) -> None:
        self.controls.stop_button.setEnabled(True)
        self.tabs.setCurrentWidget(self.trace_plot)
        self.status.setText("Optimising φ …")
        self.runners["optimise"].submit(pp.optimise_phi, self.joint, self.x(), self.missing(), self.phi())

    def _on_optimise_progress(self, _id, fraction: float, fit) -> None:
        self.progress.setValue(int(1000 * fraction))
        if isinstance(fit, pp.PhiFit):
            self._show_fit(fit)

    def _show_fit(self, fit: pp.PhiFit) -> None:
        self.fit = fit
        self.trace_plot.show_trace(
            fit.trace, f"from the φ shown: {fit.method}, {fit.trace_samples} samples of q per point"
        )
        if fit.phi.shape == (int(self.missing().sum()),):
            self.canvas.set_phi(fit.phi.numpy())  # emits phi_edited: the numbers follow

    def _on_optimised(self, _id, fit: pp.PhiFit) -> None:
        self._show_fit(fit)
        self.controls.stop_button.setEnabled(False)
        self.progress.setValue(1000)
        self.status.setText(f"Optimised φ ({fit.method}, {len(fit.trace) - 1} steps, {fit.seconds:.1f} s).")
        self.optimise_finished.emit()

    def _on_optimise_stopped(self, _id) -> None:
        self.controls.stop_button.setEnabled(False)
        self.status.setText("Optimisation stopped; φ keeps its last value.")

    # --- the sweep -------------------------------------------------------------------------------
    def _on_sweep_progress(self, _id, fraction: float, sweep) -> None:
        if isinstance(sweep, pi.PixelSweep):
            self.sweep = sweep
            self.sweep_plot.show_sweep(sweep, self.reference)
        self.progress.setValue(int(1000 * fraction))

    def _on_sweep_done(self, _id, sweep: pi.PixelSweep) -> None:
        self._on_sweep_progress(_id, 1.0, sweep)
        self.controls.stop_button.setEnabled(False)
        self.sweep_finished.emit()

    def _on_sweep_stopped(self, _id) -> None:
        self.sweep_plot.summary.setText("Stopped" + (f" after {self.sweep.runs_done} run(s)." if self.sweep else "."))

    def _on_data_changed(self) -> None:
        self._x = None
        self.joints.pop("mixture", None)  # it was fitted to the old training digits
        if self._started:
            self.start()  # or says why not, for a dataset of another image size

    def _on_failed(self, _id, message: str) -> None:
        first = message.strip().splitlines()[0] if message.strip() else "failed"
        self.status.setText(first)
        self.controls.stop_button.setEnabled(False)
        self.failed.emit(first)


def _keyed(ctx, key: str, fn, *args):
    """Run fn(ctx, *args) and return (key, result): the panel knows which joint arrived."""
    return key, fn(ctx, *args)
