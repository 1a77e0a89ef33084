"""Induction-head formation on natural text alone, against the scaling law's prediction (issue #14).

    python -m experiments natural_text         # the report and figure from the committed runs
    python -m experiments natural_text run     # train its four runs, 25.6M tokens each (hours of both cores)

Each run trains with no repeats and logs the copying score. The report (experiments.formation.against_law) gives, for
each run, its batch x context (tokens per step), the law's formation point (formation.LAW_LOG10), where the log first
shows an induction head (prefix matching and copying clear induction.CRITERIA, lower CI bounds) on each probe set, or
the budget reached without one and the best scores seen.
"""
from experiments import FIG, REF, Run, formation

SEEDS = (1337, 1)
# two configurations at 25.6M tokens each, two seeds: characters at 8 x 256 and the original study's 32 x 128 words
RUNS = [run for s in SEEDS for run in (
    Run(f"char2M-ctx256-norep-seed{s}", "char-2M", dict(repeat_frac=0.0, block_size=256, max_steps=12500,
                                                        eval_interval=250, probe_interval=250, eval_batches=16,
                                                        seed=s)),
    Run(f"word2M-32x128-norep-seed{s}", "2M", dict(repeat_frac=0.0, batch_size=32, block_size=128, max_steps=6250,
                                                   eval_interval=125, probe_interval=125, seed=s)))]


def report():
    formation.against_law({f"{label}, seed {s}": REF / "natural_text" / f"{run}-seed{s}" for s in SEEDS
                           for label, run in (("char, 8 x 256", "char2M-ctx256-norep"),
                                              ("word, 32 x 128", "word2M-32x128-norep"))},
                          FIG / "Formation_Without_Repeats.png")
