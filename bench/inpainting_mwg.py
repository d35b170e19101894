"""Inpainting with Markov chains and several starts (issue 16): `python -m bench.inpainting_mwg [--n 1000]`.

Prints one JSON object. On the first n binarized test digits with the top half hidden, the 32-D
model, nats of the TRUE hidden pixels per digit (mean and standard error over digits):
    train_mean            each hidden pixel Bernoulli(its training-set mean)       (baseline)
    encoder               the encoder's guess q(z|x̃), mean-field completion
    fitted_q_one_start    q fitted from the encoder's guess (core.inpainting.fit_q), mean-field
    fitted_q_multi_start  the best of several starts (core.inpainting_starts), mean-field
    mwg_rao_blackwell     log (1/N) Σ_n p(x_m | z_n) over Metropolis-within-Gibbs states (core.mwg)
    pseudo_gibbs_rb       the same over pseudo-Gibbs states (Rezende et al. 2014)
    importance            self-normalised importance weights, the multi-start q as proposal
and how often the completions' most likely class (the shipped digit classifier) is the true digit:
from the MwG chains' class mix, from the one-start and multi-start mean completions, and from the
whole test digit (the classifier's own accuracy on these digits). MwG's acceptance rate and ESS.
--speed: ESS per second of the panel's run (16 chains, 400 sweeps, one digit) on a few digits.
--modes: with the 2-D model, how often the multi-start fit comes within 0.5 nats of the fit
started at the grid posterior's mode (the issue's check, on --modes-n digits; also
tests/core/test_inpainting_starts.py).
Shards: `--first F --n N --raw shard.pt` runs digits F … F + N − 1 and saves every digit's values;
`--merge shard1.pt shard2.pt …` prints the table of all of them (exact: medians included).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

from bench.common import load_model, pretrained_path
from bench.inpainting import training_mean
from lvm_studio.core import inpainting as ip
from lvm_studio.core import masks
from lvm_studio.core.checkpoint import load_checkpoint
from lvm_studio.core.classifier import classifier_from_checkpoint
from lvm_studio.core.data import load_mnist
from lvm_studio.core.inpainting_scores import mean_field_log_likelihood, missing_pixel_scores
from lvm_studio.core.inpainting_starts import StartsConfig, grid_mode_2d, multi_start_fit
from lvm_studio.core.inpainting_task import ObservedModel
from lvm_studio.core.mwg import ChainConfig, rao_blackwell_log_predictive, run_chains
from lvm_studio.core.pretrained import default_classifier_path
from lvm_studio.core.q_elbo import elbo_for_q


def _log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def _summary(v: torch.Tensor) -> dict:
    v = v.double()
    return {"mean": round(v.mean().item(), 2), "se": round((v.std() / math.sqrt(len(v))).item(), 2)}


def _freeze(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def quality(
    model,
    classifier,
    data,
    n: int,
    chunk: int,
    chains: int,
    sweeps: int,
    burn_in: int,
    k: int,
    first: int = 0,
    raw: str | None = None,
) -> dict:
    """The figures on test digits first … first + n − 1 (see the module's notes); raw: also save every
    digit's values there (torch.save), so that shards run side by side merge exactly (--merge)."""
    x_all = data.binarized("test")[first : first + n]
    y_all = torch.from_numpy(data.y_test[first : first + n].astype("int64"))
    missing = masks.top_half()
    p_mean = training_mean(data)
    cfg = ip.InpaintConfig()
    parts: dict[str, list] = {}

    def add(key, v):
        parts.setdefault(key, []).append(v.detach().double().cpu())

    t0 = time.perf_counter()
    mwg_seconds = 0.0
    for start in range(0, n, chunk):
        x, y = x_all[start : start + chunk], y_all[start : start + chunk]
        g = torch.Generator().manual_seed(first + start)
        add("train_mean", mean_field_log_likelihood(x, missing, p_mean))
        guess = ip.amortized_guess(model, x, missing)
        add("encoder", missing_pixel_scores(model, x, missing, *guess, k=k, generator=g).mean_field)
        one = ip.fit_q(model, x, missing, cfg, init=guess)
        add(
            "fitted_q_one_start",
            missing_pixel_scores(model, x, missing, one.z_loc, one.z_scale, k=k, generator=g).mean_field,
        )
        multi = multi_start_fit(model, x, missing, cfg, StartsConfig(), guess=guess)
        res = multi.result
        s = missing_pixel_scores(model, x, missing, res.z_loc, res.z_scale, k=2000, generator=g)
        add("fitted_q_multi_start", s.mean_field)
        add("importance", s.importance)
        add("multi_start_won_by_other_than_encoder", (multi.starts.best != 0).double())
        add("multi_start_disagree", (multi.starts.n_modes > 1).double())
        for method in ("mwg", "pseudo_gibbs"):
            cc = ChainConfig(
                n_chains=chains, steps=sweeps, burn_in=burn_in, method=method, report_every=0, seed=first + start
            )
            init = res.z_loc[None] + res.z_scale[None] * torch.randn((chains, *res.z_loc.shape), generator=g)
            ch = run_chains(model, x, missing, cc, init_z=init)
            thin = ch.z_trace[::5]  # (kept / 5, chains, batch, latent)
            key = "mwg_rao_blackwell" if method == "mwg" else "pseudo_gibbs_rb"
            add(key, rao_blackwell_log_predictive(model, x, missing, thin))
            if method == "mwg":
                mwg_seconds += ch.seconds
                add("mwg_accept_rate", ch.accept_rate)
                add("mwg_ess_min", ch.ess_min)
                add("mwg_ess_median", ch.ess.median(-1).values)
            if classifier is not None:
                states = ch.z_trace[::10].reshape(-1, x.shape[0], model.latent_dim)  # (m, batch, latent)
                comps = torch.where(torch.from_numpy(missing.reshape(-1)), model.decode_mean(states), x)
                mix = classifier.probs(comps).mean(0)  # (batch, 10) the class mix of the chains
                add(f"class_correct.{method}_class_mix", (mix.argmax(-1) == y).double())
        if classifier is not None:
            add("class_correct.one_start_mean", (classifier.probs(one.completion.mean).argmax(-1) == y).double())
            add("class_correct.multi_start_mean", (classifier.probs(res.completion.mean).argmax(-1) == y).double())
            add("class_correct.whole_digit", (classifier.probs(x).argmax(-1) == y).double())
        _log(f"  {min(start + chunk, n)}/{n} digits, {time.perf_counter() - t0:.0f} s, CPU {time.process_time():.0f} s")
    cat = {key: torch.cat(v) for key, v in parts.items()}
    meta = {
        "n": n,
        "first": first,
        "chains": {"n_chains": chains, "sweeps": sweeps, "burn_in": burn_in, "rao_blackwell_thinning": 5},
        "k_mean_field": k,
        "mwg_seconds_total": mwg_seconds,
        "seconds_total": time.perf_counter() - t0,
    }
    if raw:
        torch.save({"values": cat, "meta": meta}, raw)
    return summarize(cat, meta)


def summarize(cat: dict, meta: dict) -> dict:
    """The table from every digit's values (cat: key -> (digits,) tensor)."""
    nats = [
        "train_mean",
        "encoder",
        "fitted_q_one_start",
        "fitted_q_multi_start",
        "mwg_rao_blackwell",
        "pseudo_gibbs_rb",
        "importance",
    ]
    return {
        "n": len(cat["train_mean"]),
        "first": meta["first"],
        "mask": "top_half",
        "chains": meta["chains"],
        "k_mean_field": meta["k_mean_field"],
        "k_importance": 2000,
        "nats_true_hidden_pixels": {key: _summary(cat[key]) for key in nats},
        "class_accuracy": {
            key.split(".", 1)[1]: round(cat[key].mean().item(), 4) for key in cat if "class_correct" in key
        },
        "mwg_accept_rate": {
            "mean": round(cat["mwg_accept_rate"].mean().item(), 4),
            "median": round(cat["mwg_accept_rate"].median().item(), 4),
        },
        "mwg_ess_min_median": round(cat["mwg_ess_min"].median().item(), 1),
        "mwg_ess_median_median": round(cat["mwg_ess_median"].median().item(), 1),
        "mwg_seconds_total": round(meta["mwg_seconds_total"], 1),
        "multi_start": {
            "best_not_the_encoder": round(cat["multi_start_won_by_other_than_encoder"].mean().item(), 4),
            "starts_disagree": round(cat["multi_start_disagree"].mean().item(), 4),
        },
        "seconds_total": round(meta["seconds_total"], 1),
    }


def merge(paths: list[str]) -> dict:
    """One table from the --raw files of shards (their digits concatenated, in the order given)."""
    shards = [torch.load(p, weights_only=True) for p in paths]
    cat = {key: torch.cat([sh["values"][key] for sh in shards]) for key in shards[0]["values"]}
    metas = [sh["meta"] for sh in shards]
    meta = {
        **metas[0],
        "mwg_seconds_total": sum(m["mwg_seconds_total"] for m in metas),
        "seconds_total": sum(m["seconds_total"] for m in metas),
    }
    out = summarize(cat, meta)
    out["shards"] = [{"first": m["first"], "n": m["n"], "seconds": round(m["seconds_total"], 1)} for m in metas]
    return out


def speed(model, data, digits: int = 5) -> dict:
    """The panel's run: 16 chains, 400 sweeps (burn-in 20) for one digit at a time."""
    x_all = data.binarized("test")[:digits]
    out = []
    for i in range(digits):
        res = run_chains(
            model, x_all[i : i + 1], masks.top_half(), ChainConfig(n_chains=16, steps=400, burn_in=20, report_every=0)
        )
        out.append((res.seconds, float(res.accept_rate[0]), float(res.ess_min[0]), float(res.ess.median())))
    return {
        "digits": digits,
        "seconds_median": round(statistics.median(o[0] for o in out), 2),
        "accept_rate_median": round(statistics.median(o[1] for o in out), 4),
        "ess_min_median": round(statistics.median(o[2] for o in out), 1),
        "ess_min_per_s_median": round(statistics.median(o[2] / o[0] for o in out), 1),
        "ess_median_per_s_median": round(statistics.median(o[3] / o[0] for o in out), 1),
    }


def modes(model2, data, n: int, chunk: int = 50, first: int = 0) -> dict:
    """The 2-D model: multi-start ELBO vs the fit started at the grid posterior's mode (quadrature ELBOs),
    on test digits first … first + n − 1."""
    x_all = data.binarized("test")[first : first + n]
    missing = torch.from_numpy(masks.top_half().reshape(1, -1))
    gaps_multi, gaps_one = [], []
    for s in range(0, n, chunk):
        x = x_all[s : s + chunk]
        guess = ip.amortized_guess(model2, x, missing)
        mode = grid_mode_2d(model2, x, missing)
        at_mode = ip.fit_q(model2, x, missing, init=(mode, guess[1]))
        one = ip.fit_q(model2, x, missing, init=guess)
        multi = multi_start_fit(model2, x, missing, guess=guess).result
        om = ObservedModel(model2, x, missing)

        def e(r, om=om, x=x):
            return elbo_for_q(om, x, r.z_loc, r.z_scale, method="quadrature", n=24).elbo

        ref = e(at_mode)
        gaps_multi.append(ref - e(multi))
        gaps_one.append(ref - e(one))
        _log(f"  modes: {min(s + chunk, n)}/{n}")
    gm, go = torch.cat(gaps_multi), torch.cat(gaps_one)
    return {
        "n": n,
        "first": first,
        "multi_start_within_0.5_nats": round((gm < 0.5).double().mean().item(), 4),
        "one_start_within_0.5_nats": round((go < 0.5).double().mean().item(), 4),
        "multi_start_worst_gap": round(gm.max().item(), 2),
        "one_start_worst_gap": round(go.max().item(), 2),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--sweeps", type=int, default=150)
    p.add_argument("--burn-in", type=int, default=30)
    p.add_argument("--k", type=int, default=500)
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--modes", action="store_true")
    p.add_argument("--modes-n", type=int, default=200)
    p.add_argument("--modes-first", type=int, default=0, help="the first test digit of the --modes check")
    p.add_argument("--first", type=int, default=0, help="the first test digit of the quality figures")
    p.add_argument("--raw", help="also save every digit's values here (for --merge)")
    p.add_argument("--merge", nargs="+", metavar="RAW", help="print the table of these --raw shards and exit")
    a = p.parse_args(argv)
    if a.merge:
        print(json.dumps({"quality": merge(a.merge)}, indent=2))
        return 0
    torch.set_num_threads(1)
    data = load_mnist()
    model = _freeze(load_model(pretrained_path(32))[0])
    clf_path = default_classifier_path()
    classifier = classifier_from_checkpoint(load_checkpoint(clf_path)) if clf_path else None
    out = {"torch": torch.__version__, "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
    with torch.no_grad():
        if a.modes:
            out["modes_2d"] = modes(_freeze(load_model(pretrained_path(2))[0]), data, a.modes_n, first=a.modes_first)
        if a.speed:
            out["speed"] = speed(model, data)
        if not a.skip_quality:
            out["quality"] = quality(
                model, classifier, data, a.n, a.chunk, a.chains, a.sweeps, a.burn_in, a.k, a.first, a.raw
            )
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
