"""A small digit classifier for the inpainting panel's "what digit is it?" (issue 16).

A two-layer CNN (LeCun et al. 1998, LeNet-style: conv 5×5 → pool → conv 5×5 → pool → two dense
layers) on 28×28 images in [0, 1]. It is trained on grey levels and on dynamically binarized
images alike, so it reads both a test digit and a binary completion drawn from a Bernoulli VAE.

The checkpoint is a core/checkpoint.py dict with "kind": "classifier", so nothing that loads a
VAE mistakes it for one (checkpoint.model_from_checkpoint refuses it, and pretrained/manifest.json
lists it under "classifiers", not "models").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lvm_studio.core.checkpoint import CheckpointError, make_checkpoint
from lvm_studio.core.data import MNIST, N_PIXELS
from lvm_studio.core.images import SIDE

KIND = "classifier"
N_CLASSES = 10


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, int] = (32, 64)
    hidden: int = 128
    dropout: float = 0.25

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        known = {k: d[k] for k in ("channels", "hidden", "dropout") if k in d}
        if "channels" in known:
            known["channels"] = tuple(int(c) for c in known["channels"])
            if len(known["channels"]) != 2 or min(known["channels"]) < 1:
                raise ValueError(f"channels must be two positive widths, got {d['channels']!r}")
        return cls(**known)

    def describe(self) -> str:
        return f"digit CNN {self.channels[0]}-{self.channels[1]}-{self.hidden}"


class DigitClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config or ClassifierConfig()
        c1, c2 = self.config.channels
        side = (SIDE // 2) // 2  # two 2×2 poolings of 'same'-padded convolutions: 28 → 14 → 7
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(self.config.dropout),
            nn.Linear(c2 * side * side, self.config.hidden),
            nn.ReLU(),
            nn.Dropout(self.config.dropout),
            nn.Linear(self.config.hidden, N_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (..., 10) of images (..., 784) in [0, 1]."""
        lead = x.shape[:-1]
        h = self.features(x.reshape(-1, 1, SIDE, SIDE))  # (n, c2, 7, 7)
        return self.head(h).reshape(*lead, N_CLASSES)  # (..., 10)

    @torch.no_grad()
    def probs(self, x: torch.Tensor, max_rows: int = 4096) -> torch.Tensor:
        """p(class | image) (..., 10), in chunks of max_rows images."""
        was = self.training
        self.eval()
        flat = x.reshape(-1, N_PIXELS)  # (n, 784)
        out = torch.cat([torch.softmax(self(flat[i : i + max_rows]), -1) for i in range(0, len(flat), max_rows)])
        self.train(was)
        return out.reshape(*x.shape[:-1], N_CLASSES)  # (..., 10)


@dataclass
class ClassifierTrainConfig:
    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 0.7  # per epoch
    binarized_fraction: float = 0.5  # of each batch, drawn x ~ Bernoulli(grey) afresh
    seed: int = 0


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    val_accuracy: float
    seconds: float


@torch.no_grad()
def accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of images (n, 784) whose most likely class is the label (n,)."""
    return float((model.probs(x).argmax(-1) == y).float().mean())


def train_classifier(
    data: MNIST, config: ClassifierTrainConfig, model: DigitClassifier | None = None
) -> Iterator[EpochResult]:
    """Adam on cross-entropy, one EpochResult per epoch (the model trains in place)."""
    torch.manual_seed(config.seed)
    model = model if model is not None else DigitClassifier()
    g = torch.Generator().manual_seed(config.seed)
    x_train = data.float_images("train")  # (N, 784)
    y_train = torch.from_numpy(data.y_train.astype("int64"))  # (N,)
    x_val = data.float_images("val")
    y_val = torch.from_numpy(data.y_val.astype("int64"))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay)
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=g)
        total, n = 0.0, 0
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            x = x_train[idx]  # (b, 784)
            binar = torch.rand(len(x), 1, generator=g) < config.binarized_fraction  # (b, 1)
            x = torch.where(binar, torch.bernoulli(x, generator=g), x)
            loss = nn.functional.cross_entropy(model(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        sched.step()
        yield EpochResult(epoch + 1, total / n, accuracy(model, x_val, y_val), time.perf_counter() - t0)


def make_classifier_checkpoint(
    model: DigitClassifier, *, train_config: dict | None = None, metrics: dict | None = None, epoch: int = 0
) -> dict:
    """A core/checkpoint.py dict of kind "classifier" (save it with checkpoint.save_checkpoint)."""
    return make_checkpoint(model, kind=KIND, train_config=train_config, epoch=float(epoch), metrics=metrics)


def classifier_from_checkpoint(ckpt: dict) -> DigitClassifier:
    """The classifier a checkpoint (from checkpoint.load_checkpoint) describes; CheckpointError if it is not one."""
    if ckpt.get("kind") != KIND:
        raise CheckpointError(f"this checkpoint is a {ckpt.get('kind', 'vae')}, not a digit classifier")
    try:
        model = DigitClassifier(ClassifierConfig.from_dict(dict(ckpt["model_config"])))
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"the classifier's weights do not fit its configuration ({msg})") from None
    return model.eval()


def class_mix(probs: torch.Tensor) -> torch.Tensor:
    """p(class | x_o) ≈ (1/S) Σ_s p(class | x^(s)) over completions x^(s) ~ p(x_m, z | x_o):
    the Monte Carlo average of the classifier's output over posterior samples. probs (S, 10) → (10,)."""
    return probs.mean(0)
