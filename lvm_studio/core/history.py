"""Metric records produced by training, and the history that collects them.

Records are frozen dataclasses of plain numbers: safe to pass between threads, and
the history stores them as plain lists and dicts so a checkpoint loads with weights_only=True.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

TRAIN_COLUMNS = ("step", "epoch", "elbo", "recon", "kl", "loss", "lr", "beta", "images_per_s")


@dataclass(frozen=True)
class StepRecord:
    """Training metrics averaged over the steps since the last record (nats per image)."""

    step: int
    epoch: float  # fractional epochs seen
    elbo: float
    recon: float
    kl: float
    loss: float  # the objective actually minimised (−β-ELBO or −IWAE-k), per image
    lr: float
    beta: float
    images_per_s: float


@dataclass(frozen=True)
class EvalRecord:
    """An evaluation on a fixed, once-binarized subset (nats per image)."""

    step: int
    epoch: float
    split: str
    n: int
    elbo: float
    recon: float
    kl: float
    log_px: float  # IWAE-k estimate of log p(x), k = self.k
    k: int
    iw_bounds: tuple = ()  # ((k, bound), ...) for extra k, from the same samples
    seconds: float = 0.0
    # a mixture prior's clustering of labelled test digits by q(c|x) (labels only score); None otherwise
    cluster_acc: float | None = None
    cluster_nmi: float | None = None

    @property
    def gap(self) -> float:
        """log p̂(x) − ELBO: an estimate of the average KL(q(z|x) ‖ p(z|x))."""
        return self.log_px - self.elbo

    def to_dict(self) -> dict:
        d = asdict(self)
        d["iw_bounds"] = [[int(k), float(v)] for k, v in self.iw_bounds]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EvalRecord:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["iw_bounds"] = tuple((int(k), float(v)) for k, v in d.get("iw_bounds", ()))
        return cls(**d)


@dataclass
class History:
    """All records of a model's training, in arrival order."""

    train: list[StepRecord] = field(default_factory=list)
    evals: list[EvalRecord] = field(default_factory=list)

    def add(self, record) -> None:
        if isinstance(record, StepRecord):
            self.train.append(record)
        elif isinstance(record, EvalRecord):
            self.evals.append(record)
        else:
            raise TypeError(f"not a metric record: {type(record).__name__}")

    def to_dict(self) -> dict:
        """Columns of plain floats: compact, and loadable with weights_only=True."""
        return {
            "train": {c: [getattr(r, c) for r in self.train] for c in TRAIN_COLUMNS},
            "evals": [r.to_dict() for r in self.evals],
        }

    @classmethod
    def from_dict(cls, d: dict | None) -> History:
        if not d:
            return cls()
        cols = d.get("train", {})
        n = len(cols.get("step", []))
        train = [StepRecord(**{c: cols[c][i] for c in TRAIN_COLUMNS}) for i in range(n)]
        evals = [EvalRecord.from_dict(e) for e in d.get("evals", [])]
        return cls(train=train, evals=evals)

    def to_csv(self) -> str:
        """Both tables in one CSV: one row per record, a 'kind' column telling them apart."""
        ks = sorted({k for e in self.evals for k, _ in e.iw_bounds})
        header = ["kind", *TRAIN_COLUMNS, "split", "n", "log_px", "k", *(f"iw_{k}" for k in ks)]
        lines = [",".join(header)]
        for r in self.train:
            lines.append(
                ",".join(
                    ["train", *(repr(float(getattr(r, c))) for c in TRAIN_COLUMNS), "", "", "", "", *("" for _ in ks)]
                )
            )
        for e in self.evals:
            b = dict(e.iw_bounds)
            row = [
                "eval",
                str(e.step),
                repr(e.epoch),
                repr(e.elbo),
                repr(e.recon),
                repr(e.kl),
                "",
                "",
                "",
                "",
                e.split,
                str(e.n),
                repr(e.log_px),
                str(e.k),
                *(repr(b[k]) if k in b else "" for k in ks),
            ]
            lines.append(",".join(row))
        return "\n".join(lines) + "\n"
