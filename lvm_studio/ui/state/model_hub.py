"""The GUI's "current model": one CPU replica that every panel reads.

The training worker owns the model it optimises; the GUI never touches it. Weight snapshots
arrive as plain CPU state dicts and become a NEW replica each time (never an in-place update),
so a background task that took `hub.model` keeps a consistent set of weights while the next
snapshot arrives. Treat `hub.model` as read-only: never train it or change its parameters.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from lvm_studio.core.data import MNIST, load_mnist
from lvm_studio.core.history import History
from lvm_studio.core.training import eval_images
from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui.state.latent_cursor import LatentCursor
from lvm_studio.ui.state.latent_stats import LatentStatsService


def _freeze(model: VAE) -> VAE:
    model = model.to("cpu").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class ModelHub(QObject):
    model_changed = Signal()  # a different model (the architecture may differ): rebuild
    weights_updated = Signal(int)  # new weights for the same architecture (training step): refresh
    history_changed = Signal()  # the metrics history was replaced (a model was opened)
    data_changed = Signal()
    cluster_posterior_changed = Signal()  # a mixture's p(c|z) for the test codes was set or cleared

    def __init__(self, data: MNIST | None = None, data_path: str | Path | None = None, parent=None):
        super().__init__(parent)
        self._data = data
        self._data_path = data_path
        self._eval_x: dict[tuple, torch.Tensor] = {}
        self._model: VAE = _freeze(VAE(VAEConfig()))
        self.name = "untrained " + self._model.config.describe()
        self.history = History()
        self.step = 0
        self.epoch = 0.0
        self.path: Path | None = None  # where the current model was opened from or saved to
        self.train_config: dict | None = None
        self.optimizer_state: dict | None = None
        self.dirty = False  # unsaved training progress
        self.version = 0  # increases on every model or weight change; key panel caches on it
        self._cluster_posterior: tuple[np.ndarray, np.ndarray, str] | None = None
        self.cursor = LatentCursor(self, parent=self)  # the z that the latent panels share
        self._latent_stats: LatentStatsService | None = None

    # --- reading -------------------------------------------------------------------
    @property
    def model(self) -> VAE:
        return self._model

    @property
    def config(self) -> VAEConfig:
        return self._model.config

    @property
    def latent_dim(self) -> int:
        return self._model.latent_dim

    @property
    def data(self) -> MNIST:
        if self._data is None:
            self._data = load_mnist(self._data_path)
        return self._data

    def eval_x(self, split: str = "test") -> torch.Tensor:
        """The evaluation images of a split for the current likelihood, (N, 784); cached."""
        key = (split, self.config.likelihood)
        if key not in self._eval_x:
            self._eval_x[key] = eval_images(self.data, split, self.config.likelihood)
        return self._eval_x[key]

    def labels(self, split: str = "test"):
        return self.data.split(split)[1]

    @property
    def latent_stats(self) -> LatentStatsService:
        """The KL statistics of the current model, made on first use (it starts a background task)."""
        if self._latent_stats is None:
            self._latent_stats = LatentStatsService(self, parent=self)
        return self._latent_stats

    @property
    def cluster_posterior(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        """(responsibilities (N_test, K), colours (K, 3) uint8, description) or None.

        Published by the mixtures panel for the current model's test codes; the latent map
        colours each point by mixing the component colours with these weights.
        """
        return self._cluster_posterior

    # --- writing (GUI thread) ------------------------------------------------------
    def set_data(self, data: MNIST) -> None:
        self._data = data
        self._eval_x.clear()
        self.data_changed.emit()

    def set_cluster_posterior(
        self, responsibilities: np.ndarray | None, colours: np.ndarray | None = None, description: str = ""
    ) -> None:
        if responsibilities is None:
            self._cluster_posterior = None
        else:
            self._cluster_posterior = (
                np.array(responsibilities, dtype=np.float32, copy=True),
                np.array(colours, dtype=np.uint8, copy=True),
                description,
            )
        self.cluster_posterior_changed.emit()

    def set_model(
        self,
        model: VAE,
        *,
        name: str | None = None,
        history: History | None = None,
        step: int = 0,
        epoch: float = 0.0,
        path: str | Path | None = None,
        train_config: dict | None = None,
        optimizer_state: dict | None = None,
    ) -> None:
        self._model = _freeze(copy.deepcopy(model))
        self.name = name or model.config.describe()
        self.history = history or History()
        self.step, self.epoch = int(step), float(epoch)
        self.path = Path(path) if path else None
        self.train_config = train_config
        self.optimizer_state = optimizer_state
        self.dirty = False
        self.version += 1
        self._cluster_posterior = None  # fitted to the old model's codes
        self.model_changed.emit()
        self.history_changed.emit()
        self.cluster_posterior_changed.emit()

    def load_state(self, state_dict: dict, step: int, epoch: float) -> None:
        """Adopt a training snapshot (CPU tensors owned by nobody else) as a new replica."""
        replica = copy.deepcopy(self._model)
        replica.load_state_dict(state_dict, assign=True)
        self._model = _freeze(replica)
        self.step, self.epoch = int(step), float(epoch)
        self.dirty = True
        self.version += 1
        self.weights_updated.emit(self.step)
