"""The digit classifier (issue 16): a checkpoint of kind "classifier" that nothing mistakes for a VAE,
the train-classifier command, and the shipped one's manifest entry and accuracy."""

from __future__ import annotations

import json

import pytest
import torch

from lvm_studio.cli import main
from lvm_studio.core.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from lvm_studio.core.classifier import (
    ClassifierConfig,
    DigitClassifier,
    accuracy,
    class_mix,
    classifier_from_checkpoint,
    make_classifier_checkpoint,
)
from lvm_studio.core.data import load_mnist
from lvm_studio.core.pretrained import (
    classifier_entries,
    default_classifier_path,
    load_manifest,
    pretrained_dir,
    verify,
)
from lvm_studio.core.vae import VAE, VAEConfig

TINY = ClassifierConfig(channels=(2, 4), hidden=8)


def test_probabilities_and_class_mix():
    model = DigitClassifier(TINY)
    x = torch.rand(3, 5, 784, generator=torch.Generator().manual_seed(0))
    p = model.probs(x)
    assert p.shape == (3, 5, 10) and torch.allclose(p.sum(-1), torch.ones(3, 5))
    mix = class_mix(p[0])
    assert mix.shape == (10,) and torch.allclose(mix, p[0].mean(0))


def test_a_classifier_checkpoint_round_trips_and_is_never_taken_for_a_vae(tmp_path):
    model = DigitClassifier(TINY)
    path = save_checkpoint(tmp_path / "clf.pt", make_classifier_checkpoint(model, metrics={"test_accuracy": 0.5}))
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] == "classifier"
    back = classifier_from_checkpoint(ckpt)
    x = torch.rand(2, 784)
    assert torch.allclose(back.probs(x), model.probs(x))
    with pytest.raises(CheckpointError, match="not a VAE"):
        model_from_checkpoint(ckpt)
    vae_ckpt = {"kind": "vae", "model_config": VAEConfig(latent_dim=2, hidden=(8,)).to_dict()}
    with pytest.raises(CheckpointError, match="not a digit classifier"):
        classifier_from_checkpoint(vae_ckpt)
    ckpt["kind"] = "toaster"
    save_checkpoint(tmp_path / "odd.pt", ckpt)
    with pytest.raises(CheckpointError, match="unknown model kind"):
        load_checkpoint(tmp_path / "odd.pt")
    assert isinstance(VAE(VAEConfig(latent_dim=2, hidden=(8,))), VAE)  # VAE checkpoints are untouched


def test_the_command_trains_and_saves_a_classifier(tmp_path, capsys, mnist_subset):
    small = mnist_subset(5200, 100)
    out = tmp_path / "clf.pt"
    args = ["train-classifier", "--epochs", "1", "--channels", "2", "4", "--hidden", "8", "--data", str(small)]
    assert main([*args, "--out", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["n_test"] == 100
    model = classifier_from_checkpoint(load_checkpoint(out))
    assert model.config == TINY
    assert main([*args[:2], "0", "--out", str(out)]) == 2  # --epochs 0: one clear line


@pytest.mark.skipif(default_classifier_path() is None, reason="no classifier shipped yet")
def test_the_shipped_classifier_is_listed_apart_verified_and_accurate():
    manifest = load_manifest()
    entries = classifier_entries()
    files = {e["file"] for e in entries}
    assert not files & {m["file"] for m in manifest["models"]}  # never among the VAEs
    for entry in entries:
        assert verify(entry) and entry["test_accuracy"] >= 0.98
        for key in ("train_command", "seed", "wall_time_s", "sha256"):
            assert entry.get(key) is not None
    model = classifier_from_checkpoint(load_checkpoint(pretrained_dir() / entries[0]["file"]))
    data = load_mnist()
    n = 500  # the recorded figure is over all 10,000; a spot check here
    y = torch.from_numpy(data.y_test[:n].astype("int64"))
    assert accuracy(model, data.binarized("test")[:n], y) >= 0.97
