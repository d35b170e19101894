"""The shipped pretrained models: pretrained/manifest.json and checksum verification.

manifest.json:
    {"default": "vae32.pt",
     "models": [{"file": "vae32.pt", "name": ..., "sha256": ..., "size_bytes": ...,
                 "config": {...}, "train_command": ..., "seed": ..., "epochs": ...,
                 "wall_time_s": ..., "device": ..., "test": {"elbo": ..., "log_px": ..., "k": ..., "n": ...}}]}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


def pretrained_dir() -> Path:
    """pretrained/ beside the package (the repository root for a source or editable install)."""
    return Path(__file__).resolve().parents[2] / "pretrained"


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(directory: str | Path | None = None) -> dict:
    """The manifest, or an empty one when the folder or file is missing."""
    directory = Path(directory) if directory else pretrained_dir()
    path = directory / MANIFEST
    if not path.is_file():
        return {"default": None, "models": []}
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest.setdefault("models", [])
    manifest.setdefault("default", None)
    return manifest


def model_entries(directory: str | Path | None = None) -> list[dict]:
    return list(load_manifest(directory)["models"])


def default_checkpoint_path(directory: str | Path | None = None) -> Path | None:
    """The default model's file if the manifest names one that exists."""
    directory = Path(directory) if directory else pretrained_dir()
    name = load_manifest(directory).get("default")
    if not name:
        return None
    path = directory / name
    return path if path.is_file() else None


def verify(entry: dict, directory: str | Path | None = None) -> bool:
    """True when the file exists and its SHA-256 matches the manifest."""
    directory = Path(directory) if directory else pretrained_dir()
    path = directory / entry["file"]
    return path.is_file() and sha256_of(path) == entry.get("sha256")
