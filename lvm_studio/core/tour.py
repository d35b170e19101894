"""A lecture tour as data: its steps, their set-up, question and reveal, loaded and checked (no Qt).

The shipped tour is resources/tours/vae1.json (the lecture "Variational Autoencoder I"); a teacher
writes their own in the same format and opens it with Lecture › Open tour…. A tour file is JSON:

    {"format": "lvm-studio-tour", "version": 1, "title": "…",
     "steps": [{
        "id": "naive-mc",                         unique, letters, digits, '-' and '_'
        "title": "Naive Monte Carlo",
        "text": "rich text (Qt's HTML subset) with Unicode maths: p(x) = ∫ p(x|z) p(z) dz",
        "setup": {"model": "vae32",               a shipped model (pretrained/<name>.pt), "current" or "new"
                  "panel": "estimator_lab",       the panel brought to the front (the app's panel keys)
                  "state": {"digit": 0}},         what the panel shows first (per panel, see ui/lecture/setups.py)
        "question": {"kind": "choice", "prompt": "…",
                     "options": [{"id": "below", "label": "below log p(x)"}, …],
                     "answer": "answer"},         the key of the reveal's values holding the right option's id
                  | {"kind": "slider", "prompt": "…", "min": 0, "max": 20, "step": 0.5, "unit": "nats",
                     "initial": 5, "answer": "gap", "tolerance": 1.5},
        "reveal": {"compute": "estimator_lab",    a name in core.tour_reveals.REVEALS
                   "args": {"digit": 0, "k_max": 10000}, "seed": 0,
                   "explain": "rich text with {placeholders} from the reveal's values, e.g. {gap:.2f}"}}]}

The answer is never written in the file: it is a value the reveal computes. Every problem is one
TourError whose message names the file, the step and the field.
"""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvm_studio.core.shipped import candidate_dirs, shipped_dir
from lvm_studio.core.tour_reveals import REVEALS

FORMAT = "lvm-studio-tour"
VERSION = 1
SPECIAL_MODELS = ("current", "new")  # the model already open; a fresh, untrained one
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")


class TourError(ValueError):
    """A tour file that cannot be used; the message is one line naming where and why."""


@dataclass(frozen=True)
class Option:
    id: str
    label: str


@dataclass(frozen=True)
class Question:
    kind: str  # 'choice' | 'slider'
    prompt: str
    answer: str  # the reveal's value that holds the right answer
    options: tuple[Option, ...] = ()
    minimum: float = 0.0
    maximum: float = 1.0
    step: float = 1.0
    initial: float | None = None
    unit: str = ""
    tolerance: float = 0.0


@dataclass(frozen=True)
class Setup:
    model: str  # 'vae2', 'vae32', … (pretrained/<model>.pt), 'current' or 'new'
    panel: str
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reveal:
    compute: str
    args: dict[str, Any]
    seed: int
    explain: str


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    text: str
    setup: Setup
    question: Question
    reveal: Reveal


@dataclass(frozen=True)
class Tour:
    title: str
    steps: tuple[Step, ...]
    source: str = ""

    def index_of(self, step_id: str) -> int:
        for i, s in enumerate(self.steps):
            if s.id == step_id:
                return i
        raise KeyError(step_id)


@dataclass(frozen=True)
class Score:
    correct: bool
    prediction: Any
    answer: Any
    text: str  # one sentence for the student


def default_tour_path() -> Path:
    """The lecture's tour as shipped (resources/tours/vae1.json, lvm_studio._resources in a wheel): the
    installed copy, else the checkout's (an editable install made before the file existed)."""
    for folder in candidate_dirs("resources"):
        path = folder / "tours" / "vae1.json"
        if path.is_file():
            return path
    return shipped_dir("resources") / "tours" / "vae1.json"


def load_tour(path: str | Path | None = None, panels: set[str] | None = None, models: set[str] | None = None) -> Tour:
    """Read and check a tour file; TourError (one line) for anything wrong. panels: the panel keys the
    app has (None: any); models: the shipped model names (None: the manifest's)."""
    path = Path(path) if path is not None else default_tour_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TourError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise TourError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    return parse_tour(raw, str(path), panels, models)


def shipped_models() -> set[str]:
    """Names a tour may give as setup.model: each shipped model's file name without '.pt'."""
    from lvm_studio.core.pretrained import model_entries

    return {Path(e["file"]).stem for e in model_entries()}


def parse_tour(
    raw: Any, source: str = "<tour>", panels: set[str] | None = None, models: set[str] | None = None
) -> Tour:
    """A Tour from parsed JSON, checked field by field (TourError names the first problem)."""
    models = shipped_models() if models is None else models
    where = source
    _expect(isinstance(raw, dict), where, "the file must hold one JSON object")
    _expect(raw.get("format") == FORMAT, where, f'"format" must be "{FORMAT}"')
    _expect(raw.get("version") == VERSION, where, f'"version" must be {VERSION} (this app reads version {VERSION})')
    title = _text(raw, "title", where)
    steps_raw = raw.get("steps")
    _expect(isinstance(steps_raw, list) and steps_raw, where, '"steps" must be a non-empty list')
    steps, seen = [], set()
    for i, s in enumerate(steps_raw):
        step = _parse_step(s, f"{source}: steps[{i}]", panels, models)
        _expect(step.id not in seen, f"{source}: steps[{i}]", f"the id {step.id!r} is used twice")
        seen.add(step.id)
        steps.append(step)
    return Tour(title=title, steps=tuple(steps), source=source)


def _expect(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise TourError(f"{where}: {message}")


def _text(d: dict, key: str, where: str) -> str:
    v = d.get(key)
    _expect(isinstance(v, str) and v.strip() != "", where, f'"{key}" must be a non-empty string')
    return v


def _number(d: dict, key: str, where: str, default: float | None = None) -> float:
    v = d.get(key, default)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    _expect(ok, where, f'"{key}" must be a number')
    return float(v)


def _parse_step(s: Any, where: str, panels: set[str] | None, models: set[str]) -> Step:
    _expect(isinstance(s, dict), where, "each step must be a JSON object")
    step_id = _text(s, "id", where)
    _expect(bool(ID_PATTERN.match(step_id)), where, f"the id {step_id!r} may hold only letters, digits, '-' and '_'")
    where = f"{where} ({step_id!r})"
    title = _text(s, "title", where)
    text = _text(s, "text", where)

    setup_raw = s.get("setup")
    _expect(isinstance(setup_raw, dict), where, '"setup" must be an object')
    model = _text(setup_raw, "model", f"{where}.setup")
    _expect(
        model in SPECIAL_MODELS or model in models,
        f"{where}.setup",
        f"unknown model {model!r}; use one of {', '.join(sorted(models) + list(SPECIAL_MODELS))}",
    )
    panel = _text(setup_raw, "panel", f"{where}.setup")
    if panels is not None:
        _expect(panel in panels, f"{where}.setup", f"unknown panel {panel!r}; use one of {', '.join(sorted(panels))}")
    state = setup_raw.get("state", {})
    _expect(isinstance(state, dict), f"{where}.setup", '"state" must be an object')
    setup = Setup(model=model, panel=panel, state=dict(state))

    reveal_raw = s.get("reveal")
    _expect(isinstance(reveal_raw, dict), where, '"reveal" must be an object')
    rw = f"{where}.reveal"
    compute = _text(reveal_raw, "compute", rw)
    _expect(compute in REVEALS, rw, f"unknown computation {compute!r}; use one of {', '.join(REVEALS)}")
    spec = REVEALS[compute]
    args = reveal_raw.get("args", {})
    _expect(isinstance(args, dict), rw, '"args" must be an object')
    known = spec.arguments()
    for name in args:
        _expect(name in known, rw, f"{compute} takes no argument {name!r} (it takes: {', '.join(known) or 'none'})")
    seed = reveal_raw.get("seed")
    _expect(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, rw, '"seed" must be an integer ≥ 0')
    explain = _text(reveal_raw, "explain", rw)
    for name in _placeholders(explain, rw):
        _expect(name in spec.outputs, rw, f"the explanation's {{{name}}} is not computed by {compute}")
    reveal = Reveal(compute=compute, args=dict(args), seed=int(seed), explain=explain)
    if spec.needs_model:
        _expect(model != "new", f"{where}.setup", f"{compute} needs a trained model, not 'new'")

    question = _parse_question(s.get("question"), f"{where}.question", spec.outputs, compute)
    return Step(id=step_id, title=title, text=text, setup=setup, question=question, reveal=reveal)


def _placeholders(template: str, where: str) -> list[str]:
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise TourError(
            f"{where}: the explanation's placeholders are malformed ({e}); write {{{{ for a brace"
        ) from None
    out = []
    for f in names:
        root = re.split(r"[.\[]", f, maxsplit=1)[0]
        if not root:
            raise TourError(f"{where}: an empty {{}} in the explanation; name a value, e.g. {{gap:.2f}}")
        out.append(root)
    return out


def _parse_question(q: Any, where: str, outputs: tuple[str, ...], compute: str) -> Question:
    _expect(isinstance(q, dict), where, "must be an object")
    kind = q.get("kind")
    _expect(kind in ("choice", "slider"), where, '"kind" must be "choice" or "slider"')
    prompt = _text(q, "prompt", where)
    answer = _text(q, "answer", where)
    _expect(
        answer in outputs,
        where,
        f"the answer {answer!r} is not a value {compute} computes (it computes: {', '.join(outputs)})",
    )
    if kind == "choice":
        opts = q.get("options")
        _expect(isinstance(opts, list) and len(opts) >= 2, where, '"options" must list at least two choices')
        options = []
        for j, o in enumerate(opts):
            ow = f"{where}.options[{j}]"
            _expect(isinstance(o, dict), ow, 'each option must be {"id": …, "label": …}')
            options.append(Option(id=_text(o, "id", ow), label=_text(o, "label", ow)))
        ids = [o.id for o in options]
        _expect(len(set(ids)) == len(ids), where, "two options share an id")
        return Question(kind="choice", prompt=prompt, answer=answer, options=tuple(options))
    lo, hi = _number(q, "min", where), _number(q, "max", where)
    _expect(lo < hi, where, '"min" must be below "max"')
    step = _number(q, "step", where, (hi - lo) / 100)
    _expect(0 < step <= hi - lo, where, '"step" must be positive and at most max − min')
    initial = _number(q, "initial", where, (lo + hi) / 2)
    _expect(lo <= initial <= hi, where, '"initial" must lie between min and max')
    tolerance = _number(q, "tolerance", where)
    _expect(tolerance > 0, where, '"tolerance" must be positive')
    unit = q.get("unit", "")
    _expect(isinstance(unit, str), where, '"unit" must be a string')
    return Question(
        kind="slider",
        prompt=prompt,
        answer=answer,
        minimum=lo,
        maximum=hi,
        step=step,
        initial=initial,
        unit=unit,
        tolerance=tolerance,
    )


def score(question: Question, prediction: Any, values: dict[str, Any]) -> Score:
    """How the student's prediction compares with the answer the reveal computed."""
    answer = values[question.answer]
    if question.kind == "choice":
        labels = {o.id: o.label for o in question.options}
        right = labels.get(str(answer), str(answer))
        if prediction is None:
            return Score(False, None, answer, f"No prediction made. The answer: {right}.")
        correct = str(prediction) == str(answer)
        said = labels.get(str(prediction), str(prediction))
        text = f"You predicted “{said}”: right." if correct else f"You predicted “{said}”; the answer is “{right}”."
        return Score(correct, prediction, answer, text)
    unit = f" {question.unit}" if question.unit else ""
    value = float(answer)
    if prediction is None:
        return Score(False, None, value, f"No prediction made. The answer: {value:.4g}{unit}.")
    error = float(prediction) - value
    correct = abs(error) <= question.tolerance
    verdict = "within" if correct else "outside"
    return Score(
        correct,
        float(prediction),
        value,
        f"You predicted {float(prediction):.4g}{unit}; the answer is {value:.4g}{unit} "
        f"(off by {abs(error):.3g}, {verdict} ±{question.tolerance:g}).",
    )


def explain(reveal: Reveal, values: dict[str, Any]) -> str:
    """The reveal's explanation with its placeholders filled from the computed values."""
    return reveal.explain.format_map(values)
