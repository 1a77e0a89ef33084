"""The original study's recipe (issue #26): plain text, batch 32 x 128, a constant 3e-4, to the original's budget.

    python -m experiments original        # formation against the law, from the committed logs
    python -m experiments original run    # train or continue both seeds (resumable; days of one core)

config.PRESETS["original-2M"] holds the recipe. Seed 1337 is to reach at least 100M tokens and seed 1 at least 50M,
logging probes 10 times per decade of steps. The answer it is to give, (a) a real induction head on random-known
probes, (b) the original's δ without a head, or (c) neither, is judged at the end of the runs by natural_text's report
(induction.CRITERIA) and the original's δ measured its way by the study.
"""
from experiments import FIG, REF
from experiments.natural_text import main  # noqa: F401  (the report: formation against the law)

# The original study's figures (its README and repository; ../shared/reference.md): δ with the repeat and control
# losses, its top single heads by δ drop under zero ablation ((layer, head) -> drop; for 5.6M it gives one, then
# "about 0.02 each"), and its training (steps of batch 32 x 128). Compared in scripts/results.py too.
ORIGINAL_FIGURES = {
    "2M": dict(delta=0.727, loss_repeat=4.31, loss_control=5.04, top={(1, 3): 0.158, (2, 0): 0.116, (2, 1): 0.111},
               steps=100_000, tokens_per_step=32 * 128),
    "5.6M": dict(delta=0.419, loss_repeat=2.03, loss_control=2.45, top={(1, 2): 0.054}, steps=50_000,
                 tokens_per_step=32 * 128),
}

RUNS = {"original-2M-seed1337": ["--preset", "original-2M", "--seed", "1337"],
        "original-2M-seed1": ["--preset", "original-2M", "--seed", "1", "--max-steps", "12500"]}  # 51.2M tokens
REPORTS = [["--out", FIG / "Formation_Original_Recipe.png", "--title",
            "The original recipe: plain text, 32 x 128, constant lr 3e-4 (2M, word)",
            f"original-2M, seed 1337={REF}/original/original-2M-seed1337"]]
