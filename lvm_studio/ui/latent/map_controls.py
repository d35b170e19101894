"""The latent map's side bar: what to show (dimensions or principal components, which two, the
colouring, the manifold, the point size), the decoded image at the target and the hovered digit.
"""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from lvm_studio.ui.widgets.controls import button, dimension_label
from lvm_studio.ui.widgets.digit_image import DigitImage

SIDEBAR_WIDTH = 300


class MapControls(QWidget):
    """The map's controls and side images; the panel wires their signals."""

    def __init__(self, on_fit, parent=None):
        super().__init__(parent)
        self.mode = QComboBox()
        self.mode.setToolTip("Show two latent dimensions, or the codes' first principal components")
        self.axis_x = QComboBox()
        self.axis_y = QComboBox()
        self.colour_by = QComboBox()
        self.colour_by.addItem("digit label", "label")
        self.colour_by.addItem("mixture p(c|z)", "mixture")
        self.colour_by.addItem("model's prior p(c|x)", "prior")
        self.colour_by.addItem("one colour", "none")
        self.colour_by.setToolTip(
            "Colour points by their true label, by the responsibilities of a mixture fitted to the "
            "codes (Digit clusters panel), or, for a mixture-prior model, by its own q(c|x) = p(c|z = μ(x))"
        )
        self.manifold_box = QCheckBox("decoded digits behind the points")
        self.manifold_box.setChecked(True)
        self.manifold_box.setToolTip(
            "Decode a grid of points over the visible area (for more than two dimensions: "
            "the plane through the current z spanned by the two axes)"
        )
        self.size_spin = QSpinBox()
        self.size_spin.setRange(1, 8)
        self.size_spin.setValue(2)
        self.size_spin.setToolTip("Point radius in pixels")
        fit = button("Fit view", "Zoom to all points", on_fit)
        self.decoded = DigitImage(min_side=112, hint_side=168)
        self.decoded.setToolTip("p(x|z) at the target")
        self.decoded_caption = QLabel("Click or drag on the map")
        self.decoded_caption.setWordWrap(True)
        self.hover_image = DigitImage(min_side=84, hint_side=112)
        self.hover_caption = QLabel("Hover over a point")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: gray;")

        form = QFormLayout()
        form.addRow("Show", self.mode)
        form.addRow("x axis", self.axis_x)
        form.addRow("y axis", self.axis_y)
        form.addRow("Colour by", self.colour_by)
        size_row = QHBoxLayout()
        size_row.addWidget(self.size_spin)
        size_row.addStretch(1)
        size_row.addWidget(fit)
        form.addRow("Point size", size_row)
        side = QVBoxLayout(self)
        side.setContentsMargins(0, 0, 0, 0)
        side.addLayout(form)
        side.addWidget(self.manifold_box)
        side.addWidget(QLabel("<b>Decoded at the target</b>"))
        side.addWidget(self.decoded, 2)
        side.addWidget(self.decoded_caption)
        self.hover_title = QLabel("<b>Test digit under the mouse</b>")
        side.addWidget(self.hover_title)
        side.addWidget(self.hover_image, 1)
        side.addWidget(self.hover_caption)
        side.addStretch(1)
        side.addWidget(self.status)
        self.setMaximumWidth(SIDEBAR_WIDTH)

    def name_images(self, digits: bool, labelled: bool) -> None:
        """Say 'digit' for MNIST and 'image' for an imported dataset; no label colouring without labels."""
        noun = "digit" if digits else "image"
        self.colour_by.setItemText(self.colour_by.findData("label"), f"{'digit ' if digits else ''}label")
        self.colour_by.model().item(self.colour_by.findData("label")).setEnabled(labelled)
        self.manifold_box.setText(f"decoded {noun}s behind the points")
        self.hover_title.setText(f"<b>Test {noun} under the mouse</b>")

    # --- the axis choices -------------------------------------------------------------------
    def fill_modes(self, latent_dim: int) -> None:
        """'latent dimensions', and 'PCA of the codes' for more than one; PCA is the default above 2."""
        self.mode.blockSignals(True)
        self.mode.clear()
        self.mode.addItem("latent dimensions", "dims")
        if latent_dim > 1:
            self.mode.addItem("PCA of the codes", "pca")
        self.mode.setCurrentIndex(self.mode.findData("pca" if latent_dim > 2 else "dims"))
        self.mode.blockSignals(False)

    def fill_axes(self, latent_dim: int, stats, projection) -> None:
        """The two axis boxes for the mode: components with their explained variance, or the
        dimensions ordered by KL (stats, when they belong to this latent size)."""
        for box in (self.axis_x, self.axis_y):
            box.blockSignals(True)
            box.clear()
        if self.mode.currentData() == "pca" and projection is not None:
            for i in range(projection.n_components):
                ratio = float(projection.explained_variance_ratio[i])
                for box in (self.axis_x, self.axis_y):
                    box.addItem(f"PC{i + 1}  ({100 * ratio:.0f} % of variance)", i)
        elif self.mode.currentData() == "pca":
            for box in (self.axis_x, self.axis_y):
                box.addItem("PC1", 0)
                box.addItem("PC2", 1)
        else:
            ok = stats is not None and stats.mean_kl.numel() == latent_dim
            order = stats.order.tolist() if ok else list(range(latent_dim))
            for i in order:
                for box in (self.axis_x, self.axis_y):
                    box.addItem(dimension_label(i, stats), i)
        self.axis_x.setCurrentIndex(0)
        self.axis_y.setCurrentIndex(min(1, self.axis_y.count() - 1))
        for box in (self.axis_x, self.axis_y):
            box.blockSignals(False)

    def axes(self) -> tuple:
        """(mode, a, b): 'dims' or 'pca' and the two chosen indices (None before any model)."""
        return self.mode.currentData(), self.axis_x.currentData(), self.axis_y.currentData()

    def axis_names(self) -> tuple[str, str]:
        mode, a, b = self.axes()
        if mode == "pca":
            return f"PC{a + 1}", f"PC{b + 1}"
        return f"z{a + 1}", f"z{b + 1}"
