"""Tokenizers: word, character and BPE models of the same size and recipe, compared in characters of text seen.

    python -m experiments tokenizers        # the formation figure by tokenizer, from the committed logs
    python -m experiments tokenizers run    # train the char and BPE models (the word model is the 2M reference)
    python -m experiments tokenizers study  # study the three (tested heads chosen on random probes, fp32; minutes)
"""
from checkpoint import portable
from experiments import FIG, REF, ROOT, Run, formation
from study import StudyConfig

EXP = REF / "tokenizers"
RUNS = [Run("tokenizer-char-2M", "char-2M"), Run("tokenizer-bpe-2M", "2M", dict(tokenizer="bpe", vocab_size=10050))]
# word, char and BPE on random probes, where no tokenizer's text statistics help
STUDIES = [StudyConfig(portable(weights), name, primary="random", plots_dir=portable(FIG),
                       out_json=portable(ROOT / "results" / f"induction_{name}.json"), precision="fp32")
           for weights, name in ((REF / "MiniGPT-2M", "MiniGPT-2M-random"),  # the reference model: an exported folder
                                 (EXP / "tokenizer-char-2M" / "best.pt", "MiniGPT-char-2M"),
                                 (EXP / "tokenizer-bpe-2M" / "best.pt", "MiniGPT-bpe-2M"))]


def report():
    formation.with_repeats({"word (10,050)": REF / "MiniGPT-2M", "char (80)": EXP / "tokenizer-char-2M",
                            "BPE (10,050)": EXP / "tokenizer-bpe-2M", "char (80), rerun": EXP / "char-2M-rerun"},
                           FIG / "Induction_Formation_Tokenizers.png", x="chars",
                           title="Induction-head formation by tokenizer (2M parameters, same recipe)")


