"""How much do synthetic repeats accelerate induction-head formation, and what do they cost? (issue #14)

    python -m experiments dose          # the report and figure from the committed runs
    python -m experiments dose run      # train its runs (three at once, one thread each, about 40 min)

Each argument is REPEAT_FRAC=RUN_DIR: runs that differ only in train.py's --repeat-frac (same preset, seed and
steps; the validation loss on the full validation split, the probes with the copying score). The run with fraction 0
is the control. For each run: the first logged induction head (prefix matching and copying clear induction.CRITERIA)
on each probe set, its acceleration over the control (the control's formation tokens over the run's; a lower bound
when the control never formed), and the validation loss against the control's at equal tokens (every logged step,
and the final one).
"""
import argparse

import matplotlib.pyplot as plt

import utils
from induction import CRITERIA
from experiments import FIG, REF, Run
from training_log import first_formed, probed_rows, read_metrics

PROBE_SETS = ("random-known", "text-val")
FRACTIONS = (0.1, 0.25, 0.5)
# the 2M preset but for the repeat fraction; the control (0) is the curriculum experiment's no-repeat run
RUNS = [Run(f"2M-repeat{f}-seed1337", "2M", dict(repeat_frac=f)) for f in FRACTIONS]
PARALLEL = 3


def report():
    main(["--out", str(FIG / "Repeat_Dose_Response.png"), f"0={REF}/curriculum/2M-control",
          *(f"{f}={REF}/dose/2M-repeat{f}-seed1337" for f in FRACTIONS)])


def findings(runs: dict) -> list[str]:
    control = runs[0.0]
    ctl_loss = {m.tokens: m.val_loss for m in control}
    lines = []
    for frac, metrics in runs.items():
        last = metrics[-1]
        gaps = [m.val_loss - ctl_loss[m.tokens] for m in metrics if m.tokens in ctl_loss and m.step]
        line = [f"repeat fraction {frac:g}: final validation loss {last.val_loss:.3f} after {last.tokens / 1e6:.2f}M "
                f"tokens ({last.val_loss - ctl_loss[last.tokens]:+.3f} against the control; at the logged steps "
                f"{min(gaps):+.3f} to {max(gaps):+.3f})"]
        for kind in PROBE_SETS:
            row, ctl = first_formed(metrics, kind, "induction"), first_formed(control, kind, "induction")
            if row is None:
                line.append(f"{kind}: no induction head within {last.tokens / 1e6:.2f}M tokens")
                continue
            heads = ", ".join(hv.label for hv in row.probes[kind].induction_heads())
            speed = (f"{ctl.tokens / row.tokens:.1f}x the control's pace" if ctl else
                     f"at least {control[-1].tokens / row.tokens:.1f}x the control's pace (it formed none within "
                     f"{control[-1].tokens / 1e6:.2f}M tokens)")
            line.append(f"{kind}: first induction head after {row.tokens / 1e6:.2f}M tokens ({heads}), {speed}")
        lines.append("; ".join(line))
    return lines


def plot_dose_response(runs: dict, formed: dict, path, threshold: float):
    """Repeat fraction against formation and cost: runs {repeat_frac: [MetricsRow, ...]} (0: the control), formed
    {probe kind: {repeat_frac: the first MetricsRow with an induction head, or None}}.

    Panels: the best head's prefix matching on held-out text probes against tokens (the line: its criterion,
    threshold); validation loss minus the control's at equal tokens; the tokens to the first induction head against
    the repeat fraction (an open marker at the run's end: none formed by then).
    """
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), layout="constrained")
    ctl = {m.tokens: m.val_loss for m in runs[0.0]}
    for i, (frac, metrics) in enumerate(runs.items()):
        rows = probed_rows(metrics)
        label = f"repeat fraction {frac:g}" + (" (control)" if frac == 0 else "")
        axes[0].plot([m.tokens / 1e6 for m in rows], [m.probes["text-val"].prefix_match.best().value.mean for m in rows],
                     color=f"C{i}", label=label)
        both = [m for m in metrics if m.tokens in ctl and m.step]
        axes[1].plot([m.tokens / 1e6 for m in both], [m.val_loss - ctl[m.tokens] for m in both], color=f"C{i}",
                     label=label)
    axes[0].axhline(threshold, color="grey", lw=0.8, ls="-.", label=f"criterion (lower CI bound ≥ {threshold})")
    axes[1].axhline(0, color="grey", lw=0.8)
    for j, (kind, rows) in enumerate(formed.items()):
        shift = 0.006 * (j - (len(formed) - 1) / 2)  # side by side where the probe sets agree
        got = [(f + shift, r.tokens / 1e6) for f, r in rows.items() if r is not None]
        none = [(f + shift, runs[f][-1].tokens / 1e6) for f, r in rows.items() if r is None]
        if got:
            axes[2].plot(*zip(*got), "o-", color=f"C{j}", label=f"{kind} probes")
        if none:
            axes[2].plot(*zip(*none), "^", mfc="none", color=f"C{j}", label=f"{kind} probes: none by the run's end")
    axes[2].set_xticks(list(runs))
    axes[2].set_ylim(0, 1.1 * max(m[-1].tokens for m in runs.values()) / 1e6)
    for ax, title, xlabel, ylabel in zip(
            axes, ("formation on held-out text probes", "cost: validation loss against the control",
                   "tokens to the first induction head"),
            ("training tokens seen (millions)", "training tokens seen (millions)", "repeat fraction"),
            ("best head's prefix matching (null 0)", "validation loss − control's (nats/token)",
             "training tokens (millions)")):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5)
    fig.suptitle("Synthetic repeats: how much they accelerate induction heads, and what they cost")
    return utils.save_figure(fig, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="REPEAT_FRAC=RUN_DIR (one with 0: the control)")
    ap.add_argument("--out", required=True, help="the figure's path")
    args = ap.parse_args(argv)
    runs = {}
    for spec in args.runs:
        frac, _, d = spec.partition("=")
        try:
            runs[float(frac)] = read_metrics(d)
        except ValueError:
            raise SystemExit(f"error: {spec!r}: the part before '=' must be the run's repeat fraction, e.g. 0.25")
    if 0.0 not in runs:
        raise SystemExit("error: give the control run, with repeat fraction 0 (e.g. 0=RUN_DIR)")
    runs = dict(sorted(runs.items()))
    print("\n".join(findings(runs)))
    formed = {kind: {frac: first_formed(m, kind, "induction") for frac, m in runs.items()} for kind in PROBE_SETS}
    print(plot_dose_response(runs, formed, args.out, CRITERIA["prefix_match"].threshold))


if __name__ == "__main__":
    main()
