"""Where the shipped data lies: resources/ (MNIST) and pretrained/ (the models and their manifest).

In the repository both are top-level folders. The wheel maps them into the package as the data
packages `lvm_studio._resources` and `lvm_studio._pretrained` (pyproject.toml, [tool.setuptools]
package-dir), so an installed copy finds them with importlib.resources, wherever it is installed.
An editable install maps the same names to the repository's folders. A checkout run without
installing (or an editable install made before the mapping existed) has no such packages and
falls back to the folders beside the package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FOLDERS = ("resources", "pretrained")
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the repository root in a checkout


def data_package(folder: str) -> str:
    """The package a shipped folder is installed as: "pretrained" → "lvm_studio._pretrained"."""
    if folder not in FOLDERS:
        raise ValueError(f"unknown shipped folder {folder!r}; expected one of {', '.join(FOLDERS)}")
    return f"lvm_studio._{folder}"


def shipped_dir(folder: str) -> Path:
    """The folder as installed (importlib.resources), else the repository's top-level folder."""
    package = data_package(folder)
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        return SOURCE_ROOT / folder
    # A plain directory on disk (wheel or editable install); a zipped install would give a
    # zipfile.Path, which torch.load and np.load cannot open by name, so we do not use it.
    return root if isinstance(root, Path) else SOURCE_ROOT / folder


def candidate_dirs(folder: str) -> list[Path]:
    """Every place the folder may lie: the installed one first, then the repository's (if different)."""
    dirs = [shipped_dir(folder), SOURCE_ROOT / folder]
    resolved = []
    for d in dirs:
        d = d.resolve()
        if d not in resolved:
            resolved.append(d)
    return resolved
