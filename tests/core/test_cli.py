"""The headless command line (lvm_studio.cli.main): train, resume, eval, and clean errors (exit 2, no traceback).

A small MNIST-style .npz (6,000 training digits, so the 5,000-digit validation split leaves 1,000 to
train on, and 500 test digits) keeps one epoch of a 784-16-2 model to a few steps.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lvm_studio.cli import main
from lvm_studio.core.checkpoint import history_from_checkpoint, load_checkpoint
from lvm_studio.core.images import SIDE

N_FIT = 1000  # 6000 − 5000 held out for validation
STEPS_PER_EPOCH = -(-N_FIT // 128)  # 8
TINY_ARGS = ["--hidden", "16", "--latent-dim", "2", "--eval-n", "100", "--eval-k", "5", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def small_npz(mnist_subset):
    return mnist_subset(6000, 500)


@pytest.fixture(scope="module")
def trained(small_npz, tmp_path_factory):
    """A checkpoint after one epoch, trained through the command line."""
    out = tmp_path_factory.mktemp("ckpt") / "one.pt"
    assert main(["train", *TINY_ARGS, "--epochs", "1", "--data", str(small_npz), "--out", str(out)]) == 0
    return out


def assert_clean_error(code, capsys, *fragments):
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("lvm-studio: error: ")
    assert "Traceback" not in captured.err and captured.out == ""
    for fragment in fragments:
        assert fragment in captured.err, captured.err


def test_train_one_epoch_writes_a_checkpoint(trained, capsys):
    ckpt = load_checkpoint(trained)
    assert ckpt["step"] == STEPS_PER_EPOCH and ckpt["epoch"] == pytest.approx(1.0)
    assert ckpt["model_config"]["hidden"] == [16] and ckpt["model_config"]["latent_dim"] == 2
    assert ckpt["train_config"]["epochs"] == 1 and ckpt["train_config"]["eval_k"] == 5
    assert ckpt["optimizer"] is not None  # so that --resume continues Adam
    history = history_from_checkpoint(ckpt)
    assert history.train[-1].step == STEPS_PER_EPOCH
    assert [e.n for e in history.evals] == [100] and ckpt["metrics"]["k"] == 5
    assert not list(trained.parent.glob(".*.tmp"))  # atomic saves left no temporary file


def test_resume_extends_to_two_epochs_and_continues_the_step_count(trained, small_npz, tmp_path, capsys):
    out = tmp_path / "two.pt"
    code = main(
        [
            "train",
            "--resume",
            str(trained),
            "--epochs",
            "2",
            "--quiet",
            "--device",
            "cpu",
            "--data",
            str(small_npz),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    first, second = load_checkpoint(trained), load_checkpoint(out)
    assert second["step"] == 2 * STEPS_PER_EPOCH and second["epoch"] == pytest.approx(2.0)
    assert second["model_config"] == first["model_config"] and second["name"] == first["name"]
    history = history_from_checkpoint(second)
    assert history.train[: len(history_from_checkpoint(first).train)] == history_from_checkpoint(first).train
    steps = [r.step for r in history.train]
    assert steps == sorted(steps) and steps[-1] == 2 * STEPS_PER_EPOCH
    assert [e.step for e in history.evals] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    adam = second["optimizer"]["state"]
    assert all(int(s["step"]) == 2 * STEPS_PER_EPOCH for s in adam.values())
    assert "saved" in capsys.readouterr().err


def test_resume_takes_over_the_training_options_given_on_the_command_line(trained, small_npz, tmp_path):
    out = tmp_path / "tuned.pt"
    assert (
        main(
            [
                "train",
                "--resume",
                str(trained),
                "--epochs",
                "2",
                "--lr",
                "2e-4",
                "--objective",
                "iwae",
                "--k",
                "3",
                "--quiet",
                "--data",
                str(small_npz),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    ckpt = load_checkpoint(out)
    config = ckpt["train_config"]
    assert (config["objective"], config["k"], config["lr"]) == ("iwae", 3, 2e-4)
    assert config["eval_k"] == 5 and config["eval_n"] == 100  # not given: kept from the checkpoint
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-4)
    assert ckpt["step"] == 2 * STEPS_PER_EPOCH


def test_eval_json_prints_one_line_with_log_px_above_elbo(trained, small_npz, capsys):
    capsys.readouterr()
    code = main(["eval", str(trained), "--json", "--k", "10", "--n", "50", "--device", "cpu", "--data", str(small_npz)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["k"] == 10 and result["n"] == 50 and result["split"] == "test"
    assert result["elbo"] == pytest.approx(result["recon"] - result["kl"], abs=1e-3)
    assert result["gap"] == pytest.approx(result["log_px"] - result["elbo"])
    # IWAE-10 ≥ ELBO in expectation; the one-sample ELBO over 50 digits has noise of about a nat
    assert result["log_px"] >= result["elbo"] - 1.0
    assert -800 < result["elbo"] < 0 and result["likelihood"] == "bernoulli"


def test_eval_is_reproducible_and_reports_extra_iw_bounds(trained, small_npz, capsys):
    args = [
        "eval",
        str(trained),
        "--json",
        "--k",
        "20",
        "--n",
        "30",
        "--iw-ks",
        "1",
        "5",
        "--device",
        "cpu",
        "--data",
        str(small_npz),
    ]
    capsys.readouterr()
    assert main(args) == 0 and main(args) == 0
    a, b = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert a["log_px"] == b["log_px"] and a["elbo"] == b["elbo"]  # seeded: same samples each time
    assert set(a["iw_bounds"]) == {"1", "5"}
    assert a["iw_bounds"]["1"] < a["iw_bounds"]["5"] < a["log_px"]


def test_eval_text_output(trained, small_npz, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained), "--k", "5", "--n", "20", "--device", "cpu", "--data", str(small_npz)]) == 0
    out = capsys.readouterr().out
    assert "ELBO" in out and "log p(x) ≥" in out and "n=20, k=5" in out


# --- errors: exit code 2, one message on stderr, no traceback ------------------------------------


def test_eval_of_a_corrupt_checkpoint(tmp_path, small_npz, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00\x01 definitely not a checkpoint" * 50)
    assert_clean_error(main(["eval", str(bad), "--json", "--data", str(small_npz)]), capsys, str(bad))


def test_eval_of_a_missing_checkpoint(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert_clean_error(main(["eval", str(missing)]), capsys, "no such checkpoint file")


def test_resume_from_a_bad_checkpoint(tmp_path, small_npz, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("hello")
    code = main(
        [
            "train",
            "--resume",
            str(bad),
            "--epochs",
            "2",
            "--quiet",
            "--data",
            str(small_npz),
            "--out",
            str(tmp_path / "out.pt"),
        ]
    )
    assert_clean_error(code, capsys, str(bad))
    assert not (tmp_path / "out.pt").exists()


def test_train_with_a_bad_data_file(tmp_path, capsys):
    bad = tmp_path / "mnist.npz"
    bad.write_text("x_train,y_train\n1,2\n")
    code = main(["train", *TINY_ARGS, "--epochs", "1", "--data", str(bad), "--out", str(tmp_path / "m.pt")])
    assert_clean_error(code, capsys, str(bad), "not a readable .npz")
    assert not (tmp_path / "m.pt").exists()


def test_train_with_an_npz_missing_arrays(tmp_path, capsys):
    bad = tmp_path / "partial.npz"
    np.savez(bad, x_train=np.zeros((6000, SIDE, SIDE), np.uint8))
    code = main(["train", *TINY_ARGS, "--epochs", "1", "--data", str(bad), "--out", str(tmp_path / "m.pt")])
    assert_clean_error(code, capsys, "missing key(s)")


def test_eval_with_a_bad_data_file(trained, tmp_path, capsys):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    assert_clean_error(main(["eval", str(trained), "--data", str(bad)]), capsys, str(bad))


def test_eval_with_a_bad_k(trained, small_npz, capsys):
    assert_clean_error(main(["eval", str(trained), "--k", "0", "--data", str(small_npz)]), capsys, "--k")


def test_train_with_invalid_settings(tmp_path, small_npz, capsys):
    code = main(
        ["train", *TINY_ARGS, "--epochs", "1", "--lr", "-1", "--data", str(small_npz), "--out", str(tmp_path / "m.pt")]
    )
    assert_clean_error(code, capsys, "--lr must be in (0, 1e+06]")


def test_eval_of_a_text_file_says_it_is_not_a_checkpoint(tmp_path, capsys):
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    code = main(["eval", str(text)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("lvm-studio: error: ") and len(err.strip().splitlines()) == 1
    assert f"{text}: not an LVM Studio checkpoint (it is a text file" in err and "index out of range" not in err


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_train_with_no_epochs_is_refused_before_any_work(tmp_path, capsys, monkeypatch, epochs):
    from lvm_studio.core import data

    monkeypatch.setattr(data, "load_mnist", lambda *_: pytest.fail("loaded data for nothing"))
    out = tmp_path / "m.pt"
    code = main(["train", *TINY_ARGS, "--epochs", epochs, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and not out.exists()
    assert captured.err.startswith("lvm-studio: error: --epochs must be at least 1")
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("option", "value"), [("--eval-k", "0"), ("--eval-n", "0"), ("--k", "0"), ("--batch-size", "0")]
)
def test_train_with_a_count_below_one_is_refused(tmp_path, capsys, option, value):
    code = main(["train", *TINY_ARGS, "--epochs", "1", option, value, "--out", str(tmp_path / "m.pt")])
    assert_clean_error(code, capsys, f"{option} must be at least 1")


def test_resume_to_no_more_epochs_than_done_is_refused(trained, small_npz, tmp_path, capsys):
    out = tmp_path / "same.pt"
    code = main(
        ["train", "--resume", str(trained), "--epochs", "1", "--quiet", "--data", str(small_npz), "--out", str(out)]
    )
    assert_clean_error(code, capsys, "trained 1 epochs already", "--epochs is the total")
    assert not out.exists()


def test_the_help_texts_evaluation_defaults_are_train_configs():
    from lvm_studio.cli import EVAL_DEFAULTS
    from lvm_studio.core.training import TrainConfig

    assert EVAL_DEFAULTS == {"eval_k": TrainConfig().eval_k, "eval_n": TrainConfig().eval_n}


def test_main_applies_the_thread_policy_before_torch_loads():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from lvm_studio.core import threads\n"
        "calls = []\n"
        "original = threads.configure_process\n"
        "def probe():\n"
        "    calls.append('torch' in sys.modules)\n"
        "    return original()\n"
        "threads.configure_process = probe\n"
        "import lvm_studio.cli as cli\n"
        "assert 'torch' not in sys.modules, 'cli imports torch at module level'\n"
        "try:\n"
        "    cli.main(['eval', '/nonexistent.pt'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(calls)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[False]"


def test_a_malformed_thread_override_is_one_clean_error(monkeypatch, capsys, tmp_path):
    from lvm_studio.core import threads

    monkeypatch.setenv(threads.ENV, "training=many")
    monkeypatch.setattr(threads, "_configured", None)
    assert_clean_error(main(["eval", str(tmp_path / "x.pt")]), capsys, threads.ENV, "whole number")
