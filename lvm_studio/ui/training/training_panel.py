"""Training controls: start, pause/resume, stop; the run's settings; epoch and evaluation progress.

The panel only asks: it emits *_requested signals and the main window talks to the training
worker. Settings a running Trainer cannot change (everything but the learning rate) are disabled
while a run is active.
"""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core.device import cuda_available
from lvm_studio.core.training import TrainConfig

IW_KS = (1, 5, 50, 500)  # the IW-k bounds shown at each evaluation when asked for


class TrainingPanel(QWidget):
    start_requested = Signal()  # continue training the current model
    new_run_requested = Signal()  # fresh weights of the default architecture, then train
    pause_requested = Signal()
    resume_requested = Signal()
    stop_requested = Signal()
    eval_requested = Signal()
    lr_changed = Signal(float)  # while running: applied between steps

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._state = "idle"
        defaults = TrainConfig()
        # a mixture prior's autoencoder epochs (set by New model… or a checkpoint; no widget of its own)
        self.pretrain_epochs = defaults.pretrain_epochs

        # --- buttons -----------------------------------------------------------------
        self.new_run_button = QPushButton("Train a new model and watch it learn")
        self.new_run_button.setToolTip(
            "Fresh weights of the default architecture, empty curves and a new model's settings (Ctrl+F5)"
        )
        self.new_run_button.setDefault(True)
        self.new_run_button.clicked.connect(self.new_run_requested)
        self.start_button = QPushButton("Continue training")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.eval_button = QPushButton("Evaluate now")
        self.start_button.setToolTip("Train the current model further, with its saved optimizer state (F5)")
        self.pause_button.setToolTip("Pause or resume between steps (F6)")
        self.stop_button.setToolTip("Stop after the current step (Shift+F5)")
        self.eval_button.setToolTip("Estimate the validation ELBO and log p(x) now (F7)")
        self.start_button.clicked.connect(self._on_start_clicked)
        self.pause_button.clicked.connect(self._on_pause_clicked)
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.eval_button.clicked.connect(self._on_eval_clicked)
        buttons = QGridLayout()
        buttons.addWidget(self.new_run_button, 0, 0, 1, 2)
        buttons.addWidget(self.start_button, 0, 2)
        for i, b in enumerate((self.pause_button, self.stop_button, self.eval_button)):
            buttons.addWidget(b, 1, i)

        # --- optimisation -------------------------------------------------------------
        self.epochs = QSpinBox(minimum=1, maximum=100_000, value=defaults.epochs)
        self.epochs.setSuffix(" more")
        self.epochs.setToolTip("Epochs to train from where the model is now")
        self.lr = QDoubleSpinBox(decimals=6, minimum=1e-6, maximum=1.0, value=defaults.lr)
        self.lr.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.lr.setKeyboardTracking(False)  # one command per edit, not per keystroke
        self.lr.setToolTip("Adam's learning rate; may be changed while training runs")
        self.lr.valueChanged.connect(self._on_lr_edited)
        self.batch_size = QSpinBox(minimum=1, maximum=8192, value=defaults.batch_size)
        self.batch_size.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.objective = QComboBox()
        self.objective.addItem("ELBO", "elbo")
        self.objective.addItem("IWAE-k", "iwae")
        self.objective.setToolTip("ELBO: one sample, KL in closed form. IWAE-k: Burda et al. (2016), eq. 8")
        self.k = QSpinBox(minimum=1, maximum=5000, value=5)
        self.k.setToolTip("Importance samples per image in the IWAE objective")
        self.objective.currentIndexChanged.connect(self._on_objective_changed)
        self.beta = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=100.0, singleStep=0.1, value=defaults.beta)
        self.beta.setToolTip("Weight of the KL term (β-VAE); 1 is the true ELBO")
        self.warmup = QDoubleSpinBox(
            decimals=1, minimum=0.0, maximum=1000.0, singleStep=1.0, value=defaults.kl_warmup_epochs
        )
        self.warmup.setSuffix(" epochs")
        self.warmup.setToolTip("The KL weight rises linearly from 0 to β over this many epochs")
        self.device = QComboBox()
        self.device.addItem("auto", "auto")
        self.device.addItem("cpu", "cpu")
        if cuda_available():
            self.device.addItem("cuda", "cuda")
        opt_box = QWidget()
        form = QFormLayout(opt_box)
        form.addRow("Epochs", self.epochs)
        form.addRow("Learning rate", self.lr)
        form.addRow("Batch size", self.batch_size)
        obj_row = QHBoxLayout()
        obj_row.addWidget(self.objective, 2)
        obj_row.addWidget(QLabel("k"))
        obj_row.addWidget(self.k, 1)
        form.addRow("Objective", obj_row)
        form.addRow("β", self.beta)
        form.addRow("KL warm-up", self.warmup)
        form.addRow("Device", self.device)

        # --- evaluation ---------------------------------------------------------------
        self.eval_k = QSpinBox(minimum=1, maximum=5000, value=defaults.eval_k)
        self.eval_k.setToolTip("Importance samples per image for the log p(x) estimate")
        self.eval_every = QSpinBox(minimum=0, maximum=1_000_000, value=defaults.eval_every, singleStep=100)
        self.eval_every.setSpecialValueText("each epoch")
        self.eval_every.setSuffix(" steps")
        self.eval_n = QSpinBox(minimum=10, maximum=10_000, value=defaults.eval_n, singleStep=100)
        self.eval_n.setSuffix(" images")
        self.iw_bounds = QCheckBox("IW bounds for k = " + ", ".join(str(k) for k in IW_KS))
        self.iw_bounds.setToolTip("Also report the IWAE bound at several k from the same samples (slower)")
        eval_box = QWidget()
        eform = QFormLayout(eval_box)
        eform.addRow("log p(x) k", self.eval_k)
        eform.addRow("Every", self.eval_every)
        eform.addRow("Subset", self.eval_n)
        eform.addRow(self.iw_bounds)
        eform.addRow(QLabel("on a fixed subset of the validation digits"))

        # --- progress -----------------------------------------------------------------
        self.epoch_bar = QProgressBar(minimum=0, maximum=1000, value=0)
        self.epoch_bar.setFormat("epoch")
        self.eval_bar = QProgressBar(minimum=0, maximum=1000, value=0)
        self.eval_bar.setFormat("evaluation")
        self.state_label = QLabel("Idle")
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(200)
        self.log.setMinimumHeight(60)
        self.log.setPlaceholderText("Training messages")

        # compact, so that the panel and the live curves fit one column of a 720-pixel-high screen:
        # the buttons and progress always in sight, the settings and the messages in tabs
        self.tabs = QTabWidget()
        self.tabs.addTab(self.log, "Messages")
        for page, title in ((opt_box, "Optimisation"), (eval_box, "Evaluation")):
            scroll = QScrollArea()  # the forms scroll in a short dock rather than squeeze the curves below
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setWidget(page)
            self.tabs.addTab(scroll, title)
        progress = QHBoxLayout()
        progress.addWidget(self.state_label)
        progress.addWidget(self.epoch_bar, 3)
        progress.addWidget(self.eval_bar, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addLayout(progress)
        layout.addWidget(self.tabs, 1)

        # everything a running Trainer cannot change
        self._fixed_while_running = (
            self.epochs,
            self.batch_size,
            self.objective,
            self.k,
            self.beta,
            self.warmup,
            self.device,
            self.eval_k,
            self.eval_every,
            self.eval_n,
            self.iw_bounds,
        )
        self._on_objective_changed()
        self.set_state("idle")

    # --- reading the settings ----------------------------------------------------------
    def train_config(self, start_epoch: float = 0.0, **overrides) -> TrainConfig:
        """The run's TrainConfig; epochs counts from the whole epoch the model is in."""
        objective = self.objective.currentData()
        values = dict(
            epochs=int(start_epoch + 1e-9) + self.epochs.value(),
            batch_size=self.batch_size.value(),
            lr=self.lr.value(),
            objective=objective,
            k=self.k.value() if objective == "iwae" else 1,
            beta=self.beta.value(),
            kl_warmup_epochs=self.warmup.value(),
            eval_every=self.eval_every.value(),
            eval_k=self.eval_k.value(),
            eval_n=self.eval_n.value(),
            eval_iw_ks=IW_KS if self.iw_bounds.isChecked() else (),
            eval_max_rows=4096,  # evaluation chunks short enough to stop within a second
            pretrain_epochs=self.pretrain_epochs,
        )
        values.update(overrides)
        return TrainConfig(**values)

    def device_choice(self) -> str:
        return self.device.currentData()

    def set_objective(self, objective: str, k: int = 1) -> None:
        i = self.objective.findData(objective)
        if i >= 0:
            self.objective.setCurrentIndex(i)
        if objective == "iwae":
            self.k.setValue(max(1, int(k)))

    def apply_config(self, config: dict | None) -> None:
        """Show a checkpoint's training settings (objective, lr, batch size, β, warm-up, evaluation)."""
        if not config:
            return
        c = TrainConfig.from_dict(config)
        self.set_objective(c.objective, c.k)
        self.show_lr(c.lr)
        self.batch_size.setValue(c.batch_size)
        self.beta.setValue(c.beta)
        self.warmup.setValue(c.kl_warmup_epochs)
        self.eval_k.setValue(c.eval_k)
        self.eval_every.setValue(c.eval_every)
        self.eval_n.setValue(c.eval_n)
        self.iw_bounds.setChecked(bool(c.eval_iw_ks))
        self.pretrain_epochs = c.pretrain_epochs

    def reset_to_defaults(self) -> None:
        """A new model's settings (TrainConfig's defaults); the device and the epoch count stay as chosen."""
        d = TrainConfig()
        self.set_objective(d.objective, d.k)
        self.show_lr(d.lr)
        self.batch_size.setValue(d.batch_size)
        self.beta.setValue(d.beta)
        self.warmup.setValue(d.kl_warmup_epochs)
        self.eval_every.setValue(d.eval_every)
        self.iw_bounds.setChecked(bool(d.eval_iw_ks))
        self.pretrain_epochs = d.pretrain_epochs
        self.eval_bar.setValue(0)
        self.eval_bar.setFormat("evaluation")

    def show_lr(self, lr: float) -> None:
        """Display a learning rate without sending it to a running Trainer."""
        self.lr.blockSignals(True)
        self.lr.setValue(lr)
        self.lr.blockSignals(False)

    # --- showing the run ----------------------------------------------------------------
    @Slot(str)
    def set_state(self, state: str) -> None:
        """idle, starting, running, paused or stopping (TrainingController.state_changed)."""
        self._state = state
        active = state != "idle"
        for w in self._fixed_while_running:
            w.setEnabled(not active)
        if not active:
            self._on_objective_changed()
        self.start_button.setEnabled(not active)
        self.pause_button.setEnabled(state in ("running", "paused", "starting"))
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.stop_button.setEnabled(state in ("running", "paused", "starting"))
        self.eval_button.setEnabled(state in ("running", "paused"))
        self.state_label.setText(
            {
                "idle": "Idle",
                "starting": "Starting…",
                "running": "Running",
                "paused": "Paused",
                "stopping": "Stopping…",
            }.get(state, state)
        )
        if state == "idle":
            self.eval_bar.setValue(0)
            self.eval_bar.setFormat("evaluation")

    @property
    def state(self) -> str:
        return self._state

    def show_progress(self, epoch: int, fraction: float, total_epochs: int) -> None:
        """epoch: the 0-based index of the running epoch; shown as epochs seen, as the log counts them
        ("epoch 195.73 / 215", not "196/215")."""
        self.epoch_bar.setValue(int(round(1000 * fraction)))
        self.epoch_bar.setFormat(f"epoch {epoch + fraction:.2f} / {total_epochs}")

    def show_eval_progress(self, fraction: float) -> None:
        self.eval_bar.setValue(int(round(1000 * fraction)))
        self.eval_bar.setFormat("evaluation done" if fraction >= 1.0 else f"evaluating  ·  {100 * fraction:.0f} %")

    def add_message(self, text: str) -> None:
        self.log.appendPlainText(text)

    def messages(self) -> str:
        return self.log.toPlainText()

    # --- slots --------------------------------------------------------------------------
    def _on_start_clicked(self):
        self.start_requested.emit()

    def _on_pause_clicked(self):
        (self.resume_requested if self._state == "paused" else self.pause_requested).emit()

    def _on_stop_clicked(self):
        self.stop_requested.emit()

    def _on_eval_clicked(self):
        self.eval_requested.emit()

    def _on_lr_edited(self, value: float):
        if self._state in ("running", "paused", "starting"):
            self.lr_changed.emit(float(value))

    def _on_objective_changed(self, *_):
        self.k.setEnabled(self.objective.currentData() == "iwae" and self._state == "idle")
        self.beta.setEnabled(self.objective.currentData() == "elbo" and self._state == "idle")
        self.warmup.setEnabled(self.objective.currentData() == "elbo" and self._state == "idle")
