"""The one place where the compute device is chosen, and where weights are copied off it."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def choose_device(preference: str = "auto") -> torch.device:
    """Map a user preference ('auto', 'cpu', 'cuda' or 'cuda:N') to a torch.device.

    'auto' takes CUDA when present. Asking for CUDA on a machine without it is an
    error rather than a silent fallback, so a user never believes a CPU run is a GPU one.
    """
    preference = (preference or "auto").lower()
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cpu":
        return torch.device("cpu")
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {preference!r} was asked for, but CUDA is not available on this machine")
        return torch.device(preference)
    raise ValueError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def cuda_available() -> bool:
    return torch.cuda.is_available()


class StateCopier:
    """CPU copies of a module's weights for readers in other threads, taken without stalling training.

        copier.start(step, epoch)      # begin a copy of the weights as they are now
        ready = copier.poll()          # (step, epoch, state_dict) once the copy is done, else None

    On the CPU a copy is made at start() and poll() hands it over. On CUDA start() clones the
    weights on the training stream (device to device, microseconds: the optimizer may overwrite
    them as soon as the next step runs), then a side stream copies the clones into pinned host
    buffers with non_blocking copies and records an event; training goes on meanwhile. poll()
    asks the event without waiting and, once it has fired, copies the pinned buffers into fresh
    pageable tensors for the reader, so the pinned buffers are reused by the next copy and a
    reader never holds memory the copier will overwrite. One copy is in flight at a time.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device | str = "cpu"):
        self.module = module
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._ready: tuple | None = None  # CPU: (step, epoch, state_dict)
        self._in_flight: tuple | None = None  # CUDA: (step, epoch, event, device clones)
        self._pinned: dict[str, torch.Tensor] | None = None
        self._stream = torch.cuda.Stream(self.device) if self.cuda else None

    @property
    def busy(self) -> bool:
        """A copy was started and not yet handed over by poll()."""
        return self._ready is not None or self._in_flight is not None

    def start(self, step: int, epoch: float) -> bool:
        """Begin a copy of the weights as they are now; False (and nothing done) while one is pending."""
        if self.busy:
            return False
        state = self.module.state_dict()
        if not self.cuda:
            self._ready = (step, epoch, {k: v.detach().to("cpu", copy=True) for k, v in state.items()})
            return True
        if self._pinned is None or self._pinned.keys() != state.keys():
            self._pinned = {k: torch.empty(v.shape, dtype=v.dtype, pin_memory=True) for k, v in state.items()}
        clones = {k: v.detach().clone() for k, v in state.items()}  # on the training stream
        self._stream.wait_stream(torch.cuda.current_stream(self.device))  # the clones are written first
        with torch.cuda.stream(self._stream):
            for k, v in clones.items():
                self._pinned[k].copy_(v, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        self._in_flight = (step, epoch, event, clones)  # the clones live until the event has fired
        return True

    def poll(self) -> tuple[int, float, dict] | None:
        """The finished copy as (step, epoch, state_dict of CPU tensors), or None (not started or not done)."""
        if self._ready is not None:
            ready, self._ready = self._ready, None
            return ready
        if self._in_flight is None or not self._in_flight[2].query():
            return None
        step, epoch, _, _ = self._in_flight
        self._in_flight = None
        # the reader gets its own memory; the pinned buffers wait for the next copy
        state = {k: torch.empty(v.shape, dtype=v.dtype).copy_(v) for k, v in self._pinned.items()}
        return step, epoch, state

    def wait(self) -> tuple[int, float, dict] | None:
        """poll(), after waiting for a copy in flight to finish."""
        if self._in_flight is not None:
            self._in_flight[2].synchronize()
        return self.poll()
