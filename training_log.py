"""The training log: what a run records as it trains (metrics.json, and the same log inside each checkpoint), and
the questions asked of it.

    from training_log import read_metrics, first_formed
    metrics = read_metrics("checkpoints/MiniGPT-2M")      # [MetricsRow, ...], one per evaluation
    first_formed(metrics, "text-val")                     # the first row whose probes show an induction head

- MetricsRow: one evaluation (losses, learning rate, times) with, at the probe steps, a ProbeLog per probe set;
- TrainingProbe: the small fixed probe sets scored during training (induction.py's scores, with fewer resamples);
- first_formed, probed_rows, last_probe: where a log shows a head formed, and which rows probed.
The file format (the versioned record, its upgrades) is checkpoint.py's; the scores and criteria are induction.py's.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from checkpoint import from_record, read_record
from induction import (CRITERIA, N_CHUNKS, PROBE_S, TRAINING_PROBE_N, Estimate, HeadScores, HeadValue, head_scores,
                       induction_heads, probe_alphabets, random_probes, text_probes)


@dataclass
class ProbeLog:
    """One probe set's scores as logged during training (TrainingProbe): each metric's best head with both CI bounds,
    and for prefix matching and copying every head's, so the induction-head criteria can be applied to the log."""
    best_delta: HeadValue
    best_prefix_match: HeadValue | None   # None in logs written before the score existed
    max_prev_token: float
    gain: Estimate                        # the in-context gain G with its CI (without one in logs before 2026-11-26)
    delta: np.ndarray                     # (L, H) every head's mean Δ
    # logs from 2026-11-26 on (issue #13); None in older ones (checkpoint.upgrade reads every version)
    prefix_match: HeadScores | None = None
    copying: HeadScores | None = None
    best_prev_token: HeadValue | None = None
    original_delta: Estimate | None = None  # the original study's δ with its CI (logs from 2026-11-29 on)

    def best(self, score: str = "delta") -> HeadValue | None:
        if score == "copying":
            return self.copying.best() if self.copying is not None else None
        return {"delta": self.best_delta, "prefix_match": self.best_prefix_match}[score]

    def induction_heads(self) -> list[HeadValue]:
        return induction_heads(self.prefix_match, self.copying)


@dataclass
class MetricsRow:
    """One evaluation, as logged to metrics.json."""
    step: int
    tokens: int
    train_loss: float      # nats/token on fixed training windows
    val_loss: float        # nats/token on fixed validation windows
    val_bpc: float         # bits per character of the validation text
    lr: float
    elapsed_s: float       # wall time of the run so far, evaluations included
    train_s: float         # time in optimizer steps alone
    probes: dict[str, ProbeLog] = field(default_factory=dict)  # by probe set, at train.probe_steps
    precision: str = "fp32"  # the training step's precision ("auto" resolved; logs before the field were fp32)

    @property
    def chars_per_token(self) -> float:
        return self.val_loss / (self.val_bpc * np.log(2))

    def __str__(self):
        return (f"step {self.step:>6,}: train {self.train_loss:.3f}  val {self.val_loss:.3f} nats/token "
                f"({self.val_bpc:.3f} bits/char)")


def read_metrics(run_dir) -> list[MetricsRow]:
    """A run's training log, <run_dir>/metrics.json."""
    return read_record(Path(run_dir) / "metrics.json", "metrics", list[MetricsRow])


def metrics_of(ckpt: dict) -> list[MetricsRow]:
    """The training log a checkpoint holds (as JSON text), in the current version."""
    return from_record("metrics", json.loads(ckpt.get("metrics", "[]")), list[MetricsRow], "the checkpoint's metrics")


class TrainingProbe:
    """A small fixed probe set scored every few hundred training steps (formation curves)."""

    def __init__(self, model, train_tokens, val_tokens, tok, S: int = PROBE_S, n: int = TRAINING_PROBE_N,
                 seed: int = 0):
        self.model = model
        block_size = model.config.block_size
        S = min(S, block_size // N_CHUNKS)
        self.sets = {"text-val": text_probes(val_tokens, S, n, seed, block_size, "text-val"),
                     "text-train": text_probes(train_tokens, S, n, seed, block_size, "text-train"),
                     **{kind: random_probes(alpha, S, n, seed, block_size, kind)
                        for kind, alpha in probe_alphabets(train_tokens, tok).items()}}

    def __call__(self) -> dict[str, ProbeLog]:
        was_training = self.model.training
        self.model.eval()
        logs = {}
        for kind, p in self.sets.items():
            s = head_scores(self.model, p, n_boot=200)
            logs[kind] = ProbeLog(best_delta=s.delta.best(), best_prefix_match=s.prefix_match.best(),
                                  max_prev_token=float(s.prev_token.mean.max()), gain=s.G, delta=s.delta.mean,
                                  prefix_match=s.prefix_match, copying=s.copying, best_prev_token=s.prev_token.best(),
                                  original_delta=s.original_delta)
        self.model.train(was_training)
        return logs


def first_formed(metrics, kind: str = "text-val", score: str = "induction"):
    """The first logged row (MetricsRow) at which the `kind` probes show a formed head, else None.

    score "induction": a head whose prefix matching and copying both clear CRITERIA (logs from 2026-11-26 on;
    older logs never qualify); "delta" / "prefix_match" / "copying": the best head by that score clears its criterion.
    """
    for m in metrics:
        log = m.probes.get(kind)
        if log is None:
            continue
        if score == "induction":
            if log.induction_heads():
                return m
        elif (best := log.best(score)) is not None and best.value.clears(CRITERIA[score].threshold):
            return m
    return None


def probed_rows(metrics) -> list:
    """The rows of a run's metrics that logged probes, leaving out step 0: the untrained model, at zero tokens, which
    a log axis of tokens cannot place."""
    return [m for m in metrics if m.probes and m.step]


def last_probe(metrics):
    """The last row that probed: a run's "within" is the tokens its probes reach, not its last evaluation's."""
    return probed_rows(metrics)[-1]
