"""Natural text without any synthetic help, one more step: word tokens at context 256, half the windows relabelled.

    python -m experiments relabel_natural        # formation against the control, from the committed logs
    python -m experiments relabel_natural run    # train both runs, 25.6M tokens each (hours of one core each)

Issue #44, item 5. At context 256 an earlier copy of the current token predicts the next token at 9.9% of the
positions of Emma, against 4.0% at 64 words: more for an induction head to learn from. Relabelling half of the windows
(train.Batches: a fresh permutation of the vocabulary per window) leaves those windows nothing to predict from but
their own earlier tokens; with the preset's repeats it memorised less (issue #44's runs outside the repo, one seed).
Both runs: the 2M word model, no repeats, batch 8 x 256 (2,048 tokens per step), 12,500 steps (25.6M tokens), probes
every 250 steps, fp32 so that a run resumes on any CPU, seed 1337; the relabelled run differs in relabel_natural alone.
The rule for "forms earlier" is formation.earlier's, fixed before the held-out-novel runs.
"""
from experiments import FIG, REF, Run, formation

CONTROL = dict(repeat_frac=0.0, block_size=256, max_steps=12500, eval_interval=250, probe_interval=250,
               eval_batches=16, seed=1337, precision="fp32")
RUNS = [Run("word2M-ctx256-norep-seed1337", "2M", CONTROL),
        Run("word2M-ctx256-norep-relabel0.5-seed1337", "2M", {**CONTROL, "relabel_natural": 0.5})]
LABELS = {"word2M-ctx256-norep-seed1337": "control", "word2M-ctx256-norep-relabel0.5-seed1337": "relabel 0.5"}


def report():
    formation.against_law({LABELS[run.name]: REF / "relabel_natural" / run.name for run in RUNS},
                          FIG / "Formation_Relabel_Natural.png", control="control",
                          title="Natural text at context 256: half the windows relabelled against the control (2M, "
                                "word, 8 x 256)")


