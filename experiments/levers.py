"""Levers that may make natural text form induction heads sooner, each alone against the same no-repeat control.

    python -m experiments levers        # each committed lever run against the control, and the figure
    python -m experiments levers run    # train the lever runs, 25.6M tokens each (hours of one core per run)

The configuration does not memorise: characters, batch 8 x 256, no repeats, 12,500 steps (25.6M tokens), seed 1337:
the natural-text experiment's char run, which is the control. Each lever is one RunConfig field, off by default, and
changes nothing else (issue #26). The values, fixed before the runs:
  positions=shortformer   position embeddings in the queries and keys only (TransformerLens's toy models use them
                          because induction heads form "much easier, cleaner and faster");
  attn_only + 2 layers    Olsson et al.'s canonical attention-only 2-layer model (two fields: the lever is the model);
  constant lr             min_lr = lr = 2e-3 after the same warmup, as the original study kept its lr constant;
  weight_decay 0.5        five times the control's 0.1: Singh et al. 2023 find that L2 keeps in-context learning from
                          fading;
  init_std 0.01           half of GPT-2's 0.02: a small public replication formed no head with 0.02 even on repeats.
The rule for "forms earlier" is formation.earlier's, fixed before the held-out-novel runs: a first induction head on
the held-out text probes more than one probe interval before the control's, or any within the budget where the control
forms none.
The moonshot (fixed here before any lever run ended): a lever that forms earlier is retrained alone on both threads of
the idle 2-core machine for 30 minutes of training (train_s); it succeeds if the study of those final weights (random
probes primary, fp32) passes the verdict (induction.VERDICT: heads by induction.CRITERIA, then patching). Then it
becomes a preset and, if its samples stay good, `make run`'s default.
"""
from experiments import FIG, REF, Run, formation

# the control's fields (on the char-2M preset), in fp32 as it was trained (the preset's "auto" would pick bf16 on a CPU
# with native bf16)
CONTROL = dict(repeat_frac=0.0, block_size=256, max_steps=12500, eval_interval=250, probe_interval=250,
               eval_batches=16, seed=1337, precision="fp32")
LEVERS = {"shortformer": dict(positions="shortformer"),
          "attn-only-2-layers": dict(attn_only=True, n_layer=2),
          "constant-lr": dict(min_lr=2e-3),
          "weight-decay-0.5": dict(weight_decay=0.5),
          "init-std-0.01": dict(init_std=0.01)}
RUNS = [Run(f"char2M-ctx256-norep-{name}", "char-2M", {**CONTROL, **lever}) for name, lever in LEVERS.items()]
CONTROL_DIR = REF / "natural_text" / "char2M-ctx256-norep-seed1337"


def report():
    levers = {name: REF / "levers" / run.name for name, run in zip(LEVERS, RUNS)}
    formation.against_law({"control": CONTROL_DIR, **levers}, FIG / "Formation_Levers.png", control="control",
                          title="Levers on natural text, each alone against the control (char 2M, 8 x 256, no repeats)")


