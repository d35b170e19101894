"""log p(x_o|z), the log-likelihood of the observed pixels, and its gradient in z (for inpainting).

Masks follow lvm_studio.core.masks: True = MISSING. For a VAE with a plain MLP decoder (Linear /
activation stack, Bernoulli or Gaussian pixels) the backward pass through the decoder is written
out by hand: no autograd graph and no parameter gradients, so one gradient costs one forward and
one input-gradient pass, which makes a 200-step fit of one digit take a few tens of milliseconds on
a CPU (core.inpainting.fit_q). Other models fall back to autograd through log_px_given_z_pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lvm_studio.core.data import N_PIXELS

LOG_2PI = math.log(2 * math.pi)


def _activation_backward(act: nn.Module) -> Callable | None:
    """g ↦ g · d post/d pre for an activation, from (g, pre, post); None if unknown (autograd is used).

    The fused aten backward kernels do it in one pass (the same kernels autograd calls).
    """
    aten = torch.ops.aten
    if isinstance(act, nn.ELU):
        a = float(act.alpha)
        return lambda g, pre, post: aten.elu_backward(g, a, 1, 1, True, post)
    if isinstance(act, nn.ReLU):
        return lambda g, pre, post: aten.threshold_backward(g, post, 0)
    if isinstance(act, nn.LeakyReLU):
        s = float(act.negative_slope)
        return lambda g, pre, post: aten.leaky_relu_backward(g, pre, s, False)
    if isinstance(act, nn.Tanh):
        return lambda g, pre, post: aten.tanh_backward(g, post)
    if isinstance(act, nn.Sigmoid):
        return lambda g, pre, post: aten.sigmoid_backward(g, post)
    if isinstance(act, nn.Softplus):
        b, th = float(act.beta), float(act.threshold)
        return lambda g, pre, post: aten.softplus_backward(g, pre, b, th)
    if isinstance(act, nn.Identity):
        return lambda g, pre, post: g
    return None


def _mlp_layers(decoder) -> list | None:
    """[(linear, activation or None, derivative or None), ...] for a Linear/activation stack, else None."""
    if not isinstance(decoder, nn.Sequential):
        return None
    mods = list(decoder)
    layers = []
    i = 0
    while i < len(mods):
        lin = mods[i]
        if not isinstance(lin, nn.Linear):
            return None
        act = mods[i + 1] if i + 1 < len(mods) else None
        if act is None:
            layers.append((lin, None, None))
            i += 1
            continue
        d = _activation_backward(act)
        if d is None:
            return None
        layers.append((lin, act, d))
        i += 2
    if not layers or layers[-1][1] is not None:
        return None
    return layers


class ObservedLikelihood:
    """log p(x_o|z) summed over the observed pixels, and its gradient in z.

    For a VAE with a plain MLP decoder the backward pass is written out (no autograd graph and
    no parameter gradients: the cost is one forward and one input-gradient pass). When one mask
    is shared by the whole batch, only the observed rows of the last layer are evaluated.
    Other models use autograd through model.log_px_given_z_pixels.
    """

    def __init__(self, model, x: torch.Tensor, missing: torch.Tensor):
        self.model = model
        self.x = x  # (batch, 784)
        self.missing = missing  # (batch | 1, 784)
        cfg = getattr(model, "config", None)
        self.likelihood = getattr(cfg, "likelihood", "bernoulli")
        self.min_scale = getattr(cfg, "min_scale", 1e-3)
        layers = _mlp_layers(getattr(model, "decoder", None))
        if self.likelihood not in ("bernoulli", "gaussian"):
            layers = None
        self.manual = layers is not None
        if not self.manual:
            self.observed = (~missing).to(x.dtype)  # (batch | 1, 784)
            return
        self.hidden = [
            (lin.weight.detach(), lin.bias.detach() if lin.bias is not None else None, act, d)
            for lin, act, d in layers[:-1]
        ]
        last = layers[-1][0]
        w, b = last.weight.detach(), (last.bias.detach() if last.bias is not None else None)
        if missing.shape[0] == 1:
            obs_idx = (~missing[0]).nonzero().squeeze(1)  # (n_obs,)
            rows = obs_idx if self.likelihood == "bernoulli" else torch.cat([obs_idx, obs_idx + N_PIXELS])
            self.w_out, self.b_out = w[rows], (b[rows] if b is not None else None)  # (n_out, hidden)
            self.x_obs = x[:, obs_idx]  # (batch, n_obs)
            self.observed = None  # every evaluated pixel is observed
        else:
            self.w_out, self.b_out = w, b
            self.x_obs = x
            self.observed = (~missing).to(x.dtype)  # (batch, 784)

    # the likelihood of the decoder output, and d/d output
    def _lik(self, out: torch.Tensor, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.x_obs
        if self.likelihood == "bernoulli":
            # log Bern(x; σ(l)) = x l − softplus(l) = −BCE(l, x), one fused, stable kernel
            lp = -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none")  # (S, batch, n)
            dout = (x - torch.sigmoid(out)) if need_grad else None
        else:
            u, v = out.chunk(2, dim=-1)
            loc, scale = torch.sigmoid(u), F.softplus(v) + self.min_scale
            r = (x - loc) / scale
            lp = -0.5 * r * r - scale.log() - 0.5 * LOG_2PI
            dout = None
            if need_grad:
                du = r / scale * loc * (1.0 - loc)  # ∂lp/∂u through loc = σ(u)
                dv = (r * r - 1.0) / scale * torch.sigmoid(v)  # ∂lp/∂v through scale = softplus(v) + c
                dout = torch.cat([du, dv], dim=-1)
        if self.observed is not None:
            lp = lp * self.observed
            if dout is not None:
                dout = dout * (self.observed if self.likelihood == "bernoulli" else self.observed.repeat(1, 2))
        return lp.sum(-1), dout

    @torch.no_grad()
    def value(self, z: torch.Tensor) -> torch.Tensor:
        """z (S, batch, latent) -> log p(x_o|z) (S, batch)."""
        if not self.manual:
            return (self.model.log_px_given_z_pixels(self.x, z) * self.observed).sum(-1)
        h = z
        for w, b, act, _ in self.hidden:
            h = act(F.linear(h, w, b))
        return self._lik(F.linear(h, self.w_out, self.b_out), need_grad=False)[0]

    def value_and_grad(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (S, batch, latent) -> log p(x_o|z) (S, batch) and ∂/∂z (S, batch, latent)."""
        if not self.manual:
            with torch.enable_grad():
                zz = z.detach().requires_grad_(True)
                lp = (self.model.log_px_given_z_pixels(self.x, zz) * self.observed).sum(-1)  # (S, batch)
                (g,) = torch.autograd.grad(lp.sum(), zz)
            return lp.detach(), g
        with torch.no_grad():
            S, B, L = z.shape
            h = z.reshape(S * B, L)
            cache = []
            for w, b, act, _ in self.hidden:
                pre = F.linear(h, w, b)  # (S·batch, hidden)
                h = act(pre)
                cache.append((pre, h))
            out = F.linear(h, self.w_out, self.b_out).view(S, B, -1)  # (S, batch, n_out)
            lp, dout = self._lik(out, need_grad=True)
            g = dout.view(S * B, -1) @ self.w_out  # (S·batch, hidden)
            for (w, _, _, backward), (pre, post) in zip(reversed(self.hidden), reversed(cache)):
                g = backward(g, pre, post) @ w  # (S·batch, fan-in)
            return lp, g.view(S, B, L)
