"""Induction-head formation during training, from runs' metrics.json files: the figure and where it happened (the
report of the recipe, seeds and tokenizers experiments).

    python -m experiments.formation --out formation.png "2M recipe=checkpoints/reference/MiniGPT-2M" ...

Each argument is LABEL=RUN_DIR (a directory holding metrics.json written by train.py with
--probe-interval). Prints, per run and probe set, the first logged row with an induction head (prefix matching and
copying both clear induction.CRITERIA; logs from 2026-11-26 on), and the first row where the best head by each score
alone clears that score's criterion (the lower bound of its CI), in tokens, characters and minutes of training.
"""
import argparse

import matplotlib.pyplot as plt

import utils
from induction import CRITERIA
from experiments import logged_runs
from training_log import first_formed


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True, help="the figure's path")
    ap.add_argument("--title", default="Induction-head formation during training (best head per probe set)")
    ap.add_argument("--x", choices=list(FORMATION_X), default="tokens",
                    help="the figure's x axis: tokens, characters of text (to compare tokenizers) or minutes")
    args = ap.parse_args(argv)
    runs = logged_runs(args.runs)
    if not runs:
        return
    for label, metrics in runs.items():
        print("\n".join(findings(label, metrics)))
    formed = {label: first_formed(metrics, "random", "delta") for label, metrics in runs.items()}  # the figure's marks
    print(plot_formation(runs, args.out, args.title, CRITERIA["delta"].threshold, formed, args.x))


if __name__ == "__main__":
    main()
