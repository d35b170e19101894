"""Self-describing checkpoints: written atomically, read with torch.load(weights_only=True).

A checkpoint is a dict:
    format: "lvm-studio-checkpoint", version: 1,
    name, model_config (dict), state_dict, optimizer (or None), train_config (dict or None),
    step, epoch, history (History.to_dict()), metrics (dict of headline figures), created (ISO time)
Only tensors and plain containers of numbers and strings, so no pickle is ever executed.
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from lvm_studio.core.history import History
from lvm_studio.core.vae import VAE, VAEConfig

FORMAT = "lvm-studio-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "model_config", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with a message that says why."""


def headline_metrics(history: History) -> dict:
    """The checkpoint's "metrics": the last evaluation's ELBO, log p(x) and its k; {} before any."""
    if not history.evals:
        return {}
    e = history.evals[-1]
    return {"val_elbo": e.elbo, "val_log_px": e.log_px, "k": e.k}


def make_checkpoint(
    model: VAE,
    *,
    name: str | None = None,
    optimizer: dict | None = None,
    train_config: dict | None = None,
    step: int = 0,
    epoch: float = 0.0,
    history: History | None = None,
    metrics: dict | None = None,
) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name or model.config.describe(),
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "optimizer": optimizer,
        "train_config": train_config,
        "step": int(step),
        "epoch": float(epoch),
        "history": (history or History()).to_dict(),
        "metrics": dict(metrics or {}),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | Path, checkpoint: dict) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over the target.

    A crash mid-write leaves the old file intact; readers never see a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint gets the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


# torch.save writes a zip archive; its legacy format (and a bare pickle) opens with the PROTO opcode
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def _file_kind(path: Path) -> str | None:
    """Why a non-empty file cannot be a torch file at all, judged by its first bytes; None if it may be.

    Without this, text such as /etc/passwd reaches the legacy unpickler and fails with a message
    like "list index out of range". An empty file is left to the loader ("corrupt or truncated").
    """
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None  # the loader reports it
    if not head or head.startswith(_TORCH_MAGIC):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut at the end of the sample is still text
        text = head[: e.start].decode("utf-8") if e.start > len(head) - 4 else None
    if text is not None and all(c.isprintable() or c in "\t\n\r\f" for c in text):
        return "it is a text file, not a file saved by PyTorch"
    return "it is not a file saved by PyTorch"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate; a corrupt, truncated or foreign file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    kind = _file_kind(path)
    if kind is not None:
        raise CheckpointError(f"{path}: not an LVM Studio checkpoint ({kind})")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refuses anything but tensors and plain containers: a foreign pickle,
        # another program's file, or bytes that are not a checkpoint at all
        raise CheckpointError(
            f"{path}: not an LVM Studio checkpoint (it is corrupt, or holds objects "
            f"other than plain weights, which are refused for safety)"
        ) from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ) as e:
        # the weights-only unpickler meets arbitrary bytes with any of these (b'hello' gives KeyError)
        first = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: the file is corrupt or truncated and cannot be read ({first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        kind = type(ckpt).__name__
        raise CheckpointError(
            f"{path}: not an LVM Studio checkpoint (found a {kind} without "
            f"format '{FORMAT}'; plain PyTorch state dicts are not accepted)"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {', '.join(missing)}")
    if not isinstance(ckpt["version"], int) or ckpt["version"] > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt['version']} is newer than this "
            f"LVM Studio understands ({VERSION}); please upgrade"
        )
    try:
        model_from_checkpoint(ckpt)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return ckpt


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu") -> VAE:
    """Build the model the checkpoint describes and load its weights (strictly)."""
    try:
        config = VAEConfig.from_dict(dict(ckpt["model_config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"invalid model configuration: {e}") from None
    model = VAE(config)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"the weights do not fit the model {config.describe()} ({msg})") from None
    if not all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if torch.is_tensor(v) and v.is_floating_point()
    ):
        raise CheckpointError("the weights contain NaN or infinite values")
    return model.to(device).eval()


def history_from_checkpoint(ckpt: dict) -> History:
    try:
        return History.from_dict(ckpt.get("history"))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise CheckpointError(f"the metrics history is malformed ({e})") from None
