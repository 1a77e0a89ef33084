"""Natural text without any synthetic help, one more step: word tokens at context 256, half the windows relabelled.

    python -m experiments relabel_natural        # formation against the control, from the committed logs
    python -m experiments relabel_natural run    # train both runs, 25.6M tokens each (hours of one core each)

Issue #44, item 5. At context 256 an earlier copy of the current token predicts the next token at 9.9% of the
positions of Emma, against 4.0% at 64 words: more for an induction head to learn from. Relabelling half of the windows
(train.Batches: a fresh permutation of the vocabulary per window) leaves those windows nothing to predict from but
their own earlier tokens; with the preset's repeats it memorised less (issue #44's runs outside the repo, one seed).
Both runs: the 2M word model, no repeats, batch 8 x 256 (2,048 tokens per step), 12,500 steps (25.6M tokens), probes
every 250 steps, fp32 so that a run resumes on any CPU, seed 1337; the relabelled run differs in relabel_natural alone.
The rule for "forms earlier" is natural_text.earlier's, fixed before the held-out-novel runs.
"""
from experiments import FIG, REF
from experiments.natural_text import main  # noqa: F401  (the report, with --control)

CONTROL = ["--preset", "2M", "--repeat-frac", "0", "--block-size", "256", "--max-steps", "12500", "--eval-interval",
           "250", "--probe-interval", "250", "--eval-batches", "16", "--seed", "1337", "--precision", "fp32"]
RUNS = {"word2M-ctx256-norep-seed1337": CONTROL,
        "word2M-ctx256-norep-relabel0.5-seed1337": [*CONTROL, "--relabel-natural", "0.5"]}
LABELS = {"word2M-ctx256-norep-seed1337": "control", "word2M-ctx256-norep-relabel0.5-seed1337": "relabel 0.5"}
REPORTS = [["--out", FIG / "Formation_Relabel_Natural.png", "--control", "control", "--title",
            "Natural text at context 256: half the windows relabelled against the control (2M, word, 8 x 256)",
            *(f"{LABELS[run]}={REF / 'relabel-natural' / run}" for run in RUNS)]]
