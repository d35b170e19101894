"""`lvm-studio --smoke-tour`: open the window, walk every step of the lecture tour, reveal each, print
one JSON line per step with what it computed, leave the tour, and exit 0 when every reveal worked.

Each line: {"step": n, "id": …, "compute": …, "seed": …, "seconds": …, "values": {…}, "correct": …};
the prediction is left unmade (the answer is printed as computed). A last line sums up.
"""

from __future__ import annotations

import json
import time

from PySide6.QtCore import QObject, QTimer

REVEAL_TIMEOUT_S = 300.0


class TourSmoke(QObject):
    def __init__(self, window, tour_path: str | None = None, screenshots: str | None = None):
        super().__init__(window)
        self.window = window
        self.lecture = window.lecture
        self.tour_path = tour_path
        self.exit_code = 1
        self.errors: list[str] = []
        self.steps_done = 0
        self._t0 = 0.0
        self._timeout = QTimer(self)
        self._timeout.setSingleShot(True)
        self._timeout.timeout.connect(self._on_timeout)

    def schedule(self) -> None:
        QTimer.singleShot(0, self._start)

    def _start(self) -> None:
        self._t0 = time.perf_counter()
        lec = self.lecture
        lec.revealed.connect(self._on_revealed)
        lec.reveal_failed.connect(self._on_failed)
        try:
            tour = lec.load(self.tour_path)
        except Exception as e:
            self.errors.append(str(e))
            self._finish()
            return
        if not lec.start(tour):
            self.errors.append("the tour did not start")
            self._finish()
            return
        self._reveal()

    def _reveal(self) -> None:
        self._timeout.start(int(1000 * REVEAL_TIMEOUT_S))
        self.lecture.reveal()

    def _on_revealed(self, outcome) -> None:
        self._timeout.stop()
        self.lecture.stage.finish()
        lec = self.lecture
        step = lec.step
        values = dict(outcome.result.values)
        line = {
            "step": lec.index + 1,
            "id": step.id,
            "compute": step.reveal.compute,
            "seed": step.reveal.seed,
            "model": self.window.hub.name,
            "seconds": round(outcome.seconds, 2),
            "answer": values.get(step.question.answer),
            "values": values,
        }
        print(json.dumps(line), flush=True)
        self.steps_done += 1
        QTimer.singleShot(0, self._advance)

    def _on_failed(self, message: str) -> None:
        self._timeout.stop()
        lec = self.lecture
        self.errors.append(f"step {lec.index + 1} ({lec.step.id}): {message}")
        print(json.dumps({"step": lec.index + 1, "id": lec.step.id, "error": message}), flush=True)
        QTimer.singleShot(0, self._advance)

    def _on_timeout(self) -> None:
        self._on_failed(f"no result after {REVEAL_TIMEOUT_S:g} s")

    def _advance(self) -> None:
        lec = self.lecture
        if lec.index < len(lec.tour.steps) - 1:
            lec.next()
            self._reveal()
        else:
            self._finish()

    def _finish(self) -> None:
        from PySide6.QtWidgets import QApplication

        lec = self.lecture
        restored_name = None
        if lec.active:
            lec.leave()
            restored_name = self.window.hub.name
        summary = {
            "tour": lec.tour.title if lec.tour else None,
            "steps": self.steps_done,
            "of": len(lec.tour.steps) if lec.tour else 0,
            "errors": self.errors,
            "restored_model": restored_name,
            "seconds": round(time.perf_counter() - self._t0, 1),
        }
        print(json.dumps(summary), flush=True)
        self.exit_code = 0 if not self.errors and lec.tour and self.steps_done == len(lec.tour.steps) else 1
        self.window.close()
        QApplication.instance().quit()
