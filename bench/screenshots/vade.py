"""Screenshots of the mixture-prior VAE (VaDE, issue 17): docs/vade-*.png.

    nice -n 5 python -m bench.screenshots.vade [--model pretrained/vade10.pt] [--out DIR]

map: the latent map of the test digits (PCA of the 10-D codes) coloured by the model's own q(c|x).
components: the digit clusters panel's "Model's prior" tab: each component's mean and samples,
    samples of one picked component, and the confusion matrix of q(c|x) against the labels.
curves: the curves panel with the model's training history: the ELBO and log p(x), and below them
    the test clustering accuracy and NMI at every evaluation (the autoencoder epochs first, then EM,
    then the joint training).
The model defaults to the shipped mixture-prior one (pretrained/, latent size 10).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.common import DOCS, add_model_argument, load_model, qt_app, screenshot, show, wait_until
from lvm_studio.workers.tasks import shutdown_all

SETTLE_S = 0.5


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(p, "--model", latent_dim=10)
    p.add_argument("--out", default=str(DOCS), help="folder for the PNG files (default: docs/)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    qt_app()
    from lvm_studio.core.checkpoint import history_from_checkpoint
    from lvm_studio.ui.latent.map_panel import LatentMapPanel
    from lvm_studio.ui.mixtures.digit_clusters_panel import DigitClustersPanel
    from lvm_studio.ui.state.model_hub import ModelHub
    from lvm_studio.ui.training.curves_panel import CurvesPanel

    model, ckpt = load_model(a.model)
    hub = ModelHub()
    hub.set_model(
        model, name=ckpt.get("name"), history=history_from_checkpoint(ckpt), step=ckpt.get("step", 0),
        epoch=ckpt.get("epoch", 0.0),
    )  # fmt: skip

    w = show(LatentMapPanel(hub), (1100, 760))
    w.manifold_box.setChecked(False)  # the colours are the point here
    wait_until(lambda: w.codes is not None and w.colour_mode() == "prior", 600)
    screenshot(w, out / "vade-latent-map.png", SETTLE_S)
    w.close()

    w = show(DigitClustersPanel(hub), (1250, 820))
    tab = w.prior
    wait_until(lambda: tab.result is not None and tab.picked.images() is not None, 600)
    order = sorted(range(tab.result.k), key=lambda c: (tab.result.mapping.get(c, 99), c))
    tab.component.setCurrentIndex(tab.component.findData(order[min(2, len(order) - 1)]))  # the "2"s, say
    tab.sample()
    screenshot(w, out / "vade-components.png", SETTLE_S)
    shutdown_all(5.0)
    w.close()

    w = show(CurvesPanel(hub), (900, 900))
    w.redraw()
    screenshot(w, out / "vade-curves.png", SETTLE_S)
    w.close()
    shutdown_all(5.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
