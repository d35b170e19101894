"""The lecture's pixel-space example on test digits with the top half hidden (issue 15): docs/benchmarks.md.

    python -m bench.pixel_latents [--joint mixture|made] [--n 1000] [--naive-n N] [--made CKPT]
                                  [--part all|fit|naive] [--json OUT]

For each of the first n binarized test digits (the project's fixed seed), x_m = the top 14 rows:
ELBO(φ) at φ = 0.5, φ = 1 (exact: a point mass) and at the optimised φ (core.pixel_phi, from φ = 0.5),
each estimated with 1,000 samples of q; log p(x_o) exact (the mixture) or by importance sampling
with the optimised q at k = 1,000 (the MADE); the wall and CPU time of one φ optimisation (part
"fit", digit by digit, each digit's own seeded generator). Then naive Monte Carlo with k = 10⁵
uniform completions on the first naive-n digits (part "naive"), naive_batch digits at a time, the
digits of a batch sharing its 10⁵ completions (common random numbers, core.pixel_inference.
naive_log_marginals: each digit's estimate is the usual naive estimator, only the errors within a
batch are correlated; the completions' share of the work, and the MADE's conditionals of the hidden
top half, are computed once per batch). Each batch draws from its own seed.
Means over digits, in nats. With --json the rows and means are rewritten as it goes (every 50
digits, every naive batch), so a run stopped early still leaves its figures.
The mixture is fitted as the panel fits it (core.pixel_tasks: K = 50, EM on 10,000 digits).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

NAIVE_SEED = 1_000_003  # + the batch's first digit: the seed of that batch's naive completions


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--joint", choices=["mixture", "made"], default="mixture")
    p.add_argument("--n", type=int, default=1000, help="test digits (from the first)")
    p.add_argument("--naive-n", type=int, default=None, help="digits for naive MC at k = 1e5 (default: all n)")
    p.add_argument("--naive-k", type=int, default=100_000)
    p.add_argument("--naive-batch", type=int, default=50, help="digits per naive pass over the k completions")
    p.add_argument("--part", choices=["all", "fit", "naive"], default="all", help="fit: the φ rows; naive: naive MC")
    p.add_argument("--made", help="a MADE checkpoint (default: the shipped one)")
    p.add_argument("--json", help="write the per-digit rows and the means here (as it goes)")
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
    t0, c0 = time.perf_counter(), time.process_time()
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
    naive_n = min(a.n if a.naive_n is None else a.naive_n, len(x_test))
    rows = [{"i": i} for i in range(len(x_test))]
    timing = {"fit_cpu_s": 0.0, "fit_wall_s": 0.0, "naive_cpu_s": 0.0, "naive_wall_s": 0.0}

    def mean(key, subset=None):
        vals = [r[key] for r in (rows if subset is None else rows[:subset]) if key in r]
        return sum(vals) / len(vals) if vals else None

    def count(key):
        return sum(key in r for r in rows)

    def summary() -> dict:
        naive_done = count("naive")
        fit_done = [r for r in rows if "optimise_s" in r]

        def median(key):
            return sorted(r[key] for r in fit_done)[len(fit_done) // 2] if fit_done else None

        return {
            "joint": setup,
            "test_log_px_complete": test_log_px,
            "n_fit": len(fit_done),
            "naive_n": naive_done,
            "naive_k": a.naive_k,
            "elbo_half": mean("elbo_half"),
            "elbo_one": mean("elbo_one"),
            "elbo_opt": mean("elbo_opt"),
            "elbo_marginals": mean("elbo_marginals"),
            "log_px_o_exact": mean("log_px_o"),
            "is_1000": mean("is_1000"),
            "naive": mean("naive"),
            "is_1000_on_naive_subset": mean("is_1000", naive_done),
            "log_px_o_exact_on_naive_subset": mean("log_px_o", naive_done),
            "optimise_s_median": median("optimise_s"),
            "optimise_cpu_s_median": median("optimise_cpu_s"),
            **timing,
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
        }

    def save():
        if a.json:
            tmp = Path(a.json + ".part")
            tmp.write_text(json.dumps({"summary": summary(), "rows": rows}) + "\n")
            tmp.replace(a.json)

    if a.part in ("all", "fit"):
        w, c = time.perf_counter(), time.process_time()
        for i, x in enumerate(x_test):
            g = torch.Generator().manual_seed(i)
            row = rows[i]
            row["elbo_half"] = pi.elbo_phi(joint, x, missing, torch.full((m,), 0.5), 1000, g).elbo
            row["elbo_one"] = pi.elbo_phi(joint, x, missing, torch.ones(m), 1, g).elbo  # a point mass: exact
            t, tc = time.perf_counter(), time.process_time()
            fit = pp.optimise_phi(None, joint, x, missing, torch.full((m,), 0.5), pp.OptimiseConfig(seed=i))
            row["optimise_s"], row["optimise_cpu_s"] = time.perf_counter() - t, time.process_time() - tc
            opt = pi.elbo_phi(joint, x, missing, fit.phi, 1000, g)
            row["elbo_opt"], row["elbo_opt_se"] = opt.elbo, opt.se
            exact = pi.exact_log_marginal(joint, x, missing)
            if exact is not None:
                row["log_px_o"] = exact
                marg = joint.posterior_marginals(x, missing)
                row["elbo_marginals"] = pi.elbo_phi(joint, x, missing, marg, 1000, g).elbo
            row["is_1000"] = pi.importance_log_marginal(joint, x, missing, fit.phi, 1000, g)
            if (i + 1) % 50 == 0 or i + 1 == len(x_test):
                timing["fit_wall_s"], timing["fit_cpu_s"] = time.perf_counter() - w, time.process_time() - c
                save()
                print(f"fit {i + 1}/{len(x_test)} digits, {time.perf_counter() - t0:.0f} s", flush=True)
    if a.part in ("all", "naive"):
        w, c = time.perf_counter(), time.process_time()
        for start in range(0, naive_n, a.naive_batch):
            stop = min(naive_n, start + a.naive_batch)
            g = torch.Generator().manual_seed(NAIVE_SEED + start)  # a batch's digits share its completions
            est = pi.naive_log_marginals(joint, x_test[start:stop], missing, a.naive_k, g)  # (batch,)
            for i, v in zip(range(start, stop), est.tolist()):
                rows[i]["naive"] = v
            timing["naive_wall_s"], timing["naive_cpu_s"] = time.perf_counter() - w, time.process_time() - c
            save()
            print(f"naive {stop}/{naive_n} digits, {time.perf_counter() - t0:.0f} s", flush=True)
    print(json.dumps(summary(), indent=1))
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
