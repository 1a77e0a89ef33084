"""A held-out novel: more text, and dropout, each against the same control, with Persuasion never trained on.

    python -m experiments held_out        # each lever against the control, and the figure, from the committed logs
    python -m experiments held_out run    # train the three runs (hours of both cores; resumable)

The 2M word model without repeats, Persuasion held out whole as the validation text, the vocabulary capped at 10,000
words so every run has the same parameters, 32,000 steps of 8 x 64 (16.4M tokens, 1.5x the law's 11.3M). The rule for
"forms earlier" is formation.earlier's, fixed before these runs.
"""
from experiments import FIG, REF, Run, formation

HELD_OUT = dict(repeat_frac=0.0, held_out=("persuasion",), vocab_size=10000, max_steps=32000, eval_batches=32,
                seed=1337)
RUNS = [Run("heldout-3novels", "2M", HELD_OUT),
        Run("heldout-5novels", "2M", {**HELD_OUT, "novels": ("prideprejudice", "sensesensibility", "emma",
                                                              "mansfieldpark", "northangerabbey")}),
        Run("heldout-3novels-dropout0.1", "2M", {**HELD_OUT, "dropout": 0.1})]


def report():
    exp = REF / "held_out"
    formation.against_law({"3 novels (control)": exp / "heldout-3novels", "5 novels": exp / "heldout-5novels",
                           "3 novels, dropout 0.1": exp / "heldout-3novels-dropout0.1"},
                          FIG / "Formation_Held_Out_Novel.png", control="3 novels (control)",
                          title="Natural text, Persuasion held out: three novels against five (2M, word, 10,000 words)")


