"""Tokenizers: word, character and BPE models of the same size and recipe, compared in characters of text seen.

    python -m experiments tokenizers        # the formation figure by tokenizer, from the committed logs
    python -m experiments tokenizers run    # train the char and BPE models (the word model is the 2M reference)

Their studies (tested heads chosen on random probes) are part of `make reference`.
"""
from experiments import FIG, REF
from experiments.formation import main  # noqa: F401  (the report)

EXP = REF / "experiments"
RUNS = {"tokenizer-char-2M": ["--preset", "char-2M"],
        "tokenizer-bpe-2M": ["--preset", "2M", "--tokenizer", "bpe", "--vocab-size", "10050"]}
REPORTS = [["--x", "chars", "--out", FIG / "Induction_Formation_Tokenizers.png", "--title",
            "Induction-head formation by tokenizer (2M parameters, same recipe)",
            f"word (10,050)={REF}/MiniGPT-2M", f"char (80)={EXP}/tokenizer-char-2M",
            f"BPE (10,050)={EXP}/tokenizer-bpe-2M",
            f"char (80), rerun={EXP}/char-2M-rerun"]]
