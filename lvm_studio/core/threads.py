"""One thread policy for the whole process: how many intra-op threads each kind of work uses.

On a small machine torch's default (one intra-op thread per core) is a trap: OpenMP threads spin
at barriers, so two of them on two cores run 5–10× slower as soon as anything else wants a core
(another process, the GUI, a background task). Measured figures and the choice for each machine
size are in docs/benchmarks.md, "Thread policy".

Roles:
    training  the training thread (the app's worker, the CLI's `train` and `eval`)
    tasks     each background task thread of the app (inpainting fits, mixture fits, grids, ...)
    gui       the GUI thread's own torch work (decoding a slider's z: tiny)
Training and the background tasks together never ask for more threads than there are cores
(on machines of two cores or more).

Overrides, strongest first: `configure(policy)` (the app's setting), the environment variable
LVM_STUDIO_THREADS ("3" for training, or "training=3,tasks=1,gui=1,wait=passive"), then
`policy_for(cores)`.

Call `configure_process()` once, before torch is imported (the CLI does it first thing), and
`use(role)` at the start of every thread that runs torch work: torch's intra-op thread count is
per thread (a thread that never sets it takes, at its first parallel op, the last value set
anywhere), so each thread sets its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass

ENV = "LVM_STUDIO_THREADS"
ROLES = ("training", "tasks", "gui")
WAIT_POLICIES = ("PASSIVE", "ACTIVE")
MALLOC_ARENAS = 2  # glibc malloc arenas for the whole process (see configure_allocator)


@dataclass(frozen=True)
class ThreadPolicy:
    training: int  # intra-op threads of the training thread
    tasks: int  # intra-op threads of each background task thread
    gui: int = 1  # the GUI thread's own torch work
    wait_policy: str = "PASSIVE"  # OMP_WAIT_POLICY: idle OpenMP threads sleep instead of spinning

    def __post_init__(self):
        for role in ROLES:
            n = getattr(self, role)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{role} threads must be a whole number ≥ 1, got {n!r}")
        if self.wait_policy not in WAIT_POLICIES:
            raise ValueError(f"wait policy must be passive or active, got {self.wait_policy!r}")

    def threads(self, role: str) -> int:
        if role not in ROLES:
            raise ValueError(f"unknown thread role {role!r}; one of {', '.join(ROLES)}")
        return int(getattr(self, role))

    def describe(self) -> str:
        return f"training {self.training}, background tasks {self.tasks}, GUI {self.gui} (OMP {self.wait_policy})"


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def policy_for(cores: int) -> ThreadPolicy:
    """The default for a machine of `cores` cores.

    2 cores: training 1, tasks 1 (one core each; the GUI's work is small and shares them).
    4: training 2, tasks 1, one core left for the GUI and the rest of the desktop.
    8: training 5, tasks 2.  16: training 8, tasks 4 (a 784-512-512 MLP at batch 128 gains
    little past about 8 threads, and the spare cores keep the desktop responsive).
    """
    cores = max(1, int(cores))
    if cores <= 2:
        return ThreadPolicy(training=1, tasks=1)
    tasks = min(4, max(1, cores // 4))
    training = min(8, cores - tasks - 1)
    return ThreadPolicy(training=max(1, training), tasks=tasks)


def _count(text: str, what: str, whole: str) -> int:
    try:
        n = int(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be a whole number of threads, got {text.strip()!r} in {whole!r}") from None
    if n < 1:
        raise ValueError(f"{what} must be at least 1 thread, got {n} in {whole!r}")
    return n


def parse(text: str, base: ThreadPolicy) -> ThreadPolicy:
    """'3' (training threads) or 'training=3,tasks=1,gui=1,wait=passive' over `base`.

    A malformed value raises ValueError with a message that names the part at fault.
    """
    text = text.strip()
    if not text:
        return base
    values: dict = {role: base.threads(role) for role in ROLES}
    values["wait_policy"] = base.wait_policy
    if "=" not in text:
        values["training"] = _count(text, "training", text)
        return ThreadPolicy(**values)
    seen = set()
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise ValueError(f"expected role=threads, got {part.strip()!r} in {text!r}")
        if key in seen:
            raise ValueError(f"{key!r} is given twice in {text!r}")
        seen.add(key)
        if key == "wait":
            wait = value.strip().upper()
            if wait not in WAIT_POLICIES:
                raise ValueError(f"wait must be passive or active, got {value.strip()!r} in {text!r}")
            values["wait_policy"] = wait
        elif key in ROLES:
            values[key] = _count(value, key, text)
        else:
            raise ValueError(f"unknown thread role {key!r} in {text!r}; use {', '.join(ROLES)} or wait")
    return ThreadPolicy(**values)


_configured: ThreadPolicy | None = None


def current() -> ThreadPolicy:
    """The policy in force: the configured one, else the environment's, else the machine's default."""
    if _configured is not None:
        return _configured
    base = policy_for(available_cores())
    env = os.environ.get(ENV, "")
    try:
        return parse(env, base)
    except ValueError as e:
        raise ValueError(f"{ENV}={env!r}: {e}") from None


def configure(policy: ThreadPolicy | None) -> ThreadPolicy:
    """Set the policy for this process (None: back to the environment/default); returns it.

    Threads pick it up at their next use(role); the OpenMP wait policy cannot change once torch
    has loaded (it takes effect at the next start).
    """
    global _configured
    _configured = policy
    return current()


def configure_process() -> ThreadPolicy:
    """Before torch is imported: the OpenMP wait policy and thread count for the whole process,
    and the allocator's arenas. Returns the policy in force; ValueError for a malformed override.

    OMP_WAIT_POLICY is read once, when the OpenMP runtime loads with torch, so it must be set
    first; values the user already exported are kept.
    """
    policy = current()
    if "torch" in sys.modules:  # too late for the wait policy; the thread counts still apply per thread
        return policy
    os.environ.setdefault("OMP_WAIT_POLICY", policy.wait_policy)
    os.environ.setdefault("OMP_NUM_THREADS", str(policy.training))
    os.environ.setdefault("MKL_NUM_THREADS", str(policy.training))
    configure_allocator()
    return policy


def configure_allocator(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX would), where glibc is the C library.

    glibc gives each thread that allocates under contention an arena of its own, up to 8 per
    core, and keeps each arena's freed pages: a process whose training, task and GUI threads all
    allocate tensor-sized blocks holds several copies of its working set. A user's own
    MALLOC_ARENA_MAX is kept. True if the limit was set here.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl has no arenas to cap)
    M_ARENA_MAX = -8  # malloc.h
    return bool(mallopt(M_ARENA_MAX, int(arenas)))


def use(role: str) -> int:
    """Set the calling thread's torch intra-op threads for its role; returns the number set."""
    import torch

    n = current().threads(role)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
