"""The lecture's "pick φ" figure, live: a 1-D posterior p(z|x) (core.vi_1d), the two candidate q's
after the reveal, and the student's own q = N(μ, σ²) with sliders; ELBO(q) and KL(q ‖ p(z|x)) are
recomputed by quadrature as they drag (a few thousand grid points: instant on the GUI thread)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QSlider, QVBoxLayout, QWidget

from lvm_studio.core import vi_1d
from lvm_studio.ui.widgets.axes import plain_axes
from lvm_studio.ui.widgets.style import LEGEND_BACKGROUND

MU_RANGE = 6.0
SIGMA_MIN, SIGMA_MAX = 0.1, 4.0
TICKS = 600
POSTERIOR_COLOUR = (240, 240, 240)
LIKELIHOOD_COLOUR = (150, 150, 150)
A_COLOUR = (60, 160, 230)
B_COLOUR = (230, 85, 60)
MINE_COLOUR = (120, 210, 90)


class VI1DView(QWidget):
    q_changed = Signal()  # the student's q moved and its numbers were recomputed

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = vi_1d.Model1D()
        self.grid = vi_1d.grid(2001)
        self.score: vi_1d.QScore | None = None
        self.plot = pg.PlotWidget()
        plain_axes(self.plot)
        self.plot.setLabel("bottom", "z")
        self.plot.setLabel("left", "density")
        self.plot.setMinimumSize(320, 220)
        self.plot.setXRange(-7, 7, padding=0)
        self.legend = self.plot.addLegend(
            offset=(-8, 8), labelTextColor=(230, 230, 230), brush=pg.mkBrush(*LEGEND_BACKGROUND)
        )
        self.likelihood_curve = self.plot.plot(
            pen=pg.mkPen(LIKELIHOOD_COLOUR, width=1.5, style=Qt.PenStyle.DashLine), name="p(x|z), scaled"
        )
        self.posterior_curve = self.plot.plot(pen=pg.mkPen(POSTERIOR_COLOUR, width=2.5), name="p(z|x)")
        self.a_curve = self.plot.plot(pen=pg.mkPen(A_COLOUR, width=2), name="N(2, 2)")
        self.b_curve = self.plot.plot(pen=pg.mkPen(B_COLOUR, width=2), name="N(−4, 0.75²)")
        self.mine_curve = self.plot.plot(pen=pg.mkPen(MINE_COLOUR, width=2.5), name="your q")
        self.mu = QSlider(Qt.Orientation.Horizontal)
        self.mu.setRange(-TICKS, TICKS)
        self.sigma = QSlider(Qt.Orientation.Horizontal)
        self.sigma.setRange(0, TICKS)
        self.mu_label, self.sigma_label = QLabel(), QLabel()
        for w in (self.mu_label, self.sigma_label):
            w.setMinimumWidth(60)
        self.numbers = QLabel()
        self.numbers.setTextFormat(Qt.TextFormat.RichText)
        self.numbers.setWordWrap(True)
        sliders = QGridLayout()
        sliders.addWidget(QLabel("φ<sub>μ</sub>"), 0, 0)
        sliders.addWidget(self.mu, 0, 1)
        sliders.addWidget(self.mu_label, 0, 2)
        sliders.addWidget(QLabel("φ<sub>σ</sub>"), 1, 0)
        sliders.addWidget(self.sigma, 1, 1)
        sliders.addWidget(self.sigma_label, 1, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addLayout(sliders)
        lay.addWidget(self.numbers)
        self.mu.valueChanged.connect(self._on_slider)
        self.sigma.valueChanged.connect(self._on_slider)
        self.set_model(self.model)
        self.set_q(0.0, 1.0)

    def set_model(self, model: vi_1d.Model1D) -> None:
        self.model = model
        post = vi_1d.posterior(model, self.grid)
        z = self.grid.z
        p = np.exp(post.log_post)
        lik = np.exp(model.log_likelihood(z))
        self.posterior_curve.setData(z, p)
        self.likelihood_curve.setData(z, lik * p.max() / lik.max())  # the likelihood's shape, at the posterior's height
        self.show_candidates(None)

    def show_candidates(self, candidates: list[tuple[float, float]] | None) -> None:
        """Draw q_a and q_b as (mean, sd), or hide them (None)."""
        z = self.grid.z
        for curve, c in zip((self.a_curve, self.b_curve), candidates or (None, None)):
            if c is None:
                curve.setData([], [])
            else:
                curve.setData(z, np.exp(vi_1d.log_normal(z, c[0], c[1])))

    def set_q(self, mu: float, sigma: float) -> None:
        self.mu.blockSignals(True)
        self.sigma.blockSignals(True)
        self.mu.setValue(round(TICKS * float(mu) / MU_RANGE))
        t = np.log(float(sigma) / SIGMA_MIN) / np.log(SIGMA_MAX / SIGMA_MIN)
        self.sigma.setValue(int(round(TICKS * min(max(t, 0.0), 1.0))))
        self.mu.blockSignals(False)
        self.sigma.blockSignals(False)
        self._update()

    def q(self) -> tuple[float, float]:
        mu = MU_RANGE * self.mu.value() / TICKS
        sigma = SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** (self.sigma.value() / TICKS)
        return mu, sigma

    def _on_slider(self, _v: int) -> None:
        self._update()

    def _update(self) -> None:
        mu, sigma = self.q()
        self.mu_label.setText(f"{mu:+.2f}")
        self.sigma_label.setText(f"{sigma:.2f}")
        self.score = s = vi_1d.score_q(self.model, mu, sigma, self.grid)
        self.mine_curve.setData(self.grid.z, np.exp(vi_1d.log_normal(self.grid.z, mu, sigma)))
        self.numbers.setText(
            f"your q = N({mu:.2f}, {sigma:.2f}²): ELBO <b>{s.elbo:.3f}</b> + KL(q ‖ p(z|x)) <b>{s.kl:.3f}</b> "
            f"= log p(x) {s.elbo + s.kl:.3f} nats"
        )
        self.q_changed.emit()
