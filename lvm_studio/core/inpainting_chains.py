"""The inpainting panel's second background task: Markov chains of completions and "what digit is it?".

chains_task runs core.mwg.run_chains on a workers.tasks TaskRunner (duck typed ctx: report,
cancelled, check) for one drawing, and reports every config.report_every sweeps a ChainReport:
the chains' current completions (on the canvas's frame), the acceptance rate so far and, given a
digit classifier (core.classifier), the class mix

    p(class | x_o) ≈ (1/N) Σ_n p(class | x̂_n),   x̂_n the chains' completions past burn-in

(a Monte Carlo average over draws of p(x_m | x_o); before burn-in ends, over what there is). The
classifier reads each completion in the frame the model saw (MNIST's, when the panel centres
the drawing for the model; see core.inpainting_task), the frame it was trained in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lvm_studio.core.classifier import N_CLASSES, DigitClassifier
from lvm_studio.core.images import SIDE, Placement, apply_placement
from lvm_studio.core.inpainting_completion import prepare
from lvm_studio.core.inpainting_task import CanvasFrame
from lvm_studio.core.mwg import ChainConfig, ChainProgress, run_chains

INIT_DISPERSION = 2.0


@dataclass(frozen=True)
class ChainReport:
    step: int  # sweeps done
    steps: int
    method: str
    completions: torch.Tensor  # (chains, 784) current states' completions, on the canvas
    chain_classes: torch.Tensor | None  # (chains,) each completion's most likely class
    class_probs: torch.Tensor | None  # (10,) the class mix p(class | x_o) from the samples so far
    n_samples: int  # completions averaged into class_probs
    accept_rate: float
    model_version: int
    ess_min: float | None = None  # the final report: the smallest ESS over latent coordinates
    seconds: float | None = None  # the final report: wall time of the sweeps

    @property
    def ess_per_second(self) -> float | None:
        if self.ess_min is None or not self.seconds:
            return None
        return self.ess_min / self.seconds


def chains_task(
    ctx,
    model,
    classifier: DigitClassifier | None,
    x: np.ndarray,
    missing: np.ndarray,
    config: ChainConfig,
    model_version: int,
    placement: Placement | None = None,
    init_q: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> ChainReport:
    """config.n_chains chains for one drawing (see the module's notes); returns the final ChainReport.

    init_q = (z_loc, z_scale), each (latent,) or (1, latent): the chains start at draws of this q
    widened INIT_DISPERSION times (e.g. the fitted q); default: draws of the encoder's guess.
    A cancelled ctx ends the task through ctx.check()."""
    canvas_x = np.array(x, dtype=np.float32).reshape(-1)
    canvas_missing = np.array(missing, dtype=bool).reshape(-1)
    frame = None
    if placement is not None:
        frame = CanvasFrame(placement, canvas_x, canvas_missing)
        x, missing = apply_placement(placement, canvas_x.reshape(SIDE, SIDE), canvas_missing.reshape(SIDE, SIDE))
    xt, mt = prepare(x, missing)
    observed_x = torch.as_tensor(canvas_x)  # (784,) the canvas's own pixels, copied into every completion
    prob_sum = torch.zeros(N_CLASSES, dtype=torch.float64)
    counted = [0]

    def make_report(p: ChainProgress, count: bool = True, **extra) -> ChainReport:
        comps = p.completions[:, 0]  # (chains, 784) in the model's frame
        chain_classes = probs = None
        if classifier is not None:
            pc = classifier.probs(comps)  # (chains, 10)
            chain_classes = pc.argmax(-1)
            if p.step > config.burn_in and count:
                prob_sum.add_(pc.sum(0, dtype=torch.float64))
                counted[0] += len(pc)
            # past burn-in: the average over every report since; before: the current states alone
            probs = (prob_sum / counted[0]).float() if counted[0] else pc.mean(0)
        return ChainReport(
            step=p.step,
            steps=config.steps,
            method=config.method,
            completions=comps if frame is None else frame.images(comps, observed_x),
            chain_classes=chain_classes,
            class_probs=probs,
            n_samples=counted[0] if counted[0] else len(comps),
            accept_rate=float(p.accept_rate[0]),
            model_version=model_version,
            **extra,
        )

    last_step = [-1]

    def on_progress(p: ChainProgress):
        last_step[0] = p.step
        ctx.report(p.step / max(config.steps, 1), make_report(p))

    if init_q is not None:  # over-dispersed draws of the fitted q: the chains start apart, and MwG forgets it
        loc, scale = (t.reshape(1, 1, -1) for t in init_q)
        g = torch.Generator().manual_seed(config.seed or 0)
        eps = torch.randn((config.n_chains, 1, model.latent_dim), generator=g, dtype=loc.dtype)
        init_z = loc + INIT_DISPERSION * scale * eps  # (chains, 1, latent)
    else:
        init_z = None
    res = run_chains(model, xt, mt, config, init_z=init_z, callback=on_progress, should_stop=ctx.cancelled)
    if res.stopped:
        ctx.check()
    last = ChainProgress(
        step=res.steps_done,
        steps=config.steps,
        z=res.z.cpu(),
        completions=torch.where(mt, model.decode_mean(res.z), xt).cpu(),
        accept_rate=res.accept_rate.cpu(),
    )
    # the callback has seen the final states already (run_chains reports them last): not counted twice
    return make_report(last, count=last_step[0] != res.steps_done, ess_min=float(res.ess_min[0]), seconds=res.seconds)
