"""EM speed: lvm_studio's GaussianMixture against scikit-learn's, from identical starting points.

    python -m bench.em [--n 60000] [--d 16] [--k 10] [--iters 100] [--dtype float64] [--repeats 3] [--threads T]

Both fit the same synthetic D-dimensional K-component mixture for exactly ``iters`` EM
iterations (tol = 0), both starting from our k-means++ means, uniform weights and the shared
data covariance (scikit-learn gets them as means_init, weights_init and precisions_init, and
reg_covar = our ridge). The timings alternate between the two in one process, and the
figures are medians. Both end with the mean log-likelihood of their final parameters,
which should agree to many digits in float64. Prints JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
import warnings

import numpy as np
import torch

from lvm_studio.core.gmm import GaussianMixture, GMMConfig


def synthetic_mixture(n: int, d: int, k: int, seed: int = 0):
    """n points from a random K-component full-covariance mixture in D dimensions, (N, D) float64."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(0.0, 3.0, size=(k, d))
    factors = rng.normal(0.0, 1.0, size=(k, d, d)) / np.sqrt(d)
    covs = factors @ factors.transpose(0, 2, 1) + 0.1 * np.eye(d)
    z = rng.choice(k, size=n, p=weights)
    eps = rng.standard_normal((n, d))
    x = means[z] + np.einsum("nij,nj->ni", np.linalg.cholesky(covs)[z], eps)
    return x, z


def bench_em(
    n: int = 60000,
    d: int = 16,
    k: int = 10,
    iters: int = 100,
    seed: int = 0,
    dtype: str = "float64",
    repeats: int = 3,
    device: str = "cpu",
    threads: int | None = None,
) -> dict:
    """Median seconds of `iters` EM iterations, ours and scikit-learn's, and their final mean log-likelihoods.

    threads: CPU threads for both (torch.set_num_threads, and threadpoolctl for scikit-learn's
    BLAS when installed); None keeps the defaults.
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    x_np, _ = synthetic_mixture(n, d, k, seed)
    torch_dtype = getattr(torch, dtype)
    x = torch.as_tensor(x_np, dtype=torch_dtype, device=device)
    cfg = GMMConfig(n_components=k, covariance="full", ridge=1e-6, seed=seed)
    start = GaussianMixture(cfg).initialize(x).get_parameters()

    def run_ours():
        gmm = GaussianMixture(cfg).set_parameters(start.weights, start.means, start.covariances)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        trace = gmm.fit(x, max_iter=iters, tol=0.0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0, trace

    result = {
        "n": n,
        "d": d,
        "k": k,
        "iters": iters,
        "dtype": dtype,
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }
    try:
        from sklearn.mixture import GaussianMixture as SkGaussianMixture
    except ImportError:  # scikit-learn is optional
        SkGaussianMixture = None

    def run_sklearn():
        sk = SkGaussianMixture(
            n_components=k,
            covariance_type="full",
            tol=0.0,
            max_iter=iters,
            n_init=1,
            reg_covar=cfg.ridge,
            weights_init=(start.weights.double() / start.weights.double().sum()).numpy(),
            means_init=start.means.double().numpy(),
            precisions_init=np.linalg.inv(start.covariances.double().numpy()),
            # every parameter is given, so the initial responsibilities are discarded: take the cheapest
            init_params="random_from_data",
            random_state=seed,
        )
        with contextlib.ExitStack() as stack:
            if threads is not None:
                try:
                    from threadpoolctl import threadpool_limits

                    stack.enter_context(threadpool_limits(int(threads)))
                except ImportError:
                    pass
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning: tol = 0 never converges, on purpose
                sk.fit(x_np)
            return time.perf_counter() - t0, sk

    ours, theirs = [], []
    for _ in range(max(1, repeats)):
        t, trace = run_ours()
        ours.append(t)
        if SkGaussianMixture is not None:
            t_sk, sk = run_sklearn()
            theirs.append(t_sk)
    steps = np.diff(trace)
    result.update(
        {
            "ours_s": statistics.median(ours),
            "ours_all_s": ours,
            "ours_final_ll": trace[-1],
            "ours_ll_trace_min_step": float(steps.min()),
            "ours_ll_monotone": bool(steps.min() >= -1e-6 * abs(trace[-1])),
        }
    )
    if theirs:
        result.update(
            {
                "sklearn_s": statistics.median(theirs),
                "sklearn_all_s": theirs,
                "sklearn_final_ll": float(sk.score(x_np)),
                "speedup": statistics.median(theirs) / statistics.median(ours),
                "final_ll_abs_diff": abs(float(sk.score(x_np)) - trace[-1]),
            }
        )
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: as is)")
    args = parser.parse_args(argv)
    print(
        json.dumps(
            bench_em(
                args.n, args.d, args.k, args.iters, args.seed, args.dtype, args.repeats, args.device, args.threads
            ),
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
