"""Argument checks for `lvm-studio`: every invalid value is one line on stderr and exit 2, before any work.

No torch here (the CLI applies its thread policy before torch loads). A subcommand declares its
rules next to its arguments and `refusal(args)` applies them after parsing:

    t = sub.add_parser("train", ...)
    t.add_argument("--eval-n", type=int)
    add_checks(t, eval_n=count(1), lr=real(0, MAX_LR, lo_open=True), seed=SEED)

A rule is a function value -> reason or None; the message is "--eval-n must be at least 1 (got 0)".
`OneLineParser` makes argparse's own errors (an unknown option, "x" for an int) one line too.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

Rule = Callable[[Any], "str | None"]
CHECKS = "_checks"  # the parsed namespace's attribute holding the rules of the command that was parsed
MAX_SEED = 2**63 - 1  # torch.manual_seed and numpy's Generators take any int in [0, 2^63)
# Adam's first step moves a weight by lr / (1 − β1) = 10·lr, which must fit in float32 (3.4e38):
# 3.4e37 crashed inside Adam (issue 13, item 2). Nothing trains above 1e6; core.training.MAX_LR.
MAX_LR = 1e6


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block): 'lvm-studio: error: ...', exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"lvm-studio: error: {message.splitlines()[0] if message else 'invalid arguments'}\n")


def count(lo: int = 1, hi: int | None = None, what: str = "") -> Rule:
    """An integer from lo (to hi)."""

    def rule(value):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an integer{what}"
        if value < lo:
            return f"must be at least {lo}{what}"
        if hi is not None and value > hi:
            return f"must be at most {hi}{what}"
        return None

    return rule


SEED = count(0, MAX_SEED)


def real(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False, what: str = ""
) -> Rule:
    """A finite number in the interval (open or closed at each end)."""
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    span = f"{left}{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}{right}"

    def rule(value):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"must be a finite number in {span}{what}"
        too_low = lo is not None and (value <= lo if lo_open else value < lo)
        too_high = hi is not None and (value >= hi if hi_open else value > hi)
        if too_low or too_high:
            return f"must be in {span}{what}"
        return None

    return rule


def each(rule: Rule) -> Rule:
    """The rule for every item of a list argument (nargs)."""

    def list_rule(values):
        for v in values or ():
            reason = rule(v)
            if reason is not None:
                return f"values {reason} (one is {v})"
        return None

    return list_rule


def add_checks(parser: argparse.ArgumentParser, **rules: Rule) -> None:
    """Attach rules (by argparse dest) to a parser or subparser; later calls add to them."""
    existing = dict(parser.get_default(CHECKS) or {})
    parser.set_defaults(**{CHECKS: {**existing, **rules}})


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def refusal(args: argparse.Namespace) -> str | None:
    """The first rule a given value breaks, as the one line to print; None if all hold."""
    for dest, rule in (getattr(args, CHECKS, None) or {}).items():
        value = getattr(args, dest, None)
        if value is None:
            continue  # not given: the default applies
        reason = rule(value)
        if reason is not None:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            return f"{flag(dest)} {reason} (got {shown})"
    return None


def destination_problem(path: str | os.PathLike, what: str = "--out") -> str | None:
    """Why `path` cannot be written as a file, or None; found before a run, not after an epoch.

    Checks what the later atomic save needs without changing anything: the target is not a
    folder, its nearest existing ancestor is a folder (the save makes the missing ones), and a
    file can be created there (a probe file, removed at once).
    """
    path = Path(path)
    if path.is_dir():
        return f"{what} {path} is a folder; give a file name such as {path / 'model.pt'}"
    ancestor = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if ancestor is None:
        return None  # nothing of the path exists (a relative path on a vanished cwd): the save will say
    if not ancestor.is_dir():
        return f"{what} {path} cannot be written: {ancestor} is a file, not a folder"
    probe = ancestor / f".{path.name[:50]}.{os.getpid()}-probe.tmp"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0")
        probe.unlink()
    except OSError as e:
        return f"{what} {path} cannot be written ({e.strerror or type(e).__name__})"
    if path.exists() and not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK):
        return f"{what} {path} cannot be written (permission denied)"
    return None


def note(message: str) -> None:
    """A value that was clipped or adjusted: said on stderr, one line."""
    print(f"lvm-studio: note: {message}", file=sys.stderr)
