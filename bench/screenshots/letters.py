"""The app on a dataset that is not MNIST: docs/letters-*.png.

    python -m bench.letters /tmp/letters --per-font 30                     # 12,000 letters A–J, 40 fonts
    lvm-studio data import /tmp/letters --out /tmp/letters.npz
    lvm-studio train --data /tmp/letters.npz --latent-dim 2 --hidden 512 256 --epochs 20 --lr-decay 0.95 \\
        --name "letters VAE-2" --out /tmp/letters2.pt
    python -m bench.screenshots.letters --data /tmp/letters.npz --model /tmp/letters2.pt --folder /tmp/letters

Writes letters-window.png (the main window at 1366 × 768 with the dataset in the status bar and the
latent map coloured by letter), letters-map.png (the map with decoded letters behind the points),
letters-traversal.png (traversals of both latent dimensions and an interpolation between two test
letters) and letters-dialog.png (File › Open dataset… after importing 200 of the letters, a text
file named .png and a PNG whose header claims 20,000 × 20,000 pixels).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from bench.common import DOCS, qt_app, settle, show
from bench.common import screenshot as shoot
from bench.common import wait_until as _wait_until
from lvm_studio.workers.tasks import shutdown_all


def wait(cond, timeout_s=300.0):
    _wait_until(cond, timeout_s, poll_s=0.01)


def _bomb(path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the imported letters (.npz)")
    p.add_argument("--model", required=True, help="a 2-D latent VAE trained on them")
    p.add_argument("--folder", help="the letters' image folder (for the dialog's picture); skipped without it")
    p.add_argument("--out", default=str(DOCS))
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    qt_app()
    from PySide6.QtCore import QSettings

    from lvm_studio.core.data import load_mnist
    from lvm_studio.ui.main_window import MainWindow
    from lvm_studio.ui.panels import PANELS
    from lvm_studio.ui.state.model_hub import ModelHub

    tmp = Path(tempfile.mkdtemp(prefix="lvm-letters-shot-"))
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    data = load_mnist(a.data)
    hub = ModelHub(data=data, data_path=a.data)
    window = MainWindow(hub, settings=settings, panel_specs=PANELS)
    window.ask_before_closing = False
    assert window.open_checkpoint(a.model), window.errors
    window.resize(1366, 768)
    window.show()
    panel = window.docks["latent_map"].widget()
    window.docks["latent_map"].raise_()
    wait(lambda: panel.codes is not None)
    panel.set_colour_mode("label")
    panel.manifold_box.setChecked(False)
    window.statusBar().clearMessage()
    settle(1.0)
    shoot(window, out / "letters-window.png")

    from lvm_studio.ui.latent.map_panel import LatentMapPanel
    from lvm_studio.ui.latent.traversal_panel import TraversalPanel

    w = show(LatentMapPanel(hub), (1100, 760))
    wait(lambda: w.codes is not None)
    settle(0.5)
    w.decode_at(0.0, 0.0)
    w.manifold_box.setChecked(True)
    wait(lambda: w.manifold.isVisible())
    settle(0.5)
    shoot(w, out / "letters-map.png")

    t = show(TraversalPanel(hub), (820, 900))
    wait(lambda: hub.latent_stats.stats is not None)
    settle()
    names = list(data.label_names)
    first = lambda name: int(np.nonzero(data.y_test == names.index(name))[0][0])  # the first test image of a label
    t.pick_a.set_index(first("B"))
    t.pick_b.set_index(first("I"))
    t.update_grid()
    t.update_strip()
    settle(1.0)
    shoot(t, out / "letters-traversal.png")

    if a.folder:
        from lvm_studio.ui.data import datasets
        from lvm_studio.ui.data.dataset_dialog import DatasetDialog

        small = tmp / "letters-sample"
        for label in sorted(p.name for p in Path(a.folder).iterdir() if p.is_dir()):
            (small / label).mkdir(parents=True)
            for f in sorted((Path(a.folder) / label).glob("*.png"))[::60][:20]:
                shutil.copy(f, small / label / f.name)
        (small / "A" / "notes.png").write_text("a text file with a picture's name")
        _bomb(small / "B" / "huge.png")
        datasets.datasets_dir = lambda: tmp  # the cache of this picture stays out of the user's folder
        dialog = DatasetDialog(None, settings)
        dialog.source.setText(str(small))
        show(dialog, (780, 660))
        dialog.start_import()
        wait(dialog.use_button.isEnabled)
        settle(0.5)
        shoot(dialog, out / "letters-dialog.png")
        dialog.close()

    for widget in (w, t):
        widget.close()
    window.close()
    shutdown_all()
    print("wrote", ", ".join(str(out / n) for n in ("letters-window.png", "letters-map.png", "letters-traversal.png")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
