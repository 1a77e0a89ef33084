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
from induction import FORMED_DELTA, first_formed  # noqa: E402
from study import heads_str, read_result  # noqa: E402
from train import read_metrics  # noqa: E402


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
        formed = first_formed(metrics, kind)
        yield (f"| first induction head formed, {kind} probes | " + (
            f"after {formed.tokens / 1e6:.1f}M tokens ({formed.train_s / 60:.0f} min): "
            f"{formed.probes[kind].best_delta} |" if formed else
            f"not within the run (no logged head reached Δ ≥ {FORMED_DELTA} with CI above 0) |"))
    for kind, s in study.scores.items():
        yield (f"| best head by Δ, {kind} probes (null 0) | {s.delta.best()}; G {s.G} nats/token |")
    for kind in ("random", "text-val"):
        yield (f"| best head by prefix matching (all earlier copies), {kind} probes | "
               f"{study.scores[kind].prefix_match.best()} |")
    yield f"| candidate induction heads ({study.config.primary} probes) | {heads_str(v.candidates)} |"
    yield (f"| previous-token heads (score ≥ {study.config.prev_threshold}) | "
           f"{heads_str(v.previous_token_heads)} |")
    for mode in ("zero", "mean"):
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
