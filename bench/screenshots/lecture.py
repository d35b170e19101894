"""Screenshots of the lecture tour in the main window at 1,366 × 768: docs/lecture-*.png.

    python -m bench.screenshots.lecture [--out DIR] [--only STEP_ID ...]

Each chosen step is set up, a prediction made, the reveal computed (the shipped tour's seeded
arguments) and the window grabbed once the panel has drawn it. lecture-pick-phi-presenter.png is
the same step in presenter mode.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import DOCS, qt_app, settle, wait_until
from bench.common import screenshot as shoot
from lvm_studio.workers.tasks import shutdown_all

SIZE = (1366, 768)
# step id -> (prediction, extra seconds for the panel's own background work to land)
STEPS = {
    "factors": ("top", 1.0),
    "em": ("yes", 1.0),
    "naive-mc": ("above", 1.0),
    "tight": ("yes", 4.0),
    "pick-phi": ("b", 0.5),
    "missing-pixels": ("marginals", 4.0),
}


def _reveal(lec, step_id: str) -> None:
    done = []
    lec.revealed.connect(done.append)
    lec.reveal()
    wait_until(lambda: done, 600.0, poll_s=0.01, what=f"the reveal of {step_id}")
    lec.revealed.disconnect(done.append)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DOCS), help="folder for the PNG files (default: docs/)")
    p.add_argument("--only", nargs="*", default=None, choices=tuple(STEPS) + ("presenter",))
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    app = qt_app()
    from PySide6.QtCore import QSettings

    from lvm_studio.core.data import load_mnist
    from lvm_studio.ui.main_window import MainWindow
    from lvm_studio.ui.state.model_hub import ModelHub

    tmp = tempfile.TemporaryDirectory(prefix="lvm-shots-")
    settings = QSettings(str(Path(tmp.name) / "layout.ini"), QSettings.Format.IniFormat)
    hub = ModelHub(data=load_mnist())
    w = MainWindow(hub, settings=settings)
    w.ask_before_closing = False
    w.open_startup_model()
    w.resize(*SIZE)
    w.show()
    settle(1.0)
    lec = w.lecture
    lec.start()
    want = lambda name: a.only is None or name in a.only
    for step_id, (prediction, extra_s) in STEPS.items():
        if not (want(step_id) or (step_id == "pick-phi" and want("presenter"))):
            continue
        lec.go_to(lec.tour.index_of(step_id))
        settle(0.5)
        lec.predict(prediction)
        _reveal(lec, step_id)
        lec.stage.finish()
        settle(extra_s)
        if want(step_id):
            shoot(w, out / f"lecture-{step_id}.png", settle_s=0.5)
        if step_id == "pick-phi" and want("presenter"):
            lec.set_presenter(True)
            settle(0.5)
            shoot(w, out / "lecture-pick-phi-presenter.png", settle_s=0.5)
            lec.set_presenter(False)
    lec.leave()
    w.close()
    shutdown_all(5.0)
    tmp.cleanup()
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
