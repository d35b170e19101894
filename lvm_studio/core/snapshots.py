"""Read-only CPU replicas of a model, for readers in other threads than the one that trains it.

A replica is a deep copy on the CPU, in eval mode, with every parameter's requires_grad off: a
reader cannot train it by accident, and it shares no storage with the model it came from. A new
snapshot of the weights becomes a NEW replica (never an in-place update of an old one), so a
reader that holds the old replica keeps a consistent set of weights (docs/architecture.md, the
data flow while training).
"""

from __future__ import annotations

import copy
from typing import TypeVar

from torch import nn

M = TypeVar("M", bound=nn.Module)


def frozen_replica(model: M) -> M:
    """A deep copy of `model` on the CPU, in eval mode, with no parameter requiring a gradient."""
    return _freeze(copy.deepcopy(model))


def replica_with_state(model: M, state_dict: dict) -> M:
    """A frozen replica of `model`'s architecture holding `state_dict`'s tensors.

    The tensors are adopted, not copied (load_state_dict(assign=True)): pass CPU tensors that
    nobody else will change, such as a training snapshot (core.vae.copy_state_to_cpu).
    """
    replica = copy.deepcopy(model)
    replica.load_state_dict(state_dict, assign=True)
    return _freeze(replica)


def _freeze(model: M) -> M:
    model = model.to("cpu").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
