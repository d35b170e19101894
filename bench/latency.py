"""Latency of the latent explorer panels, as a user feels it (offscreen Qt, run by hand).

    python -m bench.latency [--model-hi runs/vae32.pt] [--model2 runs/vae2.pt] [--training]

Figures (milliseconds):
- slider: one latent slider value change -> decode -> image set -> painted (the image widget is
  repainted synchronously, so painting is included), p50 / p95 / max over n changes;
- map recolour: switching the 10,000-point map between label and mixture colours -> painted,
  beside the baseline of the same recolouring with pyqtgraph's ScatterPlotItem and a palette of
  ten shared brushes (measured in the same process; the ratio is what travels between machines);
- heat map: a new digit in the posterior view -> zoomed preview painted, and -> fine grid and
  log p(x) painted.
--training runs a CPU training thread (core Trainer, the app's default 784-512-512-32 model) in this
process while measuring, delivering weight snapshots to the hub every second as the app does.
The models default to the shipped ones (pretrained/); where they are missing, or with
--model-hi random / --model2 random, random models of the same shapes are used (decoding costs the same).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import threading
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import add_model_argument, machine, make_hub, qt_app, show
from bench.common import percentiles as _percentiles
from bench.common import wait_until as _wait_until
from lvm_studio.core.vae import VAE, VAEConfig


def hub_or_random(path: str | Path | None, latent_dim: int, hidden=(512, 512), data=None):
    """A hub with the checkpoint at path, or with a random VAE of this shape when there is none."""
    if path and str(path) != "random":
        return make_hub(path, data=data)
    torch.manual_seed(0)
    return make_hub(VAE(VAEConfig(latent_dim=latent_dim, hidden=hidden)), data=data)


def _wait(cond):
    _wait_until(cond, 120.0, poll_s=0.0005)


def _stats(ms: list[float]) -> dict:
    return _percentiles(ms, suffix="_ms", digits=2, count=True)


class _Pump:
    """Delivers training snapshots to the hub on the GUI thread (the app does it by a queued signal)."""

    def __init__(self, hub):
        self.hub = hub
        self.queue: queue.Queue = queue.Queue()
        self.delivered = 0

    def __call__(self):
        try:
            while True:
                snap = self.queue.get_nowait()
                self.hub.load_state(snap.state_dict, snap.step, snap.epoch)
                self.delivered += 1
        except queue.Empty:
            pass


class BackgroundTraining:
    """The core Trainer on the CPU in a threading.Thread, for the duration of a `with` block."""

    def __init__(self, data, pump: _Pump | None = None, config: VAEConfig | None = None):
        from lvm_studio.core.training import Snapshot, StepRecord, TrainConfig, Trainer

        torch.manual_seed(1)
        self._Snapshot, self._StepRecord = Snapshot, StepRecord
        self.trainer = Trainer(
            VAE(config or VAEConfig()),
            data,
            TrainConfig(epochs=1000, eval_every=10**9, snapshot_interval_s=1.0, log_every=5),
        )
        self.pump = pump
        self.steps = 0
        self.images_per_s: list[float] = []
        self._thread = threading.Thread(target=self._run, name="bench-training", daemon=True)

    def _run(self):
        for event in self.trainer.run():
            if isinstance(event, self._StepRecord):
                self.steps = event.step
                self.images_per_s.append(event.images_per_s)
            elif isinstance(event, self._Snapshot) and self.pump is not None:
                self.pump.queue.put(event)

    def __enter__(self):
        self._thread.start()
        t0 = time.monotonic()
        while self.steps == 0 and time.monotonic() - t0 < 120:
            time.sleep(0.05)  # measure only once training is really running
        return self

    def __exit__(self, *exc):
        self.trainer.stop()
        self._thread.join(30)

    def summary(self) -> dict:
        ips = self.images_per_s[1:] or self.images_per_s
        return {"steps": self.steps, "images_per_s": round(float(np.median(ips)), 1) if ips else None}


# --- the measurements -------------------------------------------------------------------------


def slider_latency(hub, n: int = 300, seed: int = 0, pump: _Pump | None = None, pace_ms: float = 15.0) -> dict:
    """Slider value change -> decoded image set -> painted, n times; milliseconds. Changes come
    every pace_ms (a drag at mouse-event rate), with events and snapshots handled in between."""
    from lvm_studio.ui.latent.sliders_panel import LatentSlidersPanel

    app = qt_app()
    panel = LatentSlidersPanel(hub)
    show(panel, (900, 620), lambda: panel.stats is not None)
    done = []
    panel.image_updated.connect(lambda: done.append(1))
    rng = np.random.default_rng(seed)
    order = panel.row_order()
    ms = []
    for i in range(n + 10):
        t_next = time.perf_counter() + pace_ms / 1000
        while time.perf_counter() < t_next:
            if pump is not None:
                pump()  # a snapshot may arrive between two slider moves, as in the app
            app.processEvents()
            time.sleep(0.001)
        _wait(lambda: not panel._decode_timer.isActive())
        row = panel.rows[order[i % min(8, len(order))]]  # the most informative dimensions
        v = int(rng.integers(-300, 301))
        if v == row.slider.value():
            v += 1
        done.clear()
        painted = panel.image.painted
        t0 = time.perf_counter()
        row.slider.setValue(v)
        while not done:
            app.processEvents()
        panel.image.repaint()
        t1 = time.perf_counter()
        assert panel.image.painted > painted
        if i >= 10:  # warm-up
            ms.append(1000 * (t1 - t0))
    panel.close()
    panel.deleteLater()
    return _stats(ms)


def _mixture_posterior(n: int, k: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    resp = rng.dirichlet(np.full(k, 0.3), size=n).astype(np.float32)  # (n, k)
    from lvm_studio.ui.widgets.style import LABEL_COLOURS

    return resp, LABEL_COLOURS[:k][::-1].copy()


def map_recolour(hub, repeats: int = 20) -> dict:
    """10,000-point map: colour mode switch -> painted; and the ScatterPlotItem baseline."""
    import pyqtgraph as pg

    from lvm_studio.ui.latent.map_panel import LatentMapPanel
    from lvm_studio.ui.widgets.style import LABEL_COLOURS

    app = qt_app()
    panel = LatentMapPanel(hub)
    panel.manifold_box.setChecked(False)
    show(panel, (1100, 760), lambda: panel.codes is not None)
    n = panel.codes.shape[0]
    resp, colours = _mixture_posterior(n)
    hub.set_cluster_posterior(resp, colours, "bench")
    for _ in range(5):
        app.processEvents()
    view = panel.plot.viewport()  # the QGraphicsView's viewport is where the scene is painted
    view.repaint()
    ms = []
    for i in range(repeats + 2):
        mode = "mixture" if i % 2 == 0 else "label"
        painted = panel.cloud.painted
        t0 = time.perf_counter()
        panel.set_colour_mode(mode)
        view.repaint()
        t1 = time.perf_counter()
        assert panel.cloud.painted > painted
        if i >= 2:
            ms.append(1000 * (t1 - t0))
    out = _stats(ms)
    out["points"] = int(n)
    xy = panel.cloud.points().copy()
    labels = np.asarray(hub.labels("test"))
    panel.close()
    panel.deleteLater()

    # baseline: the same recolouring with a ScatterPlotItem and ten shared brushes (no per-point QBrush)
    w = pg.PlotWidget()
    w.resize(800, 760)
    w.show()
    brushes = np.array([pg.mkBrush(*c) for c in LABEL_COLOURS], dtype=object)
    item = pg.ScatterPlotItem(x=xy[:, 0], y=xy[:, 1], size=6, pen=pg.mkPen(0, 0, 0, 120), brush=brushes[labels])
    w.addItem(item)
    w.viewport().repaint()
    rng = np.random.default_rng(0)
    base = []
    for i in range(max(6, repeats // 2) + 2):
        idx = labels if i % 2 else rng.integers(0, 10, n)
        t0 = time.perf_counter()
        item.setBrush(brushes[idx])
        w.viewport().repaint()
        t1 = time.perf_counter()
        if i >= 2:
            base.append(1000 * (t1 - t0))
    w.close()
    w.deleteLater()
    out["baseline_scatter_palette"] = _stats(base)
    out["speedup_vs_baseline_p50"] = round(out["baseline_scatter_palette"]["p50_ms"] / out["p50_ms"], 1)
    return out


def heat_map_refresh(hub, digits=(0, 18, 77, 123, 999, 4321, 5, 6, 7, 42, 100, 2024)) -> dict:
    """Posterior view: new digit -> zoomed preview painted, and -> fine grid + log p(x) painted."""
    from lvm_studio.ui.latent.posterior_panel import PosteriorPanel

    app = qt_app()
    panel = PosteriorPanel(hub)
    show(panel, (1150, 760), lambda: panel.log_px is not None)
    events = []
    panel.heat_updated.connect(lambda fine: events.append((time.perf_counter(), fine)))
    first, fine = [], []
    for j, d in enumerate((3, 4) + tuple(digits)):  # two warm-up digits, not counted
        _wait(lambda: not panel.numbers_runner.is_busy() and not panel.grid_runner.is_busy())
        events.clear()
        t0 = time.perf_counter()
        panel.set_digit_index(d)
        got_first = None
        while True:
            app.processEvents()
            if events and got_first is None:
                panel.plot.viewport().repaint()
                got_first = time.perf_counter()
            if any(f for _, f in events):
                panel.plot.viewport().repaint()
                t_fine = time.perf_counter()
                break
            time.sleep(0.0002)
        if j >= 2:
            first.append(1000 * (got_first - t0))
            fine.append(1000 * (t_fine - t0))
    panel.close()
    panel.deleteLater()
    return {"preview": _stats(first), "fine": _stats(fine)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(
        p, "--model-hi", latent_dim=32, help="many latent dimensions (sliders, map); 'random': 784-512-512-32"
    )
    add_model_argument(p, "--model2", latent_dim=2, help="2-D latent (map, posterior view); 'random': 784-256-256-2")
    p.add_argument("--training", action="store_true", help="also measure with a CPU training thread running")
    p.add_argument("--n", type=int, default=300, help="slider changes per measurement")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before measuring")
    p.add_argument("--only", nargs="*", default=None, help="slider map heat")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from lvm_studio.core.data import load_mnist
    from lvm_studio.workers.tasks import shutdown_all

    qt_app()
    data = load_mnist()
    want = lambda s: a.only is None or s in a.only
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    res = {
        "machine": {
            **machine(),
            "platform": platform.platform(),
            "qpa": os.environ.get("QT_QPA_PLATFORM"),
            "loadavg_at_start": load,
        }
    }
    hub_hi = hub_or_random(a.model_hi, 32, data=data)
    hub2 = hub_or_random(a.model2, 2, hidden=(256, 256), data=data)
    res["models"] = {"sliders_map": hub_hi.config.describe(), "posterior": hub2.config.describe()}
    if want("slider"):
        res["slider_idle"] = slider_latency(hub_hi, a.n)
    if want("map"):
        res["map_recolour_idle"] = map_recolour(hub2)
    if want("heat"):
        res["heat_map_idle"] = heat_map_refresh(hub2)
    if a.training:
        pump = _Pump(hub_hi)
        with BackgroundTraining(data, pump, hub_hi.config) as tr:
            if want("slider"):
                res["slider_training"] = slider_latency(hub_hi, a.n, pump=pump)
            if want("map"):
                res["map_recolour_training"] = map_recolour(hub2)
            if want("heat"):
                res["heat_map_training"] = heat_map_refresh(hub2)
            res["training"] = tr.summary() | {"snapshots_delivered": pump.delivered}
    try:
        res["machine"]["loadavg_at_end"] = os.getloadavg()
    except OSError:
        pass
    shutdown_all(10.0)
    return res


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
