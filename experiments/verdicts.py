"""The verdict across runs (issue #39): six 2M runs, the three 5.6M seeds and the original recipe's two, each with its
circuit, its heads' roles, and the verdict under the new rule (induction.VERDICT) and the old (VERDICT_OLD).

    python -m experiments verdicts          # the table and each part's failure count, from the committed summaries
    python -m experiments verdicts run      # train the three 2M seeds as `make run` does (precision auto, 2 threads)
    make promote RUN=runs/verdicts/MiniGPT-2M-seedN   # into checkpoints/reference/verdicts/, where MODELS reads them
    python -m experiments verdicts study    # study them (fp32, as every reference study)

The six 2M runs are the three fp32 seeds (the reference model and the seeds experiment's two) and three seeds trained
the way a user's `make run` trains (precision auto: bf16 autocast on a CPU with native bf16), committed in
checkpoints/reference/verdicts/. Every study here is in fp32, so that the runs differ only in training. The report also
writes results/verdict_rates.json: how many of the six 2M runs fail each part of the verdict, which `make study` (and so
`make run`) prints beside a FAIL.
"""

from checkpoint import portable
from study import StudyConfig
from experiments import REF, ROOT, Run

SEEDS = (1337, 1, 2)
THREADS = 2  # as `make run` trains on two cores (train_runs' default is one thread per run)
PARALLEL = 1
RUNS = [Run(f"MiniGPT-2M-seed{s}", "2M", dict(seed=s)) for s in SEEDS]
RESULTS = ROOT / "results"
RATES = RESULTS / "verdict_rates.json"

# (model, seed, training) -> (weights, the summary of their study); fp32 runs first
MODELS = {("2M", 1337, "fp32"): (REF / "MiniGPT-2M", RESULTS / "induction_MiniGPT-2M.json"),
          **{("2M", s, "fp32"): (REF / "seeds" / f"2M-seed{s}" / "best.pt",
                                 RESULTS / "seeds" / f"induction_MiniGPT-2M-seed{s}.json") for s in (1, 2)},
          **{("2M", s, "make run"): (REF / "verdicts" / f"MiniGPT-2M-seed{s}" / "best.pt",
                                     RESULTS / "make-run" / f"induction_make-run-2M-seed{s}.json") for s in SEEDS},
          ("5.6M", 1337, "fp32"): (REF / "MiniGPT-5.6M", RESULTS / "induction_MiniGPT-5.6M.json"),
          **{("5.6M", s, "fp32"): (REF / "seeds" / f"5.6M-seed{s}" / "best.pt",
                                   RESULTS / "seeds" / f"induction_MiniGPT-5.6M-seed{s}.json") for s in (1, 2)},
          **{("original-2M", s, "fp32"): (REF / "original" / f"original-2M-seed{s}" / "final.pt",
                                          RESULTS / "original" / f"induction_original-2M-seed{s}.json")
             for s in (1337, 1)}}
STUDIES = [StudyConfig(portable(weights), out.stem.removeprefix("induction_"), out_json=portable(out),
                       plots_dir=portable(ROOT / "runs" / "make-run" / "plots"), precision="fp32")
           for (model, seed, how), (weights, out) in MODELS.items() if how == "make run"]


def report():
    main([])


def row(model, seed, how, result) -> tuple[str, list[str]]:
    """One table row, and the parts of the new verdict that fail."""
    from study import heads_str, pct
    v = result.validation
    p, c = v.patching, v.circuit
    roles = {k: "+".join(r) for k, r in v.roles.items() if r}
    circuit = ", ".join(f"L{l}H{h} ({roles.get(f'L{l}H{h}', 'no role')})" for l, h in p.circuit.heads)
    keys = (f"{pct(c.paths['k'].prefix_match_removed)} / {pct(c.paths['k-direct'].prefix_match_removed)}; "
            f"{c.sender} above {100 * c.sender_rank:.0f}%" if c else "no earlier head")
    cells = [model, str(seed), how, heads_str(v.candidates) if v.tested_are_candidates else "none",
             ", ".join(f"{k} {r}" for k, r in roles.items()) or "none", circuit,
             pct(p.tested.removed), f"{pct(p.circuit.restored)}", f"{100 * p.percentile:.1f}%", keys,
             f"**{'PASS' if v.validated else 'FAIL'}**", "pass" if v.validated_old else "fail"]
    return "| " + " | ".join(cells) + " |", v.failed()


def table() -> tuple[list[str], dict]:
    """The markdown table of every run, and how many of the six 2M runs fail each part of the verdict."""
    from study import read_result
    lines = ["| model | seed | training | induction heads | roles | found circuit (roles) | necessity: noising the "
             "induction heads removes | the circuit restores | circuit's specificity (null 50%) | keys path: through "
             "the MLPs / direct; sender control | **verdict** (issue #39) | old rule (issue #25) |",
             "|" + "---|" * 12]
    rates = {"runs": 0, "passed": 0, "failed": {}}
    for (model, seed, how), (weights, out) in MODELS.items():
        if not out.exists():
            why = "no weights yet" if not weights.exists() else "not studied yet"
            lines.append(f"| {model} | {seed} | {how} | {why} |" + " |" * 8)
            continue
        result = read_result(out)
        text, failed = row(model, seed, how, result)
        lines.append(text)
        if model == "2M" and result.validation.roles is not None:
            rates["runs"] += 1
            rates["passed"] += not failed
            for part in failed:
                rates["failed"][part] = rates["failed"].get(part, 0) + 1
    return lines, rates


def key_path_rules() -> list[str]:
    """The verdict with the key path judged as 7929a4b defined it (the direct path) and as the study has judged it
    since 31c4b6e (through the MLPs): results/README.md's "Changes to criteria after they were fixed"."""
    import induction as ind
    from study import pct, read_result
    lines = ["| model | seed | training | keys path through the MLPs | direct path | verdict, keys through the MLPs "
             "(the rule) | verdict, direct path |", "|" + "---|" * 7]
    for (model, seed, how), (_, out) in MODELS.items():
        if not out.exists() or (v := read_result(out).validation).circuit is None:
            continue
        mlp, direct = v.circuit.paths["k"].prefix_match_removed, v.circuit.paths["k-direct"].prefix_match_removed
        key_part = next(part for part in v.verdicts() if part.startswith("the keys path"))
        others = all(ok for part, ok in v.verdicts().items() if part != key_part) and v.tested_are_candidates
        by_direct = others and direct.clears(ind.CRITERIA["path_key"].threshold)
        lines.append(f"| {model} | {seed} | {how} | {pct(mlp)} | {pct(direct)} | {'PASS' if v.validated else 'FAIL'} "
                     f"| {'PASS' if by_direct else 'FAIL'} |")
    return lines


def main(argv):
    from checkpoint import write_json
    lines, rates = table()
    print("\n".join(lines))
    print(f"\n2M runs studied under the verdict of issue #39: {rates['runs']}; passed: {rates['passed']}" + "".join(
        f"\n  failed '{part}': {n}" for part, n in rates["failed"].items()))
    print("\nThe key path under both rules:\n" + "\n".join(key_path_rules()))
    print(write_json(RATES, rates))
