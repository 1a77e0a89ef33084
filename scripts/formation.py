"""Plot induction-head formation during training from runs' metrics.json files.

    python scripts/formation.py --out Plots/Induction_Formation.png \\
        "2M recipe=checkpoints/reference/MiniGPT-2M" "no repeats=checkpoints/reference/experiments/2M-no-repeats"

Each argument is LABEL=RUN_DIR (a directory holding metrics.json written by train.py with
--probe-interval). Prints, per run, where the first head formed (Δ >= 0.3 on random probes
with its CI above 0), on random and on text probes, in tokens and minutes of training.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402
from induction import FORMED_DELTA, formation_row  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", default=str(ROOT / "Plots" / "Induction_Formation.png"))
    ap.add_argument("--title", default="Induction-head formation during training (best head per probe set)")
    ap.add_argument("--x", choices=list(utils.FORMATION_X), default="tokens",
                    help="the figure's x axis: tokens, characters of text (to compare tokenizers) or minutes")
    args = ap.parse_args()
    runs, formed = {}, {}
    for spec in args.runs:
        label, _, d = spec.partition("=")
        metrics = json.loads((Path(d) / "metrics.json").read_text())
        runs[label] = metrics
        last, cpt = metrics[-1], utils.chars_per_token(metrics)
        for kind in ("random", "text"):
            row = formation_row(metrics, kind)
            if kind == "random":  # the figure marks formation by the random-probe criterion
                formed[label] = row
            if row:
                print(f"{label}, {kind} probes: first head formed at step {row['step']:,}: "
                      f"{row['tokens'] / 1e6:.2f}M tokens = {row['tokens'] * cpt / 1e6:.1f}M characters, "
                      f"{row['train_s'] / 60:.1f} min of training; head "
                      f"L{row[f'probe_{kind}_best_head'][0]}H{row[f'probe_{kind}_best_head'][1]}, "
                      f"Δ {row[f'probe_{kind}_best_delta']:.3f} [{row[f'probe_{kind}_best_delta_lo']:.3f}, "
                      f"{row[f'probe_{kind}_best_delta_hi']:.3f}]; at the end (step {last['step']:,}) "
                      f"L{last[f'probe_{kind}_best_head'][0]}H{last[f'probe_{kind}_best_head'][1]}, "
                      f"Δ {last[f'probe_{kind}_best_delta']:.3f}")
            else:
                print(f"{label}, {kind} probes: no head formed (Δ >= {FORMED_DELTA} with CI > 0) in "
                      f"{last['step']:,} steps, {last['tokens'] / 1e6:.2f}M tokens = {last['tokens'] * cpt / 1e6:.1f}M "
                      f"characters, {last['train_s'] / 60:.1f} min; "
                      f"best Δ at the end {last.get(f'probe_{kind}_best_delta', float('nan')):.3f}")
        if "probe_random_best_prefix_match" in last:  # logged by runs since the score was added
            row = formation_row(metrics, "random", score="prefix_match")
            print(f"{label}, random probes, prefix matching >= {FORMED_DELTA} with CI > 0: " + (
                f"first at step {row['step']:,}: {row['tokens'] / 1e6:.2f}M tokens = {row['tokens'] * cpt / 1e6:.1f}M "
                f"characters, {row['train_s'] / 60:.1f} min of training; {row['probe_random_best_prefix_match']:.3f} "
                f"(CI low {row['probe_random_best_prefix_match_lo']:.3f})" if row else
                f"never; at the end {last['probe_random_best_prefix_match']:.3f}"))
    print(utils.plot_formation(runs, args.out, args.title, formed, args.x))


if __name__ == "__main__":
    main()
