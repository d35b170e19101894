"""Adam (Kingma & Ba 2015, Alg. 1) without torch.optim: the same update and the same state_dict.

Why not torch.optim.Adam: its first use imports torch._dynamo with sympy and about 800 more
modules (3.1 s on this 2-core machine, 3-15 s under load; its methods are wrapped in
torch._disable_dynamo, which imports on the first call). In the app that import froze the window
for 2.7-4.9 s just after it became usable, and on a background thread the GIL made every panel
built meanwhile several times slower; every `lvm-studio train` paid it too. adam_update_ is the
update on bare tensors, for fits that keep their own moments (core.inpainting.AdamFit).

The update is torch's own: the fused kernel (torch._fused_adam_, what torch.optim.Adam(fused=True)
runs) where the device and dtype have one, else torch.optim.adam's single-tensor formula written
out. state_dict() and load_state_dict() use torch.optim.Adam's format (state by parameter index:
step, exp_avg, exp_avg_sq; one param group), so checkpoints written by either load in the other;
tests/core/test_adam.py checks the parameters and states against torch.optim.Adam step by step.
"""

from __future__ import annotations

import math

import torch

FUSED_DEVICES = ("cpu", "cuda")
FUSED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class Adam:
    """Adam over a list of parameters: lr, betas, eps; no weight decay, amsgrad or maximize.

    param_groups[0]["lr"] may be changed between steps (the Trainer's warm-up and decay)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params: list[torch.Tensor] = list(params)
        if not self.params:
            raise ValueError("Adam got an empty parameter list")
        fused = all(p.device.type in FUSED_DEVICES and p.dtype in FUSED_DTYPES for p in self.params)
        self.param_groups = [
            {
                "lr": float(lr),
                "betas": (float(betas[0]), float(betas[1])),
                "eps": float(eps),
                "weight_decay": 0,
                "amsgrad": False,
                "maximize": False,
                "foreach": None,
                "capturable": False,
                "differentiable": False,
                "fused": fused,
                "decoupled_weight_decay": False,
                "params": self.params,
            }
        ]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    @property
    def fused(self) -> bool:
        return bool(self.param_groups[0]["fused"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    def _state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.state.get(p)
        if s is None:  # torch's lazy initialisation: step on the parameter's device when fused, else a CPU scalar
            step_device = p.device if self.fused else "cpu"
            s = self.state[p] = {
                "step": torch.zeros((), dtype=torch.float32, device=step_device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        return s

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        params = [p for p in self.params if p.grad is not None]
        if not params:
            return
        states = [self._state(p) for p in params]
        grads = [p.grad for p in params]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        steps = [s["step"] for s in states]
        if not self.fused:
            kw = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, fused=False)
            adam_update_(params, grads, exp_avgs, exp_avg_sqs, steps, **kw)
            return
        by_device: dict[tuple, list[int]] = {}
        for i, p in enumerate(params):  # the kernel takes one device and dtype at a time
            by_device.setdefault((p.device, p.dtype), []).append(i)
        for idx in by_device.values():
            pick = lambda xs, idx=idx: [xs[i] for i in idx]
            adam_update_(
                pick(params), pick(grads), pick(exp_avgs), pick(exp_avg_sqs), pick(steps),
                lr=lr, beta1=beta1, beta2=beta2, eps=eps, fused=True,
            )  # fmt: skip

    # --- torch.optim.Adam's state_dict format -------------------------------------------------
    def state_dict(self) -> dict:
        index = {id(p): i for i, p in enumerate(self.params)}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.params)))
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items()}, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict) -> None:
        """A state from this class or from torch.optim.Adam (one param group, same parameter order)."""
        groups = state_dict.get("param_groups") or []
        if len(groups) != 1 or len(groups[0].get("params", ())) != len(self.params):
            raise ValueError(
                f"the optimizer state has {len(groups)} parameter group(s) for "
                f"{sum(len(g.get('params', ())) for g in groups)} parameters; this model has 1 group of "
                f"{len(self.params)}"
            )
        saved = groups[0]
        if saved.get("weight_decay", 0) or saved.get("amsgrad", False) or saved.get("maximize", False):
            raise ValueError("the optimizer state uses weight decay, amsgrad or maximize, which this Adam does not")
        group = self.param_groups[0]
        group["lr"] = float(saved.get("lr", group["lr"]))
        group["betas"] = tuple(float(b) for b in saved.get("betas", group["betas"]))
        group["eps"] = float(saved.get("eps", group["eps"]))
        self.state = {}
        for i, p in enumerate(self.params):
            s = state_dict["state"].get(saved["params"][i])
            if not s:
                continue  # a parameter that had no gradient yet: torch keeps no state for it either
            if tuple(s["exp_avg"].shape) != tuple(p.shape) or tuple(s["exp_avg_sq"].shape) != tuple(p.shape):
                raise ValueError(
                    f"the optimizer state of parameter {i} has shape {tuple(s['exp_avg'].shape)}, "
                    f"the parameter {tuple(p.shape)}"
                )
            step_device = p.device if self.fused else "cpu"
            step = torch.as_tensor(s["step"], dtype=torch.float32).to(step_device).reshape(())
            self.state[p] = {
                "step": step.clone(),
                "exp_avg": s["exp_avg"].to(device=p.device, dtype=p.dtype).clone(),
                "exp_avg_sq": s["exp_avg_sq"].to(device=p.device, dtype=p.dtype).clone(),
            }


@torch.no_grad()
def adam_update_(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    maximize: bool = False,
    fused: bool | None = None,
) -> None:
    """One Adam step in place on tensors of one device and dtype, each step count (a float32 scalar
    tensor) incremented first: torch's fused kernel where there is one (fused=None: decide from the
    tensors), else torch.optim.adam's single-tensor formula. maximize ascends (the inpainting fit's ELBO)."""
    if fused is None:
        fused = all(p.device.type in FUSED_DEVICES and p.dtype in FUSED_DTYPES for p in params)
    if fused:
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params, grads, exp_avgs, exp_avg_sqs, [], steps,
            amsgrad=False, lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps, maximize=maximize,
        )  # fmt: skip
        return
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps, strict=True):
        g = -g if maximize else g
        t += 1
        m.lerp_(g, 1 - beta1)  # m_t = β1 m + (1 − β1) g       Kingma & Ba 2015, Alg. 1
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v_t = β2 v + (1 − β2) g²
        n = float(t)
        step_size = lr / (1 - beta1**n)  # bias corrections, as torch.optim.adam writes them
        denom = (v.sqrt() / math.sqrt(1 - beta2**n)).add_(eps)
        p.addcdiv_(m, denom, value=-step_size)
