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
