"""The shipped pretrained models: pretrained/manifest.json and checksum verification.

manifest.json:
    {"default": "vae32.pt",
     "models": [{"file": "vae32.pt", "name": ..., "sha256": ..., "size_bytes": ...,
                 "config": {...}, "train_command": ..., "seed": ..., "epochs": ...,
                 "wall_time_s": ..., "device": ..., "test": {"elbo": ..., "log_px": ..., "k": ..., "n": ...}}]}

The digit classifier of the inpainting panel (core.classifier, a checkpoint of kind "classifier") is
listed under "classifiers", never under "models", so nothing that opens VAEs meets it:
    "classifiers": [{"file": "digit_classifier.pt", "name": ..., "sha256": ..., "test_accuracy": ..., ...}]

The folder is the repository's pretrained/ in a checkout and lvm_studio/_pretrained inside an
installed wheel (core/shipped.py finds it). The app never writes there: `is_shipped`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lvm_studio.core.shipped import candidate_dirs, shipped_dir

MANIFEST = "manifest.json"


def pretrained_dir() -> Path:
    """The shipped models' folder: lvm_studio._pretrained as installed, else the repository's pretrained/."""
    return shipped_dir("pretrained")


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
    manifest.setdefault("classifiers", [])
    return manifest


def model_entries(directory: str | Path | None = None) -> list[dict]:
    """Every shipped model, of every kind (see entry_kind)."""
    return list(load_manifest(directory)["models"])


def entry_kind(entry: dict) -> str:
    """What a manifest entry holds: "vae" (the default: entries before kinds existed) or "made" (the
    pixel-space joint of issue 15, core/made.py), as its checkpoint's "kind" says."""
    return entry.get("kind", "vae")


def vae_entries(directory: str | Path | None = None) -> list[dict]:
    """The shipped VAEs only: what the app opens and the latent benchmarks use."""
    return [e for e in model_entries(directory) if entry_kind(e) == "vae"]


def made_checkpoint_path(directory: str | Path | None = None) -> Path | None:
    """The shipped MADE (the "Missing pixels as latents" panel's autoregressive joint), if any."""
    directory = Path(directory) if directory else pretrained_dir()
    for entry in model_entries(directory):
        if entry_kind(entry) == "made" and (directory / entry["file"]).is_file():
            return directory / entry["file"]
    return None


def classifier_entries(directory: str | Path | None = None) -> list[dict]:
    """The shipped digit classifiers (manifest "classifiers"), not VAEs."""
    return list(load_manifest(directory)["classifiers"])


def default_classifier_path(directory: str | Path | None = None) -> Path | None:
    """The first listed digit classifier whose file exists, else None."""
    directory = Path(directory) if directory else pretrained_dir()
    for entry in classifier_entries(directory):
        path = directory / entry["file"]
        if path.is_file():
            return path
    return None


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


def is_shipped(path: str | Path | None) -> bool:
    """True for a file inside a shipped pretrained folder (which the app never writes): the installed
    package's lvm_studio/_pretrained or the repository's pretrained/."""
    if path is None:
        return False
    try:
        resolved = Path(path).resolve()
        return any(resolved.is_relative_to(d) for d in candidate_dirs("pretrained"))
    except OSError:
        return False
