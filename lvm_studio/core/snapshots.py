"""Read-only CPU replicas of a model, for readers in other threads than the one that trains it.

A replica is a deep copy on the CPU, in eval mode, with every parameter's requires_grad off: a
reader cannot train it by accident, and it shares no storage with the model it came from. A new
snapshot of the weights becomes a NEW replica (never an in-place update of an old one), so a
reader that holds the old replica keeps a consistent set of weights (docs/architecture.md, the
data flow while training).

Also the copies of training state that share no storage with it: the trainer's known-good
weights and optimizer state (reusing their buffers between copies), and the optimizer state the
worker hands to the GUI.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def frozen_replica(model: M) -> M:
    """A deep copy of `model` on the CPU, in eval mode, with no parameter requiring a gradient."""
    return _freeze(copy.deepcopy(model))


def replica_with_state(model: M, state_dict: dict) -> M:
    """A frozen replica of `model`'s architecture holding `state_dict`'s tensors.

    The tensors are adopted, not copied: pass CPU tensors that nobody else will change, such as a
    training snapshot (core.vae.copy_state_to_cpu). The GUI makes one per snapshot, so the copy
    never clones the old weights only to drop them: deepcopy's memo maps each old parameter and
    buffer straight to its snapshot tensor (the same checks as load_state_dict(strict=True)).
    """
    old = model.state_dict(keep_vars=True)  # name -> the live Parameter or buffer
    if not all(isinstance(t, torch.Tensor) for t in (*old.values(), *state_dict.values())):
        return _replica_by_loading(model, state_dict)  # extra (non-tensor) state: the general path
    missing, unexpected = old.keys() - state_dict.keys(), state_dict.keys() - old.keys()
    if missing or unexpected:
        raise RuntimeError(f"snapshot does not fit the model: missing {sorted(missing)}, extra {sorted(unexpected)}")
    memo: dict[int, torch.Tensor] = {}
    for name, t_old in old.items():
        t_new = state_dict[name].detach().to("cpu")
        if t_new.shape != t_old.shape:
            raise RuntimeError(f"snapshot {name}: shape {tuple(t_new.shape)}, the model has {tuple(t_old.shape)}")
        if isinstance(t_old, nn.Parameter):
            t_new = nn.Parameter(t_new, requires_grad=False)  # shares t_new's storage
        memo.setdefault(id(t_old), t_new)  # a tied weight stays tied
    replica = copy.deepcopy(model, memo)
    # tensors outside the state (non-persistent buffers) were copied; .to is a no-op on CPU ones
    return _freeze(replica)


def _replica_by_loading(model: M, state_dict: dict) -> M:
    replica = copy.deepcopy(model)
    replica.load_state_dict(state_dict, assign=True)
    return _freeze(replica)


def _freeze(model: M) -> M:
    model = model.to("cpu").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# --- copies of training state that share no storage with it ---------------------------------


def copy_into(dst, src):
    """src copied into dst's tensors where shape, dtype and device match (no new memory), else afresh."""
    if torch.is_tensor(src):
        if torch.is_tensor(dst) and dst.shape == src.shape and dst.dtype == src.dtype and dst.device == src.device:
            return dst.copy_(src.detach())
        return src.detach().clone()
    if isinstance(src, dict):
        old = dst if isinstance(dst, dict) else {}
        return {k: copy_into(old.get(k), v) for k, v in src.items()}
    if isinstance(src, list):
        old = dst if isinstance(dst, list) and len(dst) == len(src) else [None] * len(src)
        return [copy_into(a, b) for a, b in zip(old, src, strict=True)]
    return src


def copy_optimizer_state(state: dict, device: torch.device | str | None = None) -> dict:
    """A deep copy of an optimizer state dict sharing no storage with it (on `device` if given)."""

    def copy(v):
        if torch.is_tensor(v):
            return v.detach().to(device, copy=True) if device is not None else v.detach().clone()
        if isinstance(v, dict):
            return {k: copy(x) for k, x in v.items()}
        if isinstance(v, list):
            return [copy(x) for x in v]
        return v

    return copy(state)
