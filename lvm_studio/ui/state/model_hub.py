"""The GUI's "current model": one CPU replica that every panel reads.

The training worker owns the model it optimises; the GUI never touches it. Weight snapshots
arrive as plain CPU state dicts and become a NEW replica each time (never an in-place update),
so a background task that took `hub.model` keeps a consistent set of weights while the next
snapshot arrives (docs/architecture.md, the data flow while training). Treat `hub.model` as
read-only: never train it or change its parameters.

Every field is a read-only property; each is changed through one setter, on the GUI thread, and
each change is announced by a past-tense signal, so panels react to events instead of polling.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from lvm_studio.core.data import MNIST, load_mnist
from lvm_studio.core.evaluation import EvalImages
from lvm_studio.core.history import History
from lvm_studio.core.snapshots import frozen_replica, replica_with_state
from lvm_studio.core.vae import VAE, VAEConfig
from lvm_studio.ui.state.latent_cursor import LatentCursor
from lvm_studio.ui.state.latent_stats import LatentStatsService

if TYPE_CHECKING:
    import torch


class ModelHub(QObject):
    model_changed = Signal()  # a different model (the architecture may differ): rebuild
    weights_updated = Signal(int)  # new weights for the same architecture (training step): refresh
    history_changed = Signal()  # the metrics history was replaced (a model was opened)
    record_added = Signal(object)  # a StepRecord or EvalRecord was appended to the history
    name_changed = Signal(str)
    path_changed = Signal(object)  # Path or None
    dirty_changed = Signal(bool)  # unsaved training progress appeared (True) or was saved (False)
    optimizer_state_changed = Signal()  # the optimizer state and training settings to resume from
    data_changed = Signal()  # another dataset (hub.data, hub.data_path): re-encode, relabel, resize
    cluster_posterior_changed = Signal()  # a mixture's p(c|z) for the test codes was set or cleared

    def __init__(self, data: MNIST | None = None, data_path: str | Path | None = None, parent=None):
        super().__init__(parent)
        self._data = data
        self._data_path = data_path
        self._eval_images: EvalImages | None = None  # made for the current dataset on first use
        self._model: VAE = frozen_replica(VAE(VAEConfig()))
        self._name = "untrained " + self._model.config.describe()
        self._history = History()
        self._step = 0
        self._epoch = 0.0
        self._path: Path | None = None  # where the current model was opened from or saved to
        self._train_config: dict | None = None
        self._optimizer_state: dict | None = None
        self._dirty = False  # unsaved training progress
        self._version = 0  # increases on every model or weight change; key panel caches on it
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
    def name(self) -> str:
        return self._name

    @property
    def history(self) -> History:
        """The metrics so far; append through add_record, which announces each record."""
        return self._history

    @property
    def step(self) -> int:
        """The training step of the current weights."""
        return self._step

    @property
    def epoch(self) -> float:
        """The fractional epochs the current weights have seen."""
        return self._epoch

    @property
    def path(self) -> Path | None:
        """Where the current model was opened from or last saved to."""
        return self._path

    @property
    def train_config(self) -> dict | None:
        """The TrainConfig (as a dict) of the run that produced the current weights."""
        return self._train_config

    @property
    def optimizer_state(self) -> dict | None:
        """The optimizer's CPU state dict to resume training from."""
        return self._optimizer_state

    @property
    def dirty(self) -> bool:
        """True while there is training progress that is not saved."""
        return self._dirty

    @property
    def version(self) -> int:
        """Increases on every model or weight change; panels key their caches on it."""
        return self._version

    @property
    def data(self) -> MNIST:
        """The current dataset: MNIST, or one opened with File › Open dataset… (any square side)."""
        if self._data is None:
            self._data = load_mnist(self._data_path)
        return self._data

    @property
    def data_path(self) -> Path | None:
        """The .npz the current dataset came from; None for the shipped MNIST."""
        return Path(self._data_path) if self._data_path else None

    @property
    def eval_images(self) -> EvalImages:
        """The current dataset's evaluation images (core.evaluation.EvalImages): background tasks
        take this and make the images they need off the GUI thread."""
        if self._eval_images is None:
            self._eval_images = EvalImages(self.data)
        return self._eval_images

    def eval_x(self, split: str = "test") -> torch.Tensor:
        """The evaluation images of a split for the current likelihood, (N, N_PIXELS); cached."""
        return self.eval_images.get(split, self.config.likelihood)

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
    def set_data(
        self, data: MNIST, *, path: str | Path | None = None, model: VAE | None = None, model_name: str | None = None
    ) -> None:
        """A different dataset; with `model`, a model for it too (when the image size changes, the
        old model cannot take the new images). Both are in place before the first signal."""
        self._data = data
        self._data_path = path
        self._eval_images = None
        if model is not None:
            self.set_model(model, name=model_name)
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
        """A different model, with everything that belongs to it; the old one's state is dropped."""
        self._model = frozen_replica(model)
        old_name, old_path, was_dirty = self._name, self._path, self._dirty
        self._name = name or model.config.describe()
        self._history = history or History()
        self._step, self._epoch = int(step), float(epoch)
        self._path = Path(path) if path else None
        self._train_config = train_config
        self._optimizer_state = optimizer_state
        self._dirty = False
        self._version += 1
        self._cluster_posterior = None  # fitted to the old model's codes
        # every field is set before the first signal: a slot may read any of them
        self.model_changed.emit()
        self.history_changed.emit()
        self.cluster_posterior_changed.emit()
        self.optimizer_state_changed.emit()
        if self._name != old_name:
            self.name_changed.emit(self._name)
        if self._path != old_path:
            self.path_changed.emit(self._path)
        if was_dirty:
            self.dirty_changed.emit(False)

    def load_state(self, state_dict: dict, step: int, epoch: float) -> None:
        """Adopt a training snapshot (CPU tensors owned by nobody else) as a new replica."""
        self._model = replica_with_state(self._model, state_dict)
        self._step, self._epoch = int(step), float(epoch)
        was_dirty, self._dirty = self._dirty, True
        self._version += 1
        self.weights_updated.emit(self._step)
        if not was_dirty:
            self.dirty_changed.emit(True)

    def add_record(self, record) -> None:
        """Append a StepRecord or EvalRecord to the history (TypeError for anything else)."""
        self._history.add(record)
        self.record_added.emit(record)

    def set_name(self, name: str) -> None:
        if name != self._name:
            self._name = name
            self.name_changed.emit(name)

    def set_path(self, path: str | Path | None) -> None:
        path = Path(path) if path else None
        if path != self._path:
            self._path = path
            self.path_changed.emit(path)

    def set_dirty(self, dirty: bool) -> None:
        dirty = bool(dirty)
        if dirty != self._dirty:
            self._dirty = dirty
            self.dirty_changed.emit(dirty)

    def mark_saved(self, path: str | Path) -> None:
        """The current model and its progress were written to `path`."""
        self.set_path(path)
        self.set_dirty(False)

    def set_optimizer_state(self, optimizer_state: dict | None, train_config: dict | None) -> None:
        """What a run ended with: the optimizer state and settings the next run resumes from."""
        self._optimizer_state = optimizer_state
        self._train_config = train_config
        self.optimizer_state_changed.emit()
