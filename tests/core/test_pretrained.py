"""The shipped pretrained models: every manifest entry exists, is small, matches its checksum, loads
as a valid checkpoint and decodes latent codes to pixel probabilities."""

from __future__ import annotations

import pytest
import torch

from lvm_studio.core.checkpoint import load_checkpoint, model_from_checkpoint
from lvm_studio.core.pretrained import (
    MANIFEST,
    default_checkpoint_path,
    entry_kind,
    is_shipped,
    load_manifest,
    made_checkpoint_path,
    pretrained_dir,
    sha256_of,
    vae_entries,
    verify,
)

MAX_BYTES = 10 * 1024 * 1024

pytestmark = pytest.mark.skipif(
    not (pretrained_dir() / MANIFEST).is_file(),
    reason="pretrained/manifest.json does not exist yet (the models are being trained)",
)


def entries() -> list[dict]:
    if not (pretrained_dir() / MANIFEST).is_file():
        return []
    return load_manifest()["models"]


def test_the_manifest_lists_models_and_a_default_among_them():
    manifest = load_manifest()
    files = [m["file"] for m in manifest["models"]]
    assert files, "the manifest lists no model"
    assert len(files) == len(set(files))
    assert manifest["default"] in files
    assert default_checkpoint_path() == pretrained_dir() / manifest["default"]


@pytest.mark.parametrize("entry", entries(), ids=lambda e: e["file"])
def test_each_model_is_small_verified_and_loads(entry):
    path = pretrained_dir() / entry["file"]
    assert path.is_file(), f"{path} is listed in the manifest but missing"
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size / 1e6:.1f} MB"
    assert entry.get("size_bytes") in (None, size)
    assert sha256_of(path) == entry["sha256"] and verify(entry)

    ckpt = load_checkpoint(path)  # verifies the digest (issue 13): every shipped model carries one
    assert ckpt["digest"].startswith("sha256:")
    assert ckpt["model_config"] == entry["config"]
    assert ckpt.get("kind", "vae") == entry_kind(entry)
    if entry_kind(entry) == "made":  # the pixel-space joint (issue 15): exact log p(x), never a VAE
        check_made(ckpt, entry)
        return
    model = model_from_checkpoint(ckpt)
    n = 16
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(0))  # (n, latent)
    with torch.no_grad():
        probs = model.decode_mean(z)  # (n, 784)
    assert probs.shape == (n, 784)
    assert torch.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1
    for score in entry.get("test", []):
        assert score["log_px"] >= score["elbo"] - 1.0  # IWAE-k ≥ ELBO up to sampling noise


def check_made(ckpt: dict, entry: dict) -> None:
    from lvm_studio.core.checkpoint import CheckpointError
    from lvm_studio.core.made_training import made_from_checkpoint

    made = made_from_checkpoint(ckpt)
    x = torch.bernoulli(torch.full((4, made.n_pixels), 0.2), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        log_px = made.log_prob(x)  # (4,)
    assert torch.isfinite(log_px).all() and (log_px < 0).all()
    with pytest.raises(CheckpointError, match="not a VAE"):
        model_from_checkpoint(ckpt)
    assert [s["n"] for s in entry["test"]] == [10000] and entry["test"][0]["exact"]


def test_the_default_and_the_latent_models_are_vaes():
    manifest = load_manifest()
    kinds = {m["file"]: entry_kind(m) for m in manifest["models"]}
    assert kinds[manifest["default"]] == "vae"
    assert all(entry_kind(e) == "vae" for e in vae_entries())
    made = made_checkpoint_path()
    assert made is None or kinds[made.name] == "made"


def test_verify_notices_a_changed_file(tmp_path):
    entry = dict(entries()[0])
    copy = tmp_path / entry["file"]
    copy.write_bytes((pretrained_dir() / entry["file"]).read_bytes())
    assert verify(entry, tmp_path)
    with open(copy, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    assert not verify(entry, tmp_path)
    copy.unlink()
    assert not verify(entry, tmp_path)


def test_is_shipped_covers_the_shipped_folder_and_nothing_else(tmp_path):
    """Saving must never write into the shipped folder: any path inside it counts, even a new file
    or one reached through a link; a copy elsewhere does not."""
    default = default_checkpoint_path()
    assert is_shipped(default) and is_shipped(str(default))
    assert is_shipped(pretrained_dir() / "a-new-model.pt")
    copy = tmp_path / default.name
    assert not is_shipped(copy) and not is_shipped(None)
    link = tmp_path / "link.pt"
    link.symlink_to(default)
    assert is_shipped(link)


def test_data_package_names():
    from lvm_studio.core.shipped import data_package, shipped_dir

    assert data_package("pretrained") == "lvm_studio._pretrained"
    assert data_package("resources") == "lvm_studio._resources"
    assert shipped_dir("pretrained") == pretrained_dir()
    with pytest.raises(ValueError, match="unknown shipped folder"):
        data_package("runs")
