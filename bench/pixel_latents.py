"""The lecture's pixel-space example on test digits with the top half hidden (issue 15): docs/benchmarks.md.

    python -m bench.pixel_latents [--joint mixture|made] [--n 1000] [--naive-n N] [--made CKPT] [--json OUT]

For each of the first n binarized test digits (the project's fixed seed), x_m = the top 14 rows:
ELBO(φ) at φ = 0.5, φ = 1 (exact: a point mass) and at the optimised φ (core.pixel_phi, from φ = 0.5),
each estimated with 1,000 samples of q; log p(x_o) exact (the mixture) or by importance sampling
with the optimised q at k = 1,000 (the MADE); naive Monte Carlo with k = 10⁵ uniform completions on
the first naive-n digits; the wall time of one φ optimisation. Means over digits, in nats.
The mixture is fitted as the panel fits it (core.pixel_tasks: K = 50, EM on 10,000 digits).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--joint", choices=["mixture", "made"], default="mixture")
    p.add_argument("--n", type=int, default=1000, help="test digits (from the first)")
    p.add_argument("--naive-n", type=int, default=None, help="digits for naive MC at k = 1e5 (default: all n)")
    p.add_argument("--naive-k", type=int, default=100_000)
    p.add_argument("--made", help="a MADE checkpoint (default: the shipped one)")
    p.add_argument("--json", help="write the per-digit rows and the means here")
    a = p.parse_args(argv)

    import torch

    from lvm_studio.core import masks, threads
    from lvm_studio.core import pixel_inference as pi
    from lvm_studio.core import pixel_phi as pp
    from lvm_studio.core import pixel_tasks as pt
    from lvm_studio.core.data import load_mnist

    threads.configure_process()
    threads.use("training")
    data = load_mnist()
    t0 = time.perf_counter()
    if a.joint == "mixture":
        joint = pt.fit_mixture_task(None, pt.binarized_train_subset(data))
        setup = f"K = {pt.MIXTURE_K} Bernoulli mixture, EM on {pt.MIXTURE_N:,} digits, {time.perf_counter() - t0:.0f} s"
    else:
        from lvm_studio.core.checkpoint import load_checkpoint
        from lvm_studio.core.made_training import made_from_checkpoint
        from lvm_studio.core.pretrained import made_checkpoint_path

        path = a.made or made_checkpoint_path()
        if path is None:
            p.error("no MADE is shipped in pretrained/: give --made CKPT")
        joint = made_from_checkpoint(load_checkpoint(path))
        setup = f"{joint.config.describe()} from {path}"
    with torch.no_grad():
        x_all = data.binarized("test")  # (10000, D) complete digits
        test_log_px = sum(float(joint.log_prob(x_all[i : i + 1000]).sum()) for i in range(0, len(x_all), 1000)) / len(
            x_all
        )
    print(f"{setup}; test log p(x) on the 10,000 complete digits {test_log_px:.2f} (exact)", flush=True)
    x_test = data.binarized("test")[: a.n]  # (n, D)
    missing = pi.flat_mask(masks.top_half())
    m = int(missing.sum())
    naive_n = a.n if a.naive_n is None else a.naive_n
    rows = []
    for i, x in enumerate(x_test):
        g = torch.Generator().manual_seed(i)
        row = {"i": i}
        row["elbo_half"] = pi.elbo_phi(joint, x, missing, torch.full((m,), 0.5), 1000, g).elbo
        row["elbo_one"] = pi.elbo_phi(joint, x, missing, torch.ones(m), 1, g).elbo  # a point mass: exact
        t = time.perf_counter()
        fit = pp.optimise_phi(None, joint, x, missing, torch.full((m,), 0.5), pp.OptimiseConfig(seed=i))
        row["optimise_s"] = time.perf_counter() - t
        opt = pi.elbo_phi(joint, x, missing, fit.phi, 1000, g)
        row["elbo_opt"], row["elbo_opt_se"] = opt.elbo, opt.se
        exact = pi.exact_log_marginal(joint, x, missing)
        if exact is not None:
            row["log_px_o"] = exact
            row["elbo_marginals"] = pi.elbo_phi(joint, x, missing, joint.posterior_marginals(x, missing), 1000, g).elbo
        row["is_1000"] = pi.importance_log_marginal(joint, x, missing, fit.phi, 1000, g)
        if i < naive_n:
            row["naive"] = pi.naive_log_marginal(joint, x, missing, a.naive_k, g)
        rows.append(row)
        if (i + 1) % 50 == 0 or i + 1 == len(x_test):
            print(f"{i + 1}/{len(x_test)} digits, {time.perf_counter() - t0:.0f} s", flush=True)

    def mean(key, subset=None):
        vals = [r[key] for r in (rows if subset is None else rows[:subset]) if key in r]
        return sum(vals) / len(vals) if vals else None

    summary = {
        "joint": setup,
        "test_log_px_complete": test_log_px,
        "n": len(rows),
        "naive_n": min(naive_n, len(rows)),
        "naive_k": a.naive_k,
        "elbo_half": mean("elbo_half"),
        "elbo_one": mean("elbo_one"),
        "elbo_opt": mean("elbo_opt"),
        "elbo_marginals": mean("elbo_marginals"),
        "log_px_o_exact": mean("log_px_o"),
        "is_1000": mean("is_1000"),
        "naive": mean("naive"),
        "is_1000_on_naive_subset": mean("is_1000", naive_n),
        "log_px_o_exact_on_naive_subset": mean("log_px_o", naive_n),
        "optimise_s_median": sorted(r["optimise_s"] for r in rows)[len(rows) // 2],
        "wall_s": time.perf_counter() - t0,
    }
    print(json.dumps(summary, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "rows": rows}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
