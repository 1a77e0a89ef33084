"""Induction-head formation during training, read from runs' training logs (metrics.json): the reports that several
experiments share. Not an experiment itself: it owns no runs.

    with_repeats(runs, out)    where each run's best head first cleared each score's criterion, by probe set, and the
                               formation figure (the recipe, seeds and tokenizers experiments)
    against_law(runs, out)     formation on natural text against the scaling law's prediction, and each run against a
                               control by `earlier` (natural_text, held_out, levers, relabel_natural, original)

runs is {label: run folder}; a folder whose log is not committed is named, not drawn (experiments.logged_runs). "Formed"
is the first logged row whose heads clear induction.CRITERIA (lower CI bounds; the copying score is logged from
2026-11-26 on). For runs outside the registry, the same reports from the command line:

    python -m experiments.formation --out f.png "2M recipe=checkpoints/reference/MiniGPT-2M" ...
    python -m experiments.formation --law --control control --out f.png "control=runs/x/a" "lever=runs/x/b"
"""
import argparse
import math
from pathlib import Path

import matplotlib.pyplot as plt

import utils
from induction import CRITERIA, INDUCTION_SCORES
from experiments import labelled, logged_runs
from training_log import first_formed, last_probe, probed_rows

# Aoyama, Wilcox and Schneider 2025 (arXiv 2511.16893): induction heads emerge after about 10^5.7 * sqrt(B * T)
# training tokens (B sequences per batch, T context), independent of model size.
LAW_LOG10 = 5.7
PROBE_SETS = ("random-known", "random", "text-val")

FORMATION_X = {"tokens": "training tokens seen (millions)",
               "chars": "characters of training text seen (millions)",
               "minutes": "minutes of training"}


def plot_formation(runs: dict, path, title, threshold: float, formed_at: dict | None = None, x: str = "tokens"):
    """Induction formation during training for several runs {label: [MetricsRow, ...]}.

    Panels against x (FORMATION_X: tokens, characters of text or minutes): validation loss
    (nats/token against tokens, bits/char otherwise, so different tokenizers compare); the
    best head's Δ on random and text probes (with its 95% CI on random probes) and the line
    Δ = threshold; the in-context gain G. formed_at: {label: MetricsRow} marks where a run's
    first head formed (by random-probe Δ's lower CI bound).
    """
    if x not in FORMATION_X:
        raise ValueError(f"x must be one of {', '.join(FORMATION_X)}, got {x!r}")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), layout="constrained")
    for i, (label, metrics) in enumerate(runs.items()):
        c = f"C{i}"
        scale = metrics[-1].chars_per_token if x == "chars" else 1.0
        pos = (lambda m: m.train_s / 60) if x == "minutes" else (lambda m: m.tokens * scale / 1e6)  # noqa: E731
        rows = [m for m in metrics if m.probes]
        t = [pos(m) for m in rows]
        rnd = [m.probes["random"] for m in rows]
        txt = [m.probes["text-val"] for m in rows]
        axes[0].plot([pos(m) for m in metrics], [m.val_loss if x == "tokens" else m.val_bpc for m in metrics],
                     color=c, label=label)
        axes[1].plot(t, [p.best_delta.value.mean for p in rnd], color=c, label=f"{label}: random probes")
        axes[1].fill_between(t, [p.best_delta.value.lo for p in rnd], [p.best_delta.value.hi for p in rnd],
                             color=c, alpha=0.2)
        axes[1].plot(t, [p.best_delta.value.mean for p in txt], color=c, ls="--", label=f"{label}: text probes")
        axes[2].plot(t, [p.gain.mean for p in rnd], color=c, label=f"{label}: random probes")
        axes[2].plot(t, [p.gain.mean for p in txt], color=c, ls="--", label=f"{label}: text probes")
        if formed_at and formed_at.get(label) is not None:
            for ax in axes[1:]:
                ax.axvline(pos(formed_at[label]), color=c, ls=":", lw=1.2)
    axes[0].set_ylabel("validation loss (nats/token)" if x == "tokens" else "validation bits per character")
    axes[1].set_ylabel("best head's Δ = A(repeat) − A(control)")
    axes[1].axhline(threshold, color="grey", lw=0.8, ls="-.", label=f"Δ = {threshold} (formed: CI's lower bound above)")
    axes[2].set_ylabel("in-context gain G (nats/token)")
    for ax, name in zip(axes, ("validation loss", "induction score of the best head",
                               "in-context gain (line styles as in the middle panel)")):
        ax.set_xlabel(FORMATION_X[x])
        ax.set_title(name)
        ax.grid(alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()  # below the panels, where it hides no curve
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=7.5)
    fig.suptitle(title)
    return utils.save_figure(fig, path)


def where(row, kind: str, score: str) -> str:
    log = row.probes[kind]
    what = (", ".join(f"{hv} (copying {log.copying.at(hv.layer, hv.head).value})" for hv in log.induction_heads())
            or "none") if score == "induction" else str(log.best(score))
    return (f"step {row.step:,}: {row.tokens / 1e6:.2f}M tokens = {row.tokens * row.chars_per_token / 1e6:.1f}M "
            f"characters, {row.train_s / 60:.1f} min of training; {what}")


def findings(label: str, metrics) -> list[str]:
    last, lines = metrics[-1], []
    for kind in ("random", "random-known", "text-val"):
        for score in ("induction", "delta", "prefix_match", "copying"):
            log = last.probes.get(kind)
            if log is None or (log.copying is None if score == "induction" else log.best(score) is None):
                continue  # not logged by this run
            rule = ("prefix matching and copying clear their criteria" if score == "induction" else
                    f"{score} >= {CRITERIA[score].threshold} (lower CI bound)")
            row = first_formed(metrics, kind, score)
            lines.append(f"{label}, {kind} probes, {rule}: " + (
                f"first at {where(row, kind, score)}" if row else
                f"never in {where(last, kind, score).replace('; ', '; at the end ')}"))
    return lines


def predicted_tokens(tokens_per_step: int) -> float:
    return 10 ** LAW_LOG10 * math.sqrt(tokens_per_step)


def probe_interval(metrics) -> int:
    """Training tokens between two logged probes (the first two: the rule of `earlier` was fixed on logs probed at a
    regular interval)."""
    probed = probed_rows(metrics)
    return probed[1].tokens - probed[0].tokens


def probe_spacing(metrics) -> str:
    probed = [m.tokens for m in probed_rows(metrics)]
    gaps = [b - a for a, b in zip(probed, probed[1:])]
    if max(gaps) > 1.5 * min(gaps):
        return f"{len(probed)} probes at log-spaced steps"
    return f"probes every {gaps[0] / 1e6:.2f}M tokens"


def findings_against_law(label: str, metrics) -> list[str]:
    """One natural-text run: its batch x context (tokens per step), the law's formation point, where its log first
    shows an induction head on each probe set, or the budget reached without one and the best scores seen."""
    last = metrics[-1]
    per_step = last.tokens // last.step
    law = predicted_tokens(per_step)
    probed = probed_rows(metrics)
    lines = [f"{label}: {per_step:,} tokens per step; the law predicts formation at {law / 1e6:.1f}M tokens; "
             f"logged to {last.tokens / 1e6:.2f}M tokens ({last.tokens / law:.2f}x the prediction), "
             f"{probe_spacing(metrics)}; best validation loss "
             f"{min(m.val_loss for m in metrics):.3f} at {min(metrics, key=lambda m: m.val_loss).tokens / 1e6:.2f}M "
             f"tokens, {last.val_loss:.3f} at the end"]
    for kind in PROBE_SETS:
        row = first_formed(metrics, kind, "induction")
        if row:
            heads = ", ".join(hv.label for hv in row.probes[kind].induction_heads())
            prev = max((m for m in probed if m.step < row.step), key=lambda m: m.step, default=None)
            lines.append(f"  {kind}: first induction head at {row.tokens / 1e6:.2f}M tokens ({heads}; previous probe "
                         f"{prev.tokens / 1e6 if prev else 0:.2f}M), {row.tokens / law:.2f}x the prediction")
        else:
            best = {s: max((getattr(m.probes[kind], s).best() for m in probed), key=lambda hv: hv.value.mean)
                    for s in INDUCTION_SCORES}
            highest = "; ".join(f"{s} {hv} (criterion {CRITERIA[s].threshold})" for s, hv in best.items())
            lines.append(f"  {kind}: no induction head within {probed[-1].tokens / 1e6:.2f}M tokens (the last probe); "
                         f"highest best-head {highest}")
    prev = max((m.probes["text-val"].best_prev_token for m in probed), key=lambda hv: hv.value.mean)
    lines.append(f"  strongest previous-token head (text probes): {prev} "
                 f"(criterion {CRITERIA['prev_token'].threshold})")
    return lines


def earlier(run, control) -> str:
    """The verdict of one lever against the control (levers tested one at a time against the same control, on the same
    validation text), by the rule fixed before the held-out-novel runs: a lever moves formation earlier if its first
    induction head on the held-out text probes comes more than one probe interval before the control's, or within the
    budget where the control forms none."""
    r, c = first_formed(run, "text-val", "induction"), first_formed(control, "text-val", "induction")
    reached, control_reached = last_probe(run).tokens, last_probe(control).tokens
    if r is None:
        decided = reached >= (control_reached if c is None else c.tokens - probe_interval(control))
        if not decided:  # a run still training may yet form one in time
            return (f"not decided yet: no induction head within {reached / 1e6:.2f}M tokens so far (in "
                    f"progress; the control {f'formed one at {c.tokens / 1e6:.2f}M' if c else 'formed none'} within "
                    f"{control_reached / 1e6:.2f}M)")
        return f"not earlier: no induction head within {reached / 1e6:.2f}M tokens"
    if c is None:
        return (f"EARLIER: an induction head at {r.tokens / 1e6:.2f}M tokens; the control formed none within "
                f"{control_reached / 1e6:.2f}M")
    verdict = "EARLIER" if r.tokens < c.tokens - probe_interval(run) else "not earlier"
    return f"{verdict}: {r.tokens / 1e6:.2f}M tokens against the control's {c.tokens / 1e6:.2f}M"


def plot_formation_without_repeats(runs: dict, predicted: dict, path, title: str, thresholds: dict):
    """Training on natural text alone: {label: [MetricsRow, ...]} with the copying score logged.

    Panels against training tokens (log scale): validation loss; the best head's prefix matching and copying
    (random-known probes solid with their 95% CI, held-out text probes dashed) with each criterion's line
    (thresholds {score: value}); the best previous-token score. predicted {label: tokens}: the scaling law's
    formation point for the run's batch x context, a dotted line in the run's colour.
    """
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), layout="constrained")
    axes = axes.ravel()
    for i, (label, metrics) in enumerate(runs.items()):
        c = f"C{i}"
        rows = probed_rows(metrics)
        t = [m.tokens / 1e6 for m in rows]
        axes[0].plot([m.tokens / 1e6 for m in metrics if m.step], [m.val_loss for m in metrics if m.step], color=c,
                     label=label)
        for ax, score in zip(axes[1:3], ("prefix_match", "copying")):
            for kind, ls in (("random-known", "-"), ("text-val", "--")):
                best = [getattr(m.probes[kind], score).best().value for m in rows]
                ax.plot(t, [b.mean for b in best], color=c, ls=ls, label=f"{label}: {kind} probes")
                if kind == "random-known":
                    ax.fill_between(t, [b.lo for b in best], [b.hi for b in best], color=c, alpha=0.2)
        axes[3].plot(t, [m.probes["text-val"].best_prev_token.value.mean for m in rows], color=c, label=label)
        for ax in axes:
            ax.axvline(predicted[label] / 1e6, color=c, ls=":", lw=1.2)
    for ax, score in zip(axes[1:3], ("prefix_match", "copying")):
        ax.axhline(thresholds[score], color="grey", lw=0.8, ls="-.", label=f"criterion (lower CI bound ≥ "
                                                                              f"{thresholds[score]})")
    for ax, name, ylabel in zip(axes, ("validation loss", "prefix matching of the best head",
                                       "copying of the best head", "previous-token score of the best head"),
                                ("validation loss (nats/token)", "repeat − control (null 0)",
                                 "Δ logit, repeat − control (null 0)", "attention to t−1, text probes")):
        ax.set_xscale("log")
        ax.set_xlabel("training tokens seen (millions; dotted: the law's prediction)")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[1].get_legend_handles_labels()  # below the panels, where it hides no curve
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle(title)
    return utils.save_figure(fig, path)


def with_repeats(runs: dict, out, title: str = "Induction-head formation during training (best head per probe set)",
                 x: str = "tokens") -> dict:
    """The formation report of runs {label: run folder}: where each run's best head first cleared each score's
    criterion, printed, and the figure against x (FORMATION_X). Returns the drawn runs' logs {label: [MetricsRow]}."""
    logs = logged_runs(runs)
    if not logs:
        return logs
    for label, metrics in logs.items():
        print("\n".join(findings(label, metrics)))
    formed = {label: first_formed(metrics, "random", "delta") for label, metrics in logs.items()}  # the figure's marks
    print(plot_formation(logs, out, title, CRITERIA["delta"].threshold, formed, x))
    return logs


def against_law(runs: dict, out, title: str = "Induction heads without synthetic repeats: natural text alone "
                "(2M parameters)", control: str | None = None) -> dict:
    """Formation on natural text of runs {label: run folder} against the law's prediction, printed and drawn; with
    control (a label), every other run against it by `earlier` and by best validation loss. Returns the drawn runs'
    logs {label: [MetricsRow]}, for a report built on this one."""
    logs = logged_runs(runs)
    if not logs:
        return logs
    for label, metrics in logs.items():
        print("\n".join(findings_against_law(label, metrics)))
    if control in logs:
        best = min(m.val_loss for m in logs[control])
        for label, metrics in logs.items():
            if label != control:
                print(f"{label} against {control}: {earlier(metrics, logs[control])}; best validation loss "
                      f"{min(m.val_loss for m in metrics) - best:+.3f} nats/token")
    predicted = {label: predicted_tokens(m[-1].tokens // m[-1].step) for label, m in logs.items()}
    print(plot_formation_without_repeats(logs, predicted, out, title,
                                         {s: CRITERIA[s].threshold for s in INDUCTION_SCORES}))
    return logs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True, type=Path, help="the figure's path")
    ap.add_argument("--law", action="store_true", help="the natural-text report, against the law's prediction")
    ap.add_argument("--control", help="with --law: the LABEL of the control run the others are compared with")
    ap.add_argument("--title", help="the figure's title")
    ap.add_argument("--x", choices=list(FORMATION_X), default="tokens",
                    help="without --law, the figure's x axis: tokens, characters of text (to compare tokenizers) or "
                         "minutes")
    args = ap.parse_args(argv)
    if args.control and not args.law:
        ap.error("--control compares runs by the natural-text rule: give --law with it")
    title = {"title": args.title} if args.title else {}
    if args.law:
        against_law(labelled(args.runs), args.out, control=args.control, **title)
    else:
        with_repeats(labelled(args.runs), args.out, x=args.x, **title)


if __name__ == "__main__":
    main()
