"""Screenshots of the latent explorer panels with trained models: docs/latent-*.png.

    python -m bench.screenshots.latent [--model2 runs/vae2.pt] [--model-hi runs/vae32.pt] [--out DIR]
        [--only sliders traversal map posterior lab]

model2: a 2-D latent model (map with manifold, posterior view, estimator lab);
model-hi: a model with more latent dimensions (sliders with inactive units, traversals, PCA map).
Both default to the shipped models (pretrained/).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from bench.common import DOCS, add_model_argument, make_hub, qt_app, settle, show
from bench.common import screenshot as shoot
from bench.common import wait_until as _wait_until
from lvm_studio.workers.tasks import shutdown_all

AREAS = ("sliders", "traversal", "map", "posterior", "lab")


def wait(cond, timeout_s=300.0):
    _wait_until(cond, timeout_s, poll_s=0.01)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(p, "--model2", latent_dim=2)
    add_model_argument(p, "--model-hi", latent_dim=32)
    p.add_argument("--out", default=str(DOCS), help="folder for the PNG files (default: docs/)")
    p.add_argument("--only", nargs="*", default=None, choices=AREAS)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    qt_app()
    want = lambda name: a.only is None or name in a.only

    hub_hi = make_hub(a.model_hi)
    hub2 = make_hub(a.model2)

    if want("sliders"):
        from lvm_studio.ui.latent.sliders_panel import LatentSlidersPanel

        w = show(LatentSlidersPanel(hub_hi), (900, 620))
        wait(lambda: w.stats is not None)
        w.picker.set_index(7)
        w.from_test_button.click()
        settle()
        shoot(w, out / "latent-sliders.png")

    if want("traversal"):
        from lvm_studio.ui.latent.traversal_panel import TraversalPanel

        w = show(TraversalPanel(hub_hi), (820, 900))
        wait(lambda: hub_hi.latent_stats.stats is not None)
        settle()
        w.method.setCurrentIndex(w.method.findData("spherical"))
        w.update_grid()
        w.update_strip()
        shoot(w, out / "latent-traversal.png")

    if want("map"):
        from lvm_studio.ui.latent.map_panel import LatentMapPanel

        w = show(LatentMapPanel(hub2), (1100, 760))
        wait(lambda: w.codes is not None)
        settle(0.5)
        w.decode_at(0.5, -1.0)
        wait(lambda: w.manifold.isVisible())
        # hover over a point so the preview shows
        i = 77
        u, v = w.cloud.points()[i]
        w._show_hover(i, w.vb.mapViewToScene(pg_point(u, v)))
        shoot(w, out / "latent-map.png")
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
        shoot(w, out / "latent-map-mixture.png")
        w.manifold_box.setChecked(True)

        w32 = show(LatentMapPanel(hub_hi), (1100, 760))
        wait(lambda: w32.codes is not None)
        w32.manifold_box.setChecked(False)
        settle(0.5)
        shoot(w32, out / "latent-map-pca.png")

    if want("posterior"):
        from lvm_studio.ui.latent.posterior_panel import PosteriorPanel

        w = show(PosteriorPanel(hub2), (1150, 760))
        done = []
        w.numbers_updated.connect(lambda: done.append(1))
        w.set_digit_index(int(os.environ.get("LVM_POSTERIOR_DIGIT", "18")))
        wait(lambda: done)
        n0 = len(done)
        w.optimise()
        wait(lambda: w.optimised_numbers is not None and len(done) > n0)
        shoot(w, out / "latent-posterior.png")
        n1 = len(done)
        w.set_q(w.enc_loc + np.array([0.35, -0.25]) * 3 * w.enc_scale, w.enc_scale * 1.8)
        wait(lambda: len(done) > n1)
        shoot(w, out / "latent-posterior-hand.png")

    if want("lab"):
        from lvm_studio.ui.latent.estimator_lab_panel import EstimatorLabPanel

        for hub, name in ((hub_hi, "latent-estimator-lab.png"), (hub2, "latent-estimator-lab-2d.png")):
            w = show(EstimatorLabPanel(hub), (1200, 640))
            fin: list[int] = []
            w.finished.connect(lambda fin=fin: fin.append(1))
            w.picker.set_index(18, emit=False)
            w.run(k_max=10000, runs=8)
            wait(lambda fin=fin: fin, timeout_s=900)
            shoot(w, out / name)

    shutdown_all(10.0)
    return 0


def pg_point(u, v):
    import pyqtgraph as pg

    return pg.Point(float(u), float(v))


if __name__ == "__main__":
    raise SystemExit(main())
