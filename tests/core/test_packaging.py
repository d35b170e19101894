"""Packaging invariants: a Qt-free core, a PySide6 release that does not abort, pinned requirements,
and a wheel that ships the data (MNIST, the pretrained models) and finds it where it is installed."""

import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUI_PREFIXES = ("PySide6", "shiboken6", "pyqtgraph", "PyQt")


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **env}
    )


def test_core_imports_no_gui_module():
    """Importing lvm_studio.core and every submodule in a fresh interpreter loads no Qt or pyqtgraph."""
    code = f"""
import importlib, pkgutil, sys
import lvm_studio.core as core
names = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "lvm_studio.core."))
for name in names:
    importlib.import_module(name)
gui = sorted(m for m in sys.modules if m.startswith({GUI_PREFIXES!r}))
print("IMPORTED", ",".join(names))
print("GUI", ",".join(gui))
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(("IMPORTED", "GUI")))
    imported = lines["IMPORTED"].split(",")
    for expected in ("data", "vae", "estimators", "linear_gaussian", "device"):
        assert f"lvm_studio.core.{expected}" in imported
    gui = [m for m in lines["GUI"].strip().split(",") if m]
    assert not gui, f"lvm_studio.core pulled in GUI modules: {sorted({m.split('.')[0] for m in gui})}"


def test_pyside6_void_calls_do_not_abort():
    """PySide6 6.12.0 decrefs None on each void call and dies with 'none_dealloc'; ours must not."""
    code = (
        "from PySide6.QtCore import QObject\n"
        "o = QObject()\n"
        "[o.setObjectName('x') for _ in range(200_000)]\n"
        "print('survived')\n"
    )
    result = _run(code, QT_QPA_PLATFORM="offscreen")
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "survived" in result.stdout


def test_pyproject_pins_the_known_good_requirements():
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    requirements = project["dependencies"]
    joined = " ".join(r.replace(" ", "") for r in requirements)
    assert "PySide6-Essentials>=6.8,!=6.12.0" in joined
    assert "torch>=2.4" in joined
    assert any(r.startswith("scipy") for r in requirements)
    test_extra = project["optional-dependencies"]["test"]
    assert any(r.startswith("pytest-qt") for r in test_extra)


# --- the wheel ships the data (issue 11.15) ----------------------------------------------

DATA_PACKAGES = {"lvm_studio._resources": "resources", "lvm_studio._pretrained": "pretrained"}


def _setuptools_config() -> dict:
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def _shipped_files() -> list[str]:
    """The data files the wheel must hold, as paths inside it."""
    from lvm_studio.core.pretrained import MANIFEST, load_manifest

    manifest = load_manifest(ROOT / "pretrained")
    files = ["lvm_studio/_resources/mnist.npz", f"lvm_studio/_pretrained/{MANIFEST}"]
    entries = manifest["models"] + manifest.get("classifiers", [])
    return files + [f"lvm_studio/_pretrained/{m['file']}" for m in entries]


def test_every_module_folder_is_a_listed_package():
    """packages.find cannot discover the mapped data folders, so pyproject lists the packages: a new
    folder of modules under lvm_studio/ that is not listed would be missing from the wheel."""
    config = _setuptools_config()
    folders = {
        ".".join(p.relative_to(ROOT).parts)
        for p in (ROOT / "lvm_studio").rglob("*")
        if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))
    } | {"lvm_studio"}
    listed = set(config["packages"])
    assert folders - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - folders == set(DATA_PACKAGES)
    assert config["package-dir"] == DATA_PACKAGES
    for package, folder in DATA_PACKAGES.items():
        assert (ROOT / folder / "__init__.py").is_file(), f"{folder}/ must be a regular package for {package}"


def _copy_source(dest: Path) -> Path:
    """The files a build reads, copied so that the build leaves no build/ folder in the clone."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("lvm_studio", "resources", "pretrained"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


def _setuptools_builds_wheels() -> bool:
    """setuptools >= 70.1 builds wheels (and editable wheels) itself; older ones need the `wheel`
    package, which a bare venv lacks. The test extra asks for it (pyproject.toml)."""
    try:
        major, minor = (int(p) for p in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel --no-deps` of a copy of the source (about 5 s)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_source(tmp_path_factory.mktemp("src"))
    # without build isolation when the installed setuptools can build a wheel: no build venv to set up
    isolation = ["--no-build-isolation"] if _setuptools_builds_wheels() else []
    # an absolute path: a bare name would be looked up on the package index
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(tmp), str(src.resolve())]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (path,) = tmp.glob("lvm_studio-*.whl")
    return path


def test_the_wheel_holds_the_data_and_the_entry_point(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        sizes = {i.filename: i.file_size for i in z.infolist()}
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    for name in _shipped_files():
        assert name in names, f"the wheel lacks {name}"
        assert sizes[name] == (ROOT / name.replace("lvm_studio/_", "", 1)).stat().st_size
    assert "lvm_studio/cli.py" in names and "lvm_studio/core/shipped.py" in names
    assert "lvm-studio = lvm_studio.cli:main" in entry_points
    assert not [n for n in names if n.startswith(("resources/", "pretrained/", "tests/", "bench/"))]


def test_the_installed_wheel_finds_its_own_data(wheel, tmp_path):
    """Unpacked outside the clone (as pip would install it): the data is found inside the package,
    the default model verifies, and it counts as shipped (the app never writes it)."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    code = """
from lvm_studio.core import data, pretrained
d = pretrained.pretrained_dir()
entry = next(m for m in pretrained.model_entries() if m["file"] == pretrained.load_manifest()["default"])
print("DIR", d)
print("DATA", data.default_data_path())
print("DEFAULT", pretrained.default_checkpoint_path())
print("OK", pretrained.verify(entry), pretrained.is_shipped(pretrained.default_checkpoint_path()))
"""
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    out = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert Path(out["DIR"]) == site / "lvm_studio" / "_pretrained"
    assert Path(out["DATA"]) == site / "lvm_studio" / "_resources" / "mnist.npz"
    assert Path(out["DEFAULT"]).parent == site / "lvm_studio" / "_pretrained"
    assert out["OK"] == "True True"


def test_an_editable_install_finds_the_repository_data_with_importlib_resources(tmp_path):
    """The editable wheel setuptools builds maps lvm_studio._pretrained and lvm_studio._resources to
    the repository's folders; with only its import finder on the path (no site-packages, cwd
    outside the clone), importlib.resources finds them and core.shipped uses them."""
    if not _setuptools_builds_wheels():
        pytest.skip("needs setuptools >= 70.1 (the test extra) to build an editable wheel")
    build = f"from setuptools import build_meta\nprint(build_meta.build_editable({str(tmp_path)!r}))"
    result = subprocess.run([sys.executable, "-c", build], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel_name = result.stdout.strip().splitlines()[-1]
    site = tmp_path / "site"
    with zipfile.ZipFile(tmp_path / wheel_name) as z:
        finders = [n for n in z.namelist() if n.startswith("__editable__") and n.endswith("_finder.py")]
        assert finders, f"not a finder-based editable wheel: {z.namelist()}"
        z.extract(finders[0], site)
    finder = Path(finders[0]).stem
    code = f"""
import sys
sys.path.insert(0, {str(site)!r})
import {finder} as finder
finder.install()
from importlib import resources
from lvm_studio.core import pretrained, shipped
print("PRETRAINED", resources.files("lvm_studio._pretrained"))
print("RESOURCES", resources.files("lvm_studio._resources"))
print("DIR", pretrained.pretrained_dir())
print("SHIPPED", pretrained.is_shipped(pretrained.default_checkpoint_path()))
"""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120, cwd=outside
    )
    assert result.returncode == 0, result.stderr
    out = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert Path(out["PRETRAINED"]) == ROOT / "pretrained"
    assert Path(out["RESOURCES"]) == ROOT / "resources"
    assert Path(out["DIR"]) == ROOT / "pretrained"
    assert (Path(out["RESOURCES"]) / "mnist.npz").is_file()
    assert out["SHIPPED"] == "True"


def test_a_checkout_without_the_data_packages_falls_back_to_its_folders(tmp_path):
    """Run from the clone with no install (no site-packages): the folders beside the package."""
    code = """
from lvm_studio.core import pretrained, shipped
import importlib.util
print("SPEC", importlib.util.find_spec("lvm_studio._pretrained") is None)
print("DIR", pretrained.pretrained_dir())
print("RES", shipped.shipped_dir("resources"))
"""
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert out["SPEC"] == "True"
    assert Path(out["DIR"]) == ROOT / "pretrained" and Path(out["RES"]) == ROOT / "resources"
