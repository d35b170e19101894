"""Training a mixture-prior VAE in the Trainer (VaDE's schedule) and through the command line.

Tiny model (784-16-2, three components) on a 512-image slice of MNIST, seeded.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from lvm_studio.cli import main
from lvm_studio.core.checkpoint import history_from_checkpoint, load_checkpoint, model_from_checkpoint
from lvm_studio.core.data import MNIST
from lvm_studio.core.history import EvalRecord, History
from lvm_studio.core.mixture_training import affine, augment
from lvm_studio.core.training import Notice, TrainConfig, Trainer
from lvm_studio.core.vae import VAE, VAEConfig

MIXTURE = VAEConfig(latent_dim=2, hidden=(16,), prior="mixture", components=3)


@pytest.fixture(scope="module")
def small(mnist) -> MNIST:
    return MNIST(
        x_train=mnist.x_train[:512],
        y_train=mnist.y_train[:512],
        x_val=mnist.x_val[:100],
        y_val=mnist.y_val[:100],
        x_test=mnist.x_test[:200],
        y_test=mnist.y_test[:200],
        source="slice",
    )


def run(trainer: Trainer, until=None) -> list:
    events = []
    for event in trainer.run():
        events.append(event)
        if until is not None and until(event):
            trainer.stop()
    return events


def test_pretraining_leaves_the_prior_alone_then_em_initialises_it_then_joint_training(small):
    torch.manual_seed(0)
    model = VAE(MIXTURE)
    start = {k: v.clone() for k, v in model.mixture.state_dict().items()}
    config = TrainConfig(
        epochs=2, batch_size=64, pretrain_epochs=1, eval_n=50, eval_k=5, cluster_n=200, snapshot_interval_s=0.0
    )
    trainer = Trainer(model, small, config)
    events = []
    seen_at_init = None
    for event in trainer.run():
        events.append(event)
        if isinstance(event, Notice) and event.kind == "prior_initialised":
            # after the autoencoder epoch the prior was still untouched; EM has just set it
            seen_at_init = trainer.step
            assert "EM on 512 codes (10 restarts" in event.message
    assert seen_at_init == 8  # one epoch of 512 / 64 steps
    evals = [e for e in events if isinstance(e, EvalRecord)]
    assert len(evals) == 2
    for e in evals:
        assert 0.0 <= e.cluster_acc <= 1.0 and 0.0 <= e.cluster_nmi <= 1.0
    after = model.mixture.state_dict()
    assert not torch.equal(after["loc"], start["loc"])
    # the history keeps the clustering figures through a checkpoint
    back = History.from_dict(trainer.history.to_dict())
    assert back.evals[-1].cluster_acc == evals[-1].cluster_acc


def test_pretraining_alone_never_changes_the_prior(small):
    torch.manual_seed(0)
    model = VAE(MIXTURE)
    start = {k: v.clone() for k, v in model.mixture.state_dict().items()}
    config = TrainConfig(epochs=1, batch_size=64, pretrain_epochs=1, eval_n=20, eval_k=2, cluster_n=50)
    events = run(Trainer(model, small, config))
    assert not any(isinstance(e, Notice) and e.kind == "prior_initialised" for e in events)
    for k, v in model.mixture.state_dict().items():
        assert torch.equal(v, start[k]), k


def test_affine_moves_and_rotates_whole_pixels_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3, 28, 28)
    x[:, 4:24, 4:24] = torch.rand(3, 20, 20, generator=g)  # a blank border: nothing leaves the image
    flat = x.reshape(3, 784)
    zero = torch.zeros(3)
    right, down = torch.tensor([[2.0, 0.0]] * 3), torch.tensor([[0.0, 1.0]] * 3)
    assert torch.allclose(affine(flat, zero, torch.zeros(3, 2)), flat, atol=1e-5)
    assert torch.allclose(affine(flat, zero, right).view(3, 28, 28), torch.roll(x, 2, dims=2), atol=1e-5)
    assert torch.allclose(affine(flat, zero, down).view(3, 28, 28), torch.roll(x, 1, dims=1), atol=1e-5)
    quarter = torch.full((3,), math.pi / 2)  # clockwise on the screen: rot90 with k = -1 on (row, column)
    assert torch.allclose(
        affine(flat, quarter, torch.zeros(3, 2)).view(3, 28, 28), torch.rot90(x, -1, (1, 2)), atol=1e-5
    )
    # rotate first, then move
    both = affine(flat, quarter, down).view(3, 28, 28)
    assert torch.allclose(both, torch.roll(torch.rot90(x, -1, (1, 2)), 1, dims=1), atol=1e-5)


def _dot_centres(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The centre of mass of each image (n, 28, 28), in pixels from the image centre (13.5, 13.5)."""
    grid = torch.arange(28.0)
    mass = y.sum((1, 2))  # (n,)
    return (y.sum(1) * grid).sum(1) / mass - 13.5, (y.sum(2) * grid).sum(1) / mass - 13.5


def test_augment_moves_digits_by_at_most_a_tenth_of_the_side_then_turns_them_by_at_most_10_degrees():
    x = torch.zeros(200, 28, 28)
    x[:, 13:15, 13:15] = 1.0  # a dot at the centre: its move is the shift, turned by the rotation
    flat = x.reshape(200, 784)
    y = augment(flat, torch.Generator().manual_seed(1)).view(200, 28, 28)
    assert torch.equal(y, augment(flat, torch.Generator().manual_seed(1)).view(200, 28, 28))  # seeded
    mass = y.sum((1, 2))
    assert torch.allclose(mass, torch.full_like(mass, 4.0), atol=0.02)  # bilinear about keeps an interior mass
    cx, cy = _dot_centres(y)
    reach = 2.8 * (math.cos(math.radians(10)) + math.sin(math.radians(10)))  # 10 % of 28 pixels, turned by 10°
    assert cx.abs().max() <= reach and cy.abs().max() <= reach and torch.hypot(cx, cy).max() <= 2.8 * math.sqrt(2)
    assert cx.abs().max() > 2.0 and cy.abs().max() > 2.0  # spread over the whole range
    # no shift: a dot 8 pixels right of the centre keeps its distance and turns by at most 10°
    x = torch.zeros(200, 28, 28)
    x[:, 13:15, 21:23] = 1.0
    y = augment(x.reshape(200, 784), torch.Generator().manual_seed(2), max_shift=0.0).view(200, 28, 28)
    cx, cy = _dot_centres(y)
    turn = torch.rad2deg(torch.atan2(cy, cx))  # (200,)
    assert torch.allclose(torch.hypot(cx, cy), torch.full((200,), 8.0), atol=0.05)
    assert turn.abs().max() <= 10.0 + 0.05 and turn.abs().max() > 8.0
    assert torch.allclose(augment(flat, None, 0.0, 0.0), flat, atol=1e-5)  # nothing to draw from: the identity


def test_pretrain_augment_and_joint_augment_change_only_their_own_epochs_batches(small):
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, batch_size=64, pretrain_epochs=1, pretrain_augment=True, eval_n=20, eval_k=2)
    trainer = Trainer(VAE(MIXTURE), small, config)
    x = trainer.x_train[:64]
    trainer._pretraining = True
    assert not torch.equal(trainer._augmented_view(x), x)
    trainer._pretraining = False  # joint training sees the digits as they are
    assert torch.equal(trainer._augmented_view(x), x)
    assert TrainConfig.from_dict(config.to_dict()).pretrain_augment is True
    joint = Trainer(VAE(MIXTURE), small, TrainConfig(epochs=1, pretrain_epochs=1, joint_augment=True))
    joint._pretraining = True
    assert torch.equal(joint._augmented_view(x), x)
    joint._pretraining = False
    assert not torch.equal(joint._augmented_view(x), x)
    standard = Trainer(VAE(VAEConfig(latent_dim=2, hidden=(8,))), small, TrainConfig(epochs=1, joint_augment=True))
    assert torch.equal(standard._augmented_view(x), x)  # the options belong to a mixture prior's schedule


def test_a_standard_vae_reports_no_clustering(small):
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, batch_size=128, eval_n=20, eval_k=2)
    evals = [
        e for e in run(Trainer(VAE(VAEConfig(latent_dim=2, hidden=(8,))), small, config)) if isinstance(e, EvalRecord)
    ]
    assert evals and evals[0].cluster_acc is None and evals[0].cluster_nmi is None


@pytest.fixture(scope="module")
def small_npz(mnist_subset):
    return mnist_subset(5600, 300)


def test_cli_trains_a_mixture_prior_and_eval_reports_accuracy_and_nmi(small_npz, tmp_path, capsys):
    out = tmp_path / "vade.pt"
    args = ["--hidden", "16", "--latent-dim", "2", "--eval-n", "50", "--eval-k", "2", "--quiet", "--device", "cpu"]
    code = main(
        ["train", *args, "--prior", "mixture", "--components", "4", "--pretrain-epochs", "1", "--pretrain-augment"]
        + ["--epochs", "2"]
        + ["--data", str(small_npz), "--out", str(out)]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "mixture prior initialised by EM" in err and "test acc" in err
    ckpt = load_checkpoint(out)
    assert ckpt["model_config"]["prior"] == "mixture" and ckpt["train_config"]["pretrain_epochs"] == 1
    assert ckpt["train_config"]["pretrain_augment"] is True
    assert model_from_checkpoint(ckpt).mixture.n_components == 4
    assert history_from_checkpoint(ckpt).evals[-1].cluster_acc is not None
    assert main(["eval", str(out), "--json", "--k", "4", "--n", "100", "--data", str(small_npz)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 < result["cluster_accuracy"] <= 1.0 and 0.0 <= result["cluster_nmi"] <= 1.0
    assert result["components"] == 4
    assert main(["eval", str(out), "--k", "4", "--n", "100", "--data", str(small_npz)]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_cli_weight_floor_for_a_new_model_and_for_one_still_pre_training_only(small_npz, tmp_path, capsys):
    out = tmp_path / "vade.pt"
    args = ["--eval-n", "50", "--eval-k", "2", "--quiet", "--device", "cpu", "--data", str(small_npz)]
    new = ["--hidden", "16", "--latent-dim", "2", "--prior", "mixture", "--components", "3"]
    assert main(["train", *new, "--weight-floor", "0.5", "--epochs", "1", *args, "--out", str(out)]) == 0
    assert load_checkpoint(out)["model_config"]["weight_floor"] == 0.5
    assert main(["train", *new, "--pretrain-epochs", "1", "--epochs", "1", *args, "--out", str(out)]) == 0
    capsys.readouterr()
    # still pre-training: the prior is untouched, so a floor of 1 (equal weights) may be set for EM
    assert main(["train", "--resume", str(out), "--weight-floor", "1", "--epochs", "2", *args, "--out", str(out)]) == 0
    assert "mixture prior initialised by EM" in capsys.readouterr().err
    model = model_from_checkpoint(load_checkpoint(out))
    assert model.config.weight_floor == 1.0
    torch.testing.assert_close(model.mixture.log_pi().exp(), torch.full((3,), 1 / 3))
    # now the prior is trained: changing its floor would change the model, so it is refused
    code = main(["train", "--resume", str(out), "--weight-floor", "0.5", "--epochs", "3", *args, "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "already trained" in err and "Traceback" not in err
    assert main(["train", *new, "--weight-floor", "1.5", "--epochs", "1", *args, "--out", str(out)]) == 2


def test_cli_refuses_a_bad_number_of_components(capsys):
    assert main(["train", "--prior", "mixture", "--components", "0", "--out", "x.pt"]) == 2
    assert "--components" in capsys.readouterr().err
