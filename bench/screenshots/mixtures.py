"""Screenshots of the mixture panels: docs/mixtures-*.png.

    nice -n 5 python -m bench.screenshots.mixtures [--model /tmp/vae32.pt] [--out DIR] \
        [--only playground digits density]

playground: EM part-way (two iterations and an E-step) on the anisotropic blobs, K = 3, full
    covariances, k-means++ seed 0, density contours on, the γ of an uncertain point shown.
digits: a Gaussian mixture (K = 10, full, seed 0) on the model's codes of all training digits.
density: mixtures of 10 Bernoullis beside the VAE's IWAE-100 estimate on the first 1,000 test digits.
The model defaults to the shipped 32-D one (pretrained/).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.common import DOCS, add_model_argument, make_hub, qt_app, screenshot, settle, show
from bench.common import wait_until as _wait_until
from lvm_studio.workers.tasks import shutdown_all

AREAS = ("playground", "digits", "density")
SETTLE_S = 0.4


def wait(cond, timeout_s=900.0):
    _wait_until(cond, timeout_s, poll_s=0.02)


def shoot(widget, path: Path):
    screenshot(widget, path, SETTLE_S)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(p, "--model", latent_dim=32)
    p.add_argument("--out", default=str(DOCS), help="folder for the PNG files (default: docs/)")
    p.add_argument("--fit-on", default="train")
    p.add_argument("--only", nargs="*", default=None, choices=AREAS)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    qt_app()
    want = lambda name: a.only is None or name in a.only

    if want("playground"):
        from lvm_studio.ui.mixtures.em_playground_panel import EMPlaygroundPanel

        w = show(EMPlaygroundPanel(None), (1200, 800))
        w.set_point_set("anisotropic blobs")
        w.density.setCurrentIndex(w.density.findData("contours"))
        for _ in range(2):
            w.iterate()
        w.e_step()
        settle(SETTLE_S)
        q = w.session.responsibilities()
        w.show_hover(int(np.argmin(np.abs(q.max(1) - 0.6))))  # a point shared between components
        shoot(w, out / "mixtures-playground.png")
        w.close()

    if want("digits") or want("density"):
        from lvm_studio.ui.mixtures.digit_clusters_panel import DigitClustersPanel

        w = show(DigitClustersPanel(make_hub(a.model)), (1200, 800))
        if want("digits"):
            w.fit("vae", k=10, covariance="full", seed=0, restarts=1, fit_on=a.fit_on)
            wait(lambda: w.result is not None)
            shoot(w, out / "mixtures-digits.png")
        if want("density"):
            w.tabs.setCurrentIndex(1)
            w.fit_density(k=10, seed=0, fit_on=a.fit_on, n_vae=1000, vae_k=100)
            wait(lambda: w.density_result is not None)
            shoot(w, out / "mixtures-density.png")
        shutdown_all(5.0)
        w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
