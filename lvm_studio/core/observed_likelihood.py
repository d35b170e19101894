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


def _activation(act: nn.Module) -> tuple[Callable, Callable] | None:
    """(forward, backward) for an activation, or None if unknown (autograd is used then).

    forward(pre) -> post may overwrite pre (in place) where the backward needs only the result;
    backward(g, pre, post) -> g · d post / d pre (pre may then be post). The fused aten backward
    kernels do it in one pass (the same kernels autograd calls). In place saves an allocation and a
    pass over memory per layer and step: the fit's matrices are small, so that shows.
    """
    aten = torch.ops.aten
    if isinstance(act, nn.ELU):
        a = float(act.alpha)
        return (lambda t: F.elu_(t, a)), (lambda g, pre, post: aten.elu_backward(g, a, 1, 1, True, post))
    if isinstance(act, nn.ReLU):
        return torch.relu_, (lambda g, pre, post: aten.threshold_backward(g, post, 0))
    if isinstance(act, nn.LeakyReLU):
        s = float(act.negative_slope)
        if s > 0:  # the sign of the result is the sign of the input: the backward can read the result
            return (lambda t: F.leaky_relu_(t, s)), (lambda g, pre, post: aten.leaky_relu_backward(g, post, s, False))
        return (lambda t: F.leaky_relu(t, s)), (lambda g, pre, post: aten.leaky_relu_backward(g, pre, s, False))
    if isinstance(act, nn.Tanh):
        return torch.tanh_, (lambda g, pre, post: aten.tanh_backward(g, post))
    if isinstance(act, nn.Sigmoid):
        return torch.sigmoid_, (lambda g, pre, post: aten.sigmoid_backward(g, post))
    if isinstance(act, nn.Softplus):
        b, th = float(act.beta), float(act.threshold)
        return (lambda t: F.softplus(t, b, th)), (lambda g, pre, post: aten.softplus_backward(g, pre, b, th))
    if isinstance(act, nn.Identity):
        return (lambda t: t), (lambda g, pre, post: g)
    return None


def _mlp_layers(decoder) -> list | None:
    """[(linear, (forward, backward) or None), ...] for a Linear/activation stack, else None."""
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
            layers.append((lin, None))
            i += 1
            continue
        fb = _activation(act)
        if fb is None:
            return None
        layers.append((lin, fb))
        i += 2
    if not layers or layers[-1][1] is not None:
        return None
    return layers


class ObservedLikelihood:
    """log p(x_o|z) summed over the observed pixels, and its gradient in z.

    For a VAE with a plain MLP decoder the backward pass is written out (no autograd graph and
    no parameter gradients: the cost is one forward and one input-gradient pass). When one mask
    is shared by the whole batch, only the observed rows of the last layer are evaluated, and for
    Bernoulli pixels Σ_i x_i l_i is folded into the last layer (x_oᵀ(W_o h + b_o) = h·(W_oᵀx_o) + b_o·x_o).
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
        self.folded = False
        self.w_aug = self.b_aug = None
        if not self.manual:
            self.observed = (~missing).to(x.dtype)  # (batch | 1, 784)
            return
        # (weight (out, in), bias, forward, backward); forward reads weight.t(), backward weight: one copy in cache
        self.hidden = [
            (lin.weight.detach(), lin.bias.detach() if lin.bias is not None else None, fwd, bwd)
            for lin, (fwd, bwd) in layers[:-1]
        ]
        self._hidden_t = [w.t() for w, *_ in self.hidden]  # (in, out) views, made once
        last = layers[-1][0]
        w, b = last.weight.detach(), (last.bias.detach() if last.bias is not None else None)
        self.w_last, self.b_last = w, b  # every pixel's row, for decoding from the last hidden layer
        self.miss_idx = missing[0].nonzero().squeeze(1) if missing.shape[0] == 1 else None  # (n_miss,)
        self._w_miss = self._b_miss = None
        if missing.shape[0] == 1:
            obs_idx = (~missing[0]).nonzero().squeeze(1)  # (n_obs,)
            rows = obs_idx if self.likelihood == "bernoulli" else torch.cat([obs_idx, obs_idx + N_PIXELS])
            self.w_out, self.b_out = w[rows], (b[rows] if b is not None else None)  # (n_out, hidden)
            self.x_obs = x[:, obs_idx]  # (batch, n_obs)
            self.observed = None  # every evaluated pixel is observed
            if self.likelihood == "bernoulli":
                self.folded = True
                self.xw = self.x_obs @ self.w_out  # (batch, hidden) W_oᵀ x_o per digit
                self.xb = self.x_obs @ self.b_out if self.b_out is not None else None  # (batch,)
                self._xw_rows: dict[int, torch.Tensor] = {}
                if x.shape[0] == 1:
                    # one digit: x_oᵀl is one more output row of the last layer, so one matrix product
                    # gives the logits and x_oᵀl (the fit's steps are small: the number of calls counts)
                    b_out = self.b_out if self.b_out is not None else w.new_zeros(rows.numel())
                    xb = self.xb if self.xb is not None else w.new_zeros(1)
                    self.w_aug = torch.cat([self.w_out, self.xw])  # (n_obs + 1, hidden)
                    self.b_aug = torch.cat([b_out, xb])  # (n_obs + 1,)
                    self.w_out = self.w_aug[:-1]
                    self._w_aug_t = self.w_aug.t()
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

    def _hidden(self, z: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """z (S, batch, latent) -> the last hidden layer (S·batch, hidden); cache gets (pre, post) per layer."""
        h = z.reshape(-1, z.shape[-1])
        for (_, b, fwd, _), w_t in zip(self.hidden, self._hidden_t):
            pre = torch.addmm(b, h, w_t) if b is not None else torch.mm(h, w_t)  # (S·batch, fan-out)
            h = fwd(pre)  # in place where the backward reads only the result
            if cache is not None:
                cache.append((pre, h))
        return h

    def _folded_value(self, h: torch.Tensor, out: torch.Tensor, S: int) -> torch.Tensor:
        """Σ_i x_i l_i − softplus(l_i) over the observed pixels, with x_oᵀ l = h·(W_oᵀx_o) + b_o·x_o; (S, batch)."""
        B = self.x_obs.shape[0]
        lp = torch.linalg.vecdot(h.view(S, B, -1), self.xw) - F.softplus(out).sum(-1).view(S, B)
        return lp if self.xb is None else lp.add_(self.xb)

    @torch.no_grad()
    def value(self, z: torch.Tensor) -> torch.Tensor:
        """z (S, batch, latent) -> log p(x_o|z) (S, batch)."""
        return self.value_and_hidden(z)[0]

    @torch.no_grad()
    def value_and_hidden(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """log p(x_o|z) (S, batch) and the decoder's last hidden layer (S·batch, hidden) (None if not manual),
        from which decode_missing gives E[x|z] without running the decoder again."""
        if not self.manual:
            return (self.model.log_px_given_z_pixels(self.x, z) * self.observed).sum(-1), None
        S = z.shape[0]
        h = self._hidden(z)
        out = F.linear(h, self.w_out, self.b_out)  # (S·batch, n_out)
        if self.folded:
            return self._folded_value(h, out, S), h
        return self._lik(out.view(S, z.shape[1], -1), need_grad=False)[0], h

    @torch.no_grad()
    def decode_missing_only(self, h: torch.Tensor) -> torch.Tensor:
        """E[x_m|z] (n, n_miss) on the missing pixels (one mask for all digits: miss_idx) from the last
        hidden layer (n, hidden)."""
        if self._w_miss is None:  # the missing pixels' rows, gathered once
            self._w_miss = self.w_last[self.miss_idx]  # (n_miss, hidden)
            self._b_miss = None if self.b_last is None else self.b_last[self.miss_idx]
        return torch.sigmoid(F.linear(h, self._w_miss, self._b_miss))

    @torch.no_grad()
    def decode_missing(self, h: torch.Tensor) -> torch.Tensor:
        """E[x|z] (n, 784) from the last hidden layer (n, hidden) of value_and_hidden, as the model's
        decode_mean gives it, on the missing pixels; with one mask for all digits only those are
        decoded (the others are 0: callers keep the observed pixels of x)."""
        if self.miss_idx is None:
            out = F.linear(h, self.w_last[:N_PIXELS], None if self.b_last is None else self.b_last[:N_PIXELS])
            return torch.sigmoid(out)  # Bernoulli p, or the Gaussian's loc = σ(u): the first 784 outputs
        full = h.new_zeros((h.shape[0], N_PIXELS))
        full[:, self.miss_idx] = self.decode_missing_only(h)  # (n, n_miss)
        return full

    def _xw(self, S: int) -> torch.Tensor:
        """W_oᵀx_o for each of the S·batch rows, (S·batch, hidden), made once per S."""
        xw = self._xw_rows.get(S)
        if xw is None:
            xw = self._xw_rows[S] = self.xw.repeat(S, 1)
        return xw

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
            cache: list = []
            h = self._hidden(z, cache)  # (S·batch, hidden)
            if self.w_aug is not None:
                out_aug = torch.addmm(self.b_aug, h, self._w_aug_t)  # (S, n_obs + 1): the logits, then x_oᵀl
                out = out_aug[:, :-1]
                lp = (out_aug[:, -1] - F.softplus(out).sum(-1)).view(S, B)  # Σ_i x_i l_i − softplus(l_i)
                g = torch.addmm(self._xw(S), torch.sigmoid(out), self.w_out, alpha=-1.0)  # as below
            elif self.folded:
                out = torch.addmm(self.b_out, h, self.w_out.t()) if self.b_out is not None else h @ self.w_out.t()
                lp = self._folded_value(h, out, S)
                # ∂lp/∂h = W_oᵀ(x_o − σ(l)) = W_oᵀx_o − W_oᵀσ(l): one matrix product
                g = torch.addmm(self._xw(S), torch.sigmoid(out), self.w_out, alpha=-1.0)  # (S·batch, hidden)
            else:
                out = F.linear(h, self.w_out, self.b_out)  # (S·batch, n_out)
                lp, dout = self._lik(out.view(S, B, -1), need_grad=True)
                g = dout.view(S * B, -1) @ self.w_out  # (S·batch, hidden)
            for (w, _, _, backward), (pre, post) in zip(reversed(self.hidden), reversed(cache)):
                g = torch.mm(backward(g, pre, post), w)  # (S·batch, fan-in)
            return lp, g.view(S, B, L)
