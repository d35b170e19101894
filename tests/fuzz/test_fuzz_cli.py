"""Fuzzing the command line in-process (cli.main(argv)): random argument vectors give exit 2 with one
line on stderr, or reach their command with every value in range; never a traceback, never a file
written or a folder made before the command runs."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import pytest
from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st

from lvm_studio import cli, cli_pixel
from lvm_studio.core import threads

ARGV_EXAMPLES = 80

FLAGS = {
    "train": ["--latent-dim", "--hidden", "--epochs", "--k", "--beta", "--kl-warmup", "--lr", "--lr-decay",
              "--min-lr", "--batch-size", "--grad-clip", "--eval-every", "--eval-k", "--eval-n", "--seed", "--out",
              "--resume", "--objective", "--activation", "--likelihood", "--device", "--quiet", "--data", "--name"],
    "eval": ["--k", "--n", "--iw-ks", "--split", "--seed", "--json", "--device", "--data"],
    "train-made": ["--hidden", "--epochs", "--batch-size", "--lr", "--lr-decay", "--patience", "--max-minutes",
                   "--seed", "--out", "--no-direct"],
    "eval-made": ["--n", "--json"],
    "": ["--smoke", "--screenshot", "--checkpoint", "--data"],
}  # fmt: skip
VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["0", "1", "-1", "1e3", "3.4e37", "1e308", "inf", "-inf", "nan", "0.5", "", "x", "--", "-"]),
    st.sampled_from(["OUT/m.pt", "OUT", "OUT/file.txt/m.pt", "/proc/lvm.pt", "OUT/new/dir/m.pt", "m.pt"]),
    st.text(max_size=8),
)


@st.composite
def argvs(draw):
    command = draw(st.sampled_from(sorted(FLAGS)))
    argv = [command] if command else []
    if command in ("eval", "eval-made"):
        argv.append(draw(st.sampled_from(["OUT/m.pt", "missing.pt", ""])))
    for _ in range(draw(st.integers(0, 6))):
        argv.append(draw(st.sampled_from(FLAGS[command] + ["--help", "--bogus"])))
        for _ in range(draw(st.integers(0, 2))):
            argv.append(draw(VALUES))
    return argv


def _snapshot(folder: Path):
    return sorted((str(p.relative_to(folder)), p.is_dir()) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def reached():
    """Every command replaced by a recorder: the fuzzing tests the checks, not training."""
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        for module, name in ((cli, "cmd_train"), (cli, "cmd_eval"), (cli, "cmd_gui"), (cli_pixel, "run_pixel_command")):
            mp.setattr(module, name, lambda args: calls.append(args) or 0)
        mp.setattr(threads, "configure_process", lambda: None)  # the process's thread policy stays as it is
        yield calls


@fuzz(ARGV_EXAMPLES)
@given(argvs())
def test_random_argument_vectors(reached, argv):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "OUT").mkdir()
        (root / "OUT" / "file.txt").write_text("x")
        argv = [a.replace("OUT", str(root / "OUT")) for a in argv]
        before = _snapshot(root)
        out, err = io.StringIO(), io.StringIO()
        n_before = len(reached)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(argv)
        finally:
            os.chdir(cwd)
        assert _snapshot(root) == before, "the command line changed files before any work"
    stderr = err.getvalue()
    assert "Traceback" not in stderr
    if len(reached) > n_before:  # it reached its command: every given value is in range
        assert code == 0 and stderr == ""
        args = reached[-1]
        for name in ("epochs", "eval_n", "eval_k", "batch_size", "n"):
            value = getattr(args, name, None)
            assert value is None or value >= 1, (name, value)
        lr = getattr(args, "lr", None)
        assert lr is None or 0 < lr <= 1e6
    elif code == 0:  # --help, where argparse took it as the flag (not as another flag's value)
        assert "--help" in argv and out.getvalue().startswith("usage:") and stderr == ""
    else:
        assert code == 2, (argv, code, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lvm-studio: error: "), stderr
