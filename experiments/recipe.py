"""The recipe: which data and batch make a 2M word model form induction heads within a CPU budget.

    python -m experiments recipe        # the formation figure and where each run formed, from the committed logs
    python -m experiments recipe run    # train the four variants (their committed logs stopped early, by hand)

"Formed" is the best head's Δ >= 0.3 (lower CI bound): these logs predate the copying score (results/README.md, "The
recipe"). The preset itself is the reference 2M model.
"""
from experiments import FIG, REF
from experiments.formation import main  # noqa: F401  (the report)

EXP = REF / "experiments"
RUNS = {"2M-vocab2048-repeats": ["--preset", "2M", "--vocab-size", "2048", "--max-steps", "20000", "--eval-interval",
                                 "1000", "--probe-interval", "1000"],
        "2M-vocab2048-no-repeats": ["--preset", "2M", "--vocab-size", "2048", "--max-steps", "20000",
                                    "--eval-interval", "1000", "--probe-interval", "1000", "--repeat-frac", "0"],
        "2M-ctx128-lr1e-3-repeats": ["--preset", "2M", "--block-size", "128", "--batch-size", "16", "--lr", "1e-3",
                                     "--min-lr", "1e-4", "--warmup-steps", "100", "--max-steps", "2400",
                                     "--eval-interval", "200", "--probe-interval", "200"],
        "2M-batch16-repeats": ["--preset", "2M", "--batch-size", "16", "--max-steps", "6000"]}
REPORTS = [["--out", FIG / "Induction_Formation.png", f"recipe (10k words)={REF}/MiniGPT-2M",
            f"vocabulary 2,048={EXP}/2M-vocab2048-repeats",
            f"vocabulary 2,048, no repeats={EXP}/2M-vocab2048-no-repeats",
            f"16 x 128, lr 1e-3={EXP}/2M-ctx128-lr1e-3-repeats", f"batch 16 x 64={EXP}/2M-batch16-repeats"]]
