"""Plot induction-head formation during training from runs' metrics.json files, and print where it happened.

    python scripts/formation.py --out results/figures/Induction_Formation.png \
        "2M recipe=checkpoints/reference/MiniGPT-2M" "no repeats=checkpoints/reference/experiments/2M-vocab2048-no-repeats"

Each argument is LABEL=RUN_DIR (a directory holding metrics.json written by train.py with
--probe-interval). Prints, per run and probe set, the first logged row with an induction head (prefix matching and
copying both clear induction.CRITERIA; logs from 2026-11-26 on), and the first row where the best head by each score
alone clears that score's criterion (the lower bound of its CI), in tokens, characters and minutes of training.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402
from induction import CRITERIA, first_formed  # noqa: E402
from train import read_metrics  # noqa: E402


def where(row, kind: str, score: str) -> str:
    log = row.probes[kind]
    what = (", ".join(f"{hv} (copying {log.copying.at(hv.layer, hv.head).value})" for hv in log.induction_heads())
            or "none") if score == "induction" else str(log.best(score))
    return (f"step {row.step:,}: {row.tokens / 1e6:.2f}M tokens = {row.tokens * row.chars_per_token / 1e6:.1f}M "
            f"characters, {row.train_s / 60:.1f} min of training; {what}")


def report(label: str, metrics) -> list[str]:
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True, help="the figure's path")
    ap.add_argument("--title", default="Induction-head formation during training (best head per probe set)")
    ap.add_argument("--x", choices=list(utils.FORMATION_X), default="tokens",
                    help="the figure's x axis: tokens, characters of text (to compare tokenizers) or minutes")
    args = ap.parse_args()
    runs = {label: read_metrics(d) for label, _, d in (spec.partition("=") for spec in args.runs)}
    for label, metrics in runs.items():
        print("\n".join(report(label, metrics)))
    formed = {label: first_formed(metrics, "random", "delta") for label, metrics in runs.items()}  # the figure's marks
    print(utils.plot_formation(runs, args.out, args.title, CRITERIA["delta"].threshold, formed, args.x))


if __name__ == "__main__":
    main()
