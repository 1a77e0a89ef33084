"""A held-out novel: more text, and dropout, each against the same control, with Persuasion never trained on.

    python -m experiments held_out        # each lever against the control, and the figure, from the committed logs
    python -m experiments held_out run    # train the three runs (hours of both cores; resumable)

The 2M word model without repeats, Persuasion held out whole as the validation text, the vocabulary capped at 10,000
words so every run has the same parameters, 32,000 steps of 8 x 64 (16.4M tokens, 1.5x the law's 11.3M). The rule for
"forms earlier" is natural_text.earlier's, fixed before these runs.
"""
from experiments import FIG, REF
from experiments.natural_text import main  # noqa: F401  (the report, with --control)

ARGS = ["--preset", "2M", "--repeat-frac", "0", "--held-out", "persuasion", "--vocab-size", "10000", "--max-steps",
        "32000", "--eval-batches", "32", "--seed", "1337"]
RUNS = {"heldout-3novels": ARGS,
        "heldout-5novels": [*ARGS, "--novels", "prideprejudice", "sensesensibility", "emma", "mansfieldpark",
                            "northangerabbey"],
        "heldout-3novels-dropout0.1": [*ARGS, "--dropout", "0.1"]}
REPORTS = [["--out", FIG / "Formation_Held_Out_Novel.png", "--control", "3 novels (control)", "--title",
            "Natural text, Persuasion held out: three novels against five (2M, word, 10,000 words)",
            f"3 novels (control)={REF}/held-out/heldout-3novels", f"5 novels={REF}/held-out/heldout-5novels",
            f"3 novels, dropout 0.1={REF}/held-out/heldout-3novels-dropout0.1"]]
