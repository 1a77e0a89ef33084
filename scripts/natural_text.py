"""Induction-head formation on natural text alone, against the scaling law's prediction (issue #14).

    python scripts/natural_text.py --out results/figures/Formation_Without_Repeats.png \
        "char, 8 x 256, seed 1337=checkpoints/reference/natural-text/char2M-ctx256-norep-seed1337" ...

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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402
from induction import CRITERIA, INDUCTION_SCORES, first_formed  # noqa: E402
from train import read_metrics  # noqa: E402

# Aoyama, Wilcox and Schneider 2025 (arXiv 2511.16893): induction heads emerge after about 10^5.7 * sqrt(B * T)
# training tokens (B sequences per batch, T context), independent of model size.
LAW_LOG10 = 5.7
PROBE_SETS = ("random-known", "random", "text-val")


def predicted_tokens(tokens_per_step: int) -> float:
    return 10 ** LAW_LOG10 * math.sqrt(tokens_per_step)


def probe_interval(metrics) -> int:
    """Training tokens between two logged probes."""
    probed = [m for m in metrics if m.probes and m.step]
    return probed[1].tokens - probed[0].tokens


def report(label: str, metrics) -> list[str]:
    last = metrics[-1]
    per_step = last.tokens // last.step
    law = predicted_tokens(per_step)
    probed = [m for m in metrics if m.probes and m.step]
    lines = [f"{label}: {per_step:,} tokens per step; the law predicts formation at {law / 1e6:.1f}M tokens; "
             f"logged to {last.tokens / 1e6:.2f}M tokens ({last.tokens / law:.2f}x the prediction), probes every "
             f"{probe_interval(metrics) / 1e6:.2f}M tokens; best validation loss "
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
            lines.append(f"  {kind}: no induction head within {last.tokens / 1e6:.2f}M tokens; highest best-head "
                         + "; ".join(f"{s} {hv} (criterion {CRITERIA[s].threshold})" for s, hv in best.items()))
    prev = max((m.probes["text-val"].best_prev_token for m in probed), key=lambda hv: hv.value.mean)
    lines.append(f"  strongest previous-token head (text probes): {prev} "
                 f"(criterion {CRITERIA['prev_token'].threshold})")
    return lines


def earlier(run, control) -> str:
    """The verdict of one lever against the control, by the rule in the module docstring."""
    r, c = first_formed(run, "text-val", "induction"), first_formed(control, "text-val", "induction")
    if r is None:
        return f"not earlier: no induction head within {run[-1].tokens / 1e6:.2f}M tokens"
    if c is None:
        return (f"EARLIER: an induction head at {r.tokens / 1e6:.2f}M tokens; the control formed none within "
                f"{control[-1].tokens / 1e6:.2f}M")
    verdict = "EARLIER" if r.tokens < c.tokens - probe_interval(run) else "not earlier"
    return f"{verdict}: {r.tokens / 1e6:.2f}M tokens against the control's {c.tokens / 1e6:.2f}M"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True, help="the figure's path")
    ap.add_argument("--control", help="the LABEL of the control run the others are compared with")
    ap.add_argument("--title", default="Induction heads without synthetic repeats: natural text alone (2M parameters)")
    args = ap.parse_args()
    runs = {label: read_metrics(d) for label, _, d in (spec.partition("=") for spec in args.runs)}
    for label, metrics in runs.items():
        print("\n".join(report(label, metrics)))
    if args.control:
        control = runs[args.control]
        best = min(m.val_loss for m in control)
        for label, metrics in runs.items():
            if label != args.control:
                print(f"{label} against {args.control}: {earlier(metrics, control)}; best validation loss "
                      f"{min(m.val_loss for m in metrics) - best:+.3f} nats/token")
    predicted = {label: predicted_tokens(m[-1].tokens // m[-1].step) for label, m in runs.items()}
    print(utils.plot_formation_without_repeats(runs, predicted, args.out, args.title,
                                               {s: CRITERIA[s].threshold for s in INDUCTION_SCORES}))


if __name__ == "__main__":
    main()
