"""Heads that pass and a model that still writes Austen: recipes against the looping samples (issue #44).

    python -m experiments default_recipe          # the table and figure from the committed runs and studies
    python -m experiments default_recipe run      # train the runs (2M preset, 5.12M tokens; about 12 min each)
    python -m experiments default_recipe study    # study each recipe's weights (fp32, minutes each)

The 2M preset forms induction heads because half its training windows repeat an excerpt, and the same repeats teach
it that text repeats: its samples loop ("perhaps , perhaps , perhaps ..."). Each candidate recipe is one or two
RunConfig fields (train.Batches), trained on the 2M preset's budget (10,000 steps of 8 x 64, 5.12M tokens) against a
no-repeat control of the same seed:
  floor                    repeats fall from 0.5 to a floor of 0.1 at 60% of training (the curriculum fell to 0 and
                           its heads faded);
  constant-0.25            a quarter of the windows repeat, throughout (0.25 came close within 5.1M tokens: dose);
  relabelled-repeats       every repeated window relabelled: copying is learnt from windows whose tokens the weights
                           cannot predict;
  relabelled-0.4-plain-0.1 four fifths of the repeated windows relabelled and one fifth plain, so that the heads also
                           meet repeats of Austen's own text;
  relabel-natural-0.5      the preset's plain repeats, and half of the natural windows relabelled beside them.
Relabelling follows Chan et al. 2022 (arXiv 2205.05055): sequences whose labels are reassigned at random per sequence
("bursty", label-arbitrary data) drive in-context learning, and a mix with plain data keeps in-weights learning too.
Every run trains in bf16 autocast (as `make run` does on a CPU with native bf16; fixed so that the runs compare on any
CPU) at one thread, two at a time; every study is in fp32 (as the reference studies).

The criteria, fixed on 2026-12-05 before any of these runs, are the curriculum experiment's (experiments/curriculum.py),
each judged per seed against that seed's control:
  loss     the loss of the recipe's best.pt on the whole validation split is within LOSS_TOL nats/token of the
           control's, on equal training tokens: the recipe costs the language model no more than the seed spread of
           the validation loss between 2M runs (0.06);
  samples  its samples are not more repetitive than the control's: N_SAMPLES samples of SAMPLE_TOKENS tokens from
           held-out prompts, and neither the paired difference in distinct bigrams (higher is better) nor in repeated
           4-grams (lower is better) is against the recipe with its 95% CI excluding 0: a loop shows in both;
  heads    the study of its best.pt (study.py's defaults: held-out text is the primary probe set) passes the verdict
           (induction.VERDICT): induction heads that the model needs, that suffice, specifically, with keys that read
           the previous-token head.
A recipe passes when all three hold in each of three seeds (SEEDS). One seed each first; the two most promising then
get seeds 1 and 2, chosen by how many criteria their first seed meets, then by the smaller repeated-4-gram share.
The figure: each run's repeated-4-gram share of its samples against the patching score of its study's found circuit
(the smaller of noising's share removed and denoising's share restored; the controls have no circuit to patch).
"""
from experiments.curriculum import LOSS_TOL, N_SAMPLES, SAMPLE_TOKENS  # noqa: F401  (the criteria, shared)

SEEDS = (1337, 1, 2)
BASE = ["--preset", "2M", "--precision", "bf16"]
RECIPES = {"control": ["--repeat-frac", "0"],
           "floor": ["--repeat-end", "0.6", "--repeat-floor", "0.1"],
           "constant-0.25": ["--repeat-frac", "0.25"],
           "relabelled-repeats": ["--relabel-repeats", "1.0"],
           "relabelled-0.4-plain-0.1": ["--relabel-repeats", "0.8"],
           "relabel-natural-0.5": ["--relabel-natural", "0.5"]}
FIRST = {f"2M-{name}-seed1337": [*BASE, *args, "--seed", "1337"] for name, args in RECIPES.items()}
RUNS = FIRST
REPORTS = [[]]


def main(argv):
    raise SystemExit("the report comes with the runs (issue #44); the criteria above are fixed first")
