"""The registry of dockable panels that read the current model.

Each panel is a QWidget class in its own module, constructed as `Panel(hub, parent=None)`
with hub a ModelHub. The main window docks every panel listed here whose module imports;
a panel that fails to import is reported in the log and skipped, so one broken panel never
keeps the app from starting. Training controls and live curves are built by the main window
itself, since they also talk to the training worker.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PanelSpec:
    key: str  # stable id: QSettings layout and the View menu use it
    title: str
    module: str
    cls: str
    area: str = "right"  # default dock area: left, right, bottom
    group: str = ""  # panels of one group are tabbed together by default


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "latent_sliders",
        "Latent sliders",
        "lvm_studio.ui.latent.sliders_panel",
        "LatentSlidersPanel",
        "right",
        "explore",
    ),
    PanelSpec("traversals", "Traversals", "lvm_studio.ui.latent.traversal_panel", "TraversalPanel", "right", "explore"),
    PanelSpec("latent_map", "Latent map", "lvm_studio.ui.latent.map_panel", "LatentMapPanel", "right", "explore"),
    PanelSpec("posterior", "Posterior", "lvm_studio.ui.latent.posterior_panel", "PosteriorPanel", "right", "explore"),
    PanelSpec(
        "estimator_lab",
        "Estimator lab",
        "lvm_studio.ui.latent.estimator_lab_panel",
        "EstimatorLabPanel",
        "right",
        "explore",
    ),
    PanelSpec(
        "em_playground",
        "EM playground",
        "lvm_studio.ui.mixtures.em_playground_panel",
        "EMPlaygroundPanel",
        "right",
        "mixtures",
    ),
    PanelSpec(
        "digit_clusters",
        "Digit clusters",
        "lvm_studio.ui.mixtures.digit_clusters_panel",
        "DigitClustersPanel",
        "right",
        "mixtures",
    ),
    PanelSpec(
        "inpainting", "Inpainting", "lvm_studio.ui.inpainting.inpainting_panel", "InpaintingPanel", "right", "inpaint"
    ),
    PanelSpec(
        "pixel_latents",
        "Missing pixels as latents",
        "lvm_studio.ui.inpainting.pixel_latents_panel",
        "PixelLatentsPanel",
        "right",
        "inpaint",
    ),
)


def load_panel_class(spec: PanelSpec):
    """The panel's class, or None if its module is missing or broken (logged)."""
    try:
        return getattr(importlib.import_module(spec.module), spec.cls)
    except (ImportError, AttributeError) as e:
        log.warning("panel %s unavailable: %s", spec.title, e)
        return None
