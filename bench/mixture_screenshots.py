"""Screenshots of the mixture panels, for docs/mixtures-*.png.

    QT_QPA_PLATFORM=offscreen nice -n 5 python -m bench.mixture_screenshots --model /tmp/vae32.pt \
        [--only playground digits density]

playground: EM part-way (two iterations and an E-step) on the anisotropic blobs, K = 3, full
    covariances, k-means++ seed 0, density contours on, the γ of an uncertain point shown.
digits: a Gaussian mixture (K = 10, full, seed 0) on the model's codes of all training digits.
density: mixtures of 10 Bernoullis beside the VAE's IWAE-100 estimate on the first 1,000 test digits.
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


def wait(app, cond, timeout=900.0):
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("condition not reached")


def settle(app, seconds=0.4):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.01)


def shoot(app, widget, out: Path):
    settle(app)
    widget.grab().save(str(out))
    print("wrote", out)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--out", default="docs")
    p.add_argument("--fit-on", default="train")
    p.add_argument("--only", nargs="*", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(exist_ok=True)
    app = QApplication.instance() or QApplication([])
    style.apply(app)
    want = lambda name: a.only is None or name in a.only

    if want("playground"):
        from lvm_studio.ui.mixtures.em_playground_panel import EMPlaygroundPanel

        w = EMPlaygroundPanel(None)
        w.resize(1200, 800)
        w.show()
        w.set_point_set("anisotropic blobs")
        w.density.setCurrentIndex(w.density.findData("contours"))
        for _ in range(2):
            w.iterate()
        w.e_step()
        settle(app)
        q = w.session.responsibilities()
        w.show_hover(int(np.argmin(np.abs(q.max(1) - 0.6))))  # a point shared between components
        shoot(app, w, out / "mixtures-playground.png")
        w.close()

    if want("digits") or want("density"):
        from lvm_studio.ui.mixtures.digit_clusters_panel import DigitClustersPanel

        ckpt = load_checkpoint(a.model)
        hub = ModelHub()
        hub.set_model(model_from_checkpoint(ckpt), name=ckpt.get("name"), step=ckpt.get("step", 0))
        w = DigitClustersPanel(hub)
        w.resize(1200, 800)
        w.show()
        if want("digits"):
            w.fit("vae", k=10, covariance="full", seed=0, restarts=1, fit_on=a.fit_on)
            wait(app, lambda: w.result is not None)
            shoot(app, w, out / "mixtures-digits.png")
        if want("density"):
            w.tabs.setCurrentIndex(1)
            w.fit_density(k=10, seed=0, fit_on=a.fit_on, n_vae=1000, vae_k=100)
            wait(app, lambda: w.density_result is not None)
            shoot(app, w, out / "mixtures-density.png")
        shutdown_all(5.0)
        w.close()


if __name__ == "__main__":
    main()
