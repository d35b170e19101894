"""The `lvm-studio` command: the GUI by default, plus headless `train` and `eval`.

Nothing here imports torch at module level: main() applies the thread policy (core.threads)
first, before torch loads and reads OMP_WAIT_POLICY.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from functools import partial
from pathlib import Path

from lvm_studio.cli_checks import (
    MAX_LR,
    SEED,
    OneLineParser,
    add_checks,
    count,
    destination_problem,
    each,
    note,
    real,
    refusal,
)

# TrainConfig's evaluation defaults, spelled here so that --help needs no torch
EVAL_DEFAULTS = {"eval_k": 20, "eval_n": 500}
TRAIN_HELP = "train a VAE headless and save a checkpoint"
EVAL_HELP = "report the test ELBO and importance-sampled log p(x) of a checkpoint"


def _add_data_arg(p: argparse.ArgumentParser):
    p.add_argument(
        "--data",
        metavar="PATH",
        help="an MNIST-style .npz, e.g. made by `lvm-studio data import` (default: the shipped resources/mnist.npz)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="lvm-studio", description="LVM Studio: see latent variable models work.")
    p.add_argument(
        "--smoke",
        type=float,
        metavar="SECONDS",
        help="open the window, train on the CPU for SECONDS, print one JSON line and exit",
    )
    p.add_argument("--screenshot", metavar="PNG", help="with --smoke: save a screenshot of the main window")
    p.add_argument(
        "--smoke-tour",
        action="store_true",
        help="open the window, walk every step of the lecture tour with its reveal, print one JSON line per step",
    )
    p.add_argument("--checkpoint", metavar="CKPT", help="open this checkpoint instead of the pretrained default")
    _add_data_arg(p)
    add_checks(p, smoke=real(0, 86400, lo_open=True))
    sub = p.add_subparsers(dest="command")

    t = sub.add_parser("train", help=TRAIN_HELP, description=TRAIN_HELP)
    t.add_argument("--latent-dim", type=int, default=32)
    t.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=[512, 512],
        metavar="H",
        help="hidden widths of the encoder (the decoder mirrors them)",
    )
    t.add_argument("--activation", default="elu", choices=["relu", "elu", "tanh", "softplus"])
    t.add_argument("--likelihood", default="bernoulli", choices=["bernoulli", "gaussian"])
    t.add_argument(
        "--prior",
        default="normal",
        choices=["normal", "mixture"],
        help="p(z): N(0, I), or a learnable Gaussian mixture whose components cluster the digits (VaDE)",
    )
    t.add_argument("--components", type=int, default=10, help="components of the mixture prior (default 10)")
    t.add_argument(
        "--weight-floor",
        type=float,
        help="mixture prior: every π_c ≥ F / K (default 0.25); 1 fixes π_c = 1/K, clusters of equal size. "
        "With --resume: only before EM has initialised the prior",
    )
    t.add_argument(
        "--pretrain-epochs",
        type=int,
        help="mixture prior: autoencoder epochs before EM on the codes initialises the prior (default 0)",
    )
    t.add_argument(
        "--pretrain-augment",
        action="store_const",
        const=True,
        help="mixture prior: pre-train on randomly shifted (±10 %%) and rotated (±10°) digits (DEC-DA)",
    )
    t.add_argument(
        "--joint-augment",
        action="store_const",
        const=True,
        help="mixture prior: the joint training on shifted and rotated digits too",
    )
    t.add_argument("--epochs", type=int, default=20, help="train until this many epochs in all (default 20)")
    # None marks "not given": a new run takes TrainConfig's default, a resumed run keeps the checkpoint's
    t.add_argument("--objective", choices=["elbo", "iwae"], help="training objective (default elbo)")
    t.add_argument("--k", type=int, help="importance samples for the IWAE objective (default 1)")
    t.add_argument("--beta", type=float, help="KL weight (default 1)")
    t.add_argument("--kl-warmup", type=float, metavar="EPOCHS", help="linear KL warm-up length in epochs (default 0)")
    t.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    t.add_argument("--lr-decay", type=float, help="multiply the learning rate by this after each epoch (default 1)")
    t.add_argument("--min-lr", type=float, help="the decay stops here (default 1e-5)")
    t.add_argument("--batch-size", type=int, help="default 128")
    t.add_argument("--grad-clip", type=float, help="max gradient norm, 0 for none (default 0)")
    t.add_argument("--eval-every", type=int, help="steps between evaluations (default 0: each epoch)")
    t.add_argument(
        "--eval-k", type=int, help=f"importance samples for the validation log p(x) (default {EVAL_DEFAULTS['eval_k']})"
    )
    t.add_argument("--eval-n", type=int, help=f"validation images evaluated (default {EVAL_DEFAULTS['eval_n']})")
    t.add_argument("--log-every", type=int, help="steps averaged into one logged training record (default 10)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--name", help="a name for the model (default: its architecture)")
    t.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (after every epoch, atomically)")
    t.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue from this checkpoint: its model and settings, with --epochs and any "
        "training option given here (e.g. --lr, --objective) taking over",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_arg(t)
    add_checks(
        t,
        latent_dim=count(1, 1024),
        hidden=each(count(1, 8192)),
        epochs=count(1, 10**6),
        k=count(1, 10**4),
        beta=real(0, 1e6),
        kl_warmup=real(0, 10**6),
        lr=real(0, MAX_LR, lo_open=True),
        lr_decay=real(0, 1, lo_open=True),
        min_lr=real(0, MAX_LR),
        batch_size=count(1, 10**6),
        grad_clip=real(0, 1e12),
        eval_every=count(0),
        eval_k=count(1, 10**5),
        eval_n=count(1),
        log_every=count(1),
        seed=SEED,
        components=count(1, 100),
        weight_floor=real(0, 1),
        pretrain_epochs=count(0, 10**6),
    )

    e = sub.add_parser("eval", help=EVAL_HELP, description=EVAL_HELP)
    e.add_argument("checkpoint", metavar="CKPT")
    e.add_argument("--k", type=int, default=5000, help="importance samples per image (papers use 5000)")
    e.add_argument("--n", type=int, default=10000, help="how many test images (from the first)")
    e.add_argument("--iw-ks", type=int, nargs="*", default=[], metavar="K", help="also report IW-k bounds for these k")
    e.add_argument("--split", default="test", choices=["test", "val"])
    e.add_argument("--device", default="auto")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print one JSON line")
    _add_data_arg(e)
    add_checks(e, k=count(1, 10**6), n=count(1), iw_ks=each(count(1, 10**6)), seed=SEED)
    from lvm_studio.cli_pixel import add_pixel_commands  # issue 15: train-made, eval-made

    add_pixel_commands(sub)
    from lvm_studio import cli_classifier  # issue 16: train-classifier

    cli_classifier.add_parser(sub)
    from lvm_studio.cli_data import add_data_parser  # issue 18: data import

    add_data_parser(sub)
    return p


class _ProgressBar:
    """A one-line text progress bar on stderr (no dependency)."""

    def __init__(self, enabled: bool = True, width: int = 28):
        self.enabled = enabled and sys.stderr.isatty() or enabled == "force"
        self.width = width
        self._last = 0.0

    def update(self, fraction: float, text: str, force: bool = False):
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        filled = int(self.width * min(max(fraction, 0.0), 1.0))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {text}\x1b[K")
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")


# train options that a resumed run may override: argparse dest -> TrainConfig field
TRAIN_OPTIONS = {
    "objective": "objective",
    "k": "k",
    "beta": "beta",
    "kl_warmup": "kl_warmup_epochs",
    "lr": "lr",
    "lr_decay": "lr_decay",
    "min_lr": "min_lr",
    "batch_size": "batch_size",
    "grad_clip": "grad_clip",
    "eval_every": "eval_every",
    "eval_k": "eval_k",
    "eval_n": "eval_n",
    "log_every": "log_every",
    "pretrain_epochs": "pretrain_epochs",
    "pretrain_augment": "pretrain_augment",
    "joint_augment": "joint_augment",
}


def _set_weight_floor(model, ckpt: dict, floor: float, given: dict) -> None:
    """--weight-floor on a resumed mixture-prior model that is still pre-training: the autoencoder
    epochs never touch the prior, so the model is the one a run with this floor from the start
    would have at this epoch. Once EM has set the prior, changing the floor would change the model."""
    if model.mixture is None:
        raise ValueError("--weight-floor applies to a mixture prior only")
    pretrain = given.get("pretrain_epochs", (ckpt.get("train_config") or {}).get("pretrain_epochs", 0))
    if float(ckpt.get("epoch", 0.0)) > pretrain + 1e-9:  # EM runs as epoch `pretrain` begins
        raise ValueError(
            f"--weight-floor: the prior of {ckpt.get('name') or 'this model'} is already trained "
            f"(epoch {float(ckpt.get('epoch', 0.0)):g}, pre-training {pretrain} epochs)"
        )
    mixture = type(model.mixture)(model.mixture.n_components, model.latent_dim, model.mixture.min_scale, floor)
    model.mixture = mixture
    model.config.weight_floor = float(floor)


def _fail(message: str) -> int:
    print(f"lvm-studio: error: {message}", file=sys.stderr)
    return 2


def cmd_train(args) -> int:
    from lvm_studio.core import distributed

    try:
        return _cmd_train(args)
    finally:
        distributed.teardown()  # a torchrun process leaves its group, whatever happened


def _cmd_train(args) -> int:
    import torch

    from lvm_studio.core import distributed, threads
    from lvm_studio.core.checkpoint import (
        CheckpointError,
        history_from_checkpoint,
        load_checkpoint,
        model_from_checkpoint,
    )
    from lvm_studio.core.data import DataError, check_fits, load_mnist
    from lvm_studio.core.device import choose_device
    from lvm_studio.core.training import TrainConfig, Trainer, resume_lr
    from lvm_studio.core.vae import VAE, VAEConfig

    try:
        threads.use("training")
        data = load_mnist(args.data)
        # under torchrun: one of N processes training one model (core/distributed.py); rank 0 reports
        info = distributed.setup(args.device) if distributed.launched_by_torchrun() else None
        device = info.device if info else choose_device(args.device)
        make_trainer = partial(distributed.DistributedTrainer, info=info) if info else Trainer
        given = {field: getattr(args, arg) for arg, field in TRAIN_OPTIONS.items() if getattr(args, arg) is not None}
        if args.resume:
            ckpt = load_checkpoint(args.resume)
            if args.epochs <= float(ckpt.get("epoch", 0.0)) + 1e-9:
                return _fail(
                    f"{args.resume} has trained {float(ckpt.get('epoch', 0.0)):g} epochs already: --epochs is "
                    f"the total, so give more than that (it is {args.epochs})"
                )
            model = model_from_checkpoint(ckpt)
            check_fits(model.config.x_dim, data)
            if args.weight_floor is not None:
                _set_weight_floor(model, ckpt, args.weight_floor, given)
            history = history_from_checkpoint(ckpt)
            # where the run ended (after decay), not where its settings began; a warm-up follows
            # automatically when the checkpoint has no optimizer state
            lr = resume_lr(ckpt.get("train_config"), ckpt.get("optimizer"), history)
            config = TrainConfig.from_dict(
                {**(ckpt.get("train_config") or {}), **({"lr": lr} if lr else {}), **given, "epochs": args.epochs}
            )
            trainer = make_trainer(
                model,
                data,
                config,
                device,
                optimizer_state=ckpt.get("optimizer"),
                history=history,
                step=ckpt.get("step", 0),
                epoch=ckpt.get("epoch", 0.0),
                name=ckpt.get("name"),
            )
            if "lr" in given:  # the optimizer state carries the old rate; the new one applies from the first step
                trainer.set_lr(given["lr"])
        else:
            torch.manual_seed(args.seed)
            model = VAE(
                VAEConfig(
                    latent_dim=args.latent_dim,
                    hidden=tuple(args.hidden),
                    likelihood=args.likelihood,
                    activation=args.activation,
                    x_dim=data.n_pixels,  # 784 for MNIST; an imported dataset's side²
                    prior=args.prior,
                    components=args.components,
                    **({} if args.weight_floor is None else {"weight_floor": args.weight_floor}),
                )
            )
            config = TrainConfig(epochs=args.epochs, snapshot_interval_s=0.0, seed=args.seed, **given)
            trainer = make_trainer(model, data, config, device, name=args.name)
    except (DataError, CheckpointError, ValueError, RuntimeError) as e:
        return _fail(str(e))
    n_eval = len(getattr(trainer, "x_eval", ()))
    if n_eval and config.eval_n > n_eval:  # a clipped value says so (issue 13, item 6)
        note(
            f"--eval-n {config.eval_n} is more than the {n_eval} images of the {config.eval_split} split: all are used"
        )
    return _train_loop(args, trainer, model, config, device, info)


def _train_loop(args, trainer, model, config, device, info) -> int:
    from lvm_studio.core.checkpoint import save_checkpoint
    from lvm_studio.core.history import EvalRecord, StepRecord
    from lvm_studio.core.training import Notice, Progress

    main_rank = info is None or info.is_main  # only rank 0 of a torchrun group prints and writes
    bar = _ProgressBar(not args.quiet and main_rank)
    out = Path(args.out)
    if main_rank:
        print(
            f"training {model.config.describe()} on {device} ({config.objective}"
            f"{'-' + str(config.k) if config.objective == 'iwae' else ''}, {config.epochs} epochs) -> {out}",
            file=sys.stderr,
        )
        if info is not None:
            print(trainer.describe(), file=sys.stderr)
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda *_: (interrupted.append(1), trainer.stop()))
    t0 = time.perf_counter()
    last_epoch_saved = int(trainer.epoch)
    written = f"{out} was not written" if not out.exists() else f"{out} is left as it was"
    rate, last, eval_s = 0.0, None, 0.0
    try:
        for event in trainer.run():
            if isinstance(event, StepRecord):
                rate, last = event.images_per_s, event
            elif isinstance(event, Progress):
                elapsed = time.perf_counter() - t0
                bar.update(
                    (event.epoch + event.epoch_fraction) / max(1, event.total_epochs),
                    f"epoch {event.epoch + 1}/{event.total_epochs}  step {event.step}  "
                    f"ELBO {last.elbo:8.2f}  {rate:7.0f} img/s  {elapsed:5.0f}s",
                )
            elif isinstance(event, EvalRecord):
                eval_s += event.seconds
                bar.close() if bar.enabled else None
                clusters = (
                    f"  test acc {event.cluster_acc:.4f}  NMI {event.cluster_nmi:.4f}"
                    if event.cluster_acc is not None
                    else ""
                )
                print(
                    f"epoch {event.epoch:6.2f}  step {event.step:7d}  val ELBO {event.elbo:8.2f}  "
                    f"log p(x) ~ {event.log_px:8.2f} (k={event.k})  KL {event.kl:6.2f}  "
                    f"lr {trainer.lr:.2e}{clusters}",
                    file=sys.stderr,
                    flush=True,
                )
                if int(trainer.epoch + 1e-9) > last_epoch_saved:
                    if not math.isfinite(event.elbo):  # weights that evaluate to NaN replace nothing
                        print(f"not saved: the validation ELBO is {event.elbo}", file=sys.stderr)
                        continue
                    save_checkpoint(out, trainer.checkpoint())
                    last_epoch_saved = int(trainer.epoch + 1e-9)
                    written = f"{out} holds epoch {last_epoch_saved} (step {trainer.step})"
            elif (
                isinstance(event, Notice)
                and event.kind in ("nan", "diverged", "stopped", "prior_initialised")
                and main_rank
            ):
                print(f"\n{event.message}", file=sys.stderr)
                if event.kind == "diverged":
                    # issue 13, item 1: a divergence never overwrites a good checkpoint
                    print(f"nothing saved after the divergence: {written}", file=sys.stderr)
                    return 1
            elif isinstance(event, Notice) and event.kind == "diverged":
                return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.close()
    if not main_rank:
        return 130 if interrupted else 0
    save_checkpoint(out, trainer.checkpoint())
    wall = time.perf_counter() - t0
    print(
        f"saved {out} after {trainer.step} steps ({wall:.0f} s, {eval_s:.1f} s of it evaluating: "
        f"{100 * eval_s / max(wall, 1e-9):.1f} %)",
        file=sys.stderr,
    )
    return 130 if interrupted else 0


def cmd_eval(args) -> int:
    from lvm_studio.core import threads
    from lvm_studio.core.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
    from lvm_studio.core.data import DataError, check_fits, load_mnist
    from lvm_studio.core.device import choose_device
    from lvm_studio.core.evaluation import evaluate
    from lvm_studio.core.training import eval_images

    try:
        threads.use("training")
        device = choose_device(args.device)
        ckpt = load_checkpoint(args.checkpoint)
        model = model_from_checkpoint(ckpt, device)
        data = load_mnist(args.data)
        check_fits(model.config.x_dim, data)
    except (DataError, CheckpointError, ValueError, RuntimeError) as e:
        return _fail(str(e))
    x = eval_images(data, args.split, model.config.likelihood, device)
    if args.n > len(x):
        note(f"--n {args.n} is more than the {len(x)} images of the {args.split} split: all {len(x)} are used")
    x = x[: args.n]
    bar = _ProgressBar(not args.json)
    result = evaluate(
        model,
        x,
        k=args.k,
        iw_ks=args.iw_ks,
        seed=args.seed,
        progress=lambda f: bar.update(f, f"{f * len(x):.0f}/{len(x)} images"),
    )
    bar.close()
    if model.mixture is not None:  # labels only score: Hungarian-matched accuracy and NMI of q(c|x)
        from lvm_studio.core.mixture_prior import cluster_scores

        # one encoder pass per image: cheap, so always the whole split, whatever --n
        _, y = data.split(args.split)
        scores = cluster_scores(model, eval_images(data, args.split, model.config.likelihood, device), y)
        result.update(
            cluster_accuracy=scores.accuracy,
            cluster_nmi=scores.nmi,
            cluster_n=scores.n,
            components=model.config.components,
        )
    result.update(
        checkpoint=str(args.checkpoint),
        model=ckpt.get("name"),
        split=args.split,
        device=str(device),
        likelihood=model.config.likelihood,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{ckpt.get('name')}: {args.split} set, n={result['n']}, k={result['k']}, {result['seconds']:.1f} s")
        print(f"  ELBO       {result['elbo']:9.3f} nats  (reconstruction {result['recon']:.3f}, KL {result['kl']:.3f})")
        print(f"  log p(x) ≥ {result['log_px']:9.3f} nats  (IWAE-{args.k})")
        print(f"  gap        {result['gap']:9.3f} nats  (≈ KL(q(z|x) ‖ p(z|x)) on average)")
        if "cluster_accuracy" in result:
            print(
                f"  clusters   accuracy {result['cluster_accuracy']:.4f}, NMI {result['cluster_nmi']:.4f}  "
                f"(q(c|x) of all {result['cluster_n']} {args.split} digits, {result['components']} components matched "
                "to the labels by the Hungarian method)"
            )
        for j, v in result.get("iw_bounds", {}).items():
            print(f"  IW-{j:<6}   {v:9.3f}")
    return 0


def cmd_gui(args) -> int:
    try:
        from lvm_studio.ui.app import run_app
    except ImportError as e:  # the GUI package is missing or broken: say what still works
        print(
            f"The LVM Studio window could not start ({e}).\n"
            "Headless commands:\n  lvm-studio train --latent-dim 2 --epochs 5 --out model.pt\n"
            "  lvm-studio eval model.pt --k 1000",
            file=sys.stderr,
        )
        return 1
    return run_app(args)


def _refused(args) -> str | None:
    """A reason to refuse the command line before any work (loading torch, data or a checkpoint)."""
    reason = refusal(args)  # the rules declared beside each command's arguments (cli_checks.add_checks)
    if reason is not None:
        return reason
    if getattr(args, "out", None):  # train, train-made, ...: an unwritable --out found now, not after an epoch
        return destination_problem(args.out)
    return None


def main(argv: list[str] | None = None) -> int:
    from lvm_studio.core import threads  # no torch: it must come after the thread policy

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or argparse's one-line error (OneLineParser): its exit code, no raise
        return e.code if isinstance(e.code, int) else 2
    reason = _refused(args)
    if reason is not None:
        return _fail(reason)
    try:
        threads.configure_process()
    except ValueError as e:
        return _fail(str(e))
    if args.command == "train":
        return cmd_train(args)
    if args.command == "eval":
        return cmd_eval(args)
    from lvm_studio.cli_pixel import PIXEL_COMMANDS, run_pixel_command

    if args.command in PIXEL_COMMANDS:
        return run_pixel_command(args)
    from lvm_studio import cli_classifier

    if args.command == cli_classifier.COMMAND:
        return cli_classifier.run(args)
    if args.command == "data":
        from lvm_studio.cli_data import cmd_data

        return cmd_data(args)
    return cmd_gui(args)


if __name__ == "__main__":
    raise SystemExit(main())
