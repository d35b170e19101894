"""Read-only CPU replicas: copies that share no storage, frozen, and adopting a snapshot's tensors."""

import pytest
import torch

from lvm_studio.core.snapshots import frozen_replica, replica_with_state
from lvm_studio.core.vae import VAE, VAEConfig, copy_state_to_cpu

TINY = VAEConfig(latent_dim=2, hidden=(8,))


def test_a_frozen_replica_is_an_equal_copy_that_cannot_train():
    torch.manual_seed(0)
    model = VAE(TINY).train()
    replica = frozen_replica(model)
    assert replica is not model and not replica.training and model.training
    assert all(not p.requires_grad for p in replica.parameters())
    assert all(p.requires_grad for p in model.parameters())  # the original is left as it was
    for (k, a), b in zip(model.state_dict().items(), replica.state_dict().values()):
        assert torch.equal(a, b), k
        assert a.data_ptr() != b.data_ptr(), k  # no shared storage
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert not torch.equal(next(model.parameters()), next(replica.parameters()))


def test_replica_with_state_adopts_the_snapshot_and_leaves_the_old_replica_alone():
    torch.manual_seed(0)
    old = frozen_replica(VAE(TINY))
    torch.manual_seed(1)
    snapshot = copy_state_to_cpu(VAE(TINY))
    before = {k: v.clone() for k, v in old.state_dict().items()}
    new = replica_with_state(old, snapshot)
    assert new is not old and not new.training
    assert all(not p.requires_grad for p in new.parameters())
    for k, v in new.state_dict().items():
        assert torch.equal(v, snapshot[k]) and v.data_ptr() == snapshot[k].data_ptr(), k  # adopted, not copied
    for k, v in old.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_replica_with_state_keeps_tied_weights_tied_and_copies_non_persistent_buffers():
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 3)
            self.b = torch.nn.Linear(3, 3)
            self.b.weight = self.a.weight  # one Parameter under two names
            self.register_buffer("scale", torch.ones(3), persistent=False)

    old = frozen_replica(Tied())
    snapshot = {k: v.clone() + 1.0 for k, v in old.state_dict().items()}
    new = replica_with_state(old, snapshot)
    assert new.a.weight is new.b.weight and isinstance(new.a.weight, torch.nn.Parameter)
    assert new.a.weight.data_ptr() == snapshot["a.weight"].data_ptr()
    assert torch.equal(new.scale, old.scale) and new.scale.data_ptr() != old.scale.data_ptr()


def test_replica_with_state_rejects_a_snapshot_of_another_architecture():
    old = frozen_replica(VAE(TINY))
    snapshot = copy_state_to_cpu(VAE(TINY))
    name = next(iter(snapshot))
    with pytest.raises(RuntimeError, match="missing"):
        replica_with_state(old, {k: v for k, v in snapshot.items() if k != name})
    with pytest.raises(RuntimeError, match="extra"):
        replica_with_state(old, {**snapshot, "extra.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="shape"):
        replica_with_state(old, {**snapshot, name: torch.zeros(1)})
