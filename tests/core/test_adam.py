"""core.adam.Adam against torch.optim.Adam: the same parameters and states step by step, fused and
single-tensor, and state dicts that move between the two both ways (checkpoints)."""

import subprocess
import sys

import pytest
import torch

from lvm_studio.core.adam import Adam, adam_update_


def _problem(seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    params = [
        torch.nn.Parameter(torch.randn(5, 3, generator=g, dtype=dtype)),
        torch.nn.Parameter(torch.randn(3, generator=g, dtype=dtype)),
    ]
    target = torch.randn(7, 3, generator=g, dtype=dtype)
    x = torch.randn(7, 5, generator=g, dtype=dtype)

    def loss():
        return ((x @ params[0] + params[1] - target) ** 2).sum() + 0.1 * (params[0] ** 4).sum()

    return params, loss


def _run(opt_factory, steps: int, lrs=None, dtype=torch.float32):
    params, loss = _problem(dtype=dtype)
    opt = opt_factory(params)
    for i in range(steps):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[i]
        opt.zero_grad(set_to_none=True)
        loss().backward()
        opt.step()
    return params, opt


@pytest.mark.parametrize("fused", [True, False])
def test_same_parameters_and_state_as_torch(fused):
    lrs = [1e-2 * (0.9**i) for i in range(25)]  # the Trainer changes lr between steps
    ours, ours_opt = _run(lambda p: Adam(p, lr=1e-2), 25, lrs)
    if not fused:
        ours, ours_opt = _run(lambda p: _unfused(Adam(p, lr=1e-2)), 25, lrs)
    ref, ref_opt = _run(lambda p: torch.optim.Adam(p, lr=1e-2, fused=fused), 25, lrs)
    assert ours_opt.fused is fused
    for a, b in zip(ours, ref, strict=True):
        if fused:
            assert torch.equal(a, b)  # the same kernel: bit for bit
        else:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    ours_sd, ref_sd = ours_opt.state_dict(), ref_opt.state_dict()
    assert ours_sd["param_groups"][0].keys() == ref_sd["param_groups"][0].keys()
    for i in ref_sd["state"]:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours_sd["state"][i][key], ref_sd["state"][i][key], rtol=1e-6, atol=1e-7)


def _unfused(opt: Adam) -> Adam:
    opt.param_groups[0]["fused"] = False  # the single-tensor formula (a device without the kernel)
    return opt


def test_float64_fused_matches_torch():
    ours, _ = _run(lambda p: Adam(p, lr=1e-2), 10, dtype=torch.float64)
    ref, _ = _run(lambda p: torch.optim.Adam(p, lr=1e-2, fused=True), 10, dtype=torch.float64)
    for a, b in zip(ours, ref, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_state_dicts_move_between_the_two(direction):
    """Ten steps in one optimizer, its state into the other, ten more: as twenty in torch's alone."""
    ref, _ = _run(lambda p: torch.optim.Adam(p, lr=1e-2, fused=True), 20)
    params, loss = _problem()
    first = torch.optim.Adam(params, lr=1e-2, fused=True) if direction == "torch_to_ours" else Adam(params, lr=1e-2)
    second = Adam(params, lr=1.0) if direction == "torch_to_ours" else torch.optim.Adam(params, lr=1.0, fused=True)
    for opt in (first, second):
        if opt is second:
            opt.load_state_dict(first.state_dict())
            assert opt.param_groups[0]["lr"] == 1e-2  # the saved rate, not the constructor's
        for _ in range(10):
            opt.zero_grad(set_to_none=True)
            loss().backward()
            opt.step()
    for a, b in zip(params, ref, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("fused", [True, False])
def test_the_bare_update_ascends_as_torchs_maximize(fused):
    """adam_update_ on bare tensors (the inpainting fit's φ and moments) with maximize=True: torch.optim.Adam
    with maximize=True, step by step, on both paths (fused kernel, single-tensor formula)."""
    torch.manual_seed(0)
    ref = torch.randn(2, 5, 3, dtype=torch.float64 if not fused else torch.float32, requires_grad=True)
    phi = ref.detach().clone()
    m, v, t = torch.zeros_like(phi), torch.zeros_like(phi), torch.zeros((), dtype=torch.float32)
    opt = torch.optim.Adam([ref], lr=0.05, maximize=True, fused=fused, foreach=False)
    for i in range(12):
        g = torch.randn_like(phi)
        ref.grad = g.clone()
        opt.param_groups[0]["lr"] = 0.05 / (1 + i)  # a changing step size, as the fit's cosine
        opt.step()
        adam_update_([phi], [g], [m], [v], [t], lr=0.05 / (1 + i), maximize=True, fused=fused)
        assert torch.equal(phi, ref.detach()) if fused else torch.allclose(phi, ref.detach(), rtol=0, atol=1e-12)
    assert float(t) == 12 and torch.equal(m, opt.state[ref]["exp_avg"])


def test_refuses_a_state_for_another_model():
    params, _ = _problem()
    other = [torch.nn.Parameter(torch.zeros(4))]
    opt = torch.optim.Adam(other, lr=1e-3)
    other[0].grad = torch.ones(4)
    opt.step()
    with pytest.raises(ValueError, match="parameter group"):
        Adam(params).load_state_dict(opt.state_dict())
    same_count = [torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(2))]
    opt = torch.optim.Adam(same_count, lr=1e-3)
    for p in same_count:
        p.grad = torch.ones_like(p)
    opt.step()
    with pytest.raises(ValueError, match="shape"):
        Adam(params).load_state_dict(opt.state_dict())


def test_training_never_imports_torch_dynamo():
    """The reason this module exists: a Trainer's steps (and the app's warm-up) import no torch._dynamo."""
    code = (
        "import sys\n"
        "from lvm_studio.core.data import MNIST, load_mnist\n"
        "from lvm_studio.core.training import TrainConfig, Trainer\n"
        "from lvm_studio.core.vae import VAE, VAEConfig\n"
        "from lvm_studio.workers.training_worker import warm_up\n"
        "warm_up()\n"
        "m = load_mnist()\n"
        "data = MNIST(m.x_train[:64], m.y_train[:64], m.x_val[:8], m.y_val[:8], m.x_test[:8], m.y_test[:8])\n"
        "t = Trainer(VAE(VAEConfig(latent_dim=2, hidden=(8,))), data, TrainConfig(epochs=1, eval_n=8, eval_k=2))\n"
        "for _ in t.run():\n"
        "    pass\n"
        "assert t.step > 0\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
