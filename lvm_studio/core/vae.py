"""The variational autoencoder: an MLP encoder q(z|x) and an MLP decoder p(x|z).

Prior p(z) = N(0, I), or with prior='mixture' a learnable Gaussian mixture
Σ_c π_c N(μ_c, diag σ_c²) (core/mixture_prior.py, Jiang et al. 2017). Encoder q_φ(z|x) = N(μ_φ(x), diag σ²_φ(x)).
Decoder p_θ(x|z): Bernoulli with logits (binarized data, the default), or a
diagonal Gaussian N(μ_θ(z), diag σ²_θ(z)) for grey levels (Kingma & Welling 2014, App. C).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.mixture_prior import MixturePrior
from lvm_studio.core.model import StandardNormalPrior

LIKELIHOODS = ("bernoulli", "gaussian")
PRIORS = ("normal", "mixture")
ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "softplus": nn.Softplus}
LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    latent_dim: int = 32  # 1..64; 2 gives maps and the exact posterior view
    hidden: tuple[int, ...] = (512, 512)  # encoder widths; the decoder mirrors them
    likelihood: str = "bernoulli"  # 'bernoulli' (binarized pixels) or 'gaussian' (grey levels)
    activation: str = "elu"
    x_dim: int = N_PIXELS
    min_scale: float = 1e-3  # floor on σ_φ and on a Gaussian decoder's σ_θ, so densities stay finite
    prior: str = "normal"  # 'normal' N(0, I) or 'mixture' Σ_c π_c N(μ_c, σ_c²) (core/mixture_prior.py)
    components: int = 10  # K of the mixture prior (ignored by 'normal')
    weight_floor: float = 0.25  # mixture: π_c ≥ weight_floor / K, the guard against collapsing components; 1: π = 1/K

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        if not 1 <= int(self.latent_dim) <= 64:
            raise ValueError(f"latent_dim must be between 1 and 64, got {self.latent_dim}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if not 1 <= int(self.components) <= 100:
            raise ValueError(f"components must be between 1 and 100, got {self.components}")
        self.components = int(self.components)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        if self.prior == "normal":  # a standard VAE's dict stays as it was before mixture priors existed
            for key in ("prior", "components", "weight_floor"):
                d.pop(key)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: (tuple(v) if k == "hidden" else v) for k, v in d.items() if k in known})

    def describe(self) -> str:
        layers = "-".join(str(n) for n in (self.x_dim, *self.hidden, self.latent_dim))
        prior = f" GMM-{self.components} prior" if self.prior == "mixture" else ""
        return f"VAE {layers} {self.likelihood}{prior}"


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class VAE(StandardNormalPrior, nn.Module):
    """The VAE of Kingma & Welling 2014: MLP encoder q(z|x), MLP decoder p(x|z), p(z) = N(0, I);
    with config.prior == 'mixture' the prior is `self.mixture` (VaDE, Jiang et al. 2017), else
    `self.mixture` is None. Implements core.model.LatentVariableModel."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config or VAEConfig()
        c = self.config
        self.latent_dim = c.latent_dim
        self.encoder = _mlp([c.x_dim, *c.hidden, 2 * c.latent_dim], c.activation)
        out = c.x_dim if c.likelihood == "bernoulli" else 2 * c.x_dim
        self.decoder = _mlp([c.latent_dim, *reversed(c.hidden), out], c.activation)
        self.mixture: MixturePrior | None = None
        if c.prior == "mixture":
            self.mixture = MixturePrior(c.components, c.latent_dim, c.min_scale, c.weight_floor)

    # --- q(z|x) -------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (batch, 784) -> z_loc, z_scale, each (batch, latent)."""
        h = self.encoder(x)  # (batch, 2 * latent)
        z_loc, z_raw = h.chunk(2, dim=-1)
        # softplus keeps σ positive without exp's overflow early in training
        z_scale = F.softplus(z_raw) + self.config.min_scale
        return z_loc, z_scale

    # --- p(z): N(0, I) from StandardNormalPrior, or the mixture ------------------
    def prior_reference(self) -> torch.Tensor:
        return next(self.parameters())

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z): z (..., latent) -> (...); for a mixture the logsumexp over its components."""
        if self.mixture is None:
            return super().prior_log_prob(z)
        return self.mixture.log_prob(z)

    def sample_prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z), (*shape, latent)."""
        if self.mixture is None:
            return super().sample_prior(shape, generator)
        return self.mixture.sample(shape, generator)

    def kl_to_prior(self, z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
        """The ELBO's KL term, (batch,): closed form to N(0, I), or VaDE's KL(q(z|x) q(c|x) ‖ p(z, c))
        (Jiang et al. 2017, eq. 12; core/mixture_prior.py)."""
        if self.mixture is None:
            return super().kl_to_prior(z_loc, z_scale)
        return self.mixture.kl(z_loc, z_scale)

    # --- p(x|z) -------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., latent) -> decoder output (..., 784) logits, or (..., 1568) Gaussian loc/raw scale."""
        return self.decoder(z)

    def _gaussian_params(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc_raw, scale_raw = out.chunk(2, dim=-1)
        return torch.sigmoid(loc_raw), F.softplus(scale_raw) + self.config.min_scale

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z]: Bernoulli probabilities or the Gaussian mean, (..., 784) in [0, 1]."""
        out = self.decode(z)
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(out)
        return self._gaussian_params(out)[0]

    def sample_x(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x|z), (..., 784)."""
        out = self.decode(z)
        if self.config.likelihood == "bernoulli":
            return torch.bernoulli(torch.sigmoid(out), generator=generator)
        loc, scale = self._gaussian_params(out)
        eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
        return (loc + scale * eps).clamp(0, 1)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels. x (batch, 784), z (..., batch, latent) -> (..., batch)."""
        out = self.decode(z)  # (..., batch, 784 or 1568)
        return log_likelihood(self.config.likelihood, x, out, self.config.min_scale)

    def log_px_given_z_pixels(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-pixel log p(x_i|z), (..., batch, 784); used where only some pixels are observed."""
        out = self.decode(z)
        return log_likelihood(self.config.likelihood, x, out, self.config.min_scale, reduce=False)


def log_likelihood(
    likelihood: str, x: torch.Tensor, out: torch.Tensor, min_scale: float = 1e-3, reduce: bool = True
) -> torch.Tensor:
    """log p(x|z) from the decoder output, with every normalising constant kept."""
    if likelihood == "bernoulli":
        # log Bern(x; σ(l)) = x l − softplus(l), stable for large |l|
        lp = x * out - F.softplus(out)  # (..., batch, 784)
    else:
        loc_raw, scale_raw = out.chunk(2, dim=-1)
        loc, scale = torch.sigmoid(loc_raw), F.softplus(scale_raw) + min_scale
        lp = -0.5 * ((x - loc) / scale) ** 2 - scale.log() - 0.5 * LOG_2PI
    return lp.sum(-1) if reduce else lp


def build_model(config: VAEConfig | dict) -> VAE:
    if isinstance(config, dict):
        config = VAEConfig.from_dict(config)
    return VAE(config)


def copy_state_to_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    """A snapshot that shares no storage with the live model (safe to hand to another thread)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
