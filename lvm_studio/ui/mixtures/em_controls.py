"""The EM playground's side column: the points, the generating mixture, the mouse, the mixture, EM, the view.

The widgets show the EMPlayground (core.em_playground); they are never read back as its state.
An edit calls the model at once (a spin box, a combo box, a cell of the generating-mixture table),
and sync() writes the model's values back into every widget with their signals blocked. The
buttons that step EM or animate it belong to the panel, which connects their clicked signals.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core.em_playground import CHOICES, CUSTOM, FIELDS, MAX_TRUE_K, SEED_MAX, TOL, EMPlayground
from lvm_studio.ui.mixtures.em_points_view import K_MAX
from lvm_studio.ui.widgets.controls import button

SIDE_WIDTH = 330
TRUE_COLUMNS = ("π", "μ₁", "μ₂", "σ₁", "σ₂", "angle°")  # headers of FIELDS
MOUSE_MODES = (
    ("add", "add points", "Click or drag to add points"),
    ("erase", "erase points", "Click or drag over points to remove them"),
    ("place", "place means", "Click to place the K starting means (initialisation 'click to place')"),
    ("inspect", "pan / zoom", "Drag to pan, wheel to zoom; hover a point to see its γ"),
)


def _button(text: str, tip: str) -> QPushButton:
    """A button whose clicks the panel connects."""
    b = QPushButton(text)
    b.setToolTip(tip)
    return b


def _spin(lo: int, hi: int, value: int, tip: str, step: int = 1) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    spin.setSingleStep(step)
    spin.setToolTip(tip)
    return spin


def _combo(items, tip: str) -> QComboBox:
    combo = QComboBox()
    for text, data in items:
        combo.addItem(text, data)
    combo.setToolTip(tip)
    return combo


def _row(*widgets) -> QHBoxLayout:
    """A row of widgets; a string becomes a label, None a stretch."""
    row = QHBoxLayout()
    for w in widgets:
        if w is None:
            row.addStretch(1)
        elif isinstance(w, str):
            row.addWidget(QLabel(w))
        else:
            row.addWidget(w)
    return row


def _set_current_data(combo: QComboBox, data) -> None:
    with QSignalBlocker(combo):
        combo.setCurrentIndex(combo.findData(data))


def _set_value(spin: QSpinBox, value: int) -> None:
    with QSignalBlocker(spin):
        spin.setValue(int(value))


class EMControls(QWidget):
    """The controls; ``point_set_chosen`` asks the panel for a point set (it also re-frames the view)."""

    point_set_chosen = Signal(str)
    mouse_mode_changed = Signal(str)

    def __init__(self, model: EMPlayground, parent=None):
        super().__init__(parent)
        self.model = model
        # two tabs, so the column fits a dock of a 1,280 × 720 window (about 600 px tall): the mixture and
        # its EM steps first, the points and what the mouse does to them second; the status under both
        self.tabs = QTabWidget()
        for title, boxes in (
            ("Mixture && EM", (self._model_box(), self._em_box(), self._show_box())),
            ("Points && mouse", (self._points_box(), self._mouse_box())),
        ):
            page = QWidget()
            lay = QVBoxLayout(page)
            lay.setContentsMargins(4, 4, 4, 4)
            for box in boxes:
                lay.addWidget(box)
            lay.addStretch(1)
            self.tabs.addTab(page, title)  # "&&": a literal &
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        side = QVBoxLayout(self)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.tabs)
        side.addWidget(self.status)
        side.addStretch(1)
        self.setFixedWidth(SIDE_WIDTH)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self._connect_edits()
        self._on_speed_changed(self.speed.value())

    # --- building ----------------------------------------------------------------------------------
    def _points_box(self) -> QGroupBox:
        self.point_set = _combo(
            [(name, name) for name in CHOICES],
            "Built-in point sets, points sampled from a mixture you set up, or an empty canvas to click points into",
        )
        self.n_points = _spin(20, 3000, self.model.n, "Number of points to generate", step=50)
        self.data_seed = _spin(0, SEED_MAX, self.model.data_seed, "Seed of the generated points")
        for spin in (self.n_points, self.data_seed):
            spin.setKeyboardTracking(False)  # regenerate once the number is typed, not per keystroke
        self.new_points_button = button(
            "New points", "Draw a new set of points (the next seed) and restart EM", lambda: self.model.new_points()
        )
        self.clear_button = button("Clear", "Remove every point", lambda: self.model.clear())
        box = QGroupBox("Points")
        lay = QVBoxLayout(box)
        lay.addWidget(self.point_set)
        lay.addLayout(_row("n", self.n_points, "seed", self.data_seed))
        lay.addLayout(_row(self.new_points_button, self.clear_button))
        lay.addWidget(self._custom_box())
        return box

    def _custom_box(self) -> QWidget:
        self.true_k = _spin(1, MAX_TRUE_K, self.model.mixture.k, "Components of the generating mixture")
        self.true_table = QTableWidget(0, len(TRUE_COLUMNS))
        self.true_table.setHorizontalHeaderLabels(TRUE_COLUMNS)
        self.true_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.true_table.verticalHeader().setDefaultSectionSize(20)
        self.true_table.setToolTip(
            "The generating mixture: weight π_k (renormalised), mean μ_k, standard deviations "
            "along the rotated axes, and the rotation. Edit a cell: the points are redrawn from it."
        )
        self.true_table.setMaximumHeight(150)
        self.sample_one_button = _button(
            "Sample one", "The generative process, once: pick z ~ Cat(π), then draw x ~ N(μ_z, Σ_z) and add it"
        )
        self.show_true = QCheckBox("show the generating components")
        self.show_true.setChecked(True)
        self.sample_info = QLabel("")
        self.sample_info.setWordWrap(True)
        self.sample_info.setTextFormat(Qt.TextFormat.RichText)
        self.custom_box = QWidget()
        lay = QVBoxLayout(self.custom_box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(_row("components", self.true_k, None, self.sample_one_button))
        lay.addWidget(self.true_table)
        lay.addWidget(self.show_true)
        lay.addWidget(self.sample_info)
        return self.custom_box

    def _mouse_box(self) -> QGroupBox:
        self.mouse_buttons = QButtonGroup(self)
        box = QGroupBox("Mouse on the plot")
        lay = QGridLayout(box)
        for i, (mode, text, tip) in enumerate(MOUSE_MODES):
            rb = QRadioButton(text)
            rb.setToolTip(tip)
            rb.setProperty("mode", mode)
            self.mouse_buttons.addButton(rb, i)
            lay.addWidget(rb, i // 2, i % 2)
        self.mouse_buttons.button(0).setChecked(True)
        return box

    def _model_box(self) -> QGroupBox:
        c = self.model.config
        self.k_spin = _spin(1, K_MAX, c.n_components, "Number of mixture components K")
        self.covariance = _combo(
            [("full", "full"), ("diagonal", "diag")], "Full Σ_k (rotated ellipses) or diagonal Σ_k (axis-aligned)"
        )
        self.init = _combo(
            [("k-means++", "kmeans++"), ("random points", "random"), ("click to place", "given")],
            "Starting means: k-means++ seeding (Arthur & Vassilvitskii 2007), K random data "
            "points, or means you click in. Weights start uniform, every Σ_k at the data covariance.",
        )
        self.seed = _spin(0, SEED_MAX, c.seed, "Seed of the initialisation")
        box = QGroupBox("Mixture")
        form = QFormLayout(box)
        form.addRow("components K", self.k_spin)
        form.addRow("covariance", self.covariance)
        form.addRow("initialisation", self.init)
        form.addRow("seed", self.seed)
        return box

    def _em_box(self) -> QGroupBox:
        self.e_button = _button("E-step", "q ← p(z|x, θ): recompute every point's responsibilities γ_nk")
        self.m_button = _button("M-step", "θ ← argmax F(q, θ): new weights, means and covariances from γ")
        self.iter_button = _button("Iteration", "One EM iteration: E-step (unless just taken), then M-step")
        self.run_button = _button("Run", "Iterate until the log-likelihood stops rising, one iteration per tick")
        self.run_button.setCheckable(True)
        self.reset_button = _button("Reset", "Back to the starting parameters θ₀ (same initialisation and seed)")
        self.speed = QSlider(Qt.Orientation.Horizontal)
        self.speed.setRange(1, 60)
        self.speed.setValue(8)
        self.speed.setToolTip("Animation speed: iterations per second while running")
        self.speed_label = QLabel()
        self.speed_label.setMinimumWidth(44)
        box = QGroupBox("EM")
        lay = QGridLayout(box)
        lay.addWidget(self.e_button, 0, 0)
        lay.addWidget(self.m_button, 0, 1)
        lay.addWidget(self.iter_button, 0, 2)
        lay.addWidget(self.run_button, 1, 0)
        lay.addWidget(self.reset_button, 1, 1)
        speed_row = _row("speed", self.speed, self.speed_label)
        speed_row.setStretchFactor(self.speed, 1)
        lay.addLayout(speed_row, 2, 0, 1, 3)
        return box

    def _show_box(self) -> QGroupBox:
        self.show_ellipses = QCheckBox("1σ and 2σ ellipses, weights")
        self.show_ellipses.setChecked(True)
        self.density = _combo(
            [("no density", "none"), ("density contours", "contours"), ("density heat map", "heat")],
            "p(x|θ) of the current parameters: contours of log p(x) one nat apart, or a heat map",
        )
        box = QGroupBox("Show")
        lay = QVBoxLayout(box)
        lay.addWidget(self.show_ellipses)
        lay.addWidget(self.density)
        return box

    # --- edits: each calls the model -----------------------------------------------------------------
    def _connect_edits(self) -> None:
        m = self.model
        self.point_set.currentIndexChanged.connect(lambda *_: self.point_set_chosen.emit(self.point_set.currentData()))
        self.n_points.valueChanged.connect(lambda n: m.set_sampling(n=n))
        self.data_seed.valueChanged.connect(lambda seed: m.set_sampling(data_seed=seed))
        self.true_k.valueChanged.connect(m.set_true_k)
        self.true_table.itemChanged.connect(self._on_true_cell_edited)
        self.k_spin.valueChanged.connect(lambda k: m.set_config(n_components=k))
        self.covariance.currentIndexChanged.connect(lambda *_: m.set_config(covariance=self.covariance.currentData()))
        self.init.currentIndexChanged.connect(self._on_init_chosen)
        self.seed.valueChanged.connect(lambda seed: m.set_config(seed=seed))
        self.mouse_buttons.idToggled.connect(self._on_mouse_mode_toggled)
        self.speed.valueChanged.connect(self._on_speed_changed)

    def _on_true_cell_edited(self, item: QTableWidgetItem) -> None:
        try:
            value = float(item.text().replace("−", "-"))
        except ValueError:
            self._sync_table()  # not a number: show the model's value again
            return
        self.model.set_true_value(item.row(), FIELDS[item.column()], value)

    def _on_init_chosen(self, *_) -> None:
        init = self.init.currentData()
        if init == "given":
            self.set_mouse_mode("place")
        elif self.mouse_mode() == "place":
            self.set_mouse_mode("add")
        self.model.set_config(init=init)

    def _on_mouse_mode_toggled(self, _id: int, checked: bool) -> None:
        if checked:
            self.mouse_mode_changed.emit(self.mouse_mode())

    def _on_speed_changed(self, v: int) -> None:
        self.speed_label.setText(f"{v} it/s")

    # --- the mouse -----------------------------------------------------------------------------------
    def set_mouse_mode(self, mode: str) -> None:
        for b in self.mouse_buttons.buttons():
            if b.property("mode") == mode:
                b.setChecked(True)

    def mouse_mode(self) -> str:
        b = self.mouse_buttons.checkedButton()
        return b.property("mode") if b is not None else "inspect"

    # --- showing the model ---------------------------------------------------------------------------
    def sync(self, running: bool) -> None:
        """Every widget from the model (signals blocked), then what can be pressed, then the status."""
        m = self.model
        _set_current_data(self.point_set, m.point_set)
        self.custom_box.setVisible(m.point_set == CUSTOM)
        _set_value(self.n_points, m.n)
        _set_value(self.data_seed, m.data_seed)
        _set_value(self.true_k, m.mixture.k)
        self._sync_table()
        _set_value(self.k_spin, m.config.n_components)
        _set_current_data(self.covariance, m.config.covariance)
        _set_current_data(self.init, m.config.init)
        _set_value(self.seed, m.config.seed)
        self.refresh_buttons(running)

    def _sync_table(self) -> None:
        rows = self.model.mixture.rows()
        with QSignalBlocker(self.true_table):
            self.true_table.setRowCount(len(rows))
            for r, row in enumerate(rows):
                for c, v in enumerate(row):
                    text = f"{v:g}"
                    item = self.true_table.item(r, c)
                    if item is None:
                        self.true_table.setItem(r, c, QTableWidgetItem(text))
                    elif item.text() != text:
                        item.setText(text)  # in place: this may run inside the item's own itemChanged

    def set_running(self, running: bool) -> None:
        self.run_button.setChecked(running)
        self.run_button.setText("Pause" if running else "Run")
        self.refresh_buttons(running)

    def refresh_buttons(self, running: bool) -> None:
        m, s = self.model, self.model.session
        self.e_button.setEnabled(m.can_e_step and not running)
        self.m_button.setEnabled(m.can_m_step and not running)
        self.iter_button.setEnabled(s.ready and not running)
        self.run_button.setEnabled(s.ready)
        self.reset_button.setEnabled(m.n_points > 0)
        self.status.setText(self.status_text())

    def status_text(self) -> str:
        m, s = self.model, self.model.session
        if not s.ready:
            msg = m.waiting_for()
            return msg[0].upper() + msg[1:]
        last = s.trace[-1]
        nxt = "M-step" if s.q_fresh else "E-step"
        conv = " <b>Converged.</b>" if s.converged(TOL) else ""
        f = "—" if last.free_energy != last.free_energy else f"{last.free_energy:.4f}"  # NaN before an E-step
        return (
            f"{s.n_points} points, K = {s.gmm.n_components} ({s.gmm.covariance_type}). Iteration {s.iteration}; "
            f"next: {nxt}.<br>log-likelihood ℓ(θ) = <b>{last.log_likelihood:.4f}</b> nats/point<br>F(q, θ) = {f}{conv}"
        )
