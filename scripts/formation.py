"""Plot induction-head formation during training from runs' metrics.json files, and print where it happened.

    python scripts/formation.py --out results/figures/Induction_Formation.png \
        "2M recipe=checkpoints/reference/MiniGPT-2M" "no repeats=checkpoints/reference/experiments/2M-vocab2048-no-repeats"

Each argument is LABEL=RUN_DIR (a directory holding metrics.json written by train.py with
--probe-interval). Prints, per run and probe set, the first logged row where the best head's Δ
(and, where it was logged with its head, prefix matching) is >= induction.FORMED_DELTA with its
CI above 0, in tokens, characters and minutes of training.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402
from induction import FORMED_DELTA, first_formed  # noqa: E402
from train import read_metrics  # noqa: E402


def where(row, kind: str, score: str) -> str:
    return (f"step {row.step:,}: {row.tokens / 1e6:.2f}M tokens = {row.tokens * row.chars_per_token / 1e6:.1f}M "
            f"characters, {row.train_s / 60:.1f} min of training; {row.probes[kind].best(score)}")


def report(label: str, metrics) -> list[str]:
    last, lines = metrics[-1], []
    for kind in ("random", "text-val"):
        for score in ("delta", "prefix_match"):
            if last.probes.get(kind) is None or last.probes[kind].best(score) is None:
                continue  # not logged by this run
            row = first_formed(metrics, kind, score)
            lines.append(f"{label}, {kind} probes, {score} >= {FORMED_DELTA} with CI > 0: " + (
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
    formed = {label: first_formed(metrics) for label, metrics in runs.items()}  # the figure marks random-probe Δ
    print(utils.plot_formation(runs, args.out, args.title, FORMED_DELTA, formed, args.x))


if __name__ == "__main__":
    main()
