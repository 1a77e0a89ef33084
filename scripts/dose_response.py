"""How much do synthetic repeats accelerate induction-head formation, and what do they cost? (issue #14)

    python scripts/dose_response.py --out results/figures/Repeat_Dose_Response.png \
        0=checkpoints/reference/curriculum/2M-control 0.1=checkpoints/reference/dose/2M-repeat0.1-seed1337 ...

Each argument is REPEAT_FRAC=RUN_DIR: runs that differ only in train.py's --repeat-frac (same preset, seed and
steps; the validation loss on the full validation split, the probes with the copying score). The run with fraction 0
is the control. For each run: the first logged induction head (prefix matching and copying clear induction.CRITERIA)
on each probe set, its acceleration over the control (the control's formation tokens over the run's; a lower bound
when the control never formed), and the validation loss against the control's at equal tokens (every logged step,
and the final one).
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402
from induction import CRITERIA, first_formed  # noqa: E402
from train import read_metrics  # noqa: E402

PROBE_SETS = ("random-known", "text-val")


def report(runs: dict) -> list[str]:
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="REPEAT_FRAC=RUN_DIR (one with 0: the control)")
    ap.add_argument("--out", required=True, help="the figure's path")
    args = ap.parse_args()
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
    print("\n".join(report(runs)))
    formed = {kind: {frac: first_formed(m, kind, "induction") for frac, m in runs.items()} for kind in PROBE_SETS}
    print(utils.plot_dose_response(runs, formed, args.out, CRITERIA["prefix_match"].threshold))


if __name__ == "__main__":
    main()
