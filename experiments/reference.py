"""The reference models: the 2M and 5.6M presets at seed 1337, their studies, loss curves and README's tables.

    python -m experiments reference          # the loss curves and the tables, from the committed runs and studies
    python -m experiments reference run      # retrain both into runs/reference/ (hours of one core each)
    python -m experiments reference study    # study both (fp32, as every reference study; minutes)
    python -m experiments reference notebooks   # the executed notebooks in results/ (make notebooks, ~25 minutes)
    python -m experiments reference screenshot  # Plots/AttentionPage_Screenshot.png (make screenshot; Chromium)

They are the repository's reference models, so they are committed at the top of checkpoints/reference/ (the one
exception to experiments.committed_folder's rule). Every number in the tables is formatted by the typed results' own
formatters.
"""

import os

import induction as ind
import utils
from checkpoint import portable
from experiments import FIG, REF, ROOT, Run
from experiments.original import ORIGINAL_FIGURES
from induction import CRITERIA
from study import PATHS, StudyConfig, heads_str, pct, read_result
from training_log import first_formed, read_metrics

RUNS = [Run("MiniGPT-2M", "2M"), Run("MiniGPT-5.6M", "5.6M")]
SUMMARY = {run.name: ROOT / "results" / f"induction_{run.name}.json" for run in RUNS}
STUDIES = [StudyConfig(portable(REF / run.name), run.name, plots_dir=portable(FIG),
                       out_json=portable(SUMMARY[run.name]), precision="fp32") for run in RUNS]


def formation(metrics, kind: str) -> str:
    """Where the log shows the first induction head (CRITERIA), or, in logs without the copying score, the first
    head whose Δ alone clears its criterion."""
    if metrics[-1].probes.get(kind) is not None and metrics[-1].probes[kind].copying is not None:
        row = first_formed(metrics, kind, "induction")
        return (f"after {row.tokens / 1e6:.2f}M tokens: {', '.join(h.label for h in row.probes[kind].induction_heads())}"
                if row else "not within the run")
    row = first_formed(metrics, kind, "delta")
    return ("copying not logged; " + (f"Δ ≥ {CRITERIA['delta'].threshold} (lower CI bound) after "
                                      f"{row.tokens / 1e6:.2f}M tokens: {row.probes[kind].best_delta}" if row else
                                      f"no head reached Δ ≥ {CRITERIA['delta'].threshold} (lower CI bound)"))


def model_rows(run_dir, study_json):
    metrics, study = read_metrics(run_dir), read_result(study_json)
    best = min(metrics, key=lambda m: m.val_loss)
    last, v = metrics[-1], study.validation
    yield "| | |"
    yield "|---|---|"
    yield f"| parameters | {study.params:,} ({study.tokenizer} tokens, vocabulary {study.vocab_size:,}) |"
    # no minutes: the reference runs shared the machine, so their times say nothing about speed
    yield f"| training | {last.step:,} steps, {last.tokens / 1e6:.1f}M tokens |"
    yield (f"| best validation loss | {best.val_loss:.3f} nats/token = {best.val_bpc:.3f} bits/char "
           f"(step {best.step:,}; the study uses this checkpoint) |")
    for kind in ("random", "text-val"):
        yield f"| first induction head formed during training, {kind} probes | {formation(metrics, kind)} |"
    for kind, s in study.scores.items():
        heads = ", ".join(str(hv) for hv in s.induction_heads()) or "none"
        crit = (f"prefix matching ≥ {CRITERIA['prefix_match'].threshold} and relative copying ≥ "
                f"{CRITERIA['copying_z'].threshold}, lower CI bounds")
        yield f"| {kind} probes: induction heads ({crit}) | {heads} |"
        yield (f"| {kind} probes: best prefix matching / relative copying (z) / copying (logits) / Δ (null 0) | "
               f"{s.prefix_match.best()} / {s.copying_z.best()} / "
               f"{s.copying.best()} / {s.delta.best()}; G {s.G} nats/token |")
    g = study.gapped
    yield (f"| gapped repeats [c1, base, c2, base] (outside the training format): induction heads | "
           f"{', '.join(str(hv) for hv in g.induction_heads()) or 'none'}; best prefix matching "
           f"{g.prefix_match.best()}, copying {g.copying.best()}; G over chunk 4 {g.G} |")
    yield (f"| heads tested | {heads_str(v.tested)} "
           f"({'the induction heads' if v.tested_are_candidates else 'no induction head: the top head by prefix matching'}) |")
    yield (f"| previous-token heads (score ≥ {CRITERIA['prev_token'].threshold}, lower CI bound) | "
           f"{heads_str(v.previous_token_heads)} |")
    yield f"| roles ({study.config.primary} probes) | {ind.roles_str(v.roles)} |"
    p = v.patching
    yield (f"| activation patching of the induction heads at the measured positions ({p.n_prompts} test prompts) | "
           f"noising removes {pct(p.tested.removed)}, denoising restores {pct(p.tested.restored)} of the gain "
           f"(nulls 0) |")
    yield (f"| the circuit search ({p.n_select} selection prompts) and the found circuit on the test prompts | "
           f"{p.search_str({ind.head_key(k): tuple(r) for k, r in v.roles.items()})} → "
           f"{heads_str(p.circuit.heads)}: removes {pct(p.circuit.removed)}, restores {pct(p.circuit.restored)} |")
    yield (f"| specificity: the circuit's patching score against the other {p.sets_total:,} sets of "
           f"{len(p.circuit.heads)} heads | above {100 * p.percentile:.1f}% (null 50%) |")
    if v.circuit:
        c = v.circuit
        yield (f"| path patching from {heads_str(c.senders)}: share of prefix matching removed through " +
               " / ".join(PATHS[w][2] for w in c.paths) + " (null 0) | " + " / ".join(
                   f"{ps.prefix_match_removed.mean:.0%}" for ps in c.paths.values()) + " |")
        yield (f"| sender control: each head below alone into the keys | {c.sender} above "
               f"{100 * c.sender_rank:.0f}% of the other {len(c.sender_control) - 1} |")
    for kind, r in study.recurrence.items():
        yield (f"| recurrence control, {kind} probes: G on repeats / on shuffled repeats / induction-specific "
               f"(nats/token, null 0) | {r.G_repeat} / {r.G_shuffled} / {r.G_specific} |")
    for mode in ("zero", "mean", "resample"):
        yield (f"| share of G removed, {mode} ablation (secondary) | {heads_str(v.tested)} together: "
               f"{getattr(v, mode).tested} |")
    if v.zero.random:
        yield (f"| share of G removed by {len(v.tested)} random other heads, zero ablation (secondary) | "
               f"{v.zero.random} |")
    yield f"| single-head zero ablations | {study.single_head_ablations.zero} |"
    yield ("| verdict (patching) | " + "; ".join(
        f"{part}: {'yes' if ok else 'no'}" for part, ok in v.verdicts().items()) +
        f" → **{'PASS' if v.validated else 'FAIL'}** |")
    yield ("| the old rule (issue #25: the induction heads alone, every position) | " + "; ".join(
        f"{part}: {'yes' if ok else 'no'}" for part, ok in v.verdicts_old().items()) +
        f" → {'pass' if v.validated_old else 'fail'} |")


def original_table(studies: dict) -> list[str]:
    """The original study's figures beside ours, measured its way (study.OriginalComparison), per preset."""
    cols = [(ORIGINAL_FIGURES[p], s.original, s, p) for p, s in studies.items() if p in ORIGINAL_FIGURES]
    rows = ["| |" + "".join(f" original {p} | MiniGPT {p} |" for *_, p in cols), "|---|" + "---|---|" * len(cols)]

    def row(name, cells):
        rows.append(f"| {name} |" + "".join(f" {a} | {b} |" for a, b in cells))

    row("δ = control − repeat loss on chunks 2–4 without each chunk's first and last position (nats/token; null 0)",
        [(f"{o['delta']:.3f}", str(ours.delta)) for o, ours, *_ in cols])
    row("repeat / control loss at those positions", [(f"{o['loss_repeat']:.2f} / {o['loss_control']:.2f}",
                                                       f"{ours.loss_repeat:.2f} / {ours.loss_control:.2f}")
                                                      for o, ours, *_ in cols])
    for i, rank in enumerate(("largest", "2nd largest", "3rd largest")):
        cells = []
        for o, ours, *_ in cols:
            top = sorted(o["top"].items(), key=lambda kv: -kv[1])
            cells.append((f"L{top[i][0][0]}H{top[i][0][1]} {top[i][1]:.3f}" if i < len(top) else "about 0.02",
                          str(ours.top()[i])))
        row(f"single head with the {rank} δ drop (zero ablation)", cells)
    row("the largest drop's share of δ", [(f"{max(o['top'].values()) / o['delta']:.0%}",
                                           f"{ours.top()[0].value.mean / ours.delta.mean:.0%}")
                                          for o, ours, *_ in cols])
    row("probes", [("2,000 training-text prompts", f"{ours.n_prompts} prompts ({ours.probe})") for _, ours, *_ in cols])
    row("training", [(f"{o['steps']:,} steps, {o['steps'] * o['tokens_per_step'] / 1e6:.0f}M tokens",
                      f"{s.step:,} steps, {s.tokens_seen / 1e6:.1f}M tokens") for o, _, s, _ in cols])
    return rows if cols else []


def report():
    studies = {}
    for run in RUNS:
        study = read_result(SUMMARY[run.name])
        print(utils.plot_loss_curve(read_metrics(REF / run.name), FIG / f"Loss_Curve_{run.name}.png",
                                    f"{run.name} ({study.params / 1e6:.2f}M params, {study.tokenizer} tokens)"))
        print(f"\n**{run.name}**\n")
        print("\n".join(model_rows(REF / run.name, SUMMARY[run.name])))
        studies[run.name.removeprefix("MiniGPT-")] = study
    print("\n**The original study's measurement, side by side** (its figures: experiments/original.py, "
          "ORIGINAL_FIGURES)\n")
    print("\n".join(original_table(studies)))


def notebooks():
    """Both notebooks executed for readers who only browse: MiniGPT.ipynb with its defaults (it trains the 2M preset
    into runs/notebook/), and InductionHeads.ipynb on each reference model with its registry study's parameters, so
    that it writes the same summary as `make reference`. Papermill records the paths it is given in the executed
    notebook, so they are relative to the repository, which is the working directory here."""
    import papermill
    os.chdir(ROOT)
    papermill.execute_notebook("MiniGPT.ipynb", "results/MiniGPT_MiniGPT-2M.ipynb", cwd=".",
                               parameters=dict(OUT_DIR="runs/notebook/MiniGPT-2M", PLOTS_DIR="runs/notebook/plots",
                                               RESUME=False))
    for cfg in STUDIES:
        papermill.execute_notebook("InductionHeads.ipynb", f"results/InductionHeads_{cfg.name}.ipynb", cwd=".",
                                   parameters=dict(CHECKPOINT=cfg.checkpoint, NAME=cfg.name, PLOTS_DIR=cfg.plots_dir,
                                                   OUT_JSON=cfg.out_json, PRECISION=cfg.precision))


def screenshot():
    """The 2M reference model's attention page, opened in headless Chromium, as Plots/AttentionPage_Screenshot.png."""
    cfg = STUDIES[0]
    subprocess.run([sys.executable, "scripts/attention_page.py", cfg.checkpoint, "--name", cfg.name, "--plots-dir",
                    "runs/page"], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "scripts/browser_check.py", f"runs/page/Attention_Page_{cfg.name}.html",
                    "--screenshot", "Plots/AttentionPage_Screenshot.png"], cwd=ROOT, check=True)


ACTIONS = {"notebooks": notebooks, "screenshot": screenshot}
