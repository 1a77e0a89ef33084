"""Tokenizers: word, character and BPE models of the same size and recipe, compared in characters of text seen.

    python -m experiments tokenizers        # the formation figure by tokenizer, from the committed logs
    python -m experiments tokenizers run    # train the char and BPE models (the word model is the 2M reference)

Their studies (tested heads chosen on random probes) are part of `make reference`.
"""
from experiments import FIG, REF, Run
from experiments.formation import main  # the report's figure and findings

EXP = REF / "experiments"
RUNS = [Run("tokenizer-char-2M", "char-2M"), Run("tokenizer-bpe-2M", "2M", dict(tokenizer="bpe", vocab_size=10050))]


def report():
    main(["--x", "chars", "--out", str(FIG / "Induction_Formation_Tokenizers.png"), "--title",
          "Induction-head formation by tokenizer (2M parameters, same recipe)",
          f"word (10,050)={REF}/MiniGPT-2M", f"char (80)={EXP}/tokenizer-char-2M",
          f"BPE (10,050)={EXP}/tokenizer-bpe-2M",
          f"char (80), rerun={EXP}/char-2M-rerun"])


