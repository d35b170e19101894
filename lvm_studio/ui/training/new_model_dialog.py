"""New model…: latent dimension, hidden sizes, likelihood, activation, the prior (N(0, I) or a Gaussian
mixture with its number of components, their weights and autoencoder pre-training epochs), and the
training objective."""

from __future__ import annotations

import re

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from lvm_studio.core.vae import ACTIVATIONS, LIKELIHOODS, VAEConfig
from lvm_studio.ui.widgets.style import ERROR

PRIOR_TEXTS = {"normal": "N(0, I)", "mixture": "Gaussian mixture (clusters digits, VaDE)"}
DEFAULT_PRETRAIN_EPOCHS = 5
# the mixture's weights: VAEConfig.weight_floor. Equal is the shipped VaDE's recipe: with learned weights
# the likelihood's best EM start on the codes was the worse clustering (docs/benchmarks.md, issue 17)
LEARNED_FLOOR = VAEConfig().weight_floor  # the config's own default guard against a collapsing component
WEIGHT_TEXTS = {1.0: "equal, π = 1/K", LEARNED_FLOOR: f"learned, each π_c ≥ {LEARNED_FLOOR:g} / K"}


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 512' or '512 256' -> (512, 512); ValueError with a readable message otherwise."""
    parts = [p for p in re.split(r"[,\s;x×]+", text.strip()) if p]
    if not parts:
        raise ValueError("give at least one hidden layer width, e.g. 512, 512")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"hidden sizes must be whole numbers separated by commas, got {text!r}") from None
    if any(h < 1 or h > 8192 for h in sizes):
        raise ValueError("each hidden width must be between 1 and 8192")
    if len(sizes) > 8:
        raise ValueError("at most 8 hidden layers")
    return sizes


class NewModelDialog(QDialog):
    def __init__(
        self, parent: QWidget | None = None, config: VAEConfig | None = None, objective: str = "elbo", k: int = 5
    ):
        super().__init__(parent)
        self.setWindowTitle("New model")
        c = config or VAEConfig()
        self.latent_dim = QSpinBox(minimum=1, maximum=64, value=c.latent_dim)
        self.latent_dim.setToolTip("2 gives the latent map and the exact posterior view")
        self.hidden = QLineEdit(", ".join(str(h) for h in c.hidden))
        self.hidden.setToolTip("Encoder widths; the decoder mirrors them")
        self.likelihood = QComboBox()
        for name, text in zip(LIKELIHOODS, ("Bernoulli (binarized pixels)", "Gaussian (grey levels)")):
            self.likelihood.addItem(text, name)
        self.likelihood.setCurrentIndex(max(0, self.likelihood.findData(c.likelihood)))
        self.activation = QComboBox()
        for name in ACTIVATIONS:
            self.activation.addItem(name, name)
        self.activation.setCurrentIndex(max(0, self.activation.findData(c.activation)))
        self.prior = QComboBox()
        for name, text in PRIOR_TEXTS.items():
            self.prior.addItem(text, name)
        self.prior.setCurrentIndex(max(0, self.prior.findData(c.prior)))
        self.prior.setToolTip(
            "p(z): the standard normal, or c ~ Cat(π), z | c ~ N(μ_c, σ_c²) with learnable π, μ_c, σ_c:\n"
            "the mixture of Gaussians and the VAE in one model; q(c | x) clusters the digits"
        )
        self.components = QSpinBox(minimum=1, maximum=100, value=c.components)
        self.components.setToolTip("K, the number of mixture components (10 for the ten digits)")
        self.pretrain = QSpinBox(minimum=0, maximum=1000, value=DEFAULT_PRETRAIN_EPOCHS)
        self.pretrain.setToolTip(
            "Epochs of autoencoder pre-training before EM on the codes initialises the prior (VaDE's schedule)"
        )
        self.weights = QComboBox()
        for floor, text in WEIGHT_TEXTS.items():
            self.weights.addItem(text, floor)
        self.weights.setCurrentIndex(max(0, self.weights.findData(1.0 if c.prior != "mixture" else c.weight_floor)))
        self.weights.setToolTip(
            "π, the components' weights. Equal: the prior says the clusters are the same size, as the ten\n"
            f"digits nearly are (the shipped VaDE-10). Learned: π is trained too, each at least {LEARNED_FLOOR:g} / K\n"
            "(the guard against a component collapsing)"
        )
        self.objective = QComboBox()
        self.objective.addItem("ELBO", "elbo")
        self.objective.addItem("IWAE-k", "iwae")
        self.objective.setCurrentIndex(max(0, self.objective.findData(objective)))
        self.k = QSpinBox(minimum=1, maximum=5000, value=max(1, k))
        self.name = QLineEdit()
        self.name.setPlaceholderText("(its architecture)")
        self.error = QLabel("")
        self.error.setStyleSheet(f"color: {ERROR}")
        self.error.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Latent dimension", self.latent_dim)
        form.addRow("Hidden sizes", self.hidden)
        form.addRow("Likelihood", self.likelihood)
        form.addRow("Activation", self.activation)
        form.addRow("Prior", self.prior)
        form.addRow("Components", self.components)
        form.addRow("Component weights", self.weights)
        form.addRow("Pre-training epochs", self.pretrain)
        form.addRow("Objective", self.objective)
        form.addRow("IWAE k", self.k)
        form.addRow("Name", self.name)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._on_accepted)
        self.buttons.rejected.connect(self.reject)
        self.hidden.textChanged.connect(self._on_changed)
        self.objective.currentIndexChanged.connect(self._on_changed)
        self.prior.currentIndexChanged.connect(self._on_changed)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self._on_changed()

    def config(self) -> VAEConfig:
        """The model asked for; ValueError if the fields do not describe one."""
        mixture = self.prior.currentData() == "mixture"
        return VAEConfig(
            latent_dim=self.latent_dim.value(),
            hidden=parse_hidden(self.hidden.text()),
            likelihood=self.likelihood.currentData(),
            activation=self.activation.currentData(),
            prior=self.prior.currentData(),
            components=self.components.value(),
            **({"weight_floor": float(self.weights.currentData())} if mixture else {}),
        )

    def pretrain_epochs(self) -> int:
        """Autoencoder epochs before EM initialises a mixture prior; 0 for N(0, I)."""
        return self.pretrain.value() if self.prior.currentData() == "mixture" else 0

    def objective_choice(self) -> tuple[str, int]:
        return self.objective.currentData(), self.k.value()

    def model_name(self) -> str | None:
        return self.name.text().strip() or None

    @Slot()
    def _on_changed(self, *_):
        self.k.setEnabled(self.objective.currentData() == "iwae")
        mixture = self.prior.currentData() == "mixture"
        self.components.setEnabled(mixture)
        self.weights.setEnabled(mixture)
        self.pretrain.setEnabled(mixture)
        try:
            self.config()
            self.error.setText("")
            ok = True
        except ValueError as e:
            self.error.setText(str(e))
            ok = False
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    @Slot()
    def _on_accepted(self):
        try:
            self.config()
        except ValueError as e:
            self.error.setText(str(e))
            return
        self.accept()
