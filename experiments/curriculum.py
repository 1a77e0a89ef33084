"""Does a repeat curriculum give a good language model that still has induction heads? (issue #13, section 2)

    python -m experiments curriculum        # the verdict from the committed runs and studies (a minute)
    python -m experiments curriculum run    # train the two runs (about 30 minutes of both cores)
    python -m experiments curriculum study  # study both, and the curriculum at S = 6 (fp32; minutes)

Each run directory holds train.py's metrics.json and best.pt; the first run is the curriculum, the second the
no-repeat control (same preset, seed and steps), any others are shown beside them. The studies are study.py's
summaries of the curriculum's best.pt (S = 16 probes, and S = 6: periods below the augmentation's minimum of 8).

The criteria, fixed on 2026-11-26 before the runs:
  loss     the loss of the curriculum's best.pt on the whole validation split (on which both runs chose best.pt) is
           within LOSS_TOL nats/token of the control's, both runs trained on equal tokens;
  samples  its samples are not more repetitive than the control's: N_SAMPLES samples of SAMPLE_TOKENS tokens from
           held-out prompts, and neither the difference in distinct bigrams (higher is better) nor in repeated 4-grams
           (lower is better) is against the curriculum with its 95% CI excluding 0;
  heads    every study finds induction heads (induction.CRITERIA: prefix matching and copying) on held-out text.
The in-context-learning score on validation text, with and without the heads ablated, is reported (study.py).
"""
import argparse
from dataclasses import dataclass

import torch

import induction as ind
from checkpoint import load_model, portable, run_weights
from corpus import load_corpus
from samples import held_out_samples
from study import StudyConfig, heads_str, read_result
from experiments import FIG, REF, ROOT, Run, labelled
from training_log import read_metrics

RUNS = [Run("2M-curriculum", "2M", dict(repeat_frac=1.0, repeat_end=0.6)),
        Run("2M-control", "2M", dict(repeat_frac=0.0))]
STUDIES = [StudyConfig(portable(REF / "curriculum" / f"2M-{run}" / "best.pt"), name, S=S, plots_dir=portable(FIG),
                       out_json=portable(ROOT / "results" / f"induction_{name}.json"), precision="fp32")
           for run, name, S in (("curriculum", "MiniGPT-2M-curriculum", 16), ("control", "MiniGPT-2M-control", 16),
                                ("curriculum", "MiniGPT-2M-curriculum-S6", 6))]


def report():
    main([f"curriculum={REF}/curriculum/2M-curriculum", f"control={REF}/curriculum/2M-control",
          f"constant 0.5 (the 2M preset)={REF}/MiniGPT-2M", "--studies",
          "results/induction_MiniGPT-2M-curriculum.json", "results/induction_MiniGPT-2M-curriculum-S6.json"])


LOSS_TOL = 0.05        # nats/token
N_SAMPLES = 24
SAMPLE_TOKENS = 200


@dataclass
class Repetition:
    """How repetitive a model's samples are, each an Estimate over samples (95% bootstrap CI)."""
    distinct_2: ind.Estimate      # distinct bigrams / bigrams, in the generated tokens
    repeated_4: ind.Estimate      # share of generated 4-grams that already occurred earlier in the sample

    def __str__(self):
        return f"distinct bigrams {self.distinct_2}; repeated 4-grams {self.repeated_4}"


def samples(model, tok) -> torch.Tensor:
    """(N_SAMPLES, 2): distinct-2 and repeated-4 of each sample (prompts: held-out text, the same for every model)."""
    drawn = held_out_samples(model, tok, load_corpus().val, N_SAMPLES, SAMPLE_TOKENS)
    return torch.tensor([(s.distinct_2, s.repeated_4) for s in drawn.samples], dtype=torch.float64)


@torch.no_grad()
def val_loss(model, tok) -> float:
    """The model's loss on the whole validation split (every non-overlapping window), nats/token."""
    T = model.config.block_size
    w = ind.split_windows(torch.tensor(tok.encode(load_corpus().val)), T)  # (N, T+1)
    return sum(model.loss(b[:, :-1], b[:, 1:]).item() * len(b) for b in w.split(64)) / len(w)


def estimate(v) -> ind.Estimate:
    return ind.Estimate(*map(float, ind.bootstrap(v)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR; the curriculum first, then the control")
    ap.add_argument("--studies", nargs="+", default=[], help="study.py summaries of the curriculum's best.pt")
    a = ap.parse_args(argv)
    runs = labelled(a.runs)
    (cur, cur_dir), (ctl, ctl_dir) = list(runs.items())[:2]
    print("| run | tokens | best.pt: step | validation loss, whole split (nats/token) | distinct bigrams | "
          "repeated 4-grams |")
    print("|---|---|---|---|---|---|")
    reps, losses = {}, {}
    for label, d in runs.items():
        metrics = read_metrics(d)
        best = min(metrics, key=lambda m: m.val_loss)
        model, tok, _ = load_model(run_weights(d))
        reps[label], losses[label] = samples(model, tok), val_loss(model, tok)
        r = Repetition(estimate(reps[label][:, 0]), estimate(reps[label][:, 1]))
        print(f"| {label} | {metrics[-1].tokens / 1e6:.2f}M | {best.step:,} | {losses[label]:.3f} | "
              f"{r.distinct_2} | {r.repeated_4} |")
    assert read_metrics(cur_dir)[-1].tokens == read_metrics(ctl_dir)[-1].tokens, "equal tokens, or no comparison"
    gap = losses[cur] - losses[ctl]
    d2 = estimate(reps[cur][:, 0] - reps[ctl][:, 0])
    r4 = estimate(reps[cur][:, 1] - reps[ctl][:, 1])
    print(f"\n- loss: {cur} − {ctl} = {gap:+.3f} nats/token (criterion ≤ {LOSS_TOL}): "
          f"{'pass' if gap <= LOSS_TOL else 'FAIL'}")
    samples_ok = d2.hi >= 0 and r4.lo <= 0
    print(f"- samples: distinct bigrams {cur} − {ctl} {d2}, repeated 4-grams {r4} (null 0): "
          f"{'pass' if samples_ok else 'FAIL'} (fails only if one is against the curriculum with its CI excluding 0)")
    for path in a.studies:
        st = read_result(path)
        s = st.scores["text-val"]
        print(f"- heads, {st.model} (S = {st.config.S}): induction heads on held-out text "
              f"{heads_str([(h.layer, h.head) for h in s.induction_heads()])}: {'pass' if s.induction_heads() else 'FAIL'}")
        if st.validation.icl:
            print(f"  {st.validation.icl}")


if __name__ == "__main__":
    main()
