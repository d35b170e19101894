"""Screenshots of the latent explorer panels with trained models, for docs/latent-*.png.

    QT_QPA_PLATFORM=offscreen python -m bench.latent_screenshots --model2 runs/vae2.pt --model-hi runs/vae32.pt

model2: a 2-D latent model (map with manifold, posterior view, estimator lab);
model-hi: a model with more latent dimensions (sliders with inactive units, traversals, PCA map).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import torch
from PySide6.QtWidgets import QApplication

from lvm_studio.core.checkpoint import load_checkpoint, model_from_checkpoint
from lvm_studio.ui.state.model_hub import ModelHub
from lvm_studio.ui.widgets import style
from lvm_studio.workers.tasks import shutdown_all


def wait(app, cond, timeout=300.0):
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("condition not reached")


def settle(app, seconds=0.3):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.01)


def hub_for(path):
    ckpt = load_checkpoint(path)
    hub = ModelHub()
    hub.set_model(model_from_checkpoint(ckpt), name=ckpt.get("name"), step=ckpt.get("step", 0))
    return hub


def shoot(app, widget, out: Path):
    settle(app)
    widget.grab().save(str(out))
    print("wrote", out)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model2", required=True)
    p.add_argument("--model-hi", required=True)
    p.add_argument("--out", default="docs")
    p.add_argument("--only", nargs="*", default=None)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(exist_ok=True)
    app = QApplication.instance() or QApplication([])
    style.apply(app)
    want = lambda name: a.only is None or name in a.only

    hub_hi = hub_for(a.model_hi)
    hub2 = hub_for(a.model2)

    if want("sliders"):
        from lvm_studio.ui.latent.sliders_panel import LatentSlidersPanel

        w = LatentSlidersPanel(hub_hi)
        w.resize(900, 620)
        w.show()
        wait(app, lambda: w.stats is not None)
        w.picker.set_index(7)
        w.from_test_button.click()
        settle(app)
        shoot(app, w, out / "latent-sliders.png")

    if want("traversal"):
        from lvm_studio.ui.latent.traversal_panel import TraversalPanel

        w = TraversalPanel(hub_hi)
        w.resize(820, 900)
        w.show()
        wait(app, lambda: hub_hi.latent_stats.stats is not None)
        settle(app)
        w.method.setCurrentIndex(w.method.findData("spherical"))
        w.update_grid()
        w.update_strip()
        shoot(app, w, out / "latent-traversal.png")

    if want("map"):
        from lvm_studio.ui.latent.map_panel import LatentMapPanel

        w = LatentMapPanel(hub2)
        w.resize(1100, 760)
        w.show()
        wait(app, lambda: w.codes is not None)
        settle(app, 0.5)
        w.decode_at(0.5, -1.0)
        wait(app, lambda: w.manifold.isVisible())
        # hover over a point so the preview shows
        i = 77
        u, v = w.cloud.points()[i]
        w._show_hover(i, w.vb.mapViewToScene(pg_point(u, v)))
        shoot(app, w, out / "latent-map.png")
        # a Gaussian mixture fitted to the codes colours the points by p(c|z)
        from lvm_studio.core.gmm import GaussianMixture, GMMConfig
        from lvm_studio.ui.widgets.style import LABEL_COLOURS

        gm = GaussianMixture(GMMConfig(n_components=10, seed=0))
        codes = torch.as_tensor(w.codes)
        gm.fit(codes, max_iter=200)
        resp = gm.responsibilities(codes).numpy()
        hub2.set_cluster_posterior(
            resp,
            LABEL_COLOURS[[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]],
            "GMM (10 components, full covariances) on the test codes",
        )
        w.manifold_box.setChecked(False)
        w.set_colour_mode("mixture")
        w._show_hover(-1, None)
        shoot(app, w, out / "latent-map-mixture.png")
        w.manifold_box.setChecked(True)

        w32 = LatentMapPanel(hub_hi)
        w32.resize(1100, 760)
        w32.show()
        wait(app, lambda: w32.codes is not None)
        w32.manifold_box.setChecked(False)
        settle(app, 0.5)
        shoot(app, w32, out / "latent-map-pca.png")

    if want("posterior"):
        from lvm_studio.ui.latent.posterior_panel import PosteriorPanel

        w = PosteriorPanel(hub2)
        w.resize(1150, 760)
        w.show()
        done = []
        w.numbers_updated.connect(lambda: done.append(1))
        w.set_digit_index(int(os.environ.get("LVM_POSTERIOR_DIGIT", "18")))
        wait(app, lambda: done)
        n0 = len(done)
        w.optimise()
        wait(app, lambda: w.optimised_numbers is not None and len(done) > n0)
        shoot(app, w, out / "latent-posterior.png")
        n1 = len(done)
        w.set_q(w.enc_loc + np.array([0.35, -0.25]) * 3 * w.enc_scale, w.enc_scale * 1.8)
        wait(app, lambda: len(done) > n1)
        shoot(app, w, out / "latent-posterior-hand.png")

    if want("lab"):
        from lvm_studio.ui.latent.estimator_lab_panel import EstimatorLabPanel

        for hub, name in ((hub_hi, "latent-estimator-lab.png"), (hub2, "latent-estimator-lab-2d.png")):
            w = EstimatorLabPanel(hub)
            w.resize(1200, 640)
            w.show()
            fin: list[int] = []
            w.finished.connect(lambda fin=fin: fin.append(1))
            w.picker.set_index(18, emit=False)
            w.run(k_max=10000, runs=8)
            wait(app, lambda fin=fin: fin, timeout=900)
            shoot(app, w, out / name)

    shutdown_all(10.0)


def pg_point(u, v):
    import pyqtgraph as pg

    return pg.Point(float(u), float(v))


if __name__ == "__main__":
    main()
