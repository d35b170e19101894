"""Self-describing checkpoints: written atomically, read with torch.load(weights_only=True).

A checkpoint is a dict:
    format: "lvm-studio-checkpoint", version: 1,
    name, model_config (dict), state_dict, optimizer (or None), train_config (dict or None),
    step, epoch, history (History.to_dict()), metrics (dict of headline figures), created (ISO time),
    digest ("sha256:<hex>", written by save_checkpoint, see checkpoint_digest)
Only tensors and plain containers of numbers and strings, so no pickle is ever executed.

The digest covers every value of the dict but itself, tensors by key path, dtype, shape and raw
bytes, whatever the checkpoint's kind; load_checkpoint recomputes it, so a flipped byte in the
weights, the optimizer state or the settings is refused (torch's zip reader checks no CRC). A
checkpoint written before digests (no "digest" key) loads with one log warning.
"""

from __future__ import annotations

import array
import datetime as _dt
import hashlib
import logging
import os
import pickle
import re
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import torch

from lvm_studio.core.history import History
from lvm_studio.core.vae import VAE, VAEConfig

FORMAT = "lvm-studio-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "model_config", "state_dict")
DIGEST_KEY = "digest"
DIGEST_ALGORITHM = "sha256"
# an abandoned temporary file without a writer's pid (older versions) is removed once it is this old
STALE_TMP_AGE_S = 600.0

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with a message that says why."""


def headline_metrics(history: History) -> dict:
    """The checkpoint's "metrics": the last evaluation's ELBO, log p(x) and its k (and a mixture prior's
    test clustering accuracy and NMI); {} before any."""
    if not history.evals:
        return {}
    e = history.evals[-1]
    clusters = (
        {"test_cluster_acc": e.cluster_acc, "test_cluster_nmi": e.cluster_nmi} if e.cluster_acc is not None else {}
    )
    return {"val_elbo": e.elbo, "val_log_px": e.log_px, "k": e.k, **clusters}


def make_checkpoint(
    model,
    *,
    kind: str | None = None,
    name: str | None = None,
    optimizer: dict | None = None,
    train_config: dict | None = None,
    step: int = 0,
    epoch: float = 0.0,
    history: History | None = None,
    metrics: dict | None = None,
) -> dict:
    """The checkpoint dict of `model` (anything with .config.describe/.to_dict and a state_dict).

    kind: None for a VAE (a VAE's checkpoint has no "kind": the default); "made", "classifier", ...
    for the other models (KINDS). A VAE's history is a History; another kind's is stored as given
    (a plain dict, or None)."""
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        **({} if kind is None else {"kind": kind}),
        "name": name or model.config.describe(),
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "optimizer": optimizer,
        "train_config": train_config,
        "step": int(step),
        "epoch": float(epoch),
        "history": (history or History()).to_dict() if kind is None else history,
        "metrics": dict(metrics or {}),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return ckpt


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_PLAIN = (int, float, str, bool, type(None))


def _update_digest(h, value, path: str) -> None:
    """Feed one value into the hash: tensors by path, dtype, shape and bytes; containers in a fixed order."""
    if torch.is_tensor(value):
        t = value.detach().to("cpu").contiguous()
        h.update(f"T|{path}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D|{path}|{len(value)}|".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):  # fixed order, any key type
            _update_digest(h, value[key], f"{path}/{key!r}")
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__[0].upper()}|{path}|{len(value)}|".encode())
        if value and all(type(item) is float for item in value):  # a history column: its exact bits
            h.update(b"f" + array.array("d", value).tobytes())
            return
        if all(type(item) in _PLAIN for item in value):  # one repr for the list (exact for floats)
            h.update(repr([(type(item).__name__, item) for item in value]).encode())
            return
        for i, item in enumerate(value):
            _update_digest(h, item, f"{path}/{i}")
    else:  # numbers, strings, None, bool: their repr is exact (floats round-trip)
        h.update(f"V|{path}|{type(value).__name__}|{value!r}|".encode())


def checkpoint_digest(checkpoint: dict) -> str:
    """ "sha256:<hex>" of every value of the checkpoint except the digest itself (generic over kinds)."""
    h = hashlib.new(DIGEST_ALGORITHM)
    _update_digest(h, {k: v for k, v in checkpoint.items() if k != DIGEST_KEY}, "")
    return f"{DIGEST_ALGORITHM}:{h.hexdigest()}"


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove temporary files that earlier saves of `path` left behind (a writer killed mid-save).

    A temporary file's name carries its writer's pid: one whose process no longer exists is
    removed at once; one without a pid (written by an older version) once it is STALE_TMP_AGE_S
    old. A live writer's file, another process saving the same target, is left alone.
    """
    path = Path(path)
    pattern = re.compile(re.escape(_tmp_prefix(path)) + r"(?:(\d+)-)?[^.]*\.tmp$")
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    for tmp in candidates:
        m = pattern.match(tmp.name)
        if m is None:
            continue
        try:
            if m.group(1) is not None:
                pid = int(m.group(1))
                if pid == os.getpid() or _process_alive(pid):
                    continue
            elif time.time() - tmp.stat().st_mtime < STALE_TMP_AGE_S:
                continue
            tmp.unlink()
            removed.append(tmp)
        except (OSError, ValueError):
            continue
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted save of %s", len(removed), path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: keep its file
    return True


def save_checkpoint(path: str | Path, checkpoint: dict) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over the target.

    A crash mid-write leaves the old file intact; readers never see a half-written one. The
    written dict gets a fresh digest (the caller's dict is not changed), and temporary files of
    earlier interrupted saves of the same target are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    checkpoint = {**checkpoint, DIGEST_KEY: checkpoint_digest(checkpoint)}
    fd, tmp = tempfile.mkstemp(prefix=f"{_tmp_prefix(path)}{os.getpid()}-", suffix=".tmp", dir=path.parent)
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
        with warnings.catch_warnings():  # e.g. torch's two-line note on pickle protocol 5: ours is the one line
            warnings.simplefilter("ignore")
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
    _verify_digest(ckpt, path)
    try:
        kind = checkpoint_kind(ckpt)
        if kind == "vae":
            model_from_checkpoint(ckpt)
        elif kind == "classifier":  # the digit classifier (issue 16): built and checked by its own module
            from lvm_studio.core.classifier import classifier_from_checkpoint

            classifier_from_checkpoint(ckpt)
        else:  # a pixel-space joint (issue 15): built and checked by its own module
            from lvm_studio.core.made_training import made_from_checkpoint

            made_from_checkpoint(ckpt)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return ckpt


def _verify_digest(ckpt: dict, path: Path) -> None:
    stored = ckpt.get(DIGEST_KEY)
    if stored is None:
        log.warning("%s: written before checkpoints carried a digest; its contents cannot be verified", path)
        return
    try:
        actual = checkpoint_digest(ckpt)
    except (TypeError, ValueError, RuntimeError) as e:  # a value the hash cannot read is itself damage
        raise CheckpointError(f"{path}: the checkpoint's contents cannot be verified ({type(e).__name__})") from None
    if stored != actual:
        raise CheckpointError(
            f"{path}: the checkpoint is damaged: its contents do not match the digest written with it "
            "(changed or corrupted after it was saved)"
        )


KINDS = ("vae", "made", "classifier")


def checkpoint_kind(ckpt: dict) -> str:
    """What a checkpoint holds: "vae" (the default, and every checkpoint before kinds existed),
    "made" (core/made.py, a pixel-space joint) or "classifier" (core/classifier.py, the digit
    classifier of issue 16); CheckpointError for anything else."""
    kind = ckpt.get("kind", "vae")
    if kind not in KINDS:
        raise CheckpointError(f"unknown model kind {kind!r} (this LVM Studio knows {', '.join(KINDS)})")
    return kind


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu") -> VAE:
    """Build the model the checkpoint describes and load its weights (strictly)."""
    kind = checkpoint_kind(ckpt)
    if kind == "classifier":
        raise CheckpointError("it holds a digit classifier, not a VAE (the inpainting panel uses it to name digits)")
    if kind != "vae":
        raise CheckpointError(
            f"it holds a {ckpt['kind'].upper()} pixel model, not a VAE; open it in the "
            f"'Missing pixels as latents' panel"
        )
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
