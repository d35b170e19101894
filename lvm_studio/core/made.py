"""MADE: a masked autoencoder whose outputs are autoregressive conditionals, so log p(x) is exact.

    p(x) = Π_d p(x_d | x_<d),   p(x_d = 1 | x_<d) = σ(a_d(x_<d))          (Germain et al. 2015, eq. 1)

One hidden layer (or several) of masked linear units: hidden unit k gets a degree m(k) in
1 … D − 1 and sees only inputs d ≤ m(k); output d sees only hidden units with m(k) < d
(Germain et al. 2015, eqs. 12–13). A direct masked input→output connection (strictly lower
triangular) adds the logistic autoregression of Frey (1998), as MADE's paper does. The order is
raster order (row by row, the "natural" order, the best single order in Germain et al. Table 6),
so a digit with its top half hidden has its hidden pixels *before* the seen ones: the conditional
p(x_top | x_bottom) is not ancestral, and log p(x_bottom) is intractable (the lecture's point).

The degrees are fixed by the configuration (deterministic, spread evenly), so the masks are
rebuilt from the config and never stored in a checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from lvm_studio.core.data import N_PIXELS

KIND = "made"


@dataclass(frozen=True)
class MADEConfig:
    n_pixels: int = N_PIXELS  # D
    hidden: tuple[int, ...] = (500,)
    direct: bool = True  # the masked input→output connection (Germain et al. 2015, §3.4 / Frey 1998)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if int(self.n_pixels) < 2:
            raise ValueError("a MADE needs at least 2 pixels")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError("hidden widths must be positive")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MADEConfig:
        known = {"n_pixels", "hidden", "direct"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown MADE setting(s) {', '.join(sorted(unknown))}")
        return cls(**{**d, "hidden": tuple(d.get("hidden", (500,)))})

    def describe(self) -> str:
        return (
            f"MADE {self.n_pixels}-{'-'.join(map(str, self.hidden))}-{self.n_pixels}{' +direct' if self.direct else ''}"
        )


class MaskedLinear(nn.Linear):
    """y = x (W ⊙ M)ᵀ + b with a fixed 0/1 mask M (out, in), a non-persistent buffer."""

    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor, bias: bool = True):
        super().__init__(n_in, n_out, bias=bias)
        self.register_buffer("mask", mask.to(torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """A binary-image autoregressive joint with exact log p(x), (batch, D) → (batch,)."""

    kind = KIND

    def __init__(self, config: MADEConfig | None = None):
        super().__init__()
        self.config = config or MADEConfig()
        d = self.config.n_pixels
        degrees_in = torch.arange(1, d + 1)  # (D,) raster order: pixel d is the d-th variable
        layers, previous = [], degrees_in
        for width in self.config.hidden:
            # evenly spread degrees in 1 … D − 1 (deterministic, so the masks follow from the config)
            degrees = torch.arange(width) % max(1, d - 1) + 1  # (H,)
            layers.append(MaskedLinear(len(previous), width, degrees[:, None] >= previous[None, :]))  # eq. 12
            previous = degrees
        self.hidden_layers = nn.ModuleList(layers)
        self.out = MaskedLinear(len(previous), d, degrees_in[:, None] > previous[None, :])  # eq. 13
        self.direct = (
            MaskedLinear(d, d, degrees_in[:, None] > degrees_in[None, :], bias=False) if self.config.direct else None
        )

    @property
    def n_pixels(self) -> int:
        return self.config.n_pixels

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """a_d(x_<d) for every d at once, (batch, D)."""
        h = x
        for layer in self.hidden_layers:
            h = torch.relu(layer(h))  # (batch, H)
        a = self.out(h)  # (batch, D)
        if self.direct is not None:
            a = a + self.direct(x)
        return a

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) for binary x (batch, D) → (batch,): Σ_d log Bernoulli(x_d; σ(a_d))."""
        a = self.logits(x)  # (batch, D)
        return -nn.functional.binary_cross_entropy_with_logits(a, x, reduction="none").sum(-1)

    # --- many completions of an image (core/pixel_inference.py's fast paths) ---------------------
    # The inputs enter the first layer and the direct connection linearly: W x = W_m x_m + W_o x_o.
    # For k completions x_m of an image the observed part W_o x_o is the same for all k, so it is
    # computed once and only the (k, M) block is multiplied; for several images with the same mask
    # the (k, M) block's products are shared too. The conditionals of the missing pixels that come
    # before every observed one (the whole top half, when it is hidden) see only missing inputs:
    # they are the same for every image and are computed once per completion. The rest of the
    # network runs in full. Outputs are permuted (missing pixels first, in raster order) so that
    # log p needs no (k, D) image: the signs 2x − 1 multiply contiguous blocks. Same values as
    # log_prob(complete(x, missing, x_m)) up to float32 rounding (tests/core/test_made.py).

    def _weight_parts(self, missing: torch.Tensor) -> dict:
        """The masked weights split by a mask, outputs permuted (missing pixels first); cached for
        the last mask and parameter versions (gathering columns of the weight matrices costs
        milliseconds, and the mean-field sweep asks for the same mask many times)."""
        params = list(self.parameters())
        key = (bytes(missing.numpy()), tuple((p.data_ptr(), p._version) for p in params))
        cached = getattr(self, "_parts_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        idx_m, idx_o = torch.nonzero(missing).flatten(), torch.nonzero(~missing).flatten()
        perm = torch.cat([idx_m, idx_o])  # (D,) output order: missing pixels first
        first = self.hidden_layers[0]
        w1 = first.weight * first.mask  # (H, D)
        w_out = (self.out.weight * self.out.mask)[perm].T  # (H_last, D) permuted outputs
        # outputs [0, shared) in this order: missing pixels before the first observed one
        shared = len(idx_m) if len(idx_o) == 0 else int((idx_m < idx_o.min()).sum())
        w = {
            "m": len(idx_m),
            "shared": shared,
            "idx_o": idx_o,
            "w1_o": w1[:, idx_o].T.contiguous(),  # (D − M, H)
            "w1_m": w1[:, idx_m].T.contiguous(),  # (M, H)
            "w_out": w_out.contiguous(),  # (H_last, D)
            "w_out_rest": w_out[:, shared:].contiguous(),  # (H_last, D − shared)
            "b_out": self.out.bias[perm],  # (D,)
            "wd_o": None,
            "wd_m": None,
        }
        if self.direct is not None:
            wd = (self.direct.weight * self.direct.mask)[perm]  # (D, D) permuted outputs
            w["wd_o"] = wd[:, idx_o].T.contiguous()  # (D − M, D)
            w["wd_m"] = wd[:, idx_m].T.contiguous()  # (M, D)
        self._parts_cache = (key, w)
        return w

    def _observed_parts(self, x: torch.Tensor, missing: torch.Tensor) -> dict:
        """What every completion of the images x (n, D) shares: the observed pixels' pre-activations."""
        missing = torch.as_tensor(missing).reshape(-1).to(torch.bool)
        w = self._weight_parts(missing)
        x_o = x.reshape(-1, self.n_pixels).to(torch.float32)[:, w["idx_o"]]  # (n, D − M)
        a_o = w["b_out"].expand(len(x_o), -1).clone()  # (n, D) permuted outputs
        if w["wd_o"] is not None:
            a_o.addmm_(x_o, w["wd_o"])
        return {
            **w,
            "h_o": torch.addmm(self.hidden_layers[0].bias, x_o, w["w1_o"]),  # (n, H) W_o x_o + b
            "a_o": a_o,  # (n, D)
            "sign_o": 2 * x_o - 1,  # (n, D − M) log σ(a) where x_d = 1, log σ(−a) where x_d = 0
        }

    def _hidden(self, h1: torch.Tensor) -> torch.Tensor:
        h = torch.relu_(h1)
        for layer in self.hidden_layers[1:]:
            h = torch.relu_(layer(h))  # (c, H)
        return h

    def _log_lik(self, parts, i, h, direct_m, sign_m, start: int = 0) -> torch.Tensor:
        """Σ_d log Bernoulli(x_d; σ(a_d)) over the permuted outputs d ≥ start of image i's
        completions, from the last hidden layer h (c, H), the missing inputs' direct term (c, D)
        (or None) and the missing pixels' signs 2x_m − 1 (c, M); (c,). Germain et al. 2015, eq. 1."""
        w_out = parts["w_out"] if start == 0 else parts["w_out_rest"]
        a = torch.addmm(parts["a_o"][i, start:], h, w_out)  # (c, D − start), missing pixels first
        if direct_m is not None:
            a += direct_m[:, start:]
        m = parts["m"] - start
        a[:, :m] *= sign_m[:, start:]
        a[:, m:] *= parts["sign_o"][i]
        return nn.functional.logsigmoid(a).sum(-1)  # (c,)

    @torch.no_grad()
    def log_prob_completions(
        self, x: torch.Tensor, missing: torch.Tensor, x_m: torch.Tensor, rows: int = 1024
    ) -> torch.Tensor:
        """log p(x_o, x_m) for completions x_m (k, M) of one image x (D,), (k,), or of each of the
        images x (n, D) with the same mask, (k, n); ``rows`` completions per matrix product (about
        the fastest size on one CPU thread)."""
        parts = self._observed_parts(x, missing)
        x_m = x_m.to(torch.float32)
        n, sh = parts["h_o"].shape[0], parts["shared"]
        out = []
        for j in range(0, x_m.shape[0], rows):
            chunk = x_m[j : j + rows]  # (c, M)
            h_m = chunk @ parts["w1_m"]  # (c, H) shared by the n images
            direct_m = None if parts["wd_m"] is None else chunk @ parts["wd_m"]  # (c, D)
            sign_m = 2 * chunk - 1  # (c, M)
            lp_shared = 0.0
            if sh:
                # the leading missing pixels' terms: their hidden units and inputs are missing ones only,
                # so image 0's pre-activations there are every image's (the masked weights are zero)
                h = self._hidden(h_m + parts["h_o"][0])  # (c, H)
                a = torch.addmm(parts["a_o"][0, :sh], h, parts["w_out"][:, :sh])  # (c, shared)
                if direct_m is not None:
                    a += direct_m[:, :sh]
                lp_shared = nn.functional.logsigmoid(a.mul_(sign_m[:, :sh])).sum(-1)  # (c,)
            lps = []
            for i in range(n):
                h = self._hidden(h_m + parts["h_o"][i])  # (c, H)
                lps.append(lp_shared + self._log_lik(parts, i, h, direct_m, sign_m, sh))  # (c,)
            out.append(torch.stack(lps, 1))  # (c, n)
        lp = torch.cat(out) if out else torch.zeros(0, n)  # (k, n)
        return lp[:, 0] if x.dim() == 1 else lp

    @torch.no_grad()
    def log_prob_flips(
        self, x: torch.Tensor, missing: torch.Tensor, x_m: torch.Tensor, rows: int = 1024
    ) -> torch.Tensor:
        """log p of each completion x_m (s, M) of x (D,) with one missing pixel flipped, (s, M):
        entry [j, i] is x_m[j] with pixel i flipped (what core.pixel_phi's mean-field sweep needs).
        Flipping x_i adds ±W[:, i] to the first layer's input and to the direct connection's, a
        rank-one change of the unflipped sample's; the layers after the first run in full."""
        parts = self._observed_parts(x, missing)
        x_m = x_m.to(torch.float32)
        s, m = x_m.shape
        diag = torch.arange(m)
        per = max(1, rows // max(1, m))  # samples per product: per·M rows
        out = []
        for j in range(0, s, per):
            chunk = x_m[j : j + per]  # (c, M)
            c = chunk.shape[0]
            step = (1 - 2 * chunk)[:, :, None]  # (c, M, 1): +1 where x_i = 0 → 1, −1 where 1 → 0
            h1 = torch.addmm(parts["h_o"][0], chunk, parts["w1_m"])[:, None, :] + step * parts["w1_m"]  # (c, M, H)
            direct_m = None
            if parts["wd_m"] is not None:
                direct_m = ((chunk @ parts["wd_m"])[:, None, :] + step * parts["wd_m"]).reshape(c * m, -1)  # (c·M, D)
            sign_m = (2 * chunk - 1)[:, None, :].repeat(1, m, 1)  # (c, M, M)
            sign_m[:, diag, diag] *= -1  # row i: pixel i flipped
            h = self._hidden(h1.reshape(c * m, -1))  # (c·M, H)
            out.append(self._log_lik(parts, 0, h, direct_m, sign_m.reshape(c * m, m)).reshape(c, m))
        return torch.cat(out) if out else torch.zeros(0, m)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        x_fixed: torch.Tensor | None = None,
        fixed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Ancestral samples (n, D), one pixel at a time in raster order (D forward passes).

        With ``x_fixed`` (D,) and a boolean ``fixed`` (D,), those pixels are clamped instead of
        drawn: when every fixed pixel comes before every free one, this samples the exact
        conditional p(x_free | x_fixed); otherwise it is only a proposal (see core/pixel_joint.py).
        """
        d = self.n_pixels
        x = torch.zeros(n, d)  # (n, D)
        if fixed is not None:
            x[:, fixed] = x_fixed[fixed]
        free = torch.ones(d, dtype=torch.bool) if fixed is None else ~fixed
        for i in torch.nonzero(free).flatten().tolist():
            p = torch.sigmoid(self.logits(x)[:, i])  # (n,)
            x[:, i] = torch.bernoulli(p, generator=generator)
        return x
