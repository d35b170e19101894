"""`lvm-studio train-made` and `eval-made` (issue 15) on a small MNIST-style .npz: the checkpoint has kind
"made", the reported test log p(x) is the exact one, and bad input is one clean line."""

from __future__ import annotations

import json

import pytest
import torch

from lvm_studio.cli import main
from lvm_studio.core.checkpoint import load_checkpoint
from lvm_studio.core.data import load_mnist
from lvm_studio.core.made_training import made_from_checkpoint, mean_log_prob


@pytest.fixture(scope="module")
def small_npz(mnist_subset):
    return mnist_subset(5400, 300)


def test_train_made_then_eval_made(small_npz, tmp_path, capsys):
    out = tmp_path / "made.pt"
    args = ["train-made", "--hidden", "8", "--no-direct", "--epochs", "1", "--data", str(small_npz), "--out", str(out)]
    assert main(args) == 0
    reported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ckpt = load_checkpoint(out)
    assert ckpt["kind"] == "made" and ckpt["model_config"]["hidden"] == [8]
    made = made_from_checkpoint(ckpt)
    x = load_mnist(small_npz).binarized("test")
    exact = mean_log_prob(made, x)
    assert reported["n"] == 300 and reported["test_log_px"] == pytest.approx(exact, abs=1e-4)
    assert ckpt["metrics"]["test"]["log_px"] == pytest.approx(exact, abs=1e-4)
    assert main(["eval-made", str(out), "--json", "--data", str(small_npz)]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    assert result["exact"] and result["log_px"] == pytest.approx(exact, abs=1e-4)
    assert torch.isfinite(torch.tensor(result["log_px"]))


def test_eval_made_of_a_vae_or_a_text_file_is_one_clean_line(tmp_path, capsys):
    from lvm_studio.core.pretrained import pretrained_dir

    for path in (pretrained_dir() / "vae2.pt", tmp_path / "notes.txt"):
        if path.suffix == ".txt":
            path.write_text("not a model\n")
        assert main(["eval-made", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lvm-studio: error: ") and "Traceback" not in err and err.count("\n") == 1
    assert main(["train-made", "--epochs", "0", "--out", str(tmp_path / "x.pt")]) == 2
