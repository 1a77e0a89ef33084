"""Train MiniGPT on the Austen corpus, with checkpoints and exact resume.

    python train.py --preset 2M                    # 15-25 min on a 2-core CPU
    python train.py --preset 2M --resume           # continue checkpoints/MiniGPT-2M
    python train.py --preset tiny --max-steps 300 --out-dir runs/tiny

Recipe: random-window batches from the training split; AdamW (weight decay on 2-D
weights only); linear warmup then cosine decay to min_lr; gradient clipping.
Every eval_interval steps, train and val loss (nats/token, on fixed windows) and
val bits per character of the source text go to <out_dir>/metrics.json.
<out_dir>/latest.pt (every save_interval steps, and on Ctrl-C) holds everything
needed to continue the run bit-for-bit: weights, optimizer, step, RNG states;
<out_dir>/best.pt holds the best-val weights so far.
"""
import argparse
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from tqdm.auto import tqdm

import utils
from checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from corpus import DEFAULT_NOVELS, load_corpus
from tokenizer import build_tokenizer, from_state
from TransformerModel import GPT, GPTConfig, preset

ROOT = Path(__file__).resolve().parent
# Fields that define the run; they must match when resuming (max_steps may grow).
RECIPE_FIELDS = ("preset", "tokenizer", "vocab_size", "novels", "n_layer", "n_head", "n_embd", "block_size",
                 "dropout", "repeat_frac", "batch_size", "lr", "min_lr", "warmup_steps", "weight_decay", "beta2",
                 "grad_clip", "seed", "eval_batches")


# The default training recipe of each preset: TrainConfig fields that differ from the
# dataclass defaults. `TrainConfig.for_preset` (used by the command line and MiniGPT.ipynb)
# applies them; README "Reference results" shows how they were chosen.
REPEATS_RECIPE = dict(block_size=64, batch_size=8, lr=2e-3, min_lr=2e-4, warmup_steps=200,
                      eval_interval=500, probe_interval=500, repeat_frac=0.5)
RECIPES = {
    "tiny": dict(batch_size=16, max_steps=300, lr=3e-3, min_lr=3e-4, eval_interval=100),
    "2M": dict(REPEATS_RECIPE, max_steps=10000),
    "5.6M": dict(REPEATS_RECIPE, max_steps=6000),
    "char-2M": dict(REPEATS_RECIPE, max_steps=10000),  # the 2M recipe on characters (README "Tokenizers")
}


class TrainingError(RuntimeError):
    pass


@dataclass
class TrainConfig:
    preset: str = "2M"
    tokenizer: str | None = None      # None: the preset's tokenizer ("word", "char", "bpe")
    vocab_size: int | None = None     # word: cap to the most frequent words; bpe: merges target
    novels: list = field(default_factory=lambda: list(DEFAULT_NOVELS))
    n_layer: int | None = None        # None: the preset's value
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int | None = None
    dropout: float = 0.0
    repeat_frac: float = 0.0          # fraction of training windows made periodic (see Batches)
    batch_size: int = 32
    max_steps: int = 3000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_batches: int = 8
    save_interval: int | None = None  # None: same as eval_interval
    seed: int = 1337
    out_dir: str | None = None        # None: checkpoints/MiniGPT-<preset>
    device: str = "auto"
    probe_interval: int = 0           # >0: log induction metrics every N steps (induction.py)

    def __post_init__(self):
        for f in fields(self):  # catch e.g. a notebook parameter given as "300" instead of 300
            v, want = getattr(self, f.name), str(f.type)
            if isinstance(v, Path):
                v = str(v)
                setattr(self, f.name, v)
            ok = {"int": lambda: isinstance(v, int) and not isinstance(v, bool),
                  "float": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
                  "str": lambda: isinstance(v, str), "list": lambda: isinstance(v, (list, tuple))}
            base = want.replace(" | None", "").replace("<class '", "").replace("'>", "")
            if not ((v is None and "None" in want) or ok[base]()):
                raise TypeError(f"TrainConfig.{f.name} must be {base}{' or None' if 'None' in want else ''}, "
                                f"got {v!r} ({type(v).__name__})")
        arch = preset(self.preset)  # validates the preset name
        for name in ("batch_size", "max_steps", "eval_interval", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0 <= self.repeat_frac <= 1:
            raise ValueError(f"TrainConfig.repeat_frac must be in [0, 1], got {self.repeat_frac!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr!r}, min_lr={self.min_lr!r}")
        if self.out_dir is None:
            self.out_dir = str(ROOT / "checkpoints" / self.name)
        self.tokenizer = self.tokenizer or arch["tokenizer"]
        self.novels = list(self.novels)

    @classmethod
    def for_preset(cls, preset: str = "2M", **overrides) -> "TrainConfig":
        """The preset's default recipe (RECIPES), with any field overridden."""
        return cls(preset=preset, **{**RECIPES.get(preset, {}), **overrides})

    @property
    def name(self) -> str:
        return f"MiniGPT-{self.preset}"

    def model_config(self, vocab_size: int) -> GPTConfig:
        arch = preset(self.preset)
        arch.pop("tokenizer")
        for k in ("n_layer", "n_head", "n_embd", "block_size"):
            if getattr(self, k) is not None:
                arch[k] = getattr(self, k)
        return GPTConfig(vocab_size=vocab_size, dropout=self.dropout, **arch)


def pick_device(name: str = "auto") -> str:
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to lr, then cosine decay to min_lr at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def make_optimizer(model: GPT, cfg: TrainConfig, device: str):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2), fused=device in ("cpu", "cuda"))


class Batches:
    """Random (B, T+1) windows of a token stream; x is [:, :-1], y is [:, 1:].

    repeat_frac > 0: that fraction of windows (on average) is made periodic: its first
    p tokens (p uniform in [8, (T+1)//2], a natural excerpt) repeat to the window's end.
    This puts exact in-context repeats into Austen text, the signal induction heads
    learn from; the period varies so no fixed positional offset can solve it.
    """

    def __init__(self, tokens: torch.Tensor, block_size: int, batch_size: int, repeat_frac: float = 0.0):
        if len(tokens) <= block_size + 1:
            raise TrainingError(f"the split has {len(tokens)} tokens, too few for block_size {block_size}")
        self.windows = tokens.unfold(0, block_size + 1, 1)  # (N, T+1), a view: no copy
        self.batch_size, self.repeat_frac = batch_size, repeat_frac

    def sample(self, generator: torch.Generator, device: str):
        ix = torch.randint(len(self.windows), (self.batch_size,), generator=generator)
        w = self.windows[ix]  # (B, T+1), a copy
        if self.repeat_frac > 0:
            n = w.shape[1]
            rows = torch.rand(self.batch_size, generator=generator) < self.repeat_frac
            period = torch.randint(min(8, n // 2), n // 2 + 1, (self.batch_size, 1), generator=generator)
            src = torch.arange(n) % period  # (B, T+1): index of the token each position copies
            w = torch.where(rows[:, None], w.gather(1, src), w)
        w = w.to(device, non_blocking=True)
        return w[:, :-1], w[:, 1:]


def check_out_dir(out_dir: Path):
    """Fail before the first step, not after an hour, if checkpoints cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
        for stale in out_dir.glob(".*.pt.*.tmp"):  # half-written saves of a killed run
            stale.unlink()
    except OSError as e:
        raise TrainingError(f"cannot write checkpoints to {out_dir}: {e.strerror}; "
                            f"pick a writable --out-dir") from None


@torch.no_grad()
def evaluate(model: GPT, eval_sets: dict) -> dict:
    """Mean loss (nats/token) on each split's fixed windows."""
    was_training = model.training
    model.eval()
    out = {}
    for split, batches in eval_sets.items():
        losses = [model(x, y)[1].item() for x, y in batches]
        out[f"{split}_loss"] = sum(losses) / len(losses)
    model.train(was_training)
    return out


class _StopFlag:
    """SIGINT sets a flag that the loop checks between steps, so Ctrl-C never lands mid-update."""

    def __init__(self):
        self.stop = False

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self.previous = None
        return self

    def _handle(self, signum, frame):
        if self.stop:  # a second Ctrl-C: give up on saving
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True,
          sample_prompt: str | None = "it is a truth universally acknowledged", plots_dir=ROOT / "Plots") -> dict:
    """Run (or continue) training; returns a dict with the model, tokenizer, metrics and paths."""
    out_dir = Path(cfg.out_dir)
    check_out_dir(out_dir)
    latest, best = out_dir / "latest.pt", out_dir / "best.pt"
    ckpt = None
    if latest.exists():
        if resume:
            ckpt = load_checkpoint(latest)
            old = ckpt.get("train_config", {})
            diff = [f"{k}: {old.get(k)!r} -> {getattr(cfg, k)!r}" for k in RECIPE_FIELDS
                    if k in old and old.get(k) != getattr(cfg, k)]
            if diff:
                raise CheckpointError(f"cannot resume {latest}: the recipe differs ({'; '.join(diff)}); "
                                      f"use the same settings or a new --out-dir")
        elif not overwrite:
            raise TrainingError(f"{out_dir} already holds a run (latest.pt); pass --resume to continue it, "
                                f"--overwrite to start over, or choose another --out-dir")
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)

    corpus = load_corpus(cfg.novels)
    if ckpt is not None:
        tok = from_state(json.loads(ckpt["tokenizer"]))
    else:
        tok = build_tokenizer(cfg.tokenizer, corpus.train, corpus.train + corpus.val, cfg.vocab_size)
    train_tokens = torch.tensor(tok.encode(corpus.train), dtype=torch.long)
    val_tokens = torch.tensor(tok.encode(corpus.val), dtype=torch.long)
    tokens_per_char = len(val_tokens) / len(corpus.val)  # converts nats/token to bits/char

    mcfg = cfg.model_config(tok.vocab_size)
    model = GPT(mcfg).to(device)
    optimizer = make_optimizer(model, cfg, device)
    train_batches = Batches(train_tokens, mcfg.block_size, cfg.batch_size, cfg.repeat_frac)
    # Fixed evaluation windows, drawn from their own generator so evaluation never
    # perturbs the training RNG stream (exact resume depends on that).
    g_eval = torch.Generator().manual_seed(cfg.seed + 1)
    eval_sets = {split: [Batches(t, mcfg.block_size, cfg.batch_size).sample(g_eval, device)
                         for _ in range(cfg.eval_batches)]
                 for split, t in (("train", train_tokens), ("val", val_tokens))}
    g_batch = torch.Generator().manual_seed(cfg.seed)

    step, metrics = 0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, metrics = ckpt["step"], json.loads(ckpt["metrics"])
        g_batch.set_state(ckpt["rng"]["batch"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        print(f"resuming {latest} at step {step:,}")
    elif resume:
        print(f"no checkpoint in {out_dir}; starting a new run")

    probe_fn = None
    if cfg.probe_interval:
        import induction  # only runs that log induction metrics need it
        probe_fn = induction.TrainingProbe(model, train_tokens, val_tokens, tok)

    def snapshot():
        return {"batch": g_batch.get_state(), "torch": torch.get_rng_state()}

    saved = {"step": step}

    def save(path, with_state=True):
        save_checkpoint(path, model, tok, train_config=asdict(cfg), step=step, metrics=metrics,
                        optimizer=optimizer if with_state else None, rng=snapshot() if with_state else None)
        if path == latest:
            saved["step"] = step

    def check_finite(value, where):
        if not math.isfinite(value):
            raise TrainingError(f"loss became {value} at step {step} ({where}); training stopped. The last good "
                                f"checkpoint is {latest} (step {saved['step']}); lower --lr (now {cfg.lr}) or "
                                f"raise --warmup-steps, then resume or restart")

    def log_eval(elapsed, train_time):
        row = {"step": step, "tokens": step * cfg.batch_size * mcfg.block_size, **evaluate(model, eval_sets)}
        check_finite(row["train_loss"] + row["val_loss"], "evaluation")
        row["val_bpc"] = row["val_loss"] * tokens_per_char / math.log(2)
        row.update(lr=lr_at(step, cfg), elapsed_s=elapsed, train_s=train_time)
        if probe_fn is not None and (step % cfg.probe_interval == 0 or step == cfg.max_steps):
            row.update(probe_fn())
        best_so_far = min((m["val_loss"] for m in metrics), default=float("inf"))
        metrics.append(row)
        utils.write_json(out_dir / "metrics.json", metrics)
        if row["val_loss"] < best_so_far:
            save(best, with_state=False)
        return row

    save_every = cfg.save_interval or cfg.eval_interval
    start_step, t0 = step, time.perf_counter()
    prior = metrics[-1]["elapsed_s"] if metrics else 0.0
    prior_train = metrics[-1].get("train_s", 0.0) if metrics else 0.0
    train_time = 0.0
    if not metrics:
        log_eval(0.0, 0.0)
        save(latest)
    interrupted = False
    model.train()
    bar = tqdm(total=cfg.max_steps, initial=step, desc=cfg.name, disable=not progress, dynamic_ncols=True, mininterval=1.0)
    with _StopFlag() as flag:
        while step < cfg.max_steps:
            if flag.stop:
                interrupted = True
                break
            t_step = time.perf_counter()
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = train_batches.sample(g_batch, device)
            _, loss = model(x, y)
            loss_value = loss.item()
            check_finite(loss_value, "training batch")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            train_time += time.perf_counter() - t_step
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}",
                            tok_s=f"{(step - start_step) * x.numel() / max(train_time, 1e-9):,.0f}")
            if step % cfg.eval_interval == 0 or step == cfg.max_steps:
                row = log_eval(prior + time.perf_counter() - t0, prior_train + train_time)
                bar.write(f"step {step:>6,}: train {row['train_loss']:.3f}  val {row['val_loss']:.3f} "
                          f"nats/token  ({row['val_bpc']:.3f} bits/char)")
            if step % save_every == 0 or step == cfg.max_steps:
                save(latest)
    bar.close()
    if interrupted:
        save(latest)
        print(f"interrupted at step {step:,}: saved {latest}; continue with --resume")
    utils.write_json(out_dir / "metrics.json", metrics)
    curve = None
    if plots_dir is not None and metrics:
        curve = utils.plot_loss_curve(metrics, Path(plots_dir) / f"Loss_Curve_{cfg.name}.png",
                                      title=f"{cfg.name} ({model.num_params()/1e6:.2f}M params, {tok.kind} tokens)")
    sample = None
    if sample_prompt is not None and not interrupted:
        sample = generate_text(model, tok, sample_prompt, 200 if tok.kind == "word" else 600, seed=cfg.seed)
        (out_dir / "sample.txt").write_text(sample + "\n")
    return dict(model=model.eval(), tokenizer=tok, metrics=metrics, latest=latest, best=best,
                loss_curve=curve, sample=sample, interrupted=interrupted, config=cfg)


def generate_text(model: GPT, tok, prompt: str, max_new_tokens: int, temperature: float = 0.8,
                  top_k: int | None = 40, seed: int = 0) -> str:
    """Continue `prompt`; a prompt longer than the context is cropped to its last block_size tokens."""
    device = next(model.parameters()).device
    ids = tok.encode(prompt) or [0]
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    out = model.eval().generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, generator=g)
    return tok.decode(out[0].tolist())


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "novels":
            ap.add_argument(flag, nargs="+", default=None, help=f"novels to train on (default {' '.join(DEFAULT_NOVELS)})")
            continue
        kind = {"int | None": int, "float | None": float, "str | None": str}.get(str(f.type), f.type)
        ap.add_argument(flag, type=kind, default=None,
                        help=f"default: the preset's recipe, else {TrainConfig.__dataclass_fields__[f.name].default}")
    ap.add_argument("--resume", action="store_true", help="continue <out_dir>/latest.pt if it exists")
    ap.add_argument("--overwrite", action="store_true", help="start over even if <out_dir> holds a run")
    ap.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ap.add_argument("--plots-dir", default=str(ROOT / "Plots"), help="where the loss-curve PNG goes (default Plots/)")
    args = ap.parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    return TrainConfig.for_preset(**given), args


def main(argv=None):
    try:
        cfg, args = parse_args(argv)
        result = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                       plots_dir=args.plots_dir)
    except (TrainingError, CheckpointError, ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}")
    last = result["metrics"][-1]
    print(f"step {last['step']:,}: val {last['val_loss']:.3f} nats/token, {last['val_bpc']:.3f} bits/char")
    print(f"checkpoints: {result['latest']} and {result['best']}")
    if result["loss_curve"]:
        print(f"loss curve: {result['loss_curve']}")
    if result["sample"]:
        print("sample:\n" + result["sample"])


if __name__ == "__main__":
    main()
