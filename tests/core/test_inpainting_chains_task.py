"""The chains task of the inpainting panel (issue 16): reports in order, the class mix is the mean of the
classifier's p(class | completion) over the completions past burn-in, completions keep the seen pixels
on the canvas's frame, and a cancelled ctx ends it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvm_studio.core import masks
from lvm_studio.core.classifier import ClassifierConfig, DigitClassifier
from lvm_studio.core.images import find_placement
from lvm_studio.core.inpainting_chains import chains_task
from lvm_studio.core.mwg import ChainConfig
from lvm_studio.core.vae import VAE, VAEConfig


class Ctx:
    def __init__(self, cancel_after: int | None = None):
        self.reports, self.cancel_after = [], cancel_after

    def report(self, fraction, payload=None):
        self.reports.append(payload)

    def cancelled(self):
        return self.cancel_after is not None and len(self.reports) >= self.cancel_after

    def check(self):
        if self.cancelled():
            raise RuntimeError("cancelled")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=3, hidden=(16,))).eval()
    clf = DigitClassifier(ClassifierConfig(channels=(2, 4), hidden=8)).eval()
    x = np.zeros((28, 28), dtype=np.float32)
    x[16:24, 10:18] = 1.0
    return model, clf, x, masks.top_half()


def test_reports_and_the_class_mix(setup):
    model, clf, x, missing = setup
    cfg = ChainConfig(n_chains=4, steps=30, burn_in=10, report_every=5)
    ctx = Ctx()
    final = chains_task(ctx, model, clf, x, missing, cfg, model_version=7)
    assert [r.step for r in ctx.reports] == [5, 10, 15, 20, 25, 30]
    obs = ~missing.reshape(-1)
    for r in ctx.reports:
        assert r.completions.shape == (4, 784) and r.model_version == 7
        assert torch.equal(r.completions[:, obs], torch.from_numpy(x.reshape(-1)[obs]).expand(4, -1))
        assert torch.allclose(r.class_probs.sum(), torch.tensor(1.0), atol=1e-5)
    # past burn-in the mix averages every report's completions: 4 reports (15 … 30) of 4 chains
    assert ctx.reports[-1].n_samples == 16 and final.n_samples == 16
    expected = torch.stack([clf.probs(r.completions) for r in ctx.reports[2:]]).mean((0, 1))
    assert torch.allclose(final.class_probs, expected, atol=1e-5)
    assert final.ess_min is not None and final.seconds > 0 and final.ess_per_second > 0


def test_placement_is_carried_back_and_cancel_ends_it(setup):
    model, clf, x, missing = setup
    y = np.zeros_like(x)
    y[2:14, 2:6] = 1.0  # a drawing off-centre, partly hidden
    placement = find_placement(y)
    ctx = Ctx(cancel_after=2)
    with pytest.raises(RuntimeError, match="cancelled"):
        chains_task(ctx, model, None, y, missing, ChainConfig(n_chains=2, steps=100, report_every=5), 0, placement)
    r = ctx.reports[-1]
    obs = ~missing.reshape(-1)
    assert r.class_probs is None and r.chain_classes is None
    assert torch.equal(r.completions[:, obs], torch.from_numpy(y.reshape(-1)[obs]).expand(2, -1))
