"""The original study's recipe (issue #26): plain text, batch 32 x 128, a constant 3e-4, to the original's budget.

    python -m experiments original        # formation against the law, from the committed logs
    python -m experiments original run    # train or continue both seeds (resumable; days of one core)

config.PRESETS["original-2M"] holds the recipe. Seed 1337 trains to 102.4M tokens and seed 1 to 51.2M (RUNS),
logging probes 10 times per decade of steps. The answer it is to give, (a) a real induction head on random-known
probes, (b) the original's δ without a head, or (c) neither, is judged at the end of each run by `answer`, on the study
of its final weights (STUDIES: 2,000 prompts a probe set, random-known probes primary):

    make promote RUN=runs/original/<run> OVERWRITE=1 FINAL=1   # into checkpoints/reference/original/, with final.pt
    make exp NAME=original STUDY=1                             # results/original/induction_<run>.json
"""
import argparse

import matplotlib.pyplot as plt

import utils
from checkpoint import portable
from study import StudyConfig
from experiments import FIG, REF, ROOT, Run, formation, labelled

# The original study's figures (its README and repository; ../shared/reference.md): δ with the repeat and control
# losses, its top single heads by δ drop under zero ablation ((layer, head) -> drop; for 5.6M it gives one, then
# "about 0.02 each"), and its training (steps of batch 32 x 128). Compared in experiments/reference.py too.
ORIGINAL_FIGURES = {
    "2M": dict(delta=0.727, loss_repeat=4.31, loss_control=5.04, top={(1, 3): 0.158, (2, 0): 0.116, (2, 1): 0.111},
               steps=100_000, tokens_per_step=32 * 128),
    "5.6M": dict(delta=0.419, loss_repeat=2.03, loss_control=2.45, top={(1, 2): 0.054}, steps=50_000,
                 tokens_per_step=32 * 128),
}

# 32 x 128 tokens a step: 25,000 steps are 102.4M tokens, 12,500 are 51.2M (the preset's 100,000 are 409.6M)
RUNS = [Run("original-2M-seed1337", "original-2M", dict(seed=1337, max_steps=25000)),
        Run("original-2M-seed1", "original-2M", dict(seed=1, max_steps=12500))]


def report():
    main(["--out", str(FIG / "Formation_Original_Recipe.png"), "--delta-out", str(FIG / "Delta_Original_Recipe.png"),
          "--size", "2M", "--title", "The original recipe: plain text, 32 x 128, constant lr 3e-4 (2M, word)",
          f"original-2M, seed 1337={REF}/original/original-2M-seed1337",
          f"original-2M, seed 1={REF}/original/original-2M-seed1"])


# Each run's final weights (promote --final) and the summary of their study: the original's δ its own way on 2,000
# training-text prompts, and the induction-head criteria and the patching verdict on random known words, where a
# memorised text cannot help.
STUDIED = {run: (REF / "original" / run / "final.pt", ROOT / "results" / "original" / f"induction_{run}.json")
           for run in (r.name for r in RUNS)}
STUDIES = [StudyConfig(portable(weights), run, primary="random-known", n_prompts=2000, precision="fp32",
                       out_json=portable(out), plots_dir=portable(ROOT / "runs" / "original" / "plots"))
           for run, (weights, out) in STUDIED.items()]


def answer(result, size: str) -> str:
    """The issue's answer for one run's study (a StudyResult) of the original's `size` model (a key of
    ORIGINAL_FIGURES), by a rule fixed on 2026-12-05 before the rerun with the recurrence control (issue #39):
    (a) a real induction head: heads pass induction.CRITERIA on the random-known probes (the study's candidates) and
        the verdict passes (induction.VERDICT);
    (b) δ without an induction head, beyond recurrence: not (a), the original's δ on training text is above its null
        0, and so is the induction-specific gain G(repeat) - G(shuffled) on random-known probes (lower 95% CI bounds):
        the model copies in order without a head that passes;
    (r) recurrence alone: neither (a) nor (b), but G on shuffled random-known prompts is above 0 (lower CI bound):
        the model favours tokens that already occurred, with no gain from their order;
    (c) neither.
    Where δ stands against the original's figure (0.727 for 2M) is reported beside it, and decides nothing: the
    original gave no CI."""
    if result.config.primary != "random-known":
        raise ValueError(f"the answer reads a study with random-known probes primary, got {result.config.primary}")
    v, d, reported = result.validation, result.original.delta, ORIGINAL_FIGURES[size]["delta"]
    rec = result.recurrence["random-known"]
    where = (f"the original's δ {d} nats/token on {result.original.n_prompts:,} training-text prompts (null 0; "
             f"the original reported {reported} for {size}, {'inside' if d.lo <= reported <= d.hi else 'outside'} "
             f"this CI); on random known words G {rec.G_repeat}, on shuffled repeats {rec.G_shuffled}, "
             f"induction-specific {rec.G_specific} nats/token")
    if v.validated:
        from study import heads_str
        return f"(a) a real induction head: {heads_str(v.candidates)} pass on random known words; {where}"
    if d.lo > 0 and rec.G_specific.lo > 0:
        return f"(b) δ without an induction head, beyond recurrence: {where}"
    if rec.G_shuffled.lo > 0:
        return f"(r) recurrence alone: {where}"
    return f"(c) neither an induction head nor δ: {where}"


def answer_old(result, size: str) -> str:
    """The rule fixed on 2026-11-29 (issue #26), before the recurrence control: (a) as in `answer`, under the verdict
    of then (issue #25's, Validation.validated_old); (b) δ without an induction head: not (a), and the original's δ on training text above 0
    (lower CI bound); (c) neither."""
    v, d, reported = result.validation, result.original.delta, ORIGINAL_FIGURES[size]["delta"]
    where = (f"the original's δ {d} nats/token on {result.original.n_prompts:,} training-text prompts (null 0; "
             f"the original reported {reported} for {size}, {'inside' if d.lo <= reported <= d.hi else 'outside'} "
             f"this CI)")
    if v.validated_old:
        from study import heads_str
        return f"(a) a real induction head: {heads_str(v.candidates)} pass on random known words; {where}"
    if d.lo > 0:
        return f"(b) δ without an induction head: {where}"
    return f"(c) neither an induction head nor δ: {where}"


# the probe sets the original's δ is drawn for: training text (where the original measured it), the unseen novel,
# and random known words (where a memorised text cannot help)
DELTA_PROBES = (("text-train", "-"), ("text-val", "--"), ("random-known", ":"))


def logged_delta(metrics) -> list:
    """The rows that logged the original's δ (runs from 2026-11-29 on)."""
    return [m for m in metrics if m.step and m.probes and m.probes["text-train"].original_delta is not None]


def plot_original_delta(runs: dict, predicted: dict, original: float, path, title: str):
    """The original study's δ, measured its way on each probe set during training, against the figure it reported;
    {label: [MetricsRow, ...]}, predicted {label: tokens}: the law's formation point, dotted in the run's colour."""
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    for i, (label, metrics) in enumerate(runs.items()):
        c, rows = f"C{i}", logged_delta(metrics)
        t = [m.tokens / 1e6 for m in rows]
        for kind, ls in DELTA_PROBES:
            d = [m.probes[kind].original_delta for m in rows]
            ax.plot(t, [e.mean for e in d], color=c, ls=ls, label=f"{label}: {kind} probes")
            if kind == "text-train":
                ax.fill_between(t, [e.lo for e in d], [e.hi for e in d], color=c, alpha=0.2, label="95% CI")
        ax.axvline(predicted[label] / 1e6, color=c, ls=":", lw=1.2)
    ax.axhline(original, color="k", lw=1, ls="-.", label=f"the original study's δ ({original}, its training text)")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("training tokens seen (millions; dotted vertical: the law's prediction)")
    ax.set_ylabel("δ = control − repeat loss, chunks 2–4 (nats/token; null 0)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    return utils.save_figure(fig, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True, help="the formation figure's path")
    ap.add_argument("--delta-out", required=True, help="the original's δ figure's path")
    ap.add_argument("--size", required=True, choices=list(ORIGINAL_FIGURES), help="the original model compared with")
    ap.add_argument("--title", required=True)
    args = ap.parse_args(argv)
    folders = labelled(args.runs)
    runs = formation.against_law(folders, args.out, args.title)
    original = ORIGINAL_FIGURES[args.size]["delta"]
    for label, metrics in runs.items():
        last = logged_delta(metrics)[-1]
        print(f"{label}: the original's δ at {last.tokens / 1e6:.2f}M tokens (training probes; the study measures "
              f"it on 2,000 prompts at the end): " + ", ".join(f"{kind} {last.probes[kind].original_delta}"
                                                               for kind, _ in DELTA_PROBES)
              + f"; the original reported {original} ({args.size}, its training text), null 0")
    predicted = {label: formation.predicted_tokens(m[-1].tokens // m[-1].step) for label, m in runs.items()}
    print(plot_original_delta(runs, predicted, original, args.delta_out,
                              f"The original's δ during training\n{args.title}"))
    from study import read_result
    for label in runs:
        studied = STUDIED.get(folders[label].name)  # (weights, summary) of a run of RUNS
        if not (studied and studied[1].exists()):
            print(f"{label}: no answer yet: its final weights are not studied (the module docstring says how)")
            continue
        result = read_result(studied[1])
        print(f"{label}: {answer(result, args.size)}\n  by the rule of 2026-11-29 (issue #26): "
              f"{answer_old(result, args.size)}")
