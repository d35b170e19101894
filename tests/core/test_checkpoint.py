"""Checkpoints (lvm_studio.core.checkpoint): round trip, atomic writes, and every kind of bad file refused
with a CheckpointError that names the file and says why, without ever running code from it."""

from __future__ import annotations

import hashlib
import random

import pytest
import torch

from lvm_studio.core import checkpoint as ck
from lvm_studio.core.checkpoint import (
    CheckpointError,
    history_from_checkpoint,
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.history import EvalRecord, History, StepRecord
from lvm_studio.core.vae import VAE, VAEConfig

TINY = VAEConfig(latent_dim=2, hidden=(16,))


def trained_parts(seed=0):
    """A tiny model after three Adam steps (so the optimizer has state), and a short history."""
    torch.manual_seed(seed)
    model = VAE(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    x = torch.bernoulli(torch.full((8, N_PIXELS), 0.3), generator=torch.Generator().manual_seed(seed))
    for _ in range(3):
        z_loc, _ = model.encode(x)
        loss = -model.log_px_given_z(x, z_loc).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    history = History()
    history.add(
        StepRecord(
            step=3, epoch=0.1, elbo=-500.0, recon=-490.0, kl=10.0, loss=500.0, lr=3e-4, beta=1.0, images_per_s=100.0
        )
    )
    history.add(
        EvalRecord(
            step=3,
            epoch=0.1,
            split="val",
            n=10,
            elbo=-510.0,
            recon=-500.0,
            kl=10.0,
            log_px=-505.0,
            k=5,
            iw_bounds=((1, -511.0),),
            seconds=0.1,
        )
    )
    return model, opt, history


def good_checkpoint(seed=0) -> dict:
    model, opt, history = trained_parts(seed)
    return make_checkpoint(
        model,
        name="tiny",
        optimizer=opt.state_dict(),
        train_config={"epochs": 3, "lr": 3e-4},
        step=3,
        epoch=0.1,
        history=history,
        metrics={"val_elbo": -510.0},
    )


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(path) -> str:
    """The message of the CheckpointError that loading path raises; it must name the file, on one line."""
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and "Traceback" not in message
    return message


# --- round trip ---------------------------------------------------------------------------


def test_round_trip_keeps_weights_config_optimizer_history_and_step(tmp_path):
    model, opt, history = trained_parts()
    ckpt = make_checkpoint(
        model,
        name="tiny",
        optimizer=opt.state_dict(),
        train_config={"epochs": 3},
        step=3,
        epoch=0.1,
        history=history,
        metrics={"val_elbo": -510.0},
    )
    path = save_checkpoint(tmp_path / "sub" / "m.pt", ckpt)  # the folder is created
    assert path == tmp_path / "sub" / "m.pt" and sorted(p.name for p in path.parent.iterdir()) == ["m.pt"]

    loaded = load_checkpoint(path)
    assert loaded["format"] == ck.FORMAT and loaded["version"] == ck.VERSION
    assert loaded["name"] == "tiny" and loaded["step"] == 3 and loaded["epoch"] == 0.1
    assert loaded["train_config"] == {"epochs": 3} and loaded["metrics"] == {"val_elbo": -510.0}
    assert VAEConfig.from_dict(loaded["model_config"]) == TINY
    live = model.state_dict()
    assert loaded["state_dict"].keys() == live.keys()
    assert all(torch.equal(loaded["state_dict"][k], live[k]) for k in live)
    assert history_from_checkpoint(loaded) == history

    rebuilt = model_from_checkpoint(loaded)
    assert not rebuilt.training  # ready for evaluation
    x = torch.rand(4, N_PIXELS)
    assert torch.equal(rebuilt.decode_mean(rebuilt.encode(x)[0]), model.decode_mean(model.encode(x)[0]))

    # the optimizer state restores into a fresh Adam and continues identically
    opt2 = torch.optim.Adam(rebuilt.parameters(), lr=1.0)
    opt2.load_state_dict(loaded["optimizer"])
    assert opt2.param_groups[0]["lr"] == 3e-4
    for a, b in zip(opt.state.values(), opt2.state.values()):
        assert all(
            torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])) for key in ("step", "exp_avg", "exp_avg_sq")
        )


def test_checkpoint_shares_no_storage_with_the_model():
    model, _, _ = trained_parts()
    ckpt = make_checkpoint(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert not any(torch.equal(ckpt["state_dict"][k], v) for k, v in model.state_dict().items())
    assert ckpt["name"] == TINY.describe() and ckpt["optimizer"] is None and ckpt["history"] == History().to_dict()


def test_a_saved_checkpoint_holds_only_what_weights_only_loading_accepts(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", good_checkpoint())
    plain = torch.load(path, weights_only=True)  # raises if anything but tensors and plain containers
    assert plain["step"] == 3


# --- atomic writes ------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_intact_and_no_temporary_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", good_checkpoint(seed=0))
    before = sha256(path)

    def half_written_then_crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes of a checkpoint")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", half_written_then_crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, good_checkpoint(seed=1))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # the temporary file was removed
    assert sha256(path) == before
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 3


def test_an_interrupt_mid_write_also_cleans_up(tmp_path, monkeypatch):
    def interrupted(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "new.pt", good_checkpoint())
    assert list(tmp_path.iterdir()) == []  # neither a target nor a temporary file


def test_saving_over_an_existing_file_replaces_it(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", good_checkpoint(seed=0))
    other = good_checkpoint(seed=1)
    save_checkpoint(path, other)
    loaded = load_checkpoint(path)
    assert all(torch.equal(loaded["state_dict"][k], v) for k, v in other["state_dict"].items())
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


# --- refusal ------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert "no such checkpoint file" in refused(tmp_path / "absent.pt")


def test_a_folder_is_not_a_checkpoint(tmp_path):
    assert "no such checkpoint file" in refused(tmp_path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(random.Random(0).randbytes(4096))
    message = refused(path)
    assert "corrupt" in message or "not an LVM Studio checkpoint" in message


# torch warns about an unknown "pickle protocol" when garbage starts with the PROTO opcode
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("data", [b"hello", b"s\xa9\xbe\xf4", b"\x80\x02", b"\x80\x02}q\x00("])
def test_short_garbage_that_trips_the_unpickler(tmp_path, data):
    # b"hello" made the weights-only unpickler raise a bare KeyError, which escaped load_checkpoint
    path = tmp_path / "garbage.pt"
    path.write_bytes(data)
    refused(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_many_random_byte_strings_all_raise_checkpoint_error(tmp_path):
    rng = random.Random(1)
    path = tmp_path / "fuzz.pt"
    for _ in range(300):
        path.write_bytes(rng.randbytes(rng.randint(1, 64)))
        refused(path)


def test_an_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert "corrupt" in refused(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_a_truncated_checkpoint(tmp_path, keep):
    whole = save_checkpoint(tmp_path / "whole.pt", good_checkpoint()).read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(whole[: int(len(whole) * keep)])
    assert "corrupt or truncated" in refused(path)


class _WritesAMarker:
    """Unpickling this (unsafely) calls open(marker, 'w'): the file appearing proves code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_foreign_pickle_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "code-ran.txt"
    path = tmp_path / "foreign.pt"
    # looks like ours at first sight, but carries an object whose unpickling runs code
    torch.save(
        {
            "format": ck.FORMAT,
            "version": 1,
            "model_config": TINY.to_dict(),
            "state_dict": VAE(TINY).state_dict(),
            "payload": _WritesAMarker(marker),
        },
        path,
    )
    message = refused(path)
    assert "not an LVM Studio checkpoint" in message and "refused for safety" in message
    assert not marker.exists()
    # control: the payload is live, so the refusal above is what kept it from running
    obj = torch.load(path, weights_only=False)
    obj["payload"].close()
    assert marker.exists()


def test_a_plain_state_dict_is_refused(tmp_path):
    path = tmp_path / "state.pt"
    torch.save(VAE(TINY).state_dict(), path)
    message = refused(path)
    assert "not an LVM Studio checkpoint" in message and "plain PyTorch state dicts" in message


def test_a_tensor_or_list_is_refused(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    assert "not an LVM Studio checkpoint" in refused(path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    ckpt = good_checkpoint()
    ckpt["model_config"] = {**ckpt["model_config"], "latent_dim": 3}
    path = save_checkpoint(tmp_path / "misfit.pt", ckpt)
    message = refused(path)
    assert "do not fit the model" in message and "VAE 784-16-3" in message


def test_missing_or_extra_weights(tmp_path):
    ckpt = good_checkpoint()
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("decoder")}
    assert "do not fit the model" in refused(save_checkpoint(tmp_path / "half.pt", ckpt))


def test_an_invalid_model_config(tmp_path):
    ckpt = good_checkpoint()
    ckpt["model_config"] = {**ckpt["model_config"], "likelihood": "poisson"}
    assert "invalid model configuration" in refused(save_checkpoint(tmp_path / "bad-config.pt", ckpt))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(tmp_path, bad):
    ckpt = good_checkpoint()
    ckpt["state_dict"]["decoder.0.weight"][0, 0] = bad
    assert "NaN or infinite" in refused(save_checkpoint(tmp_path / "nan.pt", ckpt))


def test_a_newer_format_version(tmp_path):
    ckpt = good_checkpoint()
    ckpt["version"] = ck.VERSION + 1
    message = refused(save_checkpoint(tmp_path / "future.pt", ckpt))
    assert f"version {ck.VERSION + 1}" in message and "upgrade" in message


def test_a_missing_required_key(tmp_path):
    ckpt = good_checkpoint()
    del ckpt["state_dict"]
    assert "missing state_dict" in refused(save_checkpoint(tmp_path / "no-weights.pt", ckpt))


def test_another_format_tag(tmp_path):
    ckpt = {**good_checkpoint(), "format": "someone-elses-format"}
    assert "not an LVM Studio checkpoint" in refused(save_checkpoint(tmp_path / "other.pt", ckpt))


def test_a_malformed_history_raises_checkpoint_error():
    ckpt = good_checkpoint()
    ckpt["history"] = {"train": {"step": [1, 2]}, "evals": []}  # columns missing
    with pytest.raises(CheckpointError, match="history is malformed"):
        history_from_checkpoint(ckpt)


def test_string_paths_and_map_location(tmp_path):
    path = save_checkpoint(str(tmp_path / "m.pt"), good_checkpoint())
    loaded = load_checkpoint(str(path), map_location="cpu")
    assert loaded["state_dict"]["encoder.0.weight"].device.type == "cpu"


def test_headline_metrics_are_the_last_evaluation_or_nothing():
    _, _, history = trained_parts()
    assert ck.headline_metrics(History()) == {}
    assert ck.headline_metrics(history) == {"val_elbo": -510.0, "val_log_px": -505.0, "k": 5}


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"root:x:0:0:root:/root:/bin/bash\n", "it is a text file"),
        ("température: 21 °C\n".encode(), "it is a text file"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(100), "it is not a file saved by PyTorch"),
        (b"\x89PNG\r\n\x1a\n" + bytes(50), "it is not a file saved by PyTorch"),
    ],
)
def test_a_file_that_is_not_a_torch_file_is_named_as_such(tmp_path, data, kind):
    path = tmp_path / "thing.pt"
    path.write_bytes(data)
    message = refused(path)
    assert f"not an LVM Studio checkpoint ({kind}" in message and "index out of range" not in message
