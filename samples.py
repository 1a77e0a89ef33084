"""Samples of a trained model, and how repetitive they are.

    from samples import held_out_samples
    print(held_out_samples(model, tok, corpus.val))   # sample.txt: two samples from held-out prompts, settings shown

A model that learnt "text repeats" from the training's repeated windows loops ("perhaps , perhaps , perhaps ..."),
which shows in two numbers per sample (issue #44): the share of distinct bigrams among the generated tokens, and the
share of generated 4-grams that already occurred earlier in the sample. Every run's sample.txt prints the second
beside that of the 2M no-repeat control's samples (CONTROL, written by `python -m experiments default_recipe`).
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from checkpoint import portable
from TransformerModel import GPT

ROOT = Path(__file__).resolve().parent
CONTROL = ROOT / "results" / "sample_repetition.json"  # the no-repeat control's samples, measured as below
TEMPERATURE, TOP_K = 0.8, 40
PROMPT_TOKENS = 16   # a prompt: this many tokens of the validation text
PROMPT_SEED = 0      # the prompts' positions, the same for every run on the same validation text


class SampleError(ValueError):
    pass


def default_length(tok) -> int:
    """New tokens per sample: 200 words, or 600 characters / BPE tokens."""
    return 200 if tok.kind == "word" else 600


def generate_text(model: GPT, tok, prompt: str, max_new_tokens: int | None = None, temperature: float = TEMPERATURE,
                  top_k: int | None = TOP_K, seed: int = 0) -> str:
    """Continue `prompt` (default: default_length tokens); a prompt longer than the context is cropped to its last
    block_size tokens."""
    if not isinstance(prompt, str):
        raise SampleError(f"the prompt must be text (a str), got {type(prompt).__name__}")
    ids = tok.encode(prompt)
    if not ids:
        raise SampleError(f"the prompt {prompt!r} encodes to no tokens; give some text to continue")
    out = _generate(model, ids, default_length(tok) if max_new_tokens is None else max_new_tokens, temperature, top_k,
                    seed)
    return tok.decode(out)


def _generate(model: GPT, ids: list[int], new: int, temperature: float, top_k: int | None, seed: int) -> list[int]:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise SampleError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        out = model.eval().generate(torch.tensor([ids], device=device), new, temperature=temperature, top_k=top_k,
                                    generator=g)
    return out[0].tolist()


def repetition(ids: list[int], start: int) -> tuple[float, float]:
    """(distinct bigrams / bigrams, repeated 4-grams / 4-grams) of the tokens generated after position `start`; a
    4-gram counts as repeated if it occurred earlier in the sample, prompt included."""
    gen = ids[start:]
    bigrams = list(zip(gen, gen[1:]))
    seen, repeated, total = set(), 0, 0
    for i in range(len(ids) - 3):
        gram = tuple(ids[i:i + 4])
        if i >= start:
            total += 1
            repeated += gram in seen
        seen.add(gram)
    return len(set(bigrams)) / max(1, len(bigrams)), repeated / max(1, total)


@dataclass
class Sample:
    prompt: str
    text: str           # the generated continuation
    distinct_2: float
    repeated_4: float


@dataclass
class Samples:
    """Samples from held-out prompts, with their settings; str() is sample.txt."""
    tokenizer: str
    new_tokens: int
    seeds: list[int]
    samples: list[Sample] = field(default_factory=list)

    @property
    def repeated_4(self) -> float:
        return sum(s.repeated_4 for s in self.samples) / len(self.samples)

    def __str__(self):
        lines = [f"{len(self.samples)} samples from held-out prompts ({PROMPT_TOKENS} tokens of the validation text "
                 f"each), {self.new_tokens} new tokens each, temperature {TEMPERATURE}, top-k {TOP_K}, seeds "
                 f"{', '.join(map(str, self.seeds))}:", ""]
        for i, s in enumerate(self.samples, 1):
            lines += [f"[{i}] prompt: {s.prompt}", f"    {s.text}",
                      f"    distinct bigrams {100 * s.distinct_2:.1f}%, repeated 4-grams {100 * s.repeated_4:.1f}%", ""]
        lines.append(f"repeated 4-grams in these samples: {100 * self.repeated_4:.1f}%; {control_line(self.tokenizer)}")
        return "\n".join(lines)


def control_line(tokenizer: str) -> str:
    """The no-repeat control's repeated-4-gram share, as CONTROL records it, or why there is none to compare with."""
    try:
        c = json.loads(CONTROL.read_text())
        share = c["repeated_4"]
        text = (f"the {c['model']} no-repeat control's, over {c['samples']} samples of {c['seeds']} seeds: "
                f"{100 * share['mean']:.1f}% [{100 * share['lo']:.1f}, {100 * share['hi']:.1f}]")
    except (OSError, ValueError, KeyError, TypeError):
        return f"no measurement of the no-repeat control to compare with ({portable(CONTROL)} is missing)"
    if c.get("tokenizer") != tokenizer:
        return f"the control was measured in {c.get('tokenizer')} tokens, not comparable with {tokenizer} tokens"
    return text


def prompt_starts(n_tokens: int, n: int) -> list[int]:
    """Where the n prompts start in a validation text of n_tokens tokens (the same for every model)."""
    if n_tokens <= PROMPT_TOKENS:
        raise SampleError(f"the validation text has {n_tokens} tokens, too few for prompts of {PROMPT_TOKENS}")
    g = torch.Generator().manual_seed(PROMPT_SEED)
    return torch.randint(0, n_tokens - PROMPT_TOKENS, (n,), generator=g).tolist()


def held_out_samples(model: GPT, tok, val_text: str, n: int = 2, new_tokens: int | None = None,
                     seed: int = 0) -> Samples:
    """n samples, each continuing PROMPT_TOKENS tokens of the validation text (sample i with seed + i)."""
    val = tok.encode(val_text)
    new = default_length(tok) if new_tokens is None else new_tokens
    out = Samples(tok.kind, new, [seed + i for i in range(n)])
    for i, s in enumerate(prompt_starts(len(val), n)):
        ids = _generate(model, val[s:s + PROMPT_TOKENS], new, TEMPERATURE, TOP_K, seed + i)
        out.samples.append(Sample(tok.decode(ids[:PROMPT_TOKENS]), tok.decode(ids[PROMPT_TOKENS:]),
                                  *repetition(ids, PROMPT_TOKENS)))
    return out
