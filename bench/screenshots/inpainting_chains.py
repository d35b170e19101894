"""Screenshots of the inpainting panel's Markov chains and class bars (issue 16): docs/inpainting-chains*.png.

    python -m bench.screenshots.inpainting_chains [--model2 CKPT] [--model CKPT] [--out DIR]

An ambiguous half digit: test digit 6 (a 4) with its top half hidden. With the 2-D model the
latent plane shows the exact p(z|x_o) with several modes, and the chains' completions are 7s, 9s
and 4s; the class bars say so. With the 32-D model (test digit 33, a 4) the same view of the
default model. Both with the shipped digit classifier.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import DOCS, add_model_argument, qt_app, screenshot, settle, wait_until
from bench.screenshots.inpainting import panel_for
from lvm_studio.workers.tasks import shutdown_all

SIZE = (1366, 860)


def chains_done(panel, action, timeout_s=300.0):
    done = []
    panel.chains.finished.connect(lambda r: done.append(r))
    action()
    wait_until(lambda: done, timeout_s, poll_s=0.01, what="the end of the chains")
    settle(0.5)
    return done[-1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_argument(p, "--model2", latent_dim=2)
    add_model_argument(p, "--model", latent_dim=32)
    p.add_argument("--out", default=str(DOCS), help="folder for the PNG files (default: docs/)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    qt_app()
    for model, digit, name in ((a.model2, 6, "inpainting-chains-2d.png"), (a.model, 33, "inpainting-chains.png")):
        panel = panel_for(model)
        panel.resize(*SIZE)
        panel.show()
        settle(1.0)
        panel.load_test_digit(digit)
        report = chains_done(panel, lambda panel=panel: panel.apply_preset("top_half"))
        print(name, "class mix", [round(float(v), 2) for v in report.class_probs], "accept", report.accept_rate)
        screenshot(panel, out / name, settle_s=0)
        panel.close()
    shutdown_all(5.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
