"""Issue 13 on the command line and in the Trainer: a diverging run never overwrites a good checkpoint
(item 1), huge learning rates are refused (item 2), an unwritable --out is found before training
(item 5), and every invalid argument is one line and exit 2 before any work (item 6)."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from lvm_studio import cli
from lvm_studio.cli import main
from lvm_studio.core.data import MNIST
from lvm_studio.core.training import TrainConfig, Trainer
from lvm_studio.core.vae import VAE, VAEConfig, copy_state_to_cpu

TINY_ARGS = [
    "--batch-size",
    "10",
    "--hidden",
    "8",
    "--latent-dim",
    "2",
    "--eval-n",
    "20",
    "--eval-k",
    "2",
    "--quiet",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def small_npz(mnist_subset):
    """5,100 training digits (5,000 held out for validation: 10 batches of 10 an epoch), 50 test."""
    return mnist_subset(5100, 50)


def _nan_from_step(monkeypatch, first_bad: int):
    """Trainer._loss gives a NaN loss from trainer.step == first_bad on: a run that diverges for sure."""
    original = Trainer._loss

    def loss(self, x):
        out = original(self, x)
        return (out[0] * float("nan"), *out[1:]) if self.step >= first_bad else out

    monkeypatch.setattr(Trainer, "_loss", loss)


def _one_line_error(code, capsys, *fragments):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("lvm-studio: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


# --- item 1 ---------------------------------------------------------------------------------


def test_the_known_good_copy_is_only_of_weights_that_gave_a_finite_loss(mnist, monkeypatch):
    """NaN from the second step on: the only weights ever verified are the initial ones. Before the
    fix the copy was taken right after the first optimizer step, of weights nothing had checked."""
    data = MNIST(
        mnist.x_train[:256],
        mnist.y_train[:256],
        mnist.x_val[:20],
        mnist.y_val[:20],
        mnist.x_test[:20],
        mnist.y_test[:20],
    )
    torch.manual_seed(0)
    trainer = Trainer(
        VAE(VAEConfig(latent_dim=2, hidden=(8,))), data, TrainConfig(epochs=3, batch_size=64, eval_n=20, eval_k=2)
    )
    initial = copy_state_to_cpu(trainer.model)
    _nan_from_step(monkeypatch, 1)
    kinds = [e.kind for e in trainer.run() if hasattr(e, "kind")]
    assert kinds[-1] == "diverged" and kinds.count("nan") == Trainer.MAX_CONSECUTIVE_NAN
    final = copy_state_to_cpu(trainer.model)
    assert all(torch.equal(final[k], initial[k]) for k in initial), "restored the verified weights"
    assert trainer.step == 1


def test_a_diverging_resumed_run_leaves_the_checkpoint_bit_identical(small_npz, tmp_path, capsys, monkeypatch):
    x = tmp_path / "X.pt"
    assert main(["train", *TINY_ARGS, "--epochs", "1", "--data", str(small_npz), "--out", str(x)]) == 0
    before = hashlib.sha256(x.read_bytes()).hexdigest()
    capsys.readouterr()
    _nan_from_step(monkeypatch, 2)  # the resumed run starts at step 1: one good step, then NaN
    code = main(
        [
            "train",
            "--resume",
            str(x),
            "--epochs",
            "3",
            "--lr",
            "1e3",
            "--quiet",
            "--data",
            str(small_npz),
            "--out",
            str(x),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "non-finite steps in a row" in err and "nothing saved after the divergence" in err
    assert hashlib.sha256(x.read_bytes()).hexdigest() == before
    assert [p.name for p in tmp_path.iterdir()] == ["X.pt"]


def test_a_new_run_that_diverges_writes_nothing(small_npz, tmp_path, capsys, monkeypatch):
    _nan_from_step(monkeypatch, 1)
    out = tmp_path / "new.pt"
    assert main(["train", *TINY_ARGS, "--epochs", "2", "--data", str(small_npz), "--out", str(out)]) == 1
    assert f"{out} was not written" in capsys.readouterr().err and not out.exists()


# --- item 2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lr", ["3.4e37", "1e38", "inf", "nan", "0", "-1e-3"])
def test_learning_rates_out_of_range_are_one_line(tmp_path, capsys, lr):
    argv = ["train", *TINY_ARGS, f"--lr={lr}", "--out", str(tmp_path / "m.pt")]
    _one_line_error(main(argv), capsys, "--lr must be")


def test_the_trainer_refuses_a_learning_rate_adam_cannot_use(mnist):
    with pytest.raises(ValueError, match="learning rate"):
        TrainConfig(lr=3.4e37)
    data = MNIST(
        mnist.x_train[:64], mnist.y_train[:64], mnist.x_val[:8], mnist.y_val[:8], mnist.x_test[:8], mnist.y_test[:8]
    )
    trainer = Trainer(VAE(VAEConfig(latent_dim=2, hidden=(8,))), data, TrainConfig(epochs=1, eval_n=8, eval_k=2))
    with pytest.raises(ValueError, match="learning rate"):
        trainer.set_lr(3.4e37)  # refused in the caller's thread, never queued to crash inside Adam
    state = trainer.optimizer.state_dict()
    state["param_groups"][0]["lr"] = 1e38  # a crafted checkpoint's optimizer state
    with pytest.raises(ValueError, match="optimizer state's learning rate"):
        Trainer(
            VAE(VAEConfig(latent_dim=2, hidden=(8,))),
            data,
            TrainConfig(epochs=1, eval_n=8, eval_k=2),
            optimizer_state=state,
        )


def test_the_largest_allowed_learning_rate_trains_without_a_traceback(small_npz, tmp_path, capsys):
    code = main(
        ["train", *TINY_ARGS, "--epochs", "1", "--lr", "1e6", "--data", str(small_npz), "--out", str(tmp_path / "m.pt")]
    )
    assert code in (0, 1) and "Traceback" not in capsys.readouterr().err


# --- item 5 ---------------------------------------------------------------------------------


def _no_work(monkeypatch):
    from lvm_studio.core import data

    monkeypatch.setattr(data, "load_mnist", lambda *_: pytest.fail("loaded data before refusing"))


def test_unwritable_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    cases = {
        "/proc/lvm.pt": "cannot be written",
        str(tmp_path): "is a folder",
        str(a_file / "m.pt"): "is a file, not a folder",
        str(a_file / "deeper" / "m.pt"): "is a file, not a folder",
    }
    for out, fragment in cases.items():
        _one_line_error(main(["train", *TINY_ARGS, "--out", out]), capsys, fragment, "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]  # no probe file left behind


# --- item 6 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--eval-n", "0"], "--eval-n must be at least 1"),
        (["train", "--eval-n", "-5"], "--eval-n must be at least 1"),
        (["train", "--epochs", "0"], "--epochs must be"),
        (["train", "--hidden", "16", "0"], "--hidden values must be"),
        (["train", "--lr-decay", "1.5"], "--lr-decay must be in (0, 1]"),
        (["train", "--beta", "nan"], "--beta must be a finite number"),
        (["train", "--seed", "-1"], "--seed must be at least 0"),
        (["train", "--hidden", "100000"], "--hidden values must be at most 8192"),
        (["train", "--k", "x"], "invalid int value"),
        (["train", "--no-such-flag"], "unrecognized arguments"),
        (
            ["eval", "m.pt", "--iw-ks", "0", "-3", "7", "--k", "5"],
            "--iw-ks values must be at least 1 (one is 0)",
        ),
        (["eval", "m.pt", "--seed", "1180591620717411303424"], "--seed must be at most 9223372036854775807"),
        (["eval", "m.pt", "--k", "0"], "--k must be"),
        (["eval", "m.pt", "--n", "0"], "--n must be at least 1"),
        (["eval"], "required"),
        (["--smoke", "-1"], "--smoke must be in (0, 86400]"),
    ],
)
def test_invalid_arguments_are_one_line_and_exit_2_before_any_work(argv, fragment, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    monkeypatch.setattr(cli, "cmd_eval", lambda args: pytest.fail("eval started"))
    monkeypatch.setattr(cli, "cmd_gui", lambda args: pytest.fail("the window opened"))
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "m.pt")]
    _one_line_error(main(argv), capsys, fragment)


def test_eval_says_when_n_is_clipped(small_npz, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", *TINY_ARGS, "--epochs", "1", "--data", str(small_npz), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--k", "2", "--n", "20000", "--json", "--data", str(small_npz)]) == 0
    captured = capsys.readouterr()
    assert "lvm-studio: note: --n 20000 is more than the 50 images of the test split" in captured.err
    import json

    assert json.loads(captured.out)["n"] == 50 and math.isfinite(json.loads(captured.out)["elbo"])


def test_train_says_when_eval_n_is_clipped(small_npz, tmp_path, capsys):
    argv = ["train", *TINY_ARGS, "--eval-n", "9000", "--epochs", "1", "--data", str(small_npz)]
    assert main([*argv, "--out", str(tmp_path / "m.pt")]) == 0
    assert "note: --eval-n 9000 is more than the 5000 images of the val split" in capsys.readouterr().err


def test_help_returns_zero_in_process(capsys):
    assert main(["--help"]) == 0 and "train" in capsys.readouterr().out
