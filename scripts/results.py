"""Print README.md's results tables from the study summaries and training metrics.

    python scripts/results.py checkpoints/MiniGPT-2M checkpoints/MiniGPT-5.6M

Each directory needs metrics.json (from train.py) and induction_<name>.json (from study.py
or InductionHeads.ipynb). Numbers are printed exactly as the JSON files hold them, rounded.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from induction import FORMED_DELTA, best_head, formation_row  # noqa: E402


def heads(hs):
    return ", ".join(f"L{l}H{h}" for l, h in hs) or "none"


def model_rows(run: Path):
    metrics = json.loads((run / "metrics.json").read_text())
    study = json.loads(next(run.glob("induction_*.json")).read_text())
    best = min(metrics, key=lambda m: m["val_loss"])
    prim = study["config"]["primary"]
    v = study["validation"]
    yield "| | |"
    yield "|---|---|"
    yield f"| parameters | {study['params']:,} ({study['tokenizer']} tokens, vocabulary {study['vocab_size']:,}) |"
    yield (f"| training | {metrics[-1]['step']:,} steps, {metrics[-1]['tokens'] / 1e6:.1f}M tokens, "
           f"{metrics[-1]['train_s'] / 60:.0f} min of training on this machine |")
    yield (f"| best validation loss | {best['val_loss']:.3f} nats/token = {best['val_bpc']:.3f} bits/char "
           f"(step {best['step']:,}; the study uses this checkpoint) |")
    for kind, label in (("random", "random"), ("text", "text-val")):
        formed = formation_row(metrics, kind)
        if formed:
            yield (f"| first induction head formed, {label} probes | after {formed['tokens'] / 1e6:.1f}M tokens "
                   f"({formed['train_s'] / 60:.0f} min): L{formed[f'probe_{kind}_best_head'][0]}"
                   f"H{formed[f'probe_{kind}_best_head'][1]}, Δ {formed[f'probe_{kind}_best_delta']:.2f} |")
        else:
            yield (f"| first induction head formed, {label} probes | not within the run (no logged head reached "
                   f"Δ ≥ {FORMED_DELTA} with CI above 0) |")
    for kind in ("random", "text-val", "text-train"):
        s = study["scores"][kind]
        d = s["delta"]
        l, h = best_head(d)
        yield (f"| best head, {kind} probes | L{l}H{h}: Δ {d['mean'][l][h]:.3f} "
               f"[{d['lo'][l][h]:.3f}, {d['hi'][l][h]:.3f}] "
               f"(chance {s['chance']['induction']:.3f}); G {s['G']['mean']:.3f} [{s['G']['lo']:.3f}, "
               f"{s['G']['hi']:.3f}] nats/token |")
    for kind in ("random", "text-val"):
        pm = study["scores"][kind]["prefix_match"]
        l, h = best_head(pm)
        yield (f"| best head by prefix matching (all earlier copies), {kind} probes | L{l}H{h}: "
               f"{pm['mean'][l][h]:.3f} [{pm['lo'][l][h]:.3f}, {pm['hi'][l][h]:.3f}] |")
    yield f"| candidate induction heads ({prim} probes) | {heads(v['candidates'])} |"
    yield f"| previous-token heads (score ≥ {study['config']['prev_threshold']}) | {heads(v['previous_token_heads'])} |"
    for mode in ("zero", "mean"):
        t = v[mode]["tested"]
        yield (f"| share of G removed, {mode} ablation | {heads(v['tested'])} together: {100 * t['share']:.0f}% "
               f"[{100 * t['lo']:.0f}, {100 * t['hi']:.0f}] |")
    r = v["zero"].get("random")
    if r:
        yield (f"| share of G removed by {len(v['tested'])} random other heads, zero ablation | median "
               f"{100 * r['median']:.0f}% (5–95th pct {100 * r['p05']:.0f} to {100 * r['p95']:.0f}, "
               f"{len(r['draws'])} draws) |")
    singles = study["single_head_ablations"]["zero"]
    drops = [(d, l, h) for l, row in enumerate(singles["G_drop"]) for h, d in enumerate(row)]
    d, l, h = max(drops)
    yield (f"| largest single-head G drop, zero ablation | L{l}H{h}: {d:.2f} of G = {singles['G_base']:.2f} "
           f"nats/token ({100 * d / singles['G_base']:.0f}%) |")


def main():
    for d in sys.argv[1:]:
        run = Path(d)
        print(f"\n**{run.name}**\n")
        print("\n".join(model_rows(run)))


if __name__ == "__main__":
    main()
