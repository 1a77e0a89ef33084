"""Run configuration: the presets, each a complete run, and the command lines built from dataclasses.

    from config import run_config
    cfg = run_config("2M")                          # the 2M preset exactly as `make run` trains it
    cfg = run_config("2M", max_steps=20000)         # the same run, longer

A preset fixes everything a run depends on: tokenizer, architecture and training recipe.
`run_config` is the only constructor; the command line, both notebooks, the Makefile,
bench and tests all go through it, and every checkpoint stores the RunConfig it was
trained with. `python config.py` prints the README's preset table.
"""
import argparse
import ast
import dataclasses
import hashlib
import math
import os
import re
import shutil
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import torch

from corpus import CorpusError, parse_novel
from TransformerModel import LIMITS

ROOT = Path(__file__).resolve().parent
# Where runs live: checkpoints/<run>/ (checkpoints, metrics, sample, the study's summary and executed notebook) and
# Plots/<run>/ (its figures and attention page). MINIGPT_HOME moves both, e.g. for the tests; default: this repository.
HOME = Path(os.environ.get("MINIGPT_HOME") or ROOT).resolve()
CHECKPOINTS = HOME / "checkpoints"
PLOTS = HOME / "Plots"
LAST_RUN = CHECKPOINTS / "last_run.txt"  # the name of the run trained last here (train.train writes it)
DEFAULT_NOVELS = ("prideprejudice", "sensesensibility", "emma")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE = ("auto", "on", "off")
COMPILE_MIN_STEPS = 2000  # auto compiles a run this long or longer: its ~40 s of compiling is repaid (pick_compile)
TOKENIZERS = ("word", "char", "bpe")


class ConfigError(ValueError):
    """A configuration value is out of range or of the wrong type."""


def doc(help: str, default=MISSING):
    """A dataclass field with its help text (shown by --help)."""
    return field(default=default, metadata={"help": help})


def _base_type(t):
    """int | None -> int; tuple[str, ...] -> tuple; int -> int."""
    if isinstance(t, types.UnionType):
        return next(a for a in typing.get_args(t) if a is not type(None))
    return typing.get_origin(t) or t


def check_types(obj):
    """Check every field of a dataclass instance against its annotation (real types, not strings).

    Catches e.g. a notebook parameter given as "300" instead of 300; an int is accepted for a float
    and a list for a tuple, and converted.
    """
    for f in fields(obj):
        v, t = getattr(obj, f.name), f.type
        optional = isinstance(t, types.UnionType) and type(None) in typing.get_args(t)
        base = _base_type(t)
        if v is None and optional:
            continue
        if base is float and isinstance(v, int) and not isinstance(v, bool):
            object.__setattr__(obj, f.name, float(v))
            continue
        if base is tuple and isinstance(v, list):
            object.__setattr__(obj, f.name, v := tuple(v))
        if isinstance(v, Path) and base is str:
            object.__setattr__(obj, f.name, v := str(v))
        if not isinstance(v, base) or (isinstance(v, bool) and base is not bool):
            raise ConfigError(f"{type(obj).__name__}.{f.name} must be {base.__name__}"
                              f"{' or None' if optional else ''}, got {v!r} ({type(v).__name__})")


@dataclass(frozen=True)
class RunConfig:
    preset: str = doc("the preset this run started from (RunConfig.name)")
    # data and tokens
    tokenizer: str = doc("word (the original study's), char or bpe")
    vocab_size: int | None = doc("word: keep the most frequent words; bpe: vocabulary size; char: must be None")
    novels: tuple[str, ...] = doc("novels to train on (Data/<name>.txt; 'emma[:24576]' keeps its first 24,576 "
                                  "characters)")
    held_out: tuple[str, ...] = doc("novels never trained on, read whole as the validation text (empty: the last "
                                    "tenth of each training novel is the validation text)")
    # architecture (GPTConfig; vocab_size comes from the tokenizer)
    n_layer: int = doc("transformer blocks")
    n_head: int = doc("attention heads per block")
    n_embd: int = doc("residual stream width")
    block_size: int = doc("context length in tokens")
    dropout: float = doc("dropout probability")
    positions: str = doc("where the position embedding enters: residual (GPT-2), or shortformer (only the queries' and "
                         "keys' inputs of every layer)")
    attn_only: bool = doc("blocks of attention alone, without MLPs")
    init_std: float = doc("std of the normal initialisation of the weights (GPT-2: 0.02)")
    # training recipe
    batch_size: int = doc("sequences per optimizer step")
    max_steps: int = doc("optimizer steps")
    lr: float = doc("peak learning rate (linear warmup, then cosine decay to min_lr at max_steps)")
    min_lr: float = doc("final learning rate")
    warmup_steps: int = doc("linear warmup steps")
    weight_decay: float = doc("AdamW weight decay, on 2-D weights only")
    beta2: float = doc("AdamW beta2")
    grad_clip: float = doc("clip the gradient's global norm to this")
    repeat_frac: float = doc("fraction of training windows made periodic (train.Batches)")
    repeat_end: float | None = doc("share of max_steps by which the periodic windows' fraction falls linearly from "
                                   "repeat_frac to repeat_floor (a curriculum; None: repeat_frac throughout)")
    repeat_floor: float = doc("the periodic windows' fraction from repeat_end on (needs repeat_end; 0: none)")
    relabel_repeats: float = doc("share of the periodic windows whose token ids go through a fresh random permutation "
                                 "of the vocabulary (train.Batches): only the window's own earlier tokens predict them")
    relabel_natural: float = doc("share of the other (natural) training windows relabelled the same way")
    seed: int = doc("seed of the initialisation, the batches and the evaluation windows")
    precision: str = doc("fp32, or bf16 autocast for the training step (weights, optimizer state, loss and all "
                         "evaluation stay fp32); auto: bf16 where the hardware runs it fast (config.pick_precision)")
    # logging
    eval_interval: int = doc("steps between evaluations (metrics.json, best.pt)")
    eval_batches: int | None = doc("batches of fixed windows per evaluation (None: the validation split in full, and "
                                   "as many training windows)")
    save_interval: int | None = doc("steps between resumable checkpoints (None: eval_interval)")
    probe_interval: int = doc("steps between induction probes logged to metrics.json (0: never)")
    probes_per_decade: int = doc("also probe (and evaluate) at log-spaced steps, this many per decade of steps "
                                 "(0: none), to follow a formation over orders of magnitude of tokens")
    # where (not part of the run's identity)
    out_dir: str | None = doc("the run's folder, whose name is the run's name (None: checkpoints/<name>, the name "
                              "being MiniGPT-<preset> plus every setting that differs from the preset)", None)
    device: str = doc("auto, cpu, cuda or mps", "auto")
    compile: str = doc("torch.compile the training step's loss: on, off, or auto (on where it pays: pick_compile)",
                       "auto")

    def __post_init__(self):
        check_types(self)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"RunConfig.{f.name} must be a finite number, got {v!r}")
        try:  # the architecture's own checks (positive sizes, n_embd divisible by n_head, dropout in [0, 1))
            self.model_config(vocab_size=2)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        for name in ("batch_size", "max_steps", "eval_interval", "eval_batches"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"RunConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        try:
            trained, held = ({parse_novel(s)[0] for s in specs} for specs in (self.novels, self.held_out))
        except CorpusError as e:
            raise ConfigError(f"RunConfig.novels / held_out: {e}") from None
        if trained & held:
            raise ConfigError(f"RunConfig.held_out must not name a training novel, got {self.held_out!r} held out "
                              f"of novels {self.novels!r}")
        if not (re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,100}", self.preset) and ".." not in self.preset):
            raise ConfigError(f"RunConfig.preset {self.preset!r} cannot name files (it names the run): use letters, "
                              f"digits and . _ + = -, no '/' or '..'")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"RunConfig.tokenizer must be one of {', '.join(TOKENIZERS)}, got {self.tokenizer!r}")
        if self.tokenizer == "char" and self.vocab_size is not None:
            raise ConfigError("RunConfig.vocab_size must be None for the char tokenizer (its vocabulary is the "
                              f"corpus's characters), got {self.vocab_size!r}")
        if self.vocab_size is not None and self.vocab_size < 2:
            raise ConfigError(f"RunConfig.vocab_size must be at least 2 (or None), got {self.vocab_size!r}")
        if not 0 <= self.repeat_frac <= 1:
            raise ConfigError(f"RunConfig.repeat_frac must be in [0, 1], got {self.repeat_frac!r}")
        if self.repeat_end is not None and not 0 < self.repeat_end <= 1:
            raise ConfigError(f"RunConfig.repeat_end must be in (0, 1] or None, got {self.repeat_end!r}")
        if not 0 <= self.repeat_floor <= self.repeat_frac:
            raise ConfigError(f"RunConfig.repeat_floor must be in [0, repeat_frac = {self.repeat_frac:g}], got "
                              f"{self.repeat_floor!r}")
        if self.repeat_floor and self.repeat_end is None:
            raise ConfigError(f"RunConfig.repeat_floor {self.repeat_floor:g} needs repeat_end, the share of max_steps "
                              f"at which the repeats reach it (without one, repeat_frac holds throughout)")
        for name in ("relabel_repeats", "relabel_natural"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"RunConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.relabel_repeats and not self.repeat_frac:
            raise ConfigError(f"RunConfig.relabel_repeats {self.relabel_repeats:g} relabels periodic windows, but "
                              f"repeat_frac is 0: set repeat_frac, or use relabel_natural for natural windows")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ConfigError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr!r}, min_lr={self.min_lr!r}")
        if not self.grad_clip > 0:
            raise ConfigError(f"RunConfig.grad_clip must be > 0, got {self.grad_clip!r}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"RunConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.beta2 < 1:
            raise ConfigError(f"RunConfig.beta2 must be in [0, 1), got {self.beta2!r}")
        if not 0 <= self.seed < 2 ** 32:
            raise ConfigError(f"RunConfig.seed must be in [0, 2**32), got {self.seed!r}")
        if self.eval_batches is not None and self.eval_batches * self.tokens_per_step > MAX_EVAL_TOKENS:
            raise ConfigError(f"RunConfig.eval_batches {self.eval_batches:,} x batch {self.batch_size} x context "
                              f"{self.block_size} is {self.eval_batches * self.tokens_per_step:,} tokens per evaluated "
                              f"split, above the limit of {MAX_EVAL_TOKENS:,} (config.MAX_EVAL_TOKENS); use None for "
                              f"the whole validation split")
        for name in ("max_steps", "warmup_steps", "eval_interval", "save_interval", "probe_interval"):
            if (getattr(self, name) or 0) > MAX_STEPS:
                raise ConfigError(f"RunConfig.{name} is {getattr(self, name):,}, above the limit of {MAX_STEPS:,} "
                                  f"steps (config.MAX_STEPS)")
        if self.vocab_size is not None and self.vocab_size > LIMITS["vocab_size"]:
            raise ConfigError(f"RunConfig.vocab_size is {self.vocab_size:,}, above this project's limit of "
                              f"{LIMITS['vocab_size']:,} (TransformerModel.LIMITS)")
        if min(self.warmup_steps, self.probe_interval, self.probes_per_decade) < 0 or (self.save_interval or 1) < 1:
            raise ConfigError("warmup_steps, probe_interval and probes_per_decade must be >= 0 and save_interval >= "
                              f"1, got {self.warmup_steps!r}, {self.probe_interval!r}, {self.probes_per_decade!r}, "
                              f"{self.save_interval!r}")
        if self.out_dir == "":
            raise ConfigError("RunConfig.out_dir must not be empty; use None for checkpoints/<the run's name>")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"RunConfig.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.compile not in COMPILE:
            raise ConfigError(f"RunConfig.compile must be one of {', '.join(COMPILE)}, got {self.compile!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"RunConfig.device must be one of {', '.join(DEVICES)}, got {self.device!r}")

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "RunConfig":
        """The typed RunConfig a checkpoint stores, upgraded from older versions of the record: fields added since it
        was written take the value those runs had (ADDED_FIELDS), and the architecture fields that early runs stored
        as None ("the preset's") take the value of the model the checkpoint holds."""
        stored = ckpt.get("train_config")
        if not isinstance(stored, dict) or not stored:
            raise ConfigError("the checkpoint holds no run configuration (train_config); it was not written by "
                              "train.py")
        unknown = sorted(set(stored) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"the checkpoint's run configuration has fields this code does not know: "
                              f"{', '.join(map(str, unknown[:5]))}")
        model = ckpt.get("model_config") if isinstance(ckpt.get("model_config"), dict) else {}
        stored = {k: model.get(k) if v is None and k in ("n_layer", "n_head", "n_embd", "block_size") else v
                  for k, v in stored.items()}
        try:
            return cls(**{**ADDED_FIELDS, **stored})
        except TypeError as e:
            raise ConfigError(f"the checkpoint's run configuration is incomplete ({e})") from None

    @property
    def name(self) -> str:
        """The run's name, which is its folder's name: out_dir's, or by default MiniGPT-<preset> followed by every
        setting of the run that differs from its preset, e.g. MiniGPT-2M-n_embd=64, so that two different runs never
        share a folder or a figure name unless asked to."""
        if self.out_dir:
            return Path(self.out_dir).resolve().name
        base = f"MiniGPT-{self.preset}"
        preset = PRESETS.get(self.preset)
        if preset is None:
            return base
        ours, theirs = self.identity(), preset.identity()
        changes = "".join(f"-{k}={_name_part(v)}" for k, v in ours.items() if _same(v) != _same(theirs[k]))
        if len(base + changes) > MAX_NAME:  # still distinct, and still a file name
            changes = "-custom-" + hashlib.sha1(repr(sorted(ours.items())).encode()).hexdigest()[:10]
        return base + changes

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else CHECKPOINTS / self.name

    @property
    def plots_dir(self) -> Path:
        """Where the run's figures go by default: Plots/<name>/."""
        return PLOTS / self.name

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.block_size

    def identity(self) -> dict:
        """The fields that define the run: resuming requires them to match (max_steps may grow)."""
        logging_only = ("max_steps", "eval_interval", "eval_batches", "save_interval", "probe_interval",
                        "probes_per_decade", "out_dir", "device", "compile")
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in logging_only}

    def model_config(self, vocab_size: int):
        from TransformerModel import GPTConfig
        return GPTConfig(vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, positions=self.positions,
                         attn_only=self.attn_only, init_std=self.init_std)


def _same(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def _name_part(v) -> str:
    """A setting's value as part of a file name (checkpoint.check_name's characters)."""
    text = "+".join(map(str, v)) if isinstance(v, (list, tuple)) else f"{v:g}" if isinstance(v, float) else str(v)
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", text)


MAX_NAME = 120  # characters of a run's name (checkpoint.check_name)
MAX_STEPS = 10 ** 8  # optimizer steps: years of this CPU; a larger count is a typo
MAX_EVAL_TOKENS = 2 ** 22  # tokens per evaluated split: 4.2M, 10x a novel, minutes of this CPU per evaluation

# Fields added to RunConfig after checkpoints were first written, with the value every earlier run had.
ADDED_FIELDS = dict(held_out=(), precision="fp32", repeat_end=None, probes_per_decade=0, positions="residual",
                    attn_only=False, init_std=0.02, compile="off", repeat_floor=0.0, relabel_repeats=0.0,
                    relabel_natural=0.0)

# The recipe that forms induction heads within a CPU budget: half the windows repeat an excerpt
# (results/README.md, "The recipe").
_WORD = dict(tokenizer="word", vocab_size=None, novels=DEFAULT_NOVELS, held_out=(), dropout=0.0, positions="residual",
             attn_only=False, init_std=0.02)
_CHAR = dict(_WORD, tokenizer="char")
# Precision "auto": bf16 where it is native, fp32 elsewhere (config.pick_precision). bf16's gap to fp32 is within the
# spread between fp32 runs that differ only in rounding or seed (results/README.md, "Precision"). The committed
# reference models were trained in fp32.
_ADAMW = dict(weight_decay=0.1, beta2=0.99, grad_clip=1.0, seed=1337, eval_batches=8, save_interval=None,
              precision="auto", repeat_end=None, repeat_floor=0.0, relabel_repeats=0.0, relabel_natural=0.0,
              probes_per_decade=0)
_REPEATS = dict(_ADAMW, eval_batches=None, block_size=64, batch_size=8, lr=2e-3, min_lr=2e-4, warmup_steps=200,
                repeat_frac=0.5, eval_interval=500, probe_interval=500)
_ORIGINAL = dict(_WORD, novels=("prideprejudice", "sensesensibility", "emma[:24576]"), held_out=("persuasion",),
                 block_size=128, batch_size=32, lr=3e-4, min_lr=3e-4, warmup_steps=0, weight_decay=0.1, beta2=0.999,
                 grad_clip=1.0, repeat_frac=0.0, repeat_end=None, repeat_floor=0.0, relabel_repeats=0.0,
                 relabel_natural=0.0, seed=1337, precision="fp32", eval_interval=1000,
                 eval_batches=None, save_interval=250, probe_interval=0, probes_per_decade=10)

PRESETS = {
    # the tests' and a first try's model: one novel, so that its corpus, evaluations and studies take seconds
    "tiny": RunConfig("tiny", **dict(_CHAR, novels=("emma",)), n_layer=2, n_head=2, n_embd=32, block_size=64,
                      **_ADAMW, batch_size=16, max_steps=300, lr=3e-3, min_lr=3e-4, warmup_steps=100,
                      repeat_frac=0.0, eval_interval=100, probe_interval=0),
    # the original study's two models (d_model 128 / 256, 4 blocks, 4 heads)
    "2M": RunConfig("2M", **_WORD, n_layer=4, n_head=4, n_embd=128, **_REPEATS, max_steps=10000),
    # 16,000 steps: within 6,000 it formed nothing; with 16,000 its first induction head formed at 5.6M tokens
    "5.6M": RunConfig("5.6M", **_WORD, n_layer=4, n_head=4, n_embd=256, **_REPEATS, max_steps=16000),
    # characters at about the same parameter counts
    "char-2M": RunConfig("char-2M", **_CHAR, n_layer=4, n_head=4, n_embd=200, **_REPEATS, max_steps=10000),
    "char-5.6M": RunConfig("char-5.6M", **_CHAR, n_layer=4, n_head=4, n_embd=340, **_REPEATS, max_steps=6000),
    # the original study's recipe as far as it is known (../shared/reference.md, results/README.md "The original
    # recipe"): its corpus (Emma cut to its first 24 KB), every training word in the vocabulary, batch 32 x 128,
    # AdamW at a constant 3e-4 (no warmup; beta2 0.999, PyTorch's default, as no other is recorded), no repeats,
    # its step budget; validated on Persuasion, which it never trains on. fp32, so a run resumes on any CPU.
    "original-2M": RunConfig("original-2M", **_ORIGINAL, n_layer=4, n_head=4, n_embd=128, max_steps=100_000),
    "original-5.6M": RunConfig("original-5.6M", **_ORIGINAL, n_layer=4, n_head=4, n_embd=256, max_steps=50_000),
}


def run_config(preset: str = "2M", **overrides) -> RunConfig:
    """The preset's complete run, with any field overridden; an override of None keeps the preset's value."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - {f.name for f in fields(RunConfig)})
    if unknown:
        raise ConfigError(f"unknown RunConfig field(s) {', '.join(unknown)}; the fields are "
                          f"{', '.join(f.name for f in fields(RunConfig))}")
    return dataclasses.replace(PRESETS[preset], **overrides)


# ---- where a run runs ----------------------------------------------------------------------------

def pick_device(name: str = "auto") -> str:
    """"auto": the first of cuda, mps, cpu that this machine has."""
    mps = getattr(torch.backends, "mps", None)
    available = [d for d, ok in (("cuda", torch.cuda.is_available()), ("mps", bool(mps and mps.is_available())),
                                 ("cpu", True)) if ok]
    if name == "auto":
        return available[0]
    if name not in available:
        raise ConfigError(f"device {name!r} is not available here; use --device auto or one of "
                          f"{', '.join(available)}")
    return name


def cpu_info() -> tuple[str, set[str]]:
    """This CPU's model name and feature flags (Linux's /proc/cpuinfo; elsewhere: the platform's name, no flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform
        return platform.processor() or platform.machine(), set()
    field = lambda key: next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith(key)), "")  # noqa: E731
    return field("model name") or "unknown CPU", set(field("flags").split())


def native_bf16(device: str) -> bool:
    """Whether bf16 matmuls run natively (fast) here: a CUDA GPU with bf16, or a CPU with avx512_bf16 or AMX. On other
    CPUs PyTorch emulates bf16, about 15x slower than fp32 (results/README.md, "Speed")."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return device == "cpu" and bool({"avx512_bf16", "amx_bf16"} & cpu_info()[1])


def pick_precision(name: str, device: str) -> str:
    """"auto": bf16 where it is native (native_bf16), else fp32. results/README.md, "Precision", holds the quality
    comparison this default rests on."""
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"


def pick_compile(cfg: "RunConfig", precision: str, device: str) -> bool:
    """Whether the training step's loss runs under torch.compile. "auto": only bf16 on a CPU with native bf16 (there
    it makes the 2M preset's step about 1.2x faster, bench/bench.py; fp32 gains little), for a run of at least
    COMPILE_MIN_STEPS steps (compiling takes about 40 s), and where a C++ compiler is found (inductor needs one)."""
    if cfg.compile != "auto":
        return cfg.compile == "on"
    return (precision == "bf16" and device == "cpu" and native_bf16(device) and cfg.max_steps >= COMPILE_MIN_STEPS
            and shutil.which("c++") is not None)


# ---- command lines from dataclasses ------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser, cls, positional=(), defaults_from=None):
    """One flag per field of dataclass `cls`, typed from its annotation, helped from its doc().

    defaults_from: a description of where unset values come from (the flag's default is then None);
    otherwise the field's own default is the flag's default.
    """
    for f in fields(cls):
        base = _base_type(f.type)
        kw = dict(help=f.metadata.get("help", ""))
        if base is tuple:
            kw.update(nargs="+")
        elif base is bool:
            kw.update(type=lambda s: {"true": True, "false": False}[s.lower()])
        else:
            kw.update(type=base)
        if f.name in positional:
            if f.default is not MISSING:
                kw.update(nargs="?", default=f.default)
            parser.add_argument(f.name, **kw)
            continue
        if defaults_from:
            kw.update(default=None, help=f"{kw['help']} (default: {defaults_from})")
        elif f.default is not MISSING:
            kw.update(default=f.default, help=f"{kw['help']} (default: {f.default})")
        else:
            kw.update(required=True)
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kw)


def given(args: argparse.Namespace, cls) -> dict:
    """The fields of `cls` that were set on the command line (for defaults_from parsers: not None)."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}


PARAMETERS_MARK = "# parameters"  # a parameters cell's first line (papermill's injected cell starts "# Parameters")


def parameter_names(namespace: dict) -> set[str] | None:
    """The names assigned in a notebook's parameters cell, as last run, and in the cell papermill injects after it
    (IPython's input history, `In`); None outside IPython."""
    history = namespace.get("In")
    if not isinstance(history, list):
        return None
    starts = [i for i, src in enumerate(history) if isinstance(src, str) and src.lstrip().startswith(PARAMETERS_MARK)]
    if not starts:
        return None
    cells = [history[starts[-1]]] + [src for src in history[starts[-1] + 1:]
                                     if isinstance(src, str) and src.lstrip().startswith("# Parameters")]
    names = set()
    for src in cells:
        try:
            tree = ast.parse(src)
        except SyntaxError as e:
            raise ConfigError(f"the parameters cell is not plain assignments ({e.msg}, line {e.lineno}): give each "
                              f"parameter as NAME = value") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


def notebook_parameters(namespace: dict, cls, extra: dict | None = None) -> dict:
    """A notebook's parameters as field values of dataclass `cls`: the names assigned in its parameters cell (and
    papermill's injected cell), with their current values.

    NAME sets field `name`; `extra` maps the notebook's own parameters to their type (or tuple of types), which is
    checked here. A name assigned there that is no parameter, e.g. one misspelt or passed by papermill, is an error
    instead of a silent default. A name the cell does not assign (a deleted line) takes the field's default (the
    preset's value), whatever the namespace still holds; scratch variables of other cells, in capitals or not, neither
    fail nor apply. Outside IPython every UPPER_CASE data global is a parameter.
    """
    extra = extra or {}
    names = parameter_names(namespace)
    if names is None:
        names = {k for k, v in namespace.items() if k.isupper() and not k.startswith("_")
                 and not (callable(v) or isinstance(v, types.ModuleType))}  # e.g. an imported class GPT
    for k, tp in extra.items():
        v, tps = namespace.get(k), tp if isinstance(tp, tuple) else (tp,)
        if k in names and k in namespace and not (isinstance(v, tps) and (bool in tps or not isinstance(v, bool))):
            raise ConfigError(f"notebook parameter {k} must be {' or '.join(t.__name__ for t in tps)}, got {v!r} "
                              f"({type(v).__name__})")
    by_name = {f.name.upper(): f.name for f in fields(cls)}
    unknown = sorted(names - set(by_name) - set(extra))
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {', '.join(unknown)}; the parameters are "
                          f"{', '.join(sorted(set(by_name) | set(extra)))}")
    return {by_name[k]: namespace[k] for k in names if k in by_name and k in namespace}


# ---- the README's preset table -----------------------------------------------------------------

def preset_table() -> str:
    """Markdown table of what `make run PRESET=...` trains (vocabulary from each preset's corpus)."""
    from corpus import load_corpus
    from prepare import prepare
    from TransformerModel import GPT
    rows = ["| preset | tokenizer | layers | heads | n_embd | context | parameters | batch × context | steps "
            "| tokens | lr | repeats | precision |", "|---" * 13 + "|"]
    for name, c in PRESETS.items():
        tok = prepare(load_corpus(c.novels, c.held_out), c.tokenizer, c.vocab_size)
        n = GPT(c.model_config(tok.vocab_size)).num_params()
        lr = f"{c.lr:g}" if c.min_lr == c.lr and not c.warmup_steps else f"{c.lr:g} → {c.min_lr:g}"
        rows.append(f"| `{name}` | {c.tokenizer} ({tok.vocab_size:,}) | {c.n_layer} | {c.n_head} | {c.n_embd} | "
                    f"{c.block_size} | {n:,} | {c.batch_size} × {c.block_size} | {c.max_steps:,} | "
                    f"{c.max_steps * c.tokens_per_step / 1e6:.2f}M | {lr} | {c.repeat_frac:g} | {c.precision} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(preset_table())
