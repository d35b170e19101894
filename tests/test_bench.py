"""Every benchmark and screenshot script still imports and parses its arguments, so bench/ cannot rot.

In-process (fast): each module under bench/ is imported and its main(["--help"]) must print a
usage and exit 0; one script also runs as `python -m` in a fresh process, as the docs say to.
"""

import contextlib
import importlib
import io
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HELPERS = {"bench.common", "bench.screenshots"}  # libraries of the scripts, with no command line of their own


def _bench_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(ROOT / "bench")], prefix="bench."):
        names.append(info.name)
    return sorted(set(names) - HELPERS)


@pytest.fixture
def bench_on_path(monkeypatch):
    """bench/ is a folder of the repository, not an installed package: import it from the root."""
    monkeypatch.syspath_prepend(str(ROOT))


def test_the_suite_is_found():
    names = _bench_modules()
    assert {"bench.run", "bench.latency", "bench.screenshots.__main__", "bench.screenshots.latent"} <= set(names)
    assert "bench.screenshots.training" in names


@pytest.mark.parametrize("name", _bench_modules())
def test_module_imports_and_prints_its_help(name, bench_on_path):
    module = importlib.import_module(name)
    assert callable(getattr(module, "main", None)), f"{name} has no main(argv)"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    assert out.getvalue().startswith("usage:"), out.getvalue()[:200]


def test_bench_source_edits_no_import_path():
    for path in (ROOT / "bench").rglob("*.py"):
        assert "sys.path" not in path.read_text(encoding="utf-8"), f"{path.relative_to(ROOT)} edits sys.path"


def test_runs_as_a_module_from_the_repository_root():
    proc = subprocess.run(
        [sys.executable, "-m", "bench.screenshots", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout and "--only" in proc.stdout
