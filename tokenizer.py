"""Tokenizers behind one small interface: encode, decode, vocab_size, state / from_state.

`state()` is plain JSON-able data (strings, ints, lists), stored inside every
checkpoint, so a checkpoint is self-contained and loading it never runs code.

- WordTokenizer: the original study's tokenizer. Lowercase, then the regex
  `[a-z]+|[0-9]+|[^\\s\\w]`: runs of ASCII letters, runs of digits, single
  punctuation marks. Characters that are word characters but not [a-z0-9]
  (accented letters, `_` used for italics in Gutenberg texts) are dropped, as in
  the original. decode() joins tokens with spaces, so it is lossy (case, spacing
  and dropped characters are gone). Words never seen in training map to `<unk>`.
- CharTokenizer: one token per character; decode(encode(s)) == s exactly, and an
  unknown character raises an error that lists it.
- BPETokenizer: byte-level BPE trained with the `tokenizers` package; lossless.
"""
import re
from collections import Counter

WORD_RE = re.compile(r"[a-z]+|[0-9]+|[^\s\w]")
UNK = "<unk>"


class TokenizerError(ValueError):
    pass


class Tokenizer:
    kind = ""
    special_ids: tuple = ()  # ids that are not text (excluded from random probes)

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids) -> str:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def state(self) -> dict:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} tokenizer, {self.vocab_size:,} tokens"

    def report(self, train_text: str, val_text: str) -> str:
        """What the tokenizer makes of the corpus: sizes, <unk> rate, a round trip."""
        train_ids, val_ids = self.encode(train_text), self.encode(val_text)
        lines = [self.describe(), f"train: {len(train_ids):,} tokens, validation: {len(val_ids):,} tokens "
                 f"({len(val_text) / len(val_ids):.2f} characters per token)"]
        if self.special_ids:
            unk = sum(i in self.special_ids for i in val_ids) / len(val_ids)
            lines.append(f"<unk> rate on validation: {unk:.2%}")
        example = val_text[:120]
        lines += [f"{example!r} -> {self.encode(example)[:20]} ...", f"decoded: {self.decode(self.encode(example))}"]
        return "\n".join(lines)


class WordTokenizer(Tokenizer):
    kind = "word"
    special_ids = (0,)  # <unk>

    def __init__(self, itos: list[str]):
        if not itos or itos[0] != UNK:
            raise TokenizerError(f"a word vocabulary must start with {UNK!r}")
        self.itos = list(itos)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def split(text: str) -> list[str]:
        return WORD_RE.findall(text.lower())

    @classmethod
    def train(cls, text: str, max_vocab: int | None = None) -> "WordTokenizer":
        """Vocabulary = words of `text` by descending frequency (ties alphabetical), capped at max_vocab."""
        counts = Counter(cls.split(text))
        words = sorted(counts, key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            words = words[: max_vocab - 1]
        return cls([UNK] + words)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(w, 0) for w in self.split(text)]

    def decode(self, ids) -> str:
        return " ".join(self.itos[int(i)] for i in ids)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def state(self) -> dict:
        return {"kind": self.kind, "itos": self.itos}


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        return cls(text)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            bad = sorted(set(text) - set(self.chars))
            raise TokenizerError(f"text contains {len(bad)} character(s) outside the vocabulary: "
                                 f"{', '.join(repr(c) for c in bad)}; remove or replace them "
                                 f"(the vocabulary has {self.vocab_size} characters)") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def state(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}


class BPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer as HFTokenizer
        self.json = tokenizer_json
        try:
            self.tok = HFTokenizer.from_str(tokenizer_json)
        except Exception as e:  # the tokenizers package raises a bare Exception for a malformed file
            raise TokenizerError(f"the stored BPE tokenizer is corrupt: {str(e).splitlines()[0]}") from None

    @classmethod
    def train(cls, text: str, vocab_size: int = 1024) -> "BPETokenizer":
        from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(text.split("\n\n"), trainer)
        return cls(tok.to_str())

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def state(self) -> dict:
        return {"kind": self.kind, "json": self.json}


KINDS = {"word": WordTokenizer, "char": CharTokenizer, "bpe": BPETokenizer}


def from_state(state: dict) -> Tokenizer:
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind == "word":
        return WordTokenizer(state["itos"])
    if kind == "char":
        return CharTokenizer(state["chars"])
    if kind == "bpe":
        return BPETokenizer(state["json"])
    raise TokenizerError(f"unknown tokenizer kind {kind!r}; expected one of {', '.join(KINDS)}")


def build_tokenizer(kind: str, train_text: str, all_text: str, vocab_size: int | None = None) -> Tokenizer:
    """Build a tokenizer from the corpus.

    word: vocabulary from the training split only (unseen validation words become <unk>);
          vocab_size, if given, caps it to the most frequent words.
    char: alphabet from all the corpus text (train and val), so validation never fails
          to encode; the alphabet is a closed set, this leaks nothing about the text.
    bpe:  merges learned on the training split; vocab_size defaults to 1024.
    """
    if kind == "word":
        return WordTokenizer.train(train_text, vocab_size)
    if kind == "char":
        return CharTokenizer.train(all_text)
    if kind == "bpe":
        return BPETokenizer.train(train_text, vocab_size or 1024)
    raise TokenizerError(f"unknown tokenizer {kind!r}; choose one of {', '.join(KINDS)}")

