"""Inpainting: draw or load a digit, hide part of it, and watch q(z) fitted to the seen pixels fill in the rest.

The panel adapts core.inpainting_task.fit_task to a TaskRunner, throttles its reports and hands
them to the views (results_view); the controls are in controls.py, the canvas in digit_canvas.py.

The fit is lvm_studio.core.inpainting.fit_q: q(z; φ) = N(φ_μ, diag φ_σ²) maximises the ELBO of the
observed pixels only, E_q[log p(x_o|z)] − KL(q ‖ p(z)) (Kingma & Welling 2014, eq. 3 with x → x_o),
starting from the encoder's guess. While it runs the panel shows, live: the observed-pixel ELBO
per Adam step, the mean completion (observed pixels kept, missing ones E_q[E[x_i|z]]), a grid of
completions for z ~ q and the per-pixel spread of E[x_i|z] over q. Beside them: what the encoder's
guess alone gives (the amortized completion), and optionally posterior samples by importance
resampling with q as the proposal (Rubin 1988). For a 2-D latent, the latent plane shows the exact
p(z|x_o) on a grid with q's ellipses. The fit starts from several places (core.inpainting_starts); after it,
Markov chains draw completions from the exact posterior with the class mix (chains_view.py).

Fits run on a TaskRunner: every edit (and, while a stroke is drawn, every `live_interval_ms`) submits
a new fit, which cancels the one running, so the newest stroke wins.

Centring. The model knows digits placed as MNIST places them (fit in 20 × 20, centre of mass at
the centre). "Centre" moves the drawing that way on the canvas, its mask with it (one undo step,
the user asked for it and sees it). "auto-centre" (on by default) never moves the canvas: it
centres a fresh drawing for the model's input only. The canvas and the hidden region stay where
the user put them, the model sees the drawing and its mask moved by one core.images.Placement (so
the same pixels stay hidden), and the completions come back onto the canvas's frame
(core.inpainting_task.CanvasFrame), aligned pixel for pixel with what was drawn. Moving the canvas
instead would take strokes out from under the mask the user sees, or, moving the mask with them,
hide a region the user did not choose. Centring needs the whole digit: it is used when the mask
hides some of the drawn ink (a digit drawn whole, then partly hidden). A drawing with none of its
ink hidden is the seen part of a digit the model is to complete (the bottom of a 2 under a
hidden top half): centred by its own ink it would be moved and enlarged into a digit of its own,
and nothing would be filled in, so it is taken as placed, as is a drawing begun beside a region
already hidden. The dashed box on the canvas shows where MNIST's ink lies.
Drawn grey levels are given to the model as they are (a Bernoulli decoder's log-likelihood is then
−BCE, which a fit maximises just the same); loaded test digits are the binarized test set.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core import inpainting as ip
from lvm_studio.core import masks
from lvm_studio.core.images import INK_THRESHOLD, SIDE, Placement, centre_with_mask, find_placement, image_side
from lvm_studio.core.inpainting_starts import StartsConfig
from lvm_studio.core.inpainting_task import (
    REPORT_INTERVAL_S,
    FitOutcome,
    GuessReport,
    fit_task,
    panel_config,
)
from lvm_studio.ui.inpainting.chains_view import ChainsController, ChainsView
from lvm_studio.ui.inpainting.controls import CanvasControls, FitControls
from lvm_studio.ui.inpainting.results_view import InpaintingResults, numbers_html
from lvm_studio.ui.visibility import on_screen, screen_change
from lvm_studio.ui.widgets.digit_image import save_grey_png
from lvm_studio.ui.widgets.image_io import ImageLoadError, file_dialog_filter, load_image_file
from lvm_studio.workers.tasks import TaskRunner

WEIGHTS_REFIT_MS = 1000  # while training: a new fit at most this often
VIEW_INTERVAL_MS = round(1000 * REPORT_INTERVAL_S)  # live fit reports are drawn at most this often
VIEW_INTERVAL_STROKE_MS = 250  # … and this often while a stroke is being drawn


class InpaintingPanel(QWidget):
    SNAPSHOT_INTERVAL_S = 2.0  # it refits to new weights while shown (at most every WEIGHTS_REFIT_MS)

    fit_started = Signal()
    fit_progressed = Signal(int)  # Adam steps done
    fit_shown = Signal()  # the fit's outcome is shown (its importance samples and grid may follow)
    fit_finished = Signal()  # the final outcome (and, for a 2-D latent, the p(z|x_o) grid) is shown
    fit_skipped = Signal(str)  # nothing to fit (nothing hidden, or everything blank): why
    load_failed = Signal(str)  # an image file could not be loaded: the message shown

    def __init__(self, hub, parent=None):
        super().__init__(parent)
        self.hub = hub
        self.outcome: FitOutcome | None = None
        self._shown_task = -1  # the task whose fit outcome was last shown (fit_shown once per fit)
        self.guess: GuessReport | None = None
        self.progress_report: ip.InpaintProgress | None = None
        self.last_error: str | None = None
        self.error_box: QMessageBox | None = None
        self._drawn_uncentred = False  # a fresh drawing (begun with nothing hidden), not centred since
        self.fits_submitted = 0  # fits started (the bench reads it)
        self._stale = True  # a fit is owed (model or weights changed while hidden, or never fitted)
        self._random_seed = 0

        self.runner = TaskRunner("inpainting", self)
        self.runner.progressed.connect(self._on_fit_progress)
        self.runner.finished.connect(self._on_fit_finished)
        self.runner.failed.connect(self._on_fit_failed)
        self.runner.cancelled.connect(self._on_fit_cancelled)

        # --- the canvas and its controls (left), the results and the fit's options (right)
        self.controls = CanvasControls(hub)
        c = self.controls
        self.canvas = c.canvas
        self.tool_buttons, self.brush_size, self.grey = c.tool_buttons, c.brush_size, c.grey
        self.undo_button, self.redo_button = c.undo_button, c.redo_button
        self.clear_button, self.centre_button, self.auto_centre = c.clear_button, c.centre_button, c.auto_centre
        self.picker, self.load_test_button, self.open_button = c.picker, c.load_test_button, c.open_button
        self.preset_buttons, self.random_fraction = c.preset_buttons, c.random_fraction
        self.invert_button, self.show_all_button = c.invert_button, c.show_all_button

        self.results = InpaintingResults()
        r = self.results
        self.mean_view, self.amortized_view, self.std_view = r.mean_view, r.amortized_view, r.std_view
        self.samples_view, self.importance_view = r.samples_view, r.importance_view
        self.latent_stack, self.latent_plot, self.latent_note = r.latent_stack, r.latent_plot, r.latent_note
        self.heat, self.q1_curve, self.q2_curve = r.heat, r.q1_curve, r.q2_curve
        self.guess_curve, self.iw_points = r.guess_curve, r.iw_points
        self.elbo_plot, self.trace_curve = r.elbo_plot, r.trace_curve

        self.fit_controls = FitControls()
        f = self.fit_controls
        self.steps, self.live = f.steps, f.live
        self.use_importance, self.importance_k = f.use_importance, f.importance_k
        self.fit_button, self.save_button = f.fit_button, f.save_button
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        self.numbers = QLabel()
        self.numbers.setTextFormat(Qt.TextFormat.RichText)
        self.numbers.setWordWrap(True)
        self.numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: gray;")
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(self.results, 3)
        self.chains_view = ChainsView()
        self.chains = ChainsController(self.chains_view, hub, self)
        self.chains_view.options_changed.connect(self._start_chains)
        right.addWidget(self.chains_view)
        right.addWidget(self.progress)
        right.addWidget(self.fit_controls)
        right.addWidget(self.numbers)
        right.addWidget(self.status)
        right_w = QWidget()
        right_w.setLayout(right)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.controls)
        split.addWidget(right_w)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        QHBoxLayout(self).addWidget(split)

        # --- behaviour
        self._refit_timer = QTimer(self)  # coalesces the signals of one edit into one fit
        self._refit_timer.setSingleShot(True)
        self._refit_timer.setInterval(0)
        self._refit_timer.timeout.connect(self._on_refit_timeout)
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.timeout.connect(self._on_view_timeout)
        self._pending: list = []  # live reports not drawn yet
        self._fit_mask = masks.empty()  # the mask of the fit in flight
        self._pending_fraction = 0.0
        self._last_view = 0.0
        self._weights_timer = QTimer(self)
        self._weights_timer.setSingleShot(True)
        self._weights_timer.timeout.connect(self.request_fit)
        self.canvas.image_edited.connect(self._on_canvas_edited)
        self.canvas.mask_edited.connect(self._on_canvas_edited)
        self.canvas.stroke_started.connect(self._on_stroke_started)
        self.canvas.history_changed.connect(self._on_history_changed)
        c.tool_chosen.connect(self.set_tool)
        c.preset_chosen.connect(self.apply_preset)
        c.invert_clicked.connect(self.invert_mask)
        c.show_all_clicked.connect(self._on_show_all_clicked)
        c.clear_clicked.connect(self._on_clear_clicked)
        c.centre_clicked.connect(self.centre_drawing)
        c.load_test_clicked.connect(self.load_test_digit)
        c.open_clicked.connect(self._on_open_clicked)
        self.picker.picked.connect(self._on_digit_picked)
        f.options_changed.connect(self._refit_timer.start)
        f.fit_clicked.connect(self.request_fit)
        f.save_clicked.connect(self._on_save_clicked)
        for keys, slot in (
            (QKeySequence.StandardKey.Undo, self.canvas.undo),
            (QKeySequence.StandardKey.Redo, self.canvas.redo),
        ):
            sc = QShortcut(QKeySequence(keys), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
        hub.model_changed.connect(self._on_model_changed)
        hub.weights_updated.connect(self._on_weights_updated)
        hub.data_changed.connect(self._on_data_changed)

        self._on_history_changed()
        self._on_model_changed()
        # a first example: a test digit with its top half hidden (fitted when the panel is first shown)
        try:
            x0 = hub.eval_x("test")[self.picker.index()].numpy().reshape(SIDE, SIDE)
            self.canvas.set_state(x0, masks.top_half(), undoable=False)
        except Exception as e:  # no data: start blank
            self.status.setText(f"No test digits: {e}")

    # --- inputs -------------------------------------------------------------------------------------
    def load_test_digit(self, i: int | None = None) -> None:
        """Put test digit i (default: the picker's) on the canvas; the mask stays."""
        if i is not None:
            self.picker.set_index(i, emit=False)
        if not self._side_supported():
            return
        x = self.hub.eval_x("test")[self.picker.index()].numpy().reshape(SIDE, SIDE)
        self.canvas.set_image(x)
        self._drawn_uncentred = False
        self.status.setText(
            f"Test digit {self.picker.index()} (label {int(self.hub.labels('test')[self.picker.index()])})."
        )

    def _side_supported(self) -> bool:
        """The canvas and the masks are SIDE × SIDE; a model of an imported dataset's other side is refused."""
        if self.hub.config.x_dim == SIDE * SIDE:
            return True
        side = image_side(self.hub.config.x_dim)
        self.status.setText(
            f"Inpainting works on {SIDE}×{SIDE} images; this model takes {side}×{side} (an imported dataset). "
            f"Import the dataset at {SIDE}×{SIDE} to inpaint it."
        )
        return False

    def load_image_file(self, path: str | Path) -> bool:
        """Load a picture (SIDE × SIDE grey, centred as MNIST); on failure show the message, keep the canvas."""
        try:
            digit = load_image_file(path)
        except ImageLoadError as e:
            self._show_error("Cannot load the image", str(e))
            self.load_failed.emit(str(e))
            return False
        self.canvas.set_image(digit)
        self._drawn_uncentred = False
        self.status.setText(f"Loaded {Path(path).name} ({SIDE}×{SIDE} grey, centred by mass).")
        return True

    def _show_error(self, title: str, message: str) -> None:
        """A non-blocking message box (window-modal) and the status line; the panel keeps working."""
        self.last_error = message
        self.status.setText(message)
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.destroyed.connect(self._on_error_box_destroyed)
        box.open()
        self.error_box = box

    def _on_error_box_destroyed(self, *_):
        self.error_box = None

    def centre_drawing(self) -> None:
        image, mask = centre_with_mask(self.canvas.image(), self.canvas.mask())
        self.canvas.set_state(image, mask)
        self._drawn_uncentred = False

    def model_placement(self) -> Placement | None:
        """Where the model sees the drawing (None: as it is on the canvas); see the module's notes."""
        if not (self.auto_centre.isChecked() and self._drawn_uncentred):
            return None
        image = self.canvas.image()
        if not (self.canvas.mask() & (image > INK_THRESHOLD)).any():
            return None  # none of the ink is hidden: the seen part of a digit, taken as placed
        return find_placement(image)

    def apply_preset(self, name: str) -> None:
        """Replace the mask by a preset of core.masks (random_pixels uses the fraction box and a new seed)."""
        if name == "random_pixels":
            self._random_seed += 1
            mask = masks.preset(name, fraction=self.random_fraction.value() / 100.0, seed=self._random_seed)
        else:
            mask = masks.preset(name)
        self.canvas.set_mask(mask)

    def invert_mask(self) -> None:
        self.canvas.set_mask(masks.invert(self.canvas.mask()))

    def set_tool(self, mode: str) -> None:
        self.tool_buttons[mode].setChecked(True)
        self.canvas.set_mode(mode)

    # --- the fit ------------------------------------------------------------------------------------
    def fit_config(self) -> ip.InpaintConfig:
        return panel_config(self.steps.value())

    def request_fit(self) -> None:
        """Submit a fit of the canvas as it is now (cancelling one in progress)."""
        self._refit_timer.stop()
        self._weights_timer.stop()
        self._stale = False
        self._pending = []
        self.chains.stop()  # the newest stroke wins: no chains of an old drawing compete with the fit
        if not self._side_supported():
            self.runner.cancel()
            return
        x, missing = self.canvas.image(), self.canvas.mask()
        self._fit_mask = missing
        if not missing.any():
            self.runner.cancel()
            self._show_trivial(x, "Nothing is hidden: choose a mask (Hide …) or paint one with the hide tools.")
            return
        if missing.all():
            note = "Everything is hidden: the completions are samples from the model's prior."
        else:
            note = ""
        placement = self.model_placement()
        if placement is not None:
            note = (note + " " if note else "") + (
                "The model sees the drawing centred as MNIST is; the canvas stays as drawn."
            )
        self.progress.setValue(0)
        self.status.setText(note or "Fitting q to the seen pixels …")
        k = self.fit_controls.importance_k_or_zero()
        self.runner.submit(
            fit_task,
            self.hub.model,
            x,
            missing,
            self.fit_config(),
            k,
            self.hub.latent_dim == 2,
            self.hub.version,
            placement,
            StartsConfig() if self.fit_controls.several_starts.isChecked() else None,
        )
        self.fits_submitted += 1
        self.fit_started.emit()

    def _on_refit_timeout(self) -> None:
        if on_screen(self):
            self.request_fit()
        else:
            self._stale = True  # fitted when shown

    def _show_trivial(self, x: np.ndarray, message: str) -> None:
        self.results.show_trivial(x)
        self.chains_view.clear()
        self.numbers.setText("")
        self.outcome = None
        self.status.setText(message)
        self.fit_skipped.emit(message)

    def _on_fit_progress(self, task_id: int, fraction: float, payload) -> None:
        if isinstance(payload, FitOutcome):
            self._pending = []
            self._view_timer.stop()
            self.progress.setValue(1000)
            self._show_outcome(payload)  # importance samples or the grid of p(z|x_o) follow
            self._mark_shown(task_id)
            return
        # live reports are drawn at most VIEW_INTERVAL_MS apart: the fit can report faster than
        # the views repaint, and the canvas must keep up with the pen meanwhile
        self._pending_fraction = fraction
        if isinstance(payload, GuessReport):
            self._pending = [payload]
        else:
            self._pending = self._pending[:1] if self._pending and isinstance(self._pending[0], GuessReport) else []
            self._pending.append(payload)
        if not self._view_timer.isActive():
            # while a stroke is drawn the eye is on the canvas: fewer redraws leave the pen more of the GUI thread
            interval = VIEW_INTERVAL_STROKE_MS if self.canvas.is_stroking() else VIEW_INTERVAL_MS
            self._view_timer.start(max(0, int(interval - 1000 * (time.perf_counter() - self._last_view))))

    def _on_view_timeout(self) -> None:
        self._last_view = time.perf_counter()
        pending, self._pending = self._pending, []
        self.progress.setValue(int(1000 * self._pending_fraction))
        for payload in pending:
            self._show_report(payload)

    def _show_report(self, payload) -> None:
        if isinstance(payload, GuessReport):
            self.guess = payload
            self.results.show_guess(payload, self._fit_mask)
        elif isinstance(payload, ip.InpaintProgress):
            self.progress_report = payload
            self.results.show_progress(payload, self._fit_mask)
            self.fit_progressed.emit(int(payload.step))

    def _on_fit_finished(self, task_id: int, outcome: FitOutcome) -> None:
        self._pending = []
        self._view_timer.stop()
        self.progress.setValue(1000)
        self._show_outcome(outcome)
        self._mark_shown(task_id)
        self.fit_finished.emit()
        self._start_chains()
        if outcome.model_version != self.hub.version and self.live.isChecked():
            # new weights came while this fit ran (and were skipped for it): the last snapshot of a
            # run must not be left unfitted
            self._on_weights_updated(self.hub.step)

    def _mark_shown(self, task_id: int) -> None:
        if task_id != self._shown_task:
            self._shown_task = task_id
            self.fit_shown.emit()

    def _show_outcome(self, outcome: FitOutcome) -> None:
        self.outcome = outcome
        self.results.show_outcome(outcome)
        self.numbers.setText(numbers_html(outcome))
        res = outcome.result
        state = "stopped early" if res.stopped else "done"
        where = "; the model saw the drawing centred as MNIST is" if outcome.placement is not None else ""
        self.status.setText(f"{res.steps_done} Adam steps in {1000 * res.seconds:.0f} ms ({state}{where}).")

    def _start_chains(self) -> None:
        if self.isVisible():
            self.chains.start_for(self.outcome)  # Markov chains for the drawing just fitted

    def _on_fit_failed(self, task_id: int, message: str) -> None:
        self.status.setText("The fit failed: " + message.splitlines()[0])

    def _on_fit_cancelled(self, task_id: int) -> None:
        self.status.setText("Fit cancelled.")

    # --- saving ------------------------------------------------------------------------------------
    def save_pngs(self, path: str | Path, scale: int = 10) -> list[Path]:
        """Write <stem>-masked.png (the input, hidden pixels hatched) and, once fitted, <stem>-completion.png
        (the mean completion); scale × scale pixels per digit pixel. Returns the files written."""
        path = Path(path)
        stem = path.with_suffix("")
        written = []
        masked = stem.with_name(stem.name + "-masked.png")
        if not self.canvas.grab_masked(scale).save(str(masked), "PNG"):
            raise OSError(f"could not write {masked}")
        written.append(masked)
        if self.outcome is not None:
            comp = stem.with_name(stem.name + "-completion.png")
            if not save_grey_png(str(comp), self.outcome.result.completion.mean[0].numpy().reshape(SIDE, SIDE), scale):
                raise OSError(f"could not write {comp}")
            written.append(comp)
        self.status.setText("Saved " + ", ".join(p.name for p in written) + f" in {path.parent}.")
        return written

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save PNG", str(Path.cwd() / "inpainting.png"), "PNG images (*.png)"
        )
        if path:
            try:
                self.save_pngs(path)
            except OSError as e:
                self._show_error("Cannot save", str(e))

    # --- events --------------------------------------------------------------------------------------
    def _on_canvas_edited(self, final: bool) -> None:
        if not self.live.isChecked():
            return
        if final:
            self._refit_timer.start()  # one fit for the image and mask signals of one edit
        elif on_screen(self):
            self.request_fit()  # mid-stroke (already throttled by the canvas): at once, no timer to starve

    def _on_stroke_started(self, mode: str) -> None:
        if mode in ("draw", "erase") and not self.canvas.mask().any():
            self._drawn_uncentred = True  # a fresh drawing; strokes beside a hidden region are taken as placed

    def _on_history_changed(self) -> None:
        self.undo_button.setEnabled(self.canvas.can_undo())
        self.redo_button.setEnabled(self.canvas.can_redo())

    def _on_show_all_clicked(self) -> None:
        self.canvas.set_mask(masks.empty())

    def _on_clear_clicked(self) -> None:
        self.canvas.clear()
        self._drawn_uncentred = False

    def _on_digit_picked(self, i: int) -> None:
        self.load_test_digit()

    def _on_open_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image of a digit", str(Path.cwd()), file_dialog_filter())
        if path:
            self.load_image_file(path)

    def _on_model_changed(self) -> None:
        self.results.set_two_d(self.hub.latent_dim == 2)
        if on_screen(self):
            self._refit_timer.start()
        else:
            self._stale = True

    def _on_weights_updated(self, step: int) -> None:
        if not on_screen(self):
            self._stale = True
        elif not self._weights_timer.isActive() and not self.runner.is_busy():
            self._weights_timer.start(WEIGHTS_REFIT_MS)

    def _on_data_changed(self) -> None:
        self.picker.set_index(self.picker.index(), emit=False)  # refreshes the thumbnail
        self._side_supported()

    def event(self, event) -> bool:
        if screen_change(event) and self._stale:  # shown, or its tab chosen
            self._refit_timer.start()
        return super().event(event)
