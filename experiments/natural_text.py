"""Induction-head formation on natural text alone, against the scaling law's prediction (issue #14).

    python -m experiments natural_text         # the report and figure from the committed runs
    python -m experiments natural_text run     # train its four runs, 25.6M tokens each (hours of both cores)

Each argument is LABEL=RUN_DIR, a run of train.py with --repeat-frac 0 and --probe-interval (logs with the copying
score). For each run: its batch x context (tokens per step), the law's formation point, where the log first shows an
induction head (prefix matching and copying clear induction.CRITERIA, lower CI bounds) on each probe set, or the
budget reached without one and the best scores seen.

--control LABEL compares every other run with that one (levers tested one at a time against the same control, on the
same validation text): a lever moves formation earlier if its first induction head on the held-out text probes comes
more than one probe interval before the control's, or within the budget where the control forms none (fixed before
the held-out-novel runs).
"""
import argparse
import math

import matplotlib.pyplot as plt

import utils
from induction import CRITERIA, INDUCTION_SCORES
from experiments import FIG, REF, Run, logged_runs
from training_log import first_formed, last_probe, probed_rows

# Aoyama, Wilcox and Schneider 2025 (arXiv 2511.16893): induction heads emerge after about 10^5.7 * sqrt(B * T)
# training tokens (B sequences per batch, T context), independent of model size.
LAW_LOG10 = 5.7
PROBE_SETS = ("random-known", "random", "text-val")
SEEDS = (1337, 1)
# two configurations at 25.6M tokens each, two seeds: characters at 8 x 256 and the original study's 32 x 128 words
RUNS = [run for s in SEEDS for run in (
    Run(f"char2M-ctx256-norep-seed{s}", "char-2M", dict(repeat_frac=0.0, block_size=256, max_steps=12500,
                                                        eval_interval=250, probe_interval=250, eval_batches=16,
                                                        seed=s)),
    Run(f"word2M-32x128-norep-seed{s}", "2M", dict(repeat_frac=0.0, batch_size=32, block_size=128, max_steps=6250,
                                                   eval_interval=125, probe_interval=125, seed=s)))]


def report():
    main(["--out", str(FIG / "Formation_Without_Repeats.png"),
          *(f"{label}, seed {s}={REF}/natural_text/{run}-seed{s}" for s in SEEDS
            for label, run in (("char, 8 x 256", "char2M-ctx256-norep"), ("word, 32 x 128", "word2M-32x128-norep")))])


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


def findings(label: str, metrics) -> list[str]:
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
    """The verdict of one lever against the control, by the rule in the module docstring."""
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


def main(argv=None) -> dict:
    """The report and figure; returns the runs' logs {label: [MetricsRow, ...]} for a report built on this one."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True, help="the figure's path")
    ap.add_argument("--control", help="the LABEL of the control run the others are compared with")
    ap.add_argument("--title", default="Induction heads without synthetic repeats: natural text alone (2M parameters)")
    args = ap.parse_args(argv)
    runs = logged_runs(args.runs)
    if not runs:
        return runs
    for label, metrics in runs.items():
        print("\n".join(findings(label, metrics)))
    if args.control in runs:
        control = runs[args.control]
        best = min(m.val_loss for m in control)
        for label, metrics in runs.items():
            if label != args.control:
                print(f"{label} against {args.control}: {earlier(metrics, control)}; best validation loss "
                      f"{min(m.val_loss for m in metrics) - best:+.3f} nats/token")
    predicted = {label: predicted_tokens(m[-1].tokens // m[-1].step) for label, m in runs.items()}
    print(plot_formation_without_repeats(runs, predicted, args.out, args.title,
                                         {s: CRITERIA[s].threshold for s in INDUCTION_SCORES}))
    return runs


if __name__ == "__main__":
    main()
