"""Print README.md's results tables from the committed study summaries and training logs.

    python scripts/results.py MiniGPT-2M=checkpoints/reference/MiniGPT-2M:results/induction_MiniGPT-2M.json

Each argument is NAME=RUN_DIR:STUDY_JSON (RUN_DIR holds train.py's metrics.json, STUDY_JSON is
study.py's summary). Every number is formatted by the typed results' own formatters.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from induction import CRITERIA, first_formed  # noqa: E402
from study import heads_str, read_result  # noqa: E402
from train import read_metrics  # noqa: E402


def formation(metrics, kind: str) -> str:
    """Where the log shows the first induction head (CRITERIA), or, in logs without the copying score, the first
    head whose Δ alone clears its criterion."""
    if metrics[-1].probes.get(kind) is not None and metrics[-1].probes[kind].copying is not None:
        row = first_formed(metrics, kind, "induction")
        return (f"after {row.tokens / 1e6:.2f}M tokens: {', '.join(h.label for h in row.probes[kind].induction_heads())}"
                if row else "not within the run")
    row = first_formed(metrics, kind, "delta")
    return ("copying not logged; " + (f"Δ ≥ {CRITERIA['delta'].threshold} (lower CI bound) after "
                                      f"{row.tokens / 1e6:.2f}M tokens: {row.probes[kind].best_delta}" if row else
                                      f"no head reached Δ ≥ {CRITERIA['delta'].threshold} (lower CI bound)"))


def model_rows(run_dir: Path, study_json: Path):
    metrics, study = read_metrics(run_dir), read_result(study_json)
    best = min(metrics, key=lambda m: m.val_loss)
    last, v = metrics[-1], study.validation
    yield "| | |"
    yield "|---|---|"
    yield f"| parameters | {study.params:,} ({study.tokenizer} tokens, vocabulary {study.vocab_size:,}) |"
    yield (f"| training | {last.step:,} steps, {last.tokens / 1e6:.1f}M tokens, "
           f"{last.train_s / 60:.0f} min of training |")
    yield (f"| best validation loss | {best.val_loss:.3f} nats/token = {best.val_bpc:.3f} bits/char "
           f"(step {best.step:,}; the study uses this checkpoint) |")
    for kind in ("random", "text-val"):
        yield f"| first induction head formed during training, {kind} probes | {formation(metrics, kind)} |"
    pm, cp = CRITERIA["prefix_match"].threshold, CRITERIA["copying"].threshold
    for kind, s in study.scores.items():
        heads = ", ".join(str(hv) for hv in s.induction_heads()) or "none"
        yield (f"| {kind} probes: induction heads (prefix matching ≥ {pm} and copying ≥ {cp}, lower CI bounds) | "
               f"{heads} |")
        yield (f"| {kind} probes: best prefix matching / copying / Δ (null 0) | {s.prefix_match.best()} / "
               f"{s.copying.best()} / {s.delta.best()}; G {s.G} nats/token |")
    yield (f"| heads tested by ablation | {heads_str(v.tested)} "
           f"({'the induction heads' if v.tested_are_candidates else 'no induction head: the top head by prefix matching'}) |")
    yield (f"| previous-token heads (score ≥ {CRITERIA['prev_token'].threshold}, lower CI bound) | "
           f"{heads_str(v.previous_token_heads)} |")
    for mode in ("zero", "mean", "resample"):
        yield f"| share of G removed, {mode} ablation | {heads_str(v.tested)} together: {getattr(v, mode).tested} |"
    if v.zero.random:
        yield f"| share of G removed by {len(v.tested)} random other heads, zero ablation | {v.zero.random} |"
    yield f"| single-head zero ablations | {study.single_head_ablations.zero} |"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="NAME=RUN_DIR:STUDY_JSON")
    for spec in ap.parse_args().runs:
        name, _, paths = spec.partition("=")
        run_dir, _, study_json = paths.partition(":")
        print(f"\n**{name}**\n")
        print("\n".join(model_rows(Path(run_dir), Path(study_json))))


if __name__ == "__main__":
    main()
