"""Where imported datasets are cached and the recent-datasets list (no widgets).

An import is written once as an MNIST-style .npz under the user's data folder
(QStandardPaths.AppDataLocation/datasets); the recent list in QSettings remembers those files, so a
dataset is re-opened without converting its images again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

RECENT_KEY = "datasets/recent"
MAX_RECENT = 8


def datasets_dir() -> Path:
    """AppDataLocation/datasets, made on first use; a folder under the home directory when there is none."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    folder = Path(base) / "datasets" if base else Path.home() / ".lvm-studio-datasets"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cache_path(source: str | Path, side: int | None, test_fraction: float, centre: bool | None, seed: int) -> Path:
    """The cached .npz for one source and one set of options: the source's name and a short hash."""
    source = Path(source).resolve()
    key = f"{source}|{side}|{test_fraction}|{centre}|{seed}".encode()
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in source.stem or source.name)[:40] or "dataset"
    return datasets_dir() / f"{stem}-{side or 'kept'}px-{hashlib.sha1(key).hexdigest()[:8]}.npz"


def recent_datasets(settings: QSettings) -> list[Path]:
    """The cached datasets opened lately, newest first, those still on disk."""
    value = settings.value(RECENT_KEY, [])
    paths = [value] if isinstance(value, str) else list(value or [])
    return [Path(p) for p in paths if Path(p).is_file()]


def remember_dataset(settings: QSettings, path: str | Path) -> list[Path]:
    """Put `path` first in the recent list (at most MAX_RECENT); returns the new list."""
    path = Path(path)
    paths = [path, *(p for p in recent_datasets(settings) if p != path)][:MAX_RECENT]
    settings.setValue(RECENT_KEY, [str(p) for p in paths])
    return paths
