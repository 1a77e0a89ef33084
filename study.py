"""The induction-head study of one checkpoint, step by step (InductionHeads.ipynb calls these).

    python study.py                     # the run trained last here (checkpoints/last_run.txt)
    python study.py MiniGPT-5.6M        # a run by name: checkpoints/MiniGPT-5.6M/best.pt
    python study.py path/to/best.pt     # any checkpoint
Figures and the attention page go to Plots/<run>/; the summary to the run's folder, checkpoints/<run>/ (for a committed
reference checkpoint, which is read-only: checkpoints/reference-<run>/).

Steps: load -> probes -> per-head scores (and on gapped repeats) -> single-head ablations (zero, mean and resample) ->
activation patching on matched prompts (every head, the tested set, and every head set of its size) -> path patching
(the previous-token heads into the tested heads' keys, queries and values) -> the verdict, with the secondary views
(joint vs random ablations, previous-token circuit, K-composition, in-context learning) -> the original study's δ and
single-head δ drops, measured its way -> figures -> the attention page -> a typed StudyResult, saved as JSON.
Definitions: induction.py's docstring; criteria: induction.CRITERIA.
Every flag is a field of StudyConfig, with its default.
"""
if __name__ == "__main__":  # Ctrl-C while the imports load is noted, and acted on once they have loaded:
    # raised inside them it can be lost (torch's C init imports numpy and clears any error that import raises)
    import signal
    _CTRL_C_WHILE_IMPORTING = []
    signal.signal(signal.SIGINT, lambda *_: _CTRL_C_WHILE_IMPORTING.append(True))

import argparse
import errno
import os
import stat
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import induction as ind
import utils
from checkpoint import (CheckpointError, OutputError, check_name, check_writable, claim_plots, in_training, is_reference,
                        load_model, output_path, portable, read_record, run_command, run_weights, write_record)
from config import (CHECKPOINTS, LAST_RUN, PLOTS, PRECISIONS, ConfigError, RunConfig, add_arguments, check_types, doc,
                    pick_device, pick_precision)
from corpus import CorpusError, load_corpus
from gpt2_folder import is_folder
from prepare import encode_splits
from tokenizer import TokenizerError


PROBE_SETS = ("text-val", "text-train", "random", "random-known")
ABLATIONS = ("zero", "mean", "resample")  # what a head's output is replaced with (induction.py's docstring)

# The verdict (issue #39, fixed on 2026-12-05 before any model was recomputed): induction.VERDICT and its comment.
# The verdict of issue #25 (2026-11-29), now the old rule: the candidates (prefix matching and relative copying clear
# induction.CRITERIA), patched at every position, noising removes and denoising restores at least half of the gain and
# their patching score beats 95% of the head sets of their size (induction.VERDICT_OLD).
#
# The ablation criterion (issue #13, 2026-11-26), now a secondary view: ablating the tested heads together removes at
# least CANDIDATES_REMOVE of G (the lower bound of its CI) under every ablation in ABLATIONS, and the same number of
# random other heads (zero ablation) remove at most RANDOM_REMOVE (the median of the draws). Its flaws (issue #25):
# the random draws' median tracks the number of candidates, zero ablation is off-distribution, and resampling from
# another repeat prompt injected a wrong copy; resample ablation now draws from the control prompts.
CANDIDATES_REMOVE = 0.8
RANDOM_REMOVE = 0.2
# Upper bounds on the study's sizes: the patterns of n_prompts prompts are held in memory ((N, L, H, 4S, 4S) floats,
# 270 MB for 4,096 prompts of the 2M model), and every draw is an ablated forward pass.
MAX_PROMPTS = 4096
MAX_DRAWS = 1000
MAX_SETS = 5000  # each compared head set is two patched forward passes and one on validation windows


@dataclass(frozen=True)
class StudyConfig:
    checkpoint: str | None = doc("the checkpoint to study: a .pt or an exported folder (make export), or a run's name "
                                 "(checkpoints/<name>/best.pt); "
                                 "None: the run trained last here (checkpoints/last_run.txt)", None)
    name: str | None = doc("label of figures and files (None: the name of the checkpoint's folder, its run's name)",
                           None)
    S: int = doc("chunk length; prompts are 4 chunks", ind.PROBE_S)
    n_prompts: int = doc("prompts per probe set, for the scores", 200)
    n_ablate: int = doc("prompts of the primary set used by the ablations and the circuit search (the first of the "
                        "n_prompts that select)", 64)
    n_test: int = doc("prompts of the primary set that test the verdict's patching, drawn after the n_prompts by the "
                      "same generator (disjoint from them)", 64)
    seed: int = doc("seed of the probes and the random head draws", 0)
    primary: str = doc("probe set that defines the induction heads (induction.CRITERIA): text-val, random or "
                       "random-known", "text-val")
    n_random_draws: int = doc("random head sets the induction heads are compared with under zero ablation (a "
                              "secondary view)", 20)
    n_sets: int = doc("head sets of the tested set's size whose patching is compared with it (all of them when there "
                      "are at most this many, else a sample stratified by layer)", 300)
    plots_dir: str | None = doc("where the figures go (None: Plots/<name>/)", None)
    page_prompt: str | None = doc("the prompt of the interactive attention page (None: the first repeat probe)", None)
    out_json: str | None = doc("the summary's path (None: induction_<name>.json in the run's folder)", None)
    device: str = doc("auto, cpu, cuda or mps", "cpu")
    precision: str = doc("fp32, or bf16 autocast for the forward passes of scores and ablations (about 3x faster "
                         "on a CPU with bf16; equal to fp32 within the CIs, tests/test_induction.py); auto: "
                         "bf16 where the hardware runs it fast (config.pick_precision)", "auto")

    def __post_init__(self):
        check_types(self)
        if not 2 <= self.n_ablate <= self.n_prompts <= MAX_PROMPTS:
            raise ConfigError(f"need 2 <= n_ablate <= n_prompts <= {MAX_PROMPTS:,} (the CIs resample prompts; the "
                              f"ablations use the first n_ablate prompts), got n_prompts {self.n_prompts} and n_ablate "
                              f"{self.n_ablate}")
        if not 2 <= self.n_test <= MAX_PROMPTS:
            raise ConfigError(f"n_test must be in [2, {MAX_PROMPTS:,}] (the CIs resample prompts), got {self.n_test}")
        if not 0 <= self.n_random_draws <= MAX_DRAWS:
            raise ConfigError(f"n_random_draws must be in [0, {MAX_DRAWS:,}], got {self.n_random_draws}")
        if not 1 <= self.n_sets <= MAX_SETS:
            raise ConfigError(f"n_sets must be in [1, {MAX_SETS:,}], got {self.n_sets}")
        if not 0 <= self.seed < 2 ** 32:
            raise ConfigError(f"seed must be in [0, 2**32), got {self.seed}")
        if self.name is not None:
            check_name(self.name, "study name (--name)")
        if self.checkpoint == "":
            raise ConfigError("checkpoint must not be empty; use None for the run trained last here")
        pick_device(self.device)  # a missing device is named now, not after loading
        if self.primary not in PROBE_SETS:
            raise ConfigError(f"primary must be one of {', '.join(PROBE_SETS)}, got {self.primary!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


# ---- typed results ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ShareRemoved:
    """Share of G removed by an ablation, 1 - G_ablated / G_base, with a paired bootstrap CI (null: 0)."""
    share: float
    lo: float
    hi: float
    G_ablated: float
    G_base: float

    def __str__(self):
        return f"{100 * self.share:.0f}% [{100 * self.lo:.0f}, {100 * self.hi:.0f}]"


@dataclass
class RandomHeads:
    """Shares of G removed by random head sets of the candidates' size (the baseline a candidate must beat)."""
    mean: float
    median: float
    p05: float
    p95: float
    draws: list[float]
    heads: list[list[tuple[int, int]]]

    def __str__(self):
        return (f"median {100 * self.median:.0f}% (5–95th pct {100 * self.p05:.0f} to {100 * self.p95:.0f}, "
                f"{len(self.draws)} draws)")


@dataclass
class SingleAblation:
    """Every head ablated alone with one fill (zero or mean)."""
    G_base: float
    val_loss_base: float
    G_drop: np.ndarray            # (L, H) G(base) - G(ablated)
    G_removed: list[ShareRemoved]  # per head, in SingleAblations.heads order
    delta_change: np.ndarray      # (L, H, L, H) change of every head's Δ when head (l, h) is ablated
    val_loss_change: np.ndarray   # (L, H) nats/token on validation windows

    def largest_drop(self) -> tuple[str, float]:
        l, h = np.unravel_index(self.G_drop.argmax(), self.G_drop.shape)
        return f"L{l}H{h}", float(self.G_drop[l, h])

    def __str__(self):
        head, drop = self.largest_drop()
        return (f"G = {self.G_base:.3f}; largest G drop {head} = {drop:.3f} ({100 * drop / self.G_base:.0f}%); "
                f"largest validation-loss increase {self.val_loss_change.max():.3f} nats/token")


@dataclass
class SingleAblations:
    heads: list[tuple[int, int]]
    n_prompts: int
    probe: str
    val_tokens: int
    zero: SingleAblation
    mean: SingleAblation
    resample: SingleAblation
    fills: dict = field(default_factory=dict, metadata={"json": False})  # mode -> (L, H, D) values or RESAMPLE

    def __str__(self):
        return "\n".join(f"{mode} ablation: {getattr(self, mode)}" for mode in ABLATIONS)


@dataclass(frozen=True)
class DeltaChange:
    before: float
    after: float


@dataclass
class JointAblation:
    tested: ShareRemoved
    random: RandomHeads | None = None                   # zero ablation only
    prev_heads_ablated_delta: dict[str, DeltaChange] = field(default_factory=dict)


@dataclass
class KComposition:
    random_mean: float
    random_std: float
    pairs: dict[str, float]   # "L0H1->L1H3": score, into every tested head
    scores: torch.Tensor | None = field(default=None, metadata={"json": False})  # (L, H, L, H)

    def __str__(self):
        top = sorted(self.pairs.items(), key=lambda kv: -kv[1])[:4]
        return (f"K-composition into the tested heads (random matrices {self.random_mean:.3f} ± "
                f"{self.random_std:.3f}): " + ", ".join(f"{k} {v:.3f}" for k, v in top))


@dataclass
class InContextLearning:
    """Loss late in the context minus loss early on, on natural text (induction.icl_positions; nats/token, < 0 when
    the context helps), over every non-overlapping window of the validation split, with the tested heads ablated."""
    early: list[int]
    late: list[int]
    windows: int
    score: ind.Estimate
    ablated: dict[str, ind.Estimate]  # mode -> the score with the tested heads ablated

    def __str__(self):
        return (f"in-context learning on validation text (loss at positions {self.late[0]}-{self.late[-1]} minus "
                f"{self.early[0]}-{self.early[-1]}, {self.windows} windows): {self.score} nats/token; with the tested "
                f"heads ablated: " + ", ".join(f"{m} {e}" for m, e in self.ablated.items()))


def heads_str(heads) -> str:
    return ", ".join(f"L{l}H{h}" for l, h in heads) or "none"


def pct(e: ind.Estimate) -> str:
    """A share with its CI, as every table and report prints one: 93% [92, 94]."""
    return f"{100 * e.mean:.0f}% [{100 * e.lo:.0f}, {100 * e.hi:.0f}]"


@dataclass(frozen=True)
class SetPatching:
    """One head set patched on matched prompts: noising's share of the normalised gain removed and denoising's share
    restored (null 0 for both), and the set's cost on validation text (resample ablation, nats/token)."""
    heads: list[tuple[int, int]]
    removed: ind.Estimate
    restored: ind.Estimate
    val_loss_change: float

    @property
    def score(self) -> float:
        """The patching score: the smaller of the two means (induction.py's docstring)."""
        return min(self.removed.mean, self.restored.mean)

    def __str__(self):
        return (f"{heads_str(self.heads)}: noising removes {pct(self.removed)}, denoising restores "
                f"{pct(self.restored)} of the gain; validation loss {self.val_loss_change:+.3f} nats/token")


@dataclass
class OldPatching:
    """The verdict of issue #25 (induction.VERDICT_OLD), kept as the old rule: the tested heads patched at every
    position on the first n_ablate selection prompts, against the head sets of their size."""
    n_prompts: int
    tested: SetPatching
    sets_total: int
    percentile: float


@dataclass
class Patching:
    """Activation patching on matched prompts (clean [base, base], corrupted [c1, base], chunk 2) at the measured
    positions, on the test prompts: every head alone, the tested heads, and the circuit found by the search on the
    selection prompts against the other head sets of its size (specificity); patching by chunk; the old rule."""
    probe: str
    n_prompts: int                 # test prompts
    loss_clean: float              # chunk-2 loss on the test prompts, nats/token
    loss_corrupt: float
    removed: ind.HeadScores        # (L, H) noising each head alone: share of the gain removed
    restored: ind.HeadScores       # (L, H) denoising each head alone: share restored
    tested: SetPatching            # the induction heads (or the top head by prefix matching)
    sets: list[SetPatching]        # the other sets of the circuit's size that were compared
    set_weights: list[float]       # how many sets each stands for (1 when all were compared)
    sets_total: int                # how many other sets of that size exist
    percentile: float              # weighted share of those sets whose score is below the circuit's (null 0.5)
    n_select: int                  # selection prompts of the circuit search
    search: list[ind.SearchStep]   # the circuit search, on the selection prompts
    circuit: SetPatching           # the found circuit, on the test prompts
    by_chunk: dict[str, dict[str, SetPatching]]  # "tested" / "circuit" -> positions -> shares
    above_100: list[str]           # each share above 100% and the head that interacts with the set
    old: OldPatching

    def best(self) -> SetPatching:
        return max(self.sets + [self.circuit], key=lambda sp: sp.score)

    def found(self) -> list[tuple[int, int]]:
        """The heads that pass both patching criteria alone (lower CI bounds)."""
        t_n, t_d = (ind.CRITERIA[k].threshold for k in ("patch_noising", "patch_denoising"))
        L, H = self.removed.mean.shape
        return [(l, h) for l in range(L) for h in range(H)
                if self.removed.at(l, h).value.clears(t_n) and self.restored.at(l, h).value.clears(t_d)]

    def search_str(self, roles: dict | None = None) -> str:
        """The search's steps: each head added (with its roles) and the set's shares on the selection prompts."""
        def label(hd):
            r = (roles or {}).get(hd)
            return f"L{hd[0]}H{hd[1]}" + (f" ({'+'.join(r) or 'no role'})" if roles is not None else "")
        return "; ".join(f"+{label(st.added)}: removes {100 * st.removed:.0f}%, restores {100 * st.restored:.0f}%"
                         for st in self.search)

    def __str__(self):
        compared = (f"all {self.sets_total:,} compared" if len(self.sets) == self.sets_total else
                    f"{len(self.sets):,} of {self.sets_total:,} compared, sampled by layer")
        chunks = "; ".join(f"{who} at {where}: removes {pct(sp.removed)}, restores {pct(sp.restored)}"
                           for who, by in self.by_chunk.items() for where, sp in by.items() if where != "measured")
        return "\n".join([
            f"activation patching at the measured positions (chunk 2's queries) on {self.n_prompts} test prompts "
            f"({self.probe}; chunk-2 loss clean {self.loss_clean:.3f}, corrupted {self.loss_corrupt:.3f} nats/token)",
            f"  induction heads {self.tested}",
            f"  circuit search on {self.n_select} selection prompts (target {ind.CRITERIA['circuit'].threshold:.0%} "
            f"both ways): {self.search_str()}",
            f"  found circuit on the test prompts {self.circuit}",
            f"  specificity: the circuit's patching score {self.circuit.score:.3f} is above {100 * self.percentile:.1f}% "
            f"of the other sets of {len(self.circuit.heads)} heads ({compared}; null 50%); best set {self.best()}",
            f"  heads that pass noising and denoising alone: {heads_str(self.found())}",
            f"  by chunk (secondary): {chunks}",
            *(f"  above 100%: {note}" for note in self.above_100),
            f"  old rule (every position, the first {self.old.n_prompts} selection prompts): {self.old.tested}; above "
            f"{100 * self.old.percentile:.1f}% of the other {self.old.sets_total:,} sets of its size"])


@dataclass(frozen=True)
class PathShare:
    """One path patched (the previous-token heads' corrupted outputs into the tested heads' queries or keys): the share
    of their prefix matching and of the normalised gain removed (null 0)."""
    prefix_match_removed: ind.Estimate
    gain_removed: ind.Estimate


# path -> (the receivers' input, MLPs frozen, its name); "k" is the one CRITERIA["path_key"] judges. Values are no
# control: they cannot change an attention pattern, so their share of prefix matching is 0 by construction.
PATHS = {"k": ("k", False, "keys, through the MLPs"), "k-direct": ("k", True, "keys, direct path"),
         "q": ("q", False, "queries")}


@dataclass
class Circuit:
    """Path patching from the previous-token heads (senders) into the tested heads (receivers), on the test prompts,
    and the sender control: every single head below the receivers patched into their keys the same way."""
    senders: list[tuple[int, int]]
    receivers: list[tuple[int, int]]
    why: str                       # how the senders were chosen
    paths: dict[str, PathShare]    # PATHS
    sender_control: dict[str, ind.Estimate]  # "L0H2": prefix matching removed through the keys
    sender: str                    # the previous-token head ranked (the senders' strongest alone)
    sender_rank: float             # share of the other single senders whose share is below the sender's

    @property
    def through_keys(self) -> bool:
        return self.paths["k"].prefix_match_removed.clears(ind.CRITERIA["path_key"].threshold)

    @property
    def sender_first(self) -> bool:
        return self.sender_rank >= ind.CRITERIA["sender_rank"].threshold

    def __str__(self):
        lines = [f"path patching from {heads_str(self.senders)} ({self.why}) into {heads_str(self.receivers)}:"]
        lines += [f"  into the {PATHS[w][2]}: removes {pct(p.prefix_match_removed)} of their prefix matching "
                  f"and {pct(p.gain_removed)} of the gain" for w, p in self.paths.items()]
        lines.append(f"  sender control (each head below alone into the keys, through the MLPs): " + ", ".join(
            f"{h} {pct(e)}" for h, e in sorted(self.sender_control.items(), key=lambda kv: -kv[1].mean)))
        direct = self.paths["k-direct"].prefix_match_removed.clears(ind.CRITERIA["path_key"].threshold)
        lines.append(f"  {self.sender} is above {100 * self.sender_rank:.0f}% of the other senders (criterion: all); "
                     f"circuit through the keys (≥ {ind.CRITERIA['path_key'].threshold:.0%} of prefix matching, lower "
                     f"CI bound): {'yes' if self.through_keys else 'no'}; by the direct path alone: "
                     f"{'yes' if direct else 'no'}")
        return "\n".join(lines)


@dataclass
class Validation:
    candidates: list[tuple[int, int]]
    tested: list[tuple[int, int]]
    tested_are_candidates: bool
    previous_token_heads: list[tuple[int, int]]
    zero: JointAblation
    mean: JointAblation
    k_composition: KComposition
    resample: JointAblation
    icl: InContextLearning
    patching: Patching
    circuit: Circuit | None                # None where no previous-token head sits below the tested heads
    roles: dict[str, list[str]]            # "L1H3" -> its roles (induction.head_roles)

    def verdicts(self) -> dict[str, bool]:
        """Each part of the verdict (induction.VERDICT), by name."""
        p, c, cands = self.patching, ind.CRITERIA, set(self.candidates)
        path = self.circuit
        return {f"necessity: noising the induction heads removes >= {c['patch_noising'].threshold:.0%} of the gain "
                f"(lower CI bound)": bool(cands) and p.tested.removed.clears(c["patch_noising"].threshold),
                f"sufficiency: denoising the found circuit restores >= {c['patch_denoising'].threshold:.0%} (lower CI "
                f"bound)": p.circuit.restored.clears(c["patch_denoising"].threshold),
                f"specificity: the circuit's patching score is above >= {c['specificity'].threshold:.0%} of the sets "
                f"of its size": p.percentile >= c["specificity"].threshold,
                "the circuit holds an induction head": bool(cands & set(map(tuple, p.circuit.heads))),
                f"the keys path from the previous-token head removes >= {c['path_key'].threshold:.0%} of prefix "
                f"matching (lower CI bound)": path is not None and path.through_keys,
                "the previous-token head ranks first among the senders": path is not None and path.sender_first}

    def verdicts_old(self) -> dict[str, bool]:
        """The verdict of issue #25 (induction.VERDICT_OLD): the tested heads patched at every position."""
        c, t, percentile = ind.CRITERIA, self.patching.old.tested, self.patching.old.percentile
        return {f"noising removes >= {c['patch_noising'].threshold:.0%} of the gain (lower CI bound)":
                t.removed.clears(c["patch_noising"].threshold),
                f"denoising restores >= {c['patch_denoising'].threshold:.0%} (lower CI bound)":
                t.restored.clears(c["patch_denoising"].threshold),
                f"patching score above >= {c['specificity'].threshold:.0%} of the sets of its size":
                percentile >= c["specificity"].threshold}

    @property
    def validated_old(self) -> bool:
        return self.tested_are_candidates and all(self.verdicts_old().values())

    def failed(self) -> list[str]:
        """The parts of the verdict that fail, by name ("no induction head" first where there is none)."""
        return (["no head clears the induction-head criteria"] if not self.tested_are_candidates else []) + [
            part for part, ok in self.verdicts().items() if not ok]

    def ablation_verdicts(self) -> dict[str, bool]:
        """Each part of the ablation criterion (CANDIDATES_REMOVE, RANDOM_REMOVE; a secondary view), by name."""
        out = {f"{mode} ablation of the tested heads removes >= {CANDIDATES_REMOVE:.0%} of G (lower CI bound)":
               getattr(self, mode).tested.lo >= CANDIDATES_REMOVE for mode in ABLATIONS}
        if self.zero.random:
            out[f"random heads remove <= {RANDOM_REMOVE:.0%} of G (median)"] = self.zero.random.median <= RANDOM_REMOVE
        return out

    @property
    def validated(self) -> bool:
        return self.tested_are_candidates and all(self.verdicts().values())

    def __str__(self):
        lines = [f"induction heads: {heads_str(self.candidates)} | tested: {heads_str(self.tested)} | "
                 f"previous-token heads: {heads_str(self.previous_token_heads)}"]
        lines.append("roles: " + ind.roles_str(self.roles))
        for mode in ABLATIONS:
            j = getattr(self, mode)
            lines.append(f"{mode} ablation of the tested heads together removes {j.tested} of G")
            lines += [f"  ablating the previous-token heads moves {h}'s Δ from {d.before:.3f} to {d.after:.3f}"
                      for h, d in j.prev_heads_ablated_delta.items()]
        if self.zero.random:
            lines.append(f"{len(self.tested)} random other heads (zero ablation) remove {self.zero.random}")
        lines.append(str(self.k_composition))
        lines.append(str(self.icl))
        p = self.patching  # patching and the circuit print in full as their own steps: here, what the verdict reads
        lines.append(f"activation patching at the measured positions ({p.n_prompts} test prompts): induction heads "
                     f"{p.tested}; found circuit {p.circuit}, above {100 * p.percentile:.1f}% of the other sets of its "
                     f"size (null 50%)")
        lines.append("ablation criterion (secondary view): " + "; ".join(
            f"{part}: {'yes' if ok else 'no'}" for part, ok in self.ablation_verdicts().items()))
        if self.circuit:
            lines.append(f"circuit through the keys of {heads_str(self.circuit.receivers)}: "
                         f"{'yes' if self.circuit.through_keys else 'no'}")
        lines.append(f"verdict: {'PASS' if self.validated else 'FAIL'} (" + "; ".join(
            f"{part}: {'yes' if ok else 'no'}" for part, ok in self.verdicts().items()) + ")")
        lines.append(f"old rule (issue #25): {'PASS' if self.validated_old else 'FAIL'} (" + "; ".join(
            f"{part}: {'yes' if ok else 'no'}" for part, ok in self.verdicts_old().items()) + ")")
        return "\n".join(lines)


@dataclass
class OriginalComparison:
    """The original study's measurement, made its way: δ (induction.original_delta) on excerpts of training text, and
    the drop in δ when each head alone is zero-ablated, with paired bootstrap CIs over prompts."""
    probe: str
    n_prompts: int
    loss_repeat: float             # mean over the δ positions
    loss_control: float
    delta: ind.Estimate
    delta_drop: ind.HeadScores     # δ(clean) - δ(head zero-ablated)

    def top(self, k: int = 3) -> list[ind.HeadValue]:
        L, H = self.delta_drop.mean.shape
        heads = sorted(np.ndindex(L, H), key=lambda lh: -self.delta_drop.mean[lh])
        return [self.delta_drop.at(l, h) for l, h in heads[:k]]

    def __str__(self):
        return (f"the original study's δ ({self.probe} probes, {self.n_prompts} prompts; chunks 2-4 without each "
                f"chunk's first and last position): {self.delta} nats/token (repeat {self.loss_repeat:.2f} / control "
                f"{self.loss_control:.2f}; null 0); top single heads by δ drop under zero ablation: "
                + ", ".join(map(str, self.top())))


@dataclass
class StudyResult:
    model: str
    checkpoint: str
    params: int
    step: int | None
    tokenizer: str
    vocab_size: int
    tokens_seen: int
    config: StudyConfig
    scores: dict[str, ind.ProbeScores]
    single_head_ablations: SingleAblations
    validation: Validation
    timings_s: dict[str, float]
    figures: dict[str, str]
    original: OriginalComparison
    gapped: ind.GappedScores
    recurrence: dict[str, ind.Recurrence]  # random probe sets

    def __str__(self):
        """A plain-language paragraph of what the study found (the one formatter of a study)."""
        s, v = self.scores[self.config.primary], self.validation
        lines = [f"{self.model}, {s.kind} probes: best prefix matching (attention to the token after every earlier "
                 f"copy, repeat − control) {s.prefix_match.best()}; best copying (direct effect on the attended "
                 f"token's logit, repeat − control) {s.copying_z.best()} standard "
                 f"deviations over the vocabulary, {s.copying.best()} logits; best Δ {s.delta.best()}; G = {s.G} "
                 f"nats/token. Every null is 0."]
        pm, cp = ind.CRITERIA["prefix_match"].threshold, ind.CRITERIA["copying_z"].threshold
        crit = f"prefix matching ≥ {pm} and relative copying ≥ {cp}, lower CI bounds"
        if v.candidates:
            lines.append(f"Induction heads ({crit}): {heads_str(v.candidates)}.")
        else:
            lines.append(f"No head passes the induction-head criteria ({crit}); the top head by prefix matching is "
                         f"tested instead.")
        counts = ind.sensitivity(s.prefix_match, s.copying_z, "copying_z")
        lines.append("Heads passing with both thresholds scaled by " + ", ".join(
            f"{f:g}×: {n}" for f, n in counts.items()) + ".")
        lines.append(f"Roles ({s.kind} probes; previous-token ≥ {ind.CRITERIA['prev_token'].threshold}, "
                     f"duplicate-token ≥ {ind.CRITERIA['dup_token'].threshold}, lower CI bounds): "
                     f"{ind.roles_str(v.roles)}.")
        p, roles = v.patching, {ind.head_key(k): tuple(r) for k, r in v.roles.items()}
        lines.append(f"Activation patching at the measured positions, on {p.n_prompts} test prompts apart from "
                     f"the {s.n} that chose the heads: noising {heads_str(v.tested)} removes "
                     f"{pct(p.tested.removed)} of the in-context gain, denoising restores {pct(p.tested.restored)} "
                     f"(nulls 0).")
        lines.append(f"The circuit search ({p.n_select} selection prompts) adds {p.search_str(roles)}; on the test "
                     f"prompts the found circuit {heads_str(p.circuit.heads)} removes {pct(p.circuit.removed)} and "
                     f"restores {pct(p.circuit.restored)}, above {100 * p.percentile:.1f}% of the other "
                     f"{p.sets_total:,} sets of {len(p.circuit.heads)} heads (null 50%).")
        lines += [f"Above 100%: {note}." for note in p.above_100]
        if v.circuit:
            c = v.circuit
            lines.append(f"Path patching from {heads_str(c.senders)}: through the keys it removes "
                         f"{pct(c.paths['k'].prefix_match_removed)} of their prefix matching with the MLPs recomputed, "
                         f"{pct(c.paths['k-direct'].prefix_match_removed)} by the direct path alone (queries "
                         f"{pct(c.paths['q'].prefix_match_removed)}).")
            other = max(((h, e) for h, e in c.sender_control.items() if h != c.sender), key=lambda he: he[1].mean,
                        default=None)
            lines.append(f"Sender control (each head below the induction heads patched alone into their keys): "
                         f"{c.sender} removes {pct(c.sender_control[c.sender])}, above "
                         f"{100 * c.sender_rank:.0f}% of the {len(c.sender_control) - 1} other heads" +
                         (f" (the best of them, {other[0]}, {pct(other[1])})" if other else "") + ".")
        for mode in ABLATIONS:
            lines.append(f"{mode} ablation of {heads_str(v.tested)} removes {getattr(v, mode).tested} of G (a "
                         f"secondary view).")
        if v.zero.random:
            lines.append(f"{len(v.tested)} random other heads (zero ablation) remove a {v.zero.random}.")
        if v.previous_token_heads:
            lines.append(f"Previous-token heads: {heads_str(v.previous_token_heads)}.")
        lines.append(f"{str(v.icl)[0].upper()}{str(v.icl)[1:]}.")
        failed = v.failed()
        lines.append(f"Verdict (induction.VERDICT: the induction heads necessary, the found circuit sufficient and "
                     f"specific, holding an induction head fed through the keys by the previous-token head): "
                     f"{'PASS' if v.validated else 'FAIL'}" + (f"; failed: {'; '.join(failed)}" if failed else "")
                     + f". The old rule (issue #25: the induction heads alone, every position): "
                     f"{'pass' if v.validated_old else 'fail'}; the ablation criterion (secondary): "
                     f"{'pass' if all(v.ablation_verdicts().values()) else 'fail'}.")
        lines.append(f"{str(self.gapped)[0].upper()}{str(self.gapped)[1:]}.")
        for r in self.recurrence.values():
            lines.append(f"Recurrence control, {r}.")
        lines.append(f"{str(self.original)[0].upper()}{str(self.original)[1:]}.")
        return "\n".join(lines)


def read_result(path) -> StudyResult:
    return read_record(path, "study", StudyResult)


# ---- the steps -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """The checkpoint a study analyses, why that one, and where the study's outputs go."""
    checkpoint: Path
    name: str            # the run's name: its folder's (reference-<folder> for a committed reference checkpoint)
    plots_dir: Path      # figures and the attention page
    out_json: Path       # the summary
    why: str

    def __str__(self):
        return (f"studying {self.name}: {self.checkpoint} ({self.why})\n"
                f"figures -> {self.plots_dir}/, summary -> {self.out_json}")


LAST_RUN_MAX = 4096  # bytes: a run's name is at most 120 characters


def last_run() -> str:
    """The name in LAST_RUN, read safely: a regular file of at most a few KB, UTF-8, holding one run's name (train.py
    writes it). Anything else is a one-line error that never echoes the file (it may be huge, or another file)."""
    fix = "delete it (training writes it again), or name the run: make study RUN=<name>"
    try:
        fd = os.open(LAST_RUN, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # no link, and a FIFO never blocks
    except FileNotFoundError:
        raise ConfigError(f"no run has been trained here yet ({LAST_RUN} is missing): run MiniGPT.ipynb or "
                          f"`make train` first, or name a run or a checkpoint (CHECKPOINT / the first argument)") from None
    except OSError as e:
        what = "a symbolic link" if e.errno == errno.ELOOP else f"unreadable ({e.strerror})"
        raise ConfigError(f"{LAST_RUN} is {what}, not the file training writes; {fix}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{LAST_RUN} is not a regular file; {fix}")
        data = f.read(LAST_RUN_MAX + 1)
    try:
        if len(data) > LAST_RUN_MAX:
            raise ValueError
        return check_name(data.decode("utf-8").strip(), "run name")
    except (ValueError, OutputError):  # UnicodeDecodeError is a ValueError
        raise ConfigError(f"{LAST_RUN} does not hold one run's name (it should be one line of at most "
                          f"{LAST_RUN_MAX} bytes, as training writes it); {fix}") from None


def run_folder(checkpoint: Path) -> Path:
    """The folder of the run a checkpoint belongs to: a .pt's folder, or an exported folder itself (the reference
    models ship as exported GPT-2 folders, gpt2_folder.py)."""
    return checkpoint.resolve() if is_folder(checkpoint) else checkpoint.resolve().parent


def resolve(cfg: StudyConfig) -> Target:
    """Which checkpoint cfg names (a path, a run's name, or None for the run trained last) and its output paths."""
    if cfg.checkpoint is None:
        path, why = CHECKPOINTS / last_run() / "best.pt", f"the run trained last here, {LAST_RUN.name}"
    elif "/" not in cfg.checkpoint and not cfg.checkpoint.endswith(".pt"):
        check_name(cfg.checkpoint, "run name (CHECKPOINT)")
        path, why = run_weights(CHECKPOINTS / cfg.checkpoint), "the run named"
    else:
        path, why = Path(cfg.checkpoint), "the checkpoint given"
    if not path.exists():
        raise ConfigError(f"{path} does not exist ({why}); train that run first, or give another checkpoint")
    exported, folder = is_folder(path), run_folder(path)
    if is_reference(folder):  # read-only, and its folder's name may be a user's run's: its own name and folder
        run_name = f"reference-{folder.name}"
        out_dir = CHECKPOINTS / run_name
    else:
        run_name, out_dir = folder.name, folder
    if not exported and path.name != "best.pt":  # final.pt and best.pt of one run get their own outputs
        run_name += f"-{path.stem}"
    name = check_name(cfg.name or run_name, "run name")
    return Target(path, name, Path(cfg.plots_dir) if cfg.plots_dir else PLOTS / name,
                  Path(cfg.out_json) if cfg.out_json else out_dir / f"induction_{name}.json", why)


@dataclass
class Context:
    model: torch.nn.Module
    tok: object
    ckpt: dict
    run: RunConfig                                # the run that trained the checkpoint
    target: Target                                # the checkpoint's path and the study's output paths
    train_tokens: torch.Tensor
    val_tokens: torch.Tensor
    precision: str                                # fp32 or bf16 (resolved)
    timings: dict = field(default_factory=dict)  # step -> seconds
    progress: bool = False                        # say each step as it runs (on stderr)

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def label(self) -> str:
        return f"{self.name} ({self.model.num_params() / 1e6:.2f}M params)"

    @contextmanager
    def step(self, name: str):
        """Run a step of the study at its precision, and time it."""
        if self.progress:  # with 2,000 prompts a probe set, a CPU spends many minutes in some steps
            print(f"{name} ...", end=" ", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        device = next(self.model.parameters()).device.type
        try:
            with torch.autocast(device, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                yield
        finally:  # an error's message then starts a line of its own
            seconds = time.perf_counter() - t0
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            if self.progress:
                print(f"{seconds:.1f} s", file=sys.stderr, flush=True)

    def __str__(self):
        return (f"{self.label}, {self.tok.describe()}, trained {self.ckpt.get('step', 0):,} steps (batch "
                f"{self.run.batch_size} × {self.run.block_size} tokens, repeat_frac {self.run.repeat_frac})")


def check_not_training(target: Target):
    """A run still training is not studied: its best.pt changes under the study, and so would its outputs."""
    if in_training(run_folder(target.checkpoint)):
        raise ConfigError(f"{run_folder(target.checkpoint)} is still training (its folder is locked); study it when "
                          f"the training ends, or copy its best.pt elsewhere and study the copy")


def load(cfg: StudyConfig, progress: bool = False) -> Context:
    """Load the checkpoint and its corpus, after checking every input and that the outputs can be written."""
    t0 = time.perf_counter()
    target = resolve(cfg)
    check_not_training(target)
    model, tok, ckpt = load_model(target.checkpoint, cfg.device)
    try:
        run = RunConfig.from_checkpoint(ckpt)
    except ConfigError as e:
        raise CheckpointError(f"{target.checkpoint}: {e}") from None
    out = output_path(target.out_json, what="summary")
    if out.is_dir():
        raise ConfigError(f"the summary path {out} is a directory; give a file path, e.g. "
                          f"{out / f'induction_{target.name}.json'}")
    check_writable(out.parent, "summary")
    check_writable(target.plots_dir, "figures")
    if not cfg.plots_dir:  # the default, Plots/<name>/: one run's
        claim_plots(target.plots_dir, run_folder(target.checkpoint))
    if cfg.page_prompt is not None and len(tok.encode(cfg.page_prompt)) < 2:
        raise ConfigError(f"the page prompt {cfg.page_prompt!r} encodes to fewer than 2 tokens; give at least 2")
    corpus = load_corpus(run.novels, run.held_out)
    ctx = Context(model, tok, ckpt, run, target, *encode_splits(tok, corpus), pick_precision(cfg.precision, cfg.device),
                  progress=progress)
    ctx.timings["load"] = time.perf_counter() - t0
    return ctx


def draw_probes(ctx: Context, cfg: StudyConfig, kind: str) -> tuple[ind.Probes, ind.Probes]:
    """One probe set drawn once, n_prompts + n_test prompts from one generator (each set has its own, seeded by
    cfg.seed): (selection, test), disjoint draws."""
    bs, n = ctx.model.config.block_size, cfg.n_prompts + cfg.n_test
    if kind.startswith("text-"):
        p = ind.text_probes(ctx.val_tokens if kind == "text-val" else ctx.train_tokens, cfg.S, n, cfg.seed, bs, kind)
    else:
        p = ind.random_probes(ind.probe_alphabets(ctx.train_tokens, ctx.tok)[kind], cfg.S, n, cfg.seed, bs, kind)
    return tuple(ind.Probes(p.repeat[rows], p.control[rows], p.S, p.kind)
                 for rows in (slice(None, cfg.n_prompts), slice(cfg.n_prompts, None)))


def make_probes(ctx: Context, cfg: StudyConfig) -> dict[str, ind.Probes]:
    """The selection prompts of every probe set: they score the heads, name their roles and guide the circuit search."""
    return {kind: draw_probes(ctx, cfg, kind)[0] for kind in PROBE_SETS}


def test_probes(ctx: Context, cfg: StudyConfig) -> ind.Probes:
    """The primary set's test prompts: the verdict's patching and path patching run on them alone."""
    return draw_probes(ctx, cfg, cfg.primary)[1]


def show_probes(ctx: Context, probes: dict, chars: int = 110) -> str:
    """The first repeat and control prompt of each set, decoded (first two chunks)."""
    return "\n".join(f"{kind:>10} {name}: {ctx.tok.decode(getattr(p, name)[0, :2 * p.S])[:chars]} ..."
                     for kind, p in probes.items() for name in ("repeat", "control"))


def score_heads(ctx: Context, probes: dict) -> dict[str, ind.ProbeScores]:
    with ctx.step("scores"):
        return {kind: ind.head_scores(ctx.model, p) for kind, p in probes.items()}


def score_gapped(ctx: Context, cfg: StudyConfig) -> ind.GappedScores:
    """Scores on repeats outside the training augmentation's format: [c1, base, c2, base] of validation text."""
    p = ind.gapped_probes(ctx.val_tokens, cfg.S, cfg.n_prompts, cfg.seed, ctx.model.config.block_size)
    with ctx.step("scores"):
        return ind.gapped_scores(ctx.model, p)


def _subset(p: ind.Probes, n: int) -> ind.Probes:
    return ind.Probes(p.repeat[:n], p.control[:n], p.S, p.kind)


def _removed(g_base: torch.Tensor, g_abl: torch.Tensor, n_boot=1000, seed=0) -> ShareRemoved:
    """Share of G removed, 1 - G_ablated / G_base, with a paired bootstrap CI over prompts."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(g_base), (n_boot, len(g_base)), generator=g)
    shares = 1 - g_abl[idx].mean(1) / g_base[idx].mean(1)
    lo, hi = torch.quantile(shares.double(), torch.tensor([0.025, 0.975], dtype=torch.float64))
    return ShareRemoved(float(1 - g_abl.mean() / g_base.mean()), float(lo), float(hi), float(g_abl.mean()),
                        float(g_base.mean()))


def single_head_ablations(ctx: Context, probes: dict, cfg: StudyConfig, val_windows: int = 16,
                          modes=ABLATIONS) -> SingleAblations:
    """Ablate every head alone with each fill in `modes` (zero and mean at least); G, Δ of every head and val loss."""
    model, (L, H) = ctx.model, (ctx.model.config.n_layer, ctx.model.config.n_head)
    p = _subset(probes[cfg.primary], cfg.n_ablate)
    heads = [(l, h) for l in range(L) for h in range(H)]
    val = ind.val_windows(ctx.val_tokens, model.config.block_size, val_windows, cfg.seed)
    fills = {"zero": torch.zeros(L, H, model.config.d_head),
             "mean": ind.mean_head_outputs(model, torch.cat([p.repeat, p.control])), "resample": ind.RESAMPLE}
    fills = {mode: fill for mode, fill in fills.items() if mode in modes}
    out = {}
    with ctx.step("single_head_ablations"):
        for mode, fill in fills.items():
            r = ind.ablate(model, p, [[]] + [[hd] for hd in heads], fill, val)
            g_base = r["G"][0]
            out[mode] = SingleAblation(
                G_base=float(g_base.mean()), val_loss_base=float(r["val_loss"][0]),
                G_drop=(g_base.mean() - r["G"][1:].mean(1)).view(L, H).numpy(),
                G_removed=[_removed(g_base, r["G"][k + 1]) for k in range(len(heads))],
                delta_change=(r["delta"][1:].mean(1) - r["delta"][0].mean(0)).view(L, H, L, H).numpy(),
                val_loss_change=(r["val_loss"][1:] - r["val_loss"][0]).view(L, H).numpy())
    return SingleAblations(heads, p.n, p.kind, int(val[:, 1:].numel()), out["zero"], out["mean"],
                           out.get("resample"), fills)


def candidates(scores: dict, cfg: StudyConfig) -> list[tuple[int, int]]:
    """The induction heads of the primary probe set (induction.STUDY_INDUCTION_SCORES: prefix matching and relative
    copying)."""
    return [(hv.layer, hv.head) for hv in scores[cfg.primary].induction_heads()]


def tested_heads(scores: dict, cfg: StudyConfig) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The candidates, and the heads tested: the candidates, or the top head by prefix matching if there are none."""
    cands = candidates(scores, cfg)
    best = scores[cfg.primary].prefix_match.best()
    return cands, cands or [(best.layer, best.head)]


def previous_token_heads(scores: dict, cfg: StudyConfig, tested) -> list[tuple[int, int]]:
    """Heads whose previous-token score clears CRITERIA, in layers below the last tested head."""
    passing = scores[cfg.primary].prev_token.passing(ind.CRITERIA["prev_token"].threshold)
    return [(hv.layer, hv.head) for hv in passing if hv.layer < max(lt for lt, _ in tested)]


def _estimate(mean, lo, hi, i=0) -> ind.Estimate:
    return ind.Estimate(float(mean[i]), float(lo[i]), float(hi[i]))


def _set_patching(r: dict, i: int, heads, cost: float) -> SetPatching:
    return SetPatching(list(heads), _estimate(*r["removed"], i), _estimate(*r["restored"], i), cost)


def _val_cost(model, val: torch.Tensor, heads) -> float:
    """The set's cost on validation text: resample ablation (another window's output), nats/token."""
    vloss = ind.ablated_losses(model, val, [[], list(heads)], ind.RESAMPLE)
    return float(vloss[1].mean() - vloss[0].mean())


def _specificity(ctx: Context, m: ind.Matched, tested, cfg: StudyConfig, positions: str, val: torch.Tensor | None,
                 tested_cost: float = 0.0):
    """The tested set and the other head sets of its size patched at `positions`; each set's cost on validation
    text under resample ablation (val None: not measured, every set gets tested_cost). Returns the tested set's
    SetPatching, the others', their weights, the number of other sets, and the weighted share of them below the
    tested set's score."""
    model, (L, H) = ctx.model, (ctx.model.config.n_layer, ctx.model.config.n_head)
    sets, weights, total = ind.head_sets(L, H, len(tested), cfg.n_sets + 1, cfg.seed)
    others = [(st, w) for st, w in zip(sets, weights) if sorted(st) != sorted(tested)]
    configs = [list(tested)] + [st for st, _ in others]
    r = ind.patch(model, m, configs, seed=cfg.seed, positions=positions)
    if val is None:
        cost = [tested_cost] * len(configs)
    else:
        vloss = ind.ablated_losses(model, val, [[]] + configs, ind.RESAMPLE)
        cost = (vloss.mean((1, 2)) - vloss[0].mean()).tolist()[1:]
    t, rest = _set_patching(r, 0, tested, cost[0]), [_set_patching(r, i, st, cost[i]) for i, st in enumerate(configs)
                                                    if i > 0]
    w = np.array([w for _, w in others])
    w = w * (total - 1) / w.sum() if len(w) else w  # the sample stands for every other set
    # no other set of that size (the set holds every head): nothing is beaten, and the set is not specific
    pct_below = ind.percentile(np.array([sp.score for sp in rest]), w, t.score) if rest else 0.0
    return t, rest, w.tolist(), total - 1, pct_below


def _above_100(ctx: Context, m: ind.Matched, named: dict, roles: dict) -> list[str]:
    """For each set whose share is above 100%, the head whose patching with the set lowers that share most: the
    component that, left unpatched, still acts as in the other run (e.g. a duplicate-token head that keeps signalling
    a repeat while the induction heads' copy is gone), with its roles."""
    model, (L, H) = ctx.model, (ctx.model.config.n_layer, ctx.model.config.n_head)
    notes = []
    for name, sp in named.items():
        for direction, est in (("removed", sp.removed), ("restored", sp.restored)):
            if est.mean <= 1:
                continue
            rest = [(l, h) for l in range(L) for h in range(H) if (l, h) not in sp.heads]
            r = ind.patch(model, m, [sp.heads + [hd] for hd in rest], n_boot=1, positions="measured")
            shares = r[direction][0]
            i = int(np.argmin(shares))
            l, h = rest[i]
            role = "+".join(roles.get((l, h), ())) or "no role"
            verb = "noising" if direction == "removed" else "denoising"
            notes.append(f"{verb} the {name} ({heads_str(sp.heads)}) {direction} {100 * est.mean:.0f}%; patched "
                         f"with them, L{l}H{h} ({role}) brings it to {100 * shares[i]:.0f}%, the most of any head: left "
                         f"unpatched, it still acts as in the run the outputs came from")
    return notes


def patching(ctx: Context, probes: dict, scores: dict, cfg: StudyConfig, val_windows: int = 16) -> Patching:
    """Activation patching on matched prompts at the measured positions (induction.py's docstring): every head alone
    and the tested heads on the test prompts; the circuit search on the selection prompts, and the found circuit on
    the test prompts against the other head sets of its size; both by chunk; the old rule (every position, the
    selection prompts)."""
    model, (L, H) = ctx.model, (ctx.model.config.n_layer, ctx.model.config.n_head)
    _, tested = tested_heads(scores, cfg)
    m_test = ind.matched_probes(test_probes(ctx, cfg))
    m_sel = ind.matched_probes(_subset(probes[cfg.primary], cfg.n_ablate))
    heads = [(l, h) for l in range(L) for h in range(H)]
    val = ind.val_windows(ctx.val_tokens, model.config.block_size, val_windows, cfg.seed)
    with ctx.step("patching"):
        r = ind.patch(model, m_test, [[hd] for hd in heads] + [tested], seed=cfg.seed)
        search = ind.circuit_search(model, m_sel)
        circuit = [st.added for st in search]
        c, sets, weights, total, below = _specificity(ctx, m_test, circuit, cfg, "measured", val)
        t = _set_patching(r, L * H, tested, _val_cost(model, val, tested))
        by_chunk = {}
        for who, measured in (("induction heads", t), ("circuit", c)):
            hs = measured.heads
            rc = ind.patch(model, m_test, [hs], seed=cfg.seed, positions="chunk1")
            ra = ind.patch(model, m_test, [hs], seed=cfg.seed, positions="all")
            by_chunk[who] = {"chunk1": _set_patching(rc, 0, hs, measured.val_loss_change), "measured": measured,
                             "all": _set_patching(ra, 0, hs, measured.val_loss_change)}
        above = _above_100(ctx, m_test, {"induction heads": t, "circuit": c}, scores[cfg.primary].roles())
        old_t, _, _, old_total, old_below = _specificity(ctx, m_sel, tested, cfg, "all", None, t.val_loss_change)
    per_head = lambda v: ind.HeadScores(*(a[:L * H].reshape(L, H) for a in v))  # noqa: E731
    return Patching(m_test.kind, m_test.n, float(r["loss_clean"].mean()), float(r["loss_corrupt"].mean()),
                    per_head(r["removed"]), per_head(r["restored"]), t, sets, weights, total, below,
                    n_select=m_sel.n, search=search, circuit=c, by_chunk=by_chunk, above_100=above,
                    old=OldPatching(m_sel.n, old_t, old_total, old_below))


def path_patching(ctx: Context, probes: dict, scores: dict, cfg: StudyConfig) -> Circuit | None:
    """The circuit, on the test prompts: the previous-token heads' corrupted outputs into only the tested heads' keys
    (through the MLPs, and by the direct path) and queries, and the sender control: every single head below the
    tested heads into their keys the same way. None if no head sits in a layer below the tested heads."""
    model, H = ctx.model, ctx.model.config.n_head
    _, tested = tested_heads(scores, cfg)
    senders = previous_token_heads(scores, cfg, tested)
    why = f"previous-token score ≥ {ind.CRITERIA['prev_token'].threshold}, lower CI bound"
    below = [(l, h) for l in range(max(lt for lt, _ in tested)) for h in range(H)]
    if not senders:
        below_all = [(l, h) for l in range(min(lt for lt, _ in tested)) for h in range(H)]
        if not below_all:
            return None
        prev = scores[cfg.primary].prev_token.mean
        senders = [max(below_all, key=lambda lh: prev[lh])]
        why = "the best previous-token head below the tested heads; none clears the criterion"
    m = ind.matched_probes(test_probes(ctx, cfg))
    S, rows, cols = m.S, [l for l, _ in tested], [h for _, h in tested]

    def prefix_matching(idx):  # (n,) the tested heads' mean attention from chunk 2 to the token after the copy
        return ind.induction_diag(ind.attention_patterns(model, idx[:, :-1]), S)[:, rows, cols].mean(1)

    with ctx.step("path_patching"):
        pm = {"clean": prefix_matching(m.clean), "corrupt": prefix_matching(m.corrupt)}
        loss_clean, loss_corrupt = ind.chunk2_losses(model, m.clean, S), ind.chunk2_losses(model, m.corrupt, S)

        def shares(sent, into, frozen):
            pm_patched, loss = ind.path_patch(model, m, sent, tested, into, frozen)
            pm_removed = ind.ratio_of_means((pm["clean"] - pm_patched.mean(1))[None], pm["clean"] - pm["corrupt"],
                                            seed=cfg.seed)
            kept = ind.ratio_of_means((loss_corrupt - loss)[None], loss_corrupt - loss_clean, seed=cfg.seed)
            return PathShare(_estimate(*pm_removed), ind.Estimate(1 - float(kept[0][0]), 1 - float(kept[2][0]),
                                                                  1 - float(kept[1][0])))

        paths = {path: shares(senders, into, frozen) for path, (into, frozen, _) in PATHS.items()}
        control = {f"L{l}H{h}": shares([(l, h)], "k", False).prefix_match_removed for l, h in below}
    sender = max((f"L{l}H{h}" for l, h in senders), key=lambda k: control[k].mean)
    others = np.array([e.mean for k, e in control.items() if k != sender])
    rank = float((others < control[sender].mean).mean()) if len(others) else 1.0
    return Circuit(senders, tested, why, paths, control, sender, rank)


def recurrence_control(ctx: Context, probes: dict, cfg: StudyConfig) -> dict[str, ind.Recurrence]:
    """The recurrence control on the random probe sets' selection prompts (induction.py's docstring)."""
    with ctx.step("recurrence"):
        return {kind: ind.recurrence(ctx.model, probes[kind], cfg.seed) for kind in ("random", "random-known")}


def validate(ctx: Context, probes: dict, scores: dict, singles: SingleAblations, cfg: StudyConfig,
             patching: Patching, circuit: Circuit | None) -> Validation:
    """The verdict from patching (given), and the secondary views: joint ablation of the candidates vs random head
    sets, the previous-token heads' ablation, K-composition, in-context learning on validation text."""
    model, (L, H) = ctx.model, (ctx.model.config.n_layer, ctx.model.config.n_head)
    cands, tested = tested_heads(scores, cfg)
    others = [(l, h) for l in range(L) for h in range(H) if (l, h) not in tested]
    rng = np.random.default_rng(cfg.seed)
    draws = [[others[i] for i in rng.choice(len(others), size=min(len(tested), len(others)), replace=False)]
             for _ in range(cfg.n_random_draws)] if others else []
    prev_heads = previous_token_heads(scores, cfg, tested)
    p = _subset(probes[cfg.primary], cfg.n_ablate)
    joint = {}
    with ctx.step("validation"):
        for mode in ABLATIONS:
            mode_draws = draws if mode == "zero" else []  # the random baseline is drawn once, with zero ablation
            configs = [[], tested] + mode_draws + ([prev_heads] if prev_heads else [])
            r = ind.ablate(model, p, configs, singles.fills[mode])
            g_base = r["G"][0]
            res = JointAblation(_removed(g_base, r["G"][1]))
            if mode_draws:
                shares = np.array([_removed(g_base, r["G"][2 + i]).share for i in range(len(draws))])
                res.random = RandomHeads(float(shares.mean()), float(np.median(shares)), float(np.percentile(shares, 5)),
                                         float(np.percentile(shares, 95)), shares.tolist(), draws)
            if prev_heads:
                d0, dp = r["delta"][0].mean(0), r["delta"][-1].mean(0)
                res.prev_heads_ablated_delta = {f"L{l}H{h}": DeltaChange(float(d0[l, h]), float(dp[l, h]))
                                                for l, h in tested}
            joint[mode] = res
        kc = ind.k_composition(model, seed=cfg.seed)
        T = model.config.block_size
        windows = ind.split_windows(ctx.val_tokens, T).to(next(model.parameters()).device)  # (N, T+1): all of val
        with torch.no_grad():
            clean = ind.icl_per_window(model.loss(windows[:, :-1], windows[:, 1:], reduction="none"))  # (N,)
        ablated = {mode: ind.icl_per_window(ind.ablated_losses(model, windows, [tested], singles.fills[mode])[0])
                   for mode in ABLATIONS}  # each (N,)
        est = lambda v: ind.Estimate(*map(float, ind.bootstrap(v.cpu(), seed=cfg.seed)))  # noqa: E731
        early, late = ind.icl_positions(T)
        icl = InContextLearning(list(early), list(late), len(windows), est(clean),
                                {mode: est(v) for mode, v in ablated.items()})
    kcomp = KComposition(kc["random_mean"], kc["random_std"],
                         {f"L{la}H{ha}->L{lb}H{hb}": float(kc["scores"][la, ha, lb, hb])
                          for lb, hb in tested for la in range(lb) for ha in range(H)}, kc["scores"])
    roles = {f"L{l}H{h}": list(r) for (l, h), r in scores[cfg.primary].roles().items()}
    return Validation(cands, tested, bool(cands), prev_heads, joint["zero"], joint["mean"], kcomp, joint["resample"],
                      icl, patching, circuit, roles)


def compare_with_original(ctx: Context, probes: dict, scores: dict) -> OriginalComparison:
    """The original study's δ and single-head δ drops (zero ablation), on the training-text probes as it measured."""
    model, (L, H) = ctx.model, (ctx.model.config.n_layer, ctx.model.config.n_head)
    p, s = probes["text-train"], scores["text-train"]
    q = ind.original_positions(p.S)
    with ctx.step("original"):
        r = ind.ablate(model, p, [[]] + [[(l, h)] for l in range(L) for h in range(H)],
                       torch.zeros(L, H, model.config.d_head))
        d = r["delta_original"]  # (1 + L*H, n)
        drop = (d[0] - d[1:]).T.reshape(p.n, L, H)
    return OriginalComparison(p.kind, p.n, float(s.loss_repeat.mean[q].mean()), float(s.loss_control.mean[q].mean()),
                              ind.Estimate(*map(float, ind.bootstrap(d[0]))), ind.HeadScores(*ind.bootstrap(drop)))


def figures(ctx: Context, cfg: StudyConfig, scores: dict, singles: SingleAblations, val: Validation) -> dict[str, Path]:
    t0 = time.perf_counter()
    d, name, label, S = ctx.target.plots_dir, ctx.name, ctx.label, cfg.S
    prim = scores[cfg.primary]
    kind = {"random": "random-token", "random-known": "random known-token", "text-val": "validation-text",
            "text-train": "training-text"}[cfg.primary]
    L, H = ctx.model.config.n_layer, ctx.model.config.n_head
    figs = {}
    figs["full"] = utils.plot_attention_grid(
        prim.example_pattern, d / f"Attention_HeatMap_full_{name}.png",
        f"{label}: attention on one repeat prompt ({kind}, 4 × {S} tokens)", chunk=S)
    diff = (prim.mean_pattern_repeat - prim.mean_pattern_control)[:, :, S:2 * S, :S]
    figs["zoom"] = utils.plot_attention_grid(
        diff, d / f"Attention_HeatMap_zoom_{name}.png",
        f"{label}: mean attention, repeat − control (n={prim.n})\nqueries in chunk 2 vs keys in chunk 1: "
        f"induction shows as the +1 off-diagonal stripe", center=True,
        xlabel="key position in chunk 1", ylabel="query position in chunk 2")
    figs["delta"] = utils.plot_head_grid(
        prim.delta.mean, d / f"InductionScore_Delta_{name}.png",
        f"{label}\ninduction Δ = A(repeat) − A(control), {kind} probes [95% CI] (null 0)", "Δ attention",
        ci=(prim.delta.lo, prim.delta.hi))
    figs["prev"] = utils.plot_head_grid(
        prim.prev_token.mean, d / f"PrevTokenScore_{name}.png",
        f"{label}\nprevious-token score (chance ≈ {prim.chance.prev_token:.3f})", "attention to t−1",
        center=False, cmap="viridis")
    roles = prim.roles()
    abbrev = {"induction": "IND", "duplicate-token": "DUP", "previous-token": "PREV"}
    notes = [["+".join(abbrev[r] for r in roles[l, h]) for h in range(H)] for l in range(L)]
    figs["roles"] = utils.plot_head_grids(
        {"previous-token (chance ≈ {:.3f})".format(prim.chance.prev_token): prim.prev_token.mean,
         "duplicate-token, repeat − control (null 0)": prim.dup_token.mean,
         "prefix matching, repeat − control (null 0)": prim.prefix_match.mean},
        d / f"Roles_{name}.png", f"{label}: every head's role ({kind} probes; PREV previous-token ≥ "
        f"{ind.CRITERIA['prev_token'].threshold}, DUP duplicate-token ≥ {ind.CRITERIA['dup_token'].threshold}, IND "
        f"induction: prefix matching ≥ {ind.CRITERIA['prefix_match'].threshold} and relative copying ≥ "
        f"{ind.CRITERIA['copying_z'].threshold}; lower CI bounds)", "attention", notes=notes)
    figs["ablation"] = utils.plot_head_grids(
        {f"{m} ablation (G = {getattr(singles, m).G_base:.2f})": getattr(singles, m).G_drop for m in ABLATIONS},
        d / f"HeadAblation_HeatMap_{name}.png",
        f"{label}: drop in in-context gain G when one head is ablated ({kind} probes)", "G drop (nats/token)")
    figs["ablation_loss"] = utils.plot_head_grids(
        {f"{m} ablation": getattr(singles, m).val_loss_change for m in ABLATIONS},
        d / f"HeadAblation_Loss_{name}.png", f"{label}: change in validation loss when one head is ablated",
        "Δ val loss (nats/token)")
    figs["ablation_delta"] = utils.plot_head_matrix(
        singles.zero.delta_change.reshape(L * H, L * H), d / f"HeadAblation_DeltaMatrix_{name}.png",
        f"{label}: change in each head's Δ under zero ablation", L, H)
    figs["loss_by_position"] = utils.plot_loss_by_position(
        prim.loss_repeat.mean, prim.loss_control.mean, d / f"LossByPosition_{name}.png",
        f"{label}: loss by position, {kind} probes (G = {prim.G.mean:.2f} nats/token)", S,
        (prim.loss_repeat.lo, prim.loss_repeat.hi), (prim.loss_control.lo, prim.loss_control.hi))
    tested = "induction heads" if val.tested_are_candidates else "top head"
    bars = [(f"{tested} ({mode})", getattr(val, mode).tested.share, getattr(val, mode).tested.lo,
             getattr(val, mode).tested.hi, "tested") for mode in ABLATIONS]
    if val.zero.random:
        r = val.zero.random
        bars.append(("random heads (zero)", r.median, r.p05, r.p95, "random"))
    figs["bars"] = utils.plot_ablation_bars(
        *zip(*bars), d / f"Candidates_vs_Random_{name}.png",
        f"{label}: share of G removed by ablating {heads_str(val.tested)}\nvs {len(val.tested)} random other heads "
        f"({cfg.n_random_draws} draws: median, 5–95th pct; {tested}: 95% CI)", "share of G removed")
    if val.patching:
        p = val.patching
        figs["patching"] = utils.plot_head_grids(
            {"noising: share of the gain removed": p.removed.mean, "denoising: share restored": p.restored.mean},
            d / f"Patching_{name}.png", f"{label}: activation patching of each head alone at the measured positions"
            f"\n({kind} probes, clean [base, base] vs corrupted [c1, base], {p.n_prompts} test prompts; null 0)",
            "share of the gain", notes=notes)
        figs["specificity"] = utils.plot_specificity(
            [sp.score for sp in p.sets], p.set_weights, [sp.val_loss_change for sp in p.sets], p.circuit.score,
            p.circuit.val_loss_change, d / f"Specificity_{name}.png",
            f"{label}: the found circuit {heads_str(p.circuit.heads)} against the other {p.sets_total:,} sets of "
            f"{len(p.circuit.heads)} heads\n(" + ("all compared" if len(p.sets) == p.sets_total else
                                                 f"{len(p.sets)} compared, stratified by layer") +
            f"; measured positions, test prompts; the circuit is above {100 * p.percentile:.1f}% of them)")
        figs["search"] = utils.plot_search(
            [f"L{st.added[0]}H{st.added[1]} ({notes[st.added[0]][st.added[1]] or 'no role'})" for st in p.search],
            [st.removed for st in p.search], [st.restored for st in p.search], d / f"CircuitSearch_{name}.png",
            f"{label}: the circuit search at the measured positions\n({p.n_select} selection prompts; greedy, the head "
            f"that raises min(removed, restored) most)", ind.CRITERIA["circuit"].threshold)
        where = {"chunk1": "chunk 1", "measured": "chunk 2 (measured)", "all": "every position"}
        groups = {f"{who}: {'noising removes' if d == 'removed' else 'denoising restores'}":
                  {f"patched at {where[pos]}": (getattr(sp, d).mean, getattr(sp, d).lo, getattr(sp, d).hi)
                   for pos, sp in by.items()} for who, by in p.by_chunk.items() for d in ("removed", "restored")}
        figs["by_chunk"] = utils.plot_grouped_bars(
            groups, d / f"Patching_ByChunk_{name}.png",
            f"{label}: patching by chunk ({p.n_prompts} test prompts; 95% CI; null 0)\n"
            f"the induction heads {heads_str(p.tested.heads)} and the found circuit {heads_str(p.circuit.heads)}",
            "share of the gain")
    if val.circuit:
        c = val.circuit
        bars = [(f"{PATHS[w][2]}: {what}", getattr(ps, attr)) for what, attr in (
            ("prefix matching", "prefix_match_removed"), ("gain", "gain_removed")) for w, ps in c.paths.items()]
        figs["paths"] = utils.plot_ablation_bars(
            [b[0] for b in bars], [b[1].mean for b in bars], [b[1].lo for b in bars], [b[1].hi for b in bars],
            ["tested" if b[0].startswith("keys") else "random" for b in bars], d / f"PathPatching_{name}.png",
            f"{label}: path patching from {heads_str(c.senders)} into {heads_str(c.receivers)}\n(the senders' "
            f"corrupted outputs into only the keys, queries or values, through the MLPs or (direct) not; 95% CI; "
            f"null 0)", "share removed")
    ctx.timings["figures"] = time.perf_counter() - t0
    return {k: Path(portable(v)) for k, v in figs.items()}


def attention_page(ctx: Context, cfg: StudyConfig, probes: dict, scores: dict) -> Path:
    """The interactive attention page (one HTML file, works offline): every head's attention on one prompt, and the
    mean repeat − control pattern of each probe set."""
    bs = ctx.model.config.block_size
    if cfg.page_prompt is None:
        idx, what = probes[cfg.primary].repeat[:1], f"the first repeat probe of the {cfg.primary} set"
    else:
        idx, what = torch.tensor([ctx.tok.encode(cfg.page_prompt)[-bs:]]), "the prompt given (its last block_size tokens)"
        if idx.shape[1] < 2:
            raise ConfigError(f"the page prompt {cfg.page_prompt!r} encodes to {idx.shape[1]} token(s); give at least 2")
    with ctx.step("page"):
        pattern = ind.attention_patterns(ctx.model, idx)[0].numpy()  # (L, H, T, T)
        sections = [dict(heading="Attention on one prompt", patterns=pattern, center=False,
                         labels=[ctx.tok.decode([i]) for i in idx[0].tolist()],
                         text=f"Every head's attention weights on {what}: row = query, column = key. Hover for the "
                              f"tokens and the weight. On a repeat prompt an induction head draws a stripe "
                              f"S − 1 = {cfg.S - 1} below the diagonal.")]
        for kind, s in scores.items():
            sections.append(dict(
                heading=f"Repeat − control, {kind} probes (mean of {s.n} prompts)", center=True,
                scale="repeat − control", patterns=(s.mean_pattern_repeat - s.mean_pattern_control).numpy(),
                labels=[f"chunk {j // s.S + 1}" for j in range(ind.N_CHUNKS * s.S)],
                text=f"Mean attention on the repeat prompts minus the control prompts (4 chunks of {s.S} tokens; "
                     f"null 0). Red = more attention when the chunks repeat: an induction head's stripe S − 1 below "
                     f"the diagonal in chunks 2–4."))
        roles = scores[cfg.primary].roles()
        titles = {lh: f"L{lh[0]}H{lh[1]}" + (f" {'+'.join(r)}" if r else "") for lh, r in roles.items()}
        page = utils.attention_page(ctx.target.plots_dir / f"Attention_Page_{ctx.name}.html",
                                    f"{ctx.label}: attention", f"{ctx}. Each panel's title names the head's roles "
                                    f"({cfg.primary} probes): {ind.roles_str(roles)}.", sections, titles)
        return Path(portable(page))


def summarize(ctx: Context, cfg: StudyConfig, scores: dict, singles: SingleAblations, val: Validation,
              figs: dict, original: OriginalComparison | None = None,
              gapped: ind.GappedScores | None = None, recurrence: dict | None = None) -> StudyResult:
    """The typed result, saved to the target's out_json (default: induction_<name>.json in the run's folder)."""
    result = StudyResult(
        model=ctx.name, checkpoint=str(ctx.target.checkpoint), params=ctx.model.num_params(), step=ctx.ckpt.get("step"),
        tokenizer=ctx.tok.kind, vocab_size=ctx.tok.vocab_size,
        tokens_seen=ctx.ckpt.get("step", 0) * ctx.run.tokens_per_step,
        config=cfg, scores=scores, single_head_ablations=singles, validation=val, timings_s=dict(ctx.timings),
        figures={k: portable(v) for k, v in figs.items()}, original=original, gapped=gapped, recurrence=recurrence)
    write_record(ctx.target.out_json, "study", result)
    return result


def run(cfg: StudyConfig, progress: bool = False) -> StudyResult:
    """The whole study of one checkpoint; with progress, each step is named on stderr as it starts, then timed."""
    ctx = load(cfg, progress)
    print(ctx.target)
    probes = make_probes(ctx, cfg)
    scores = score_heads(ctx, probes)
    gapped = score_gapped(ctx, cfg)
    singles = single_head_ablations(ctx, probes, cfg)
    patched = patching(ctx, probes, scores, cfg)
    circuit = path_patching(ctx, probes, scores, cfg)
    val = validate(ctx, probes, scores, singles, cfg, patched, circuit)
    recurrence = recurrence_control(ctx, probes, cfg)
    original = compare_with_original(ctx, probes, scores)
    figs = figures(ctx, cfg, scores, singles, val)
    figs["page"] = attention_page(ctx, cfg, probes, scores)
    return summarize(ctx, cfg, scores, singles, val, figs, original, gapped, recurrence)


ERRORS = (ConfigError, CheckpointError, CorpusError, TokenizerError, ind.ProbeError)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap, StudyConfig, positional=("checkpoint",))
    try:
        cfg = StudyConfig(**vars(ap.parse_args(argv)))
    except ConfigError as e:
        raise SystemExit(f"error: {e}")
    run_and_print(cfg)


def run_and_print(cfg: StudyConfig) -> StudyResult:
    """The study of one checkpoint as the command line and the experiments run it: each step named on stderr, the
    findings printed, the summary written to cfg's out_json; a bad input ends with the error's message."""
    try:
        result = run(cfg, progress=True)
    except ERRORS as e:
        raise SystemExit(f"error: {e}")
    except OSError as e:  # e.g. a full disk while writing a figure or the summary (each written whole or not at all)
        raise SystemExit(f"error: cannot write {e.filename or 'an output'}: {e.strerror}; free some space or choose "
                         f"another --plots-dir / --out-json, then rerun")
    print(result)
    print(f"summary: {resolve(cfg).out_json}")
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings_s.items()))
    return result


if __name__ == "__main__":
    run_command(main, bool(_CTRL_C_WHILE_IMPORTING))
