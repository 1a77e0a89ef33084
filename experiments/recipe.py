"""The recipe: which data and batch make a 2M word model form induction heads within a CPU budget.

    python -m experiments recipe        # the formation figure and where each run formed, from the committed logs
    python -m experiments recipe run    # train the four variants (their committed logs stopped early, by hand)

"Formed" is the best head's Δ >= 0.3 (lower CI bound): these logs predate the copying score (results/README.md, "The
recipe"). The preset itself is the reference 2M model.
"""
from experiments import FIG, REF, Run, formation

EXP = REF / "recipe"
VOCAB_2048 = dict(vocab_size=2048, max_steps=20000, eval_interval=1000, probe_interval=1000)
RUNS = [Run("2M-vocab2048-repeats", "2M", VOCAB_2048),
        Run("2M-vocab2048-no-repeats", "2M", {**VOCAB_2048, "repeat_frac": 0.0}),
        Run("2M-ctx128-lr1e-3-repeats", "2M", dict(block_size=128, batch_size=16, lr=1e-3, min_lr=1e-4,
                                                   warmup_steps=100, max_steps=2400, eval_interval=200,
                                                   probe_interval=200)),
        Run("2M-batch16-repeats", "2M", dict(batch_size=16, max_steps=6000))]


def report():
    formation.with_repeats({"recipe (10k words)": REF / "MiniGPT-2M",
                            "vocabulary 2,048": EXP / "2M-vocab2048-repeats",
                            "vocabulary 2,048, no repeats": EXP / "2M-vocab2048-no-repeats",
                            "16 x 128, lr 1e-3": EXP / "2M-ctx128-lr1e-3-repeats",
                            "batch 16 x 64": EXP / "2M-batch16-repeats"}, FIG / "Induction_Formation.png")


