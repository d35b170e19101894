"""Mixtures on MNIST (issue 5): clustering quality and a Bernoulli mixture's exact test log p(x).

    nice -n 5 python -m bench.clusters [--checkpoint /tmp/vae32.pt] [--fit-on train] [--k 10] [--seed 0]
        [--pca-dim 50] [--bmm-k 10 50] [--vae-n 10000] [--vae-k 100] [--only vae pca bmm playground] [--threads 1]

Runs the Digit clusters panel's own task functions (no Qt event loop, no thread):
  a) a Gaussian mixture on the VAE's codes μ_φ(x) of the evaluation images,
  b) a Gaussian mixture on a PCA projection of the grey-level pixels,
both fitted without labels to the chosen training digits and scored on the 10,000 test digits
(accuracy after the Hungarian matching, NMI); and a mixture of Bernoullis on the binarized training
digits with its exact log p(x) on the fixed binarization of the test set, beside the VAE's IWAE-k
estimate on the same digits. 'playground': milliseconds per EM iteration of the 2-D playground,
core alone and panel with a repaint (offscreen Qt). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time

import torch

from bench.common import BenchContext, add_model_argument, load_model, qt_app, repeat_ms, show
from lvm_studio.core.data import load_mnist


def _ctx(label: str) -> BenchContext:
    """A context that prints the fit's progress: payload[2] is the EM iteration, payload[3] the mean log p."""
    return BenchContext(label, lambda payload: f" iteration {payload[2]}, mean log p {payload[3]:.3f}")


def bench_playground(repeats: int = 60) -> dict:
    """Median milliseconds per EM iteration in the playground, 300 points of each built-in set with
    its suggested K: the core EMSession alone, and the panel's iterate() plus a synchronous repaint
    (offscreen Qt, 1200 × 800, ellipses on, density off)."""
    from lvm_studio.core.em_session import EMSession
    from lvm_studio.core.gmm import GMMConfig
    from lvm_studio.core.points2d import POINT_SETS, SUGGESTED_COMPONENTS, make_point_set
    from lvm_studio.ui.mixtures.em_playground_panel import EMPlaygroundPanel

    app = qt_app()
    panel = show(EMPlaygroundPanel(None), (1200, 800))
    app.processEvents()
    out = {}
    for name in POINT_SETS:
        x, _ = make_point_set(name, 300, 0)
        s = EMSession(GMMConfig(n_components=SUGGESTED_COMPONENTS[name], seed=0))
        s.set_points(x)
        s.reset()
        core = repeat_ms(s.iterate, repeats)
        panel.set_point_set(name)
        app.processEvents()
        gui = repeat_ms(lambda: (panel.iterate(), panel.repaint()), repeats)
        out[name] = {
            "k": SUGGESTED_COMPONENTS[name],
            "core_ms": round(statistics.median(core), 2),
            "panel_ms": round(statistics.median(gui), 2),
        }
        print(json.dumps({name: out[name]}), file=sys.stderr)
    panel.close()
    return out


def main(argv=None) -> dict:
    from lvm_studio.core.digit_clusters import fit_clusters_task, fit_density_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(p, "--checkpoint", latent_dim=32)
    p.add_argument("--fit-on", default="train", choices=("10k", "train", "trainval"))
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--covariance", default="full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pca-dim", type=int, default=50)
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--bmm-k", type=int, nargs="*", default=[10, 50])
    p.add_argument("--bmm-iter", type=int, default=100)
    p.add_argument("--vae-n", type=int, default=10000)
    p.add_argument("--vae-k", type=int, default=100)
    p.add_argument("--only", nargs="*", default=None, choices=("vae", "pca", "bmm", "playground"))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    want = lambda name: a.only is None or name in a.only

    model, ckpt = load_model(a.checkpoint)
    data = load_mnist()
    out = {
        "checkpoint": a.checkpoint,
        "model": ckpt.get("name"),
        "step": ckpt.get("step"),
        "epoch": ckpt.get("epoch"),
        "latent_dim": model.latent_dim,
        "fit_on": a.fit_on,
        "k": a.k,
        "covariance": a.covariance,
        "seed": a.seed,
        "threads": a.threads,
        "torch": torch.__version__,
    }
    for space in ("vae", "pca"):
        if not want(space):
            continue
        t0 = time.perf_counter()
        r = fit_clusters_task(
            _ctx(space),
            model,
            data,
            space,
            a.fit_on,
            k=a.k,
            covariance=a.covariance,
            pca_dim=a.pca_dim,
            seed=a.seed,
            restarts=1,
            max_iter=a.max_iter,
        )
        out[space] = {
            "dim": r.dim,
            "n_fit": r.n_fit,
            "n_test": int(r.resp_test.shape[0]),
            "accuracy": round(r.accuracy, 4),
            "nmi": round(r.nmi, 4),
            "iterations": r.iterations,
            "converged": r.converged,
            "train_ll": round(r.train_ll, 3),
            "test_ll": round(r.test_ll, 3),
            "explained_variance": None if r.explained_variance is None else round(r.explained_variance, 4),
            "confusion": r.confusion.tolist(),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps({space: {k: v for k, v in out[space].items() if k != "confusion"}}), file=sys.stderr)
    if want("playground"):
        out["playground"] = bench_playground()
    if want("bmm"):
        out["bmm"] = []
        vae_done = None
        for k in a.bmm_k:
            t0 = time.perf_counter()
            # the VAE's estimate does not depend on K: compute it once, with the first mixture
            n_vae = a.vae_n if vae_done is None else 0
            r = fit_density_task(
                _ctx(f"bmm K={k}"),
                model if model.config.likelihood == "bernoulli" else None,
                data,
                a.fit_on,
                k=k,
                seed=a.seed,
                max_iter=a.bmm_iter,
                n_vae=n_vae,
                vae_k=a.vae_k,
            )
            if r.vae_log_px is not None:
                vae_done = {
                    "vae_log_px": round(r.vae_log_px, 3),
                    "vae_k": r.vae_k,
                    "n": r.n_vae,
                    "seconds": round(r.vae_seconds, 1),
                }
            out["bmm"].append(
                {
                    "k": k,
                    "n_fit": r.n_fit,
                    "test_log_px": round(r.test_log_px, 3),
                    "n_test": r.n_test,
                    "iterations": r.iterations,
                    "converged": r.converged,
                    "fit_seconds": round(r.seconds, 1),
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
            print(json.dumps(out["bmm"][-1]), file=sys.stderr)
        out["vae_iwae"] = vae_done
    text = json.dumps(out, indent=1)
    print(
        re.sub(r"\[\s+([-\d.,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    )  # rows on one line
    return out


if __name__ == "__main__":
    main()
