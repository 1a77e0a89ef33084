"""Seeds: the 2M and 5.6M presets at seeds 1 and 2 beside seed 1337, the reference models.

    python -m experiments seeds          # the formation figure across seeds and sizes, and each seed's verdict
    python -m experiments seeds run      # train the four runs with weights, fp32, one thread each (hours)
    python -m experiments seeds study    # study each seed's weights (study.py, fp32; minutes each)

A claim about a preset holds for three seeds, or says that it rests on one (issue #25). The verdict of each seed is the
study's (induction.VERDICT, from activation patching), read from its committed summary.
"""
from pathlib import Path

from checkpoint import portable, run_weights
from study import StudyConfig
from experiments import FIG, REF, ROOT, Run, formation

RUNS = [Run(f"{m}-seed{s}", m, dict(precision="fp32", seed=s)) for m in ("2M", "5.6M") for s in (1, 2)]


def report():
    formation.with_repeats({"2M, seed 1337 (reference)": REF / "MiniGPT-2M", "2M, seed 1": REF / "seeds" / "2M-seed1",
                            "2M, seed 2": REF / "seeds" / "2M-seed2",
                            "5.6M, seed 1337 (reference)": REF / "MiniGPT-5.6M",
                            "5.6M, seed 1": REF / "seeds" / "5.6M-seed1", "5.6M, seed 2": REF / "seeds" / "5.6M-seed2",
                            "5.6M, seed 1337, 2 threads (make run)": REF / "verdicts" / "MiniGPT-5.6M"},
                           FIG / "Induction_Formation_Sizes_Seeds.png",
                           title="Induction-head formation across seeds and sizes (the recipe)")
    print("\n".join(verdicts()))


# Each seed's weights and the summary of its study. Seed 1337's studies are the reference ones (make reference).
RESULTS = ROOT / "results"
SEEDS = {"2M": {1337: (REF / "MiniGPT-2M", RESULTS / "induction_MiniGPT-2M.json"),
                1: (REF / "seeds" / "2M-seed1", RESULTS / "seeds" / "induction_MiniGPT-2M-seed1.json"),
                2: (REF / "seeds" / "2M-seed2", RESULTS / "seeds" / "induction_MiniGPT-2M-seed2.json")},
         "5.6M": {1337: (REF / "MiniGPT-5.6M", RESULTS / "induction_MiniGPT-5.6M.json"),
                  1: (REF / "seeds" / "5.6M-seed1", RESULTS / "seeds" / "induction_MiniGPT-5.6M-seed1.json"),
                  2: (REF / "seeds" / "5.6M-seed2", RESULTS / "seeds" / "induction_MiniGPT-5.6M-seed2.json")}}
STUDIES = [StudyConfig(portable(run_weights(run)), out.stem.removeprefix("induction_"), out_json=portable(out),
                       plots_dir=portable(ROOT / "runs" / "seeds" / "plots"), precision="fp32")
           for seeds in SEEDS.values() for seed, (run, out) in seeds.items() if seed != 1337]


def verdicts() -> list[str]:
    """One row per model and seed: its candidates, the patching verdict's parts and the old ablation criterion."""
    from study import heads_str, pct, read_result
    rows = ["| model | seed | induction heads | noising removes | denoising restores | specificity (null 50%) | "
            "keys path: prefix matching removed | verdict (patching) | ablation criterion (issue #13, secondary) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for model, seeds in SEEDS.items():
        for seed, (run, out) in seeds.items():
            if not Path(out).exists():
                why = "no weights yet" if not run_weights(run).exists() else "not studied yet"
                rows.append(f"| {model} | {seed} | {why} | | | | | | |")
                continue
            v = read_result(out).validation
            p, c = v.patching, v.circuit
            keys = pct(c.paths["k"].prefix_match_removed) if c else "no earlier head"
            rows.append(f"| {model} | {seed} | {heads_str(v.candidates) if v.tested_are_candidates else 'none'} | "
                        f"{pct(p.tested.removed)} | {pct(p.tested.restored)} | {100 * p.percentile:.1f}% | {keys} | "
                        f"**{'PASS' if v.validated else 'FAIL'}** | "
                        f"{'pass' if all(v.ablation_verdicts().values()) else 'fail'} |")
    return rows
