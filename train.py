"""Train MiniGPT on the Austen corpus, with checkpoints and exact resume.

    python train.py --preset 2M                    # the 2M preset (config.PRESETS) -> checkpoints/MiniGPT-2M/
    python train.py --preset 2M --resume           # continue checkpoints/MiniGPT-2M
    python train.py --preset 2M --n-embd 64        # another run -> checkpoints/MiniGPT-2M-n_embd=64/
    python train.py --preset tiny --max-steps 600 --out-dir runs/tiny   # a run named after its folder: tiny
    torchrun --standalone --nproc_per_node=2 train.py --preset 2M   # 2 processes (DDP), each 4 of the 8 rows
    python train.py --preset 2M --seeds 1337 1 2   # 3 seeds in one process (StackedSeeds), each in its own folder

Every flag overrides one field of the preset's RunConfig (config.py). Batches are random
windows of the training split; AdamW (weight decay on 2-D weights only); linear warmup then
cosine decay to min_lr; gradient clipping. The training step runs in fp32 or under bf16
autocast (--precision; the presets' "auto" picks bf16 where the hardware runs it natively), and under torch.compile
where that pays (--compile, config.pick_compile);
weights, optimizer state, evaluations and probes stay fp32. Every eval_interval steps, train and val loss
(nats/token, on fixed windows) and val bits per character go to <out_dir>/metrics.json.
<out_dir>/latest.pt (every save_interval steps, and on Ctrl-C) holds everything needed to
continue the run bit-for-bit: weights, optimizer, step, RNG states; <out_dir>/best.pt holds
the best-val weights so far. The loss curve goes to Plots/<name>/.

Under torchrun each process trains on its rows of the same global batch (batch_size rows, split evenly) with
DistributedDataParallel (gloo on CPU, nccl on GPUs); rank 0 alone evaluates, logs and writes checkpoints, and
--resume continues the run under torchrun or without it (the batch stream is the same).
"""
INTERRUPTED = 130  # the exit status after Ctrl-C (the shell's 128 + SIGINT); latest.pt holds the last saved step

if __name__ == "__main__":  # Ctrl-C while the imports load is noted, and acted on once they have loaded:
    # raised inside them it can be lost (torch's C init imports numpy and clears any error that import raises)
    import signal
    _CTRL_C_WHILE_IMPORTING = []
    signal.signal(signal.SIGINT, lambda *_: _CTRL_C_WHILE_IMPORTING.append(True))

import argparse
import dataclasses
import fcntl
import math
import os
import shlex
import signal
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

import utils
from checkpoint import (CheckpointError, check_name, check_vocabulary, check_weights, check_writable,
                        claim_plots, load_checkpoint, output_path, portable, run_command, save_checkpoint,
                        write_file, write_record)
from config import (CHECKPOINTS, LAST_RUN, ConfigError, RunConfig, _same, add_arguments, given, pick_compile,
                    pick_device, pick_precision, run_config)
from corpus import CorpusError, load_corpus
from prepare import encode_splits, prepare
from induction import ProbeError, split_windows
from samples import SampleError, held_out_samples
from training_log import MetricsRow, TrainingProbe, metrics_of
from tokenizer import Tokenizer, TokenizerError
from TransformerModel import GPT


class TrainingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job; rank 0 of 1 without torchrun."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:  # the one process that evaluates and writes files
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """True on every process if it is True on any (all of them stop at the same step)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)])
        dist.all_reduce(t)
        return bool(t.item())


def init_distributed(device: str) -> Dist:
    """Join the process group when torchrun started us (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return Dist(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))


def end_distributed(run: "Run"):
    """Wait for every process, then free DDP before main() destroys the process group.

    Without this, a process whose gloo threads outlived destroy_process_group could abort at interpreter exit
    ("terminate called without an active exception", exit -6): 3 of 26 torchrun runs of the tiny preset beside four
    busy loops on 2 cores, 0 of 30 with it. The barrier keeps the others from tearing down while rank 0 still writes
    its sample and loss curve; DDP's reducer holds the process group.
    """
    dist.barrier()
    run.ddp = None


class LossOnly(torch.nn.Module):
    """GPT.loss as a module's forward: DistributedDataParallel averages gradients only around forward calls."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        return self.model.loss(x, y)


def repeat_frac_at(step: int, cfg: RunConfig) -> float:
    """The share of repeated windows at a step: repeat_frac throughout, or falling linearly to repeat_floor at
    repeat_end."""
    if cfg.repeat_end is None:
        return cfg.repeat_frac
    left = max(0.0, 1 - step / (cfg.repeat_end * cfg.max_steps))
    return cfg.repeat_floor + (cfg.repeat_frac - cfg.repeat_floor) * left


def lr_at(step: int, cfg: RunConfig) -> float:
    """Linear warmup to lr, then cosine decay to min_lr at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def probe_steps(cfg: RunConfig) -> set[int]:
    """The steps at which induction probes are logged: every probe_interval steps, probes_per_decade log-spaced steps
    per decade (1, 1.26, 1.58, ... x 10^k at 10 per decade, rounded), and the first and last step if any."""
    n = cfg.probes_per_decade
    steps = set(range(cfg.probe_interval, cfg.max_steps + 1, cfg.probe_interval)) if cfg.probe_interval else set()
    if n:
        steps |= {round(10 ** (k / n)) for k in range(int(n * math.log10(cfg.max_steps)) + 1)}
    return steps | {0, cfg.max_steps} if steps else steps


def make_optimizer(model: GPT, cfg: RunConfig, device: str):
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

    relabel_repeats / relabel_natural > 0: that share of the periodic / the other windows has
    its token ids mapped through a fresh random permutation of the vocabulary, one per window.
    A token that recurs in the window still recurs, but what follows it can be known only
    from the window itself, never from the weights: repeats that teach copying without
    teaching that Austen's text repeats (issue #44). Without either, no random number is
    drawn for it, so every earlier run's batches are unchanged.

    Under torchrun (world > 1) every process draws the same global batch and keeps its own
    batch_size // world rows, so the job trains on exactly the batches of a single process.
    """

    def __init__(self, tokens: torch.Tensor, block_size: int, batch_size: int, repeat_frac: float = 0.0,
                 rank: int = 0, world: int = 1, relabel_repeats: float = 0.0, relabel_natural: float = 0.0,
                 vocab_size: int | None = None):
        if len(tokens) <= block_size + 1:
            raise TrainingError(f"a split of the corpus has {len(tokens):,} tokens, too few for windows of "
                                f"block_size {block_size:,}; use a block_size below {len(tokens) - 1:,}")
        if batch_size % world:
            raise TrainingError(f"batch_size {batch_size} does not split evenly over {world} processes; use a "
                                f"--batch-size divisible by torchrun's --nproc_per_node")
        self.windows = tokens.unfold(0, block_size + 1, 1)  # (N, T+1), a view: no copy
        self.batch_size, self.repeat_frac = batch_size, repeat_frac
        self.rows = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
        self.relabel = (relabel_repeats, relabel_natural)
        if any(self.relabel) and (vocab_size is None or vocab_size <= int(tokens.max())):
            raise TrainingError(f"relabelling permutes the vocabulary: give its vocab_size (above the largest token "
                                f"id, {int(tokens.max())}), got {vocab_size!r}")
        self.vocab_size = vocab_size

    def sample(self, generator: torch.Generator, device: str, repeat_frac: float | None = None):
        """repeat_frac: this batch's share of repeated windows (a schedule's current value; None: the constructor's)."""
        repeat_frac = self.repeat_frac if repeat_frac is None else repeat_frac
        ix = torch.randint(len(self.windows), (self.batch_size,), generator=generator)
        w = self.windows[ix]  # (B, T+1), a copy
        rows = torch.zeros(self.batch_size, dtype=torch.bool)  # the periodic windows
        if repeat_frac > 0:
            n = w.shape[1]
            rows = torch.rand(self.batch_size, generator=generator) < repeat_frac
            period = torch.randint(min(8, n // 2), n // 2 + 1, (self.batch_size, 1), generator=generator)
            src = torch.arange(n) % period  # (B, T+1): index of the token each position copies
            w = torch.where(rows[:, None], w.gather(1, src), w)
        if any(self.relabel):
            share = torch.where(rows, *self.relabel)  # (B,)
            chosen = torch.rand(self.batch_size, generator=generator) < share
            perms = torch.rand(int(chosen.sum()), self.vocab_size, generator=generator).argsort(dim=1)  # (n, V)
            w[chosen] = perms.gather(1, w[chosen])  # token t of window i becomes perms[i, t]
        w = w[self.rows].to(device, non_blocking=True)  # this process's rows (all of them without torchrun)
        return w[:, :-1], w[:, 1:]


@contextmanager
def deterministic_kernels(device: str):
    """Compiled kernels that give the same bits on every run. Inductor's CPU kernels otherwise sum some gradients in a
    thread-dependent order: two compiled runs of the 2M preset at 2 threads ended 1,500 steps at training losses 4.807
    and 4.766 (an Intel Xeon with AMX, bf16; fp32 differs too), where eager and 1-thread runs match bit for bit.
    Deterministic mode cost no measurable speed there (interleaved, 4 rounds: medians 13,400 against 12,600 tokens/s
    without, within the machine's noise). On CUDA it would also need CUBLAS_WORKSPACE_CONFIG: left to the user."""
    before = torch.are_deterministic_algorithms_enabled()
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@contextmanager
def locked(out_dir: Path):
    """Hold an exclusive lock on <out_dir>/.lock: a second run on the same directory is refused and touches nothing.

    Holding it, check that checkpoints can be written (before the first step, not after an hour) and remove the
    half-written saves of a killed run.
    """
    def unwritable(e: OSError):
        return TrainingError(f"cannot write checkpoints to {out_dir}: {e.strerror}; pick a writable --out-dir")

    output_path(out_dir, what="run directory")  # before anything is created: no .lock in the reference results
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = open(out_dir / ".lock", "a")
    except OSError as e:
        raise unwritable(e) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrainingError(f"{out_dir} is in use by another training run; wait for it to finish or choose "
                                f"another --out-dir") from None
        try:
            (out_dir / ".write-test").write_bytes(b"ok")
            (out_dir / ".write-test").unlink()
            for stale in out_dir.glob(".*.tmp"):  # half-written by a killed run (checkpoints, metrics, plots); the
                stale.unlink()                  # lock says no other writer is here
        except OSError as e:
            raise unwritable(e) from None
        yield  # the lock goes with the file when it closes, also if this process is killed


@dataclass
class Run:
    """Everything a training run holds between steps."""
    cfg: RunConfig
    model: GPT
    optimizer: torch.optim.Optimizer
    tokenizer: Tokenizer
    batches: Batches
    eval_sets: dict            # split -> fixed [(x, y), ...]
    g_batch: torch.Generator   # the batch stream's RNG: saved and restored for exact resume
    tokens_per_char: float     # converts nats/token to bits/char
    probe: TrainingProbe | None
    dist: Dist = Dist()
    ddp: DDP | None = None     # under torchrun: the model's loss wrapped for gradient averaging
    loss_fn: object = None     # the training step's loss under torch.compile (config.pick_compile), else None
    step: int = 0
    metrics: list[MetricsRow] = field(default_factory=list)

    @property
    def latest(self) -> Path:
        return self.cfg.run_dir / "latest.pt"

    @property
    def best(self) -> Path:
        return self.cfg.run_dir / "best.pt"


def start_run(cfg: RunConfig, resume: bool = False, overwrite: bool = False, proc: Dist = Dist()) -> Run:
    """A new run, or the one in cfg.run_dir continued exactly where its latest.pt left off.

    Call it holding the run directory's lock (`locked`), as train() does. Under torchrun (proc.world > 1) every
    process calls it; they read the same files and build the same model.
    """
    out_dir = cfg.run_dir
    latest = out_dir / "latest.pt"
    device = pick_device(cfg.device)
    auto = cfg.precision == "auto"
    # the checkpoint records which precision "auto" chose; the folder stays the one the run's settings name
    cfg = dataclasses.replace(cfg, precision=pick_precision(cfg.precision, device), out_dir=str(out_dir))
    if device == "cuda" and proc.world > 1:
        device = f"cuda:{proc.local_rank}"
        torch.cuda.set_device(device)
    ckpt = None
    leftovers = [f.name for f in (out_dir / "best.pt", out_dir / "metrics.json") if f.exists()]
    if not latest.exists() and leftovers and not overwrite:
        raise TrainingError(f"{out_dir} holds {' and '.join(leftovers)} of a run but no resumable latest.pt, so it "
                            f"cannot be continued; choose another --out-dir, or pass --overwrite to replace it")
    if latest.exists():
        if resume:
            ckpt = load_checkpoint(latest)
            if "optimizer" not in ckpt or "rng" not in ckpt:
                raise CheckpointError(f"{latest} holds weights only (no optimizer or RNG state), so it cannot be "
                                      f"resumed; start a new run with another --out-dir")
            try:
                old = RunConfig.from_checkpoint(ckpt)
            except ConfigError as e:
                raise CheckpointError(f"{latest}: {e}") from None
            if auto and cfg.precision != old.precision:  # a run keeps the precision it began in, on any machine
                cfg = dataclasses.replace(cfg, precision=old.precision)
                if proc.main:
                    print(f"note: this run began in {cfg.precision}, which it keeps, though auto would pick "
                          f"{pick_precision('auto', device)} on this machine"
                          + (" (bf16 is emulated here, about 15x slower)" if cfg.precision == "bf16" else ""))
            theirs = old.identity()
            diff = [f"{k}: {theirs[k]!r} -> {v!r}" for k, v in cfg.identity().items() if _same(theirs[k]) != _same(v)]
            if diff:
                raise CheckpointError(f"cannot resume {latest}: the run's settings differ ({'; '.join(diff)}); "
                                      f"use the same settings or a new --out-dir")
            step = ckpt.get("step")
            if not isinstance(step, int) or step < 0:
                raise CheckpointError(f"{latest} records step {step!r}, not an integer >= 0: the file was edited or "
                                      f"is damaged; start a new run with another --out-dir")
            if step > cfg.max_steps:
                raise TrainingError(f"{latest} is at step {step:,}, beyond --max-steps {cfg.max_steps:,}; pass "
                                    f"--max-steps {step:,} or more to continue it")
        elif not overwrite:
            raise TrainingError(f"{out_dir} already holds a run (latest.pt); pass --resume to continue it, "
                                f"--overwrite to start over, or choose another --out-dir")
    elif resume and proc.main:
        print(f"no checkpoint in {out_dir}; starting a new run")
    if cfg.warmup_steps > cfg.max_steps and proc.main:
        print(f"note: warmup_steps {cfg.warmup_steps:,} exceeds max_steps {cfg.max_steps:,}, so the learning rate "
              f"never reaches its peak {cfg.lr:g}")
    torch.manual_seed(cfg.seed)
    corpus = load_corpus(cfg.novels, cfg.held_out)
    tok = prepare(corpus, cfg.tokenizer, cfg.vocab_size)
    if ckpt is not None:
        check_vocabulary(latest, ckpt, tok)
    check_memory(cfg, tok.vocab_size)
    train_tokens, val_tokens = encode_splits(tok, corpus)  # each (N,)
    batches = Batches(train_tokens, cfg.block_size, cfg.batch_size, cfg.repeat_frac, proc.rank, proc.world,
                      cfg.relabel_repeats, cfg.relabel_natural, tok.vocab_size)  # checks sizes
    # Fixed evaluation windows, drawn from their own generator so evaluation never
    # perturbs the training RNG stream (exact resume depends on that).
    g_eval = torch.Generator().manual_seed(cfg.seed + 1)
    if cfg.eval_batches is None:  # the validation split in full; as many random windows of the training split
        w = split_windows(val_tokens, cfg.block_size).to(device)  # (N, T+1)
        eval_sets = {"val": [(b[:, :-1], b[:, 1:]) for b in w.split(cfg.batch_size)]}
        eval_sets = {"train": [Batches(train_tokens, cfg.block_size, len(b[0])).sample(g_eval, device)
                               for b in eval_sets["val"]], **eval_sets}
    else:
        eval_sets = {split: [Batches(t, cfg.block_size, cfg.batch_size).sample(g_eval, device)
                             for _ in range(cfg.eval_batches)]
                     for split, t in (("train", train_tokens), ("val", val_tokens))}
    model = GPT(cfg.model_config(tok.vocab_size)).to(device)
    if proc.rank:  # dropout masks differ between processes (a single process would draw them for all rows)
        torch.manual_seed(cfg.seed + proc.rank)
    run = Run(cfg, model, make_optimizer(model, cfg, device), tok, batches, eval_sets,
              torch.Generator().manual_seed(cfg.seed), len(val_tokens) / len(corpus.val),
              TrainingProbe(model, train_tokens, val_tokens, tok) if probe_steps(cfg) and proc.main else None, proc)
    if ckpt is not None:
        restore(run, ckpt, latest)
        per_rank = ckpt["rng"].get("torch_per_rank", [ckpt["rng"]["torch"]])
        if proc.rank < len(per_rank):
            torch.set_rng_state(per_rank[proc.rank])
        if proc.main:
            print(f"resuming {latest} at step {run.step:,}")
    if proc.world > 1:  # after loading: DDP starts every process from rank 0's weights
        run.ddp = DDP(LossOnly(model), device_ids=[proc.local_rank] if device.startswith("cuda") else None)
    return run


def restore(run: Run, ckpt: dict, path: Path):
    """Load a resumable checkpoint's weights, optimizer, metrics and RNG state, each checked first (an edited or
    damaged file is refused with its reason, never trained on)."""
    damaged = "the file was edited or is damaged. Start a new run with another --out-dir"
    check_weights(path, ckpt["model"], run.model.config)
    if not optimizer_fits(ckpt["optimizer"], run.optimizer):
        raise CheckpointError(f"{path}: its optimizer state does not fit the model's parameters or is not finite; "
                              f"{damaged}")
    size = torch.Generator().get_state().shape
    if not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.shape == size
               for t in (ckpt["rng"].get("batch"), ckpt["rng"].get("torch"))):
        raise CheckpointError(f"{path}: its RNG state is not a generator state, so the run cannot continue exactly; "
                              f"{damaged}")
    try:
        metrics = metrics_of(ckpt)
        steps_ok = all(isinstance(m.step, int) and 0 <= m.step <= ckpt["step"] for m in metrics)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        steps_ok = False
    if not steps_ok:
        raise CheckpointError(f"{path}: its metrics are not a training log; {damaged}")
    run.model.load_state_dict(ckpt["model"])
    try:
        run.optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its optimizer state cannot be restored ({e}); {damaged}") from None
    run.step, run.metrics = ckpt["step"], metrics
    run.g_batch.set_state(ckpt["rng"]["batch"])  # the global batch stream: the same for any process count


def optimizer_fits(saved: dict, optimizer: torch.optim.Optimizer) -> bool:
    """A saved AdamW state has our parameter groups, and moments of each parameter's shape, all finite."""
    groups = saved.get("param_groups")
    if not (isinstance(groups, list) and len(groups) == len(optimizer.param_groups)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
            and [len(g["params"]) for g in groups] == [len(g["params"]) for g in optimizer.param_groups]):
        return False
    state = saved.get("state", {})
    ours = (p for g in optimizer.param_groups for p in g["params"])
    for pid, p in zip((i for g in groups for i in g["params"]), ours):
        moments = state.get(pid, {})
        if not isinstance(moments, dict):
            return False
        for t in (moments.get("exp_avg"), moments.get("exp_avg_sq")):  # absent before the parameter's first step
            if t is not None and not (isinstance(t, torch.Tensor) and t.shape == p.shape and torch.isfinite(t).all()):
                return False
    return True


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(cfg: RunConfig, vocab_size: int, limit_share: float = 0.8):
    """Refuse a run whose estimated memory exceeds 80% of this machine's before anything large is allocated: the
    training state (weights, gradients, AdamW: 16 bytes a parameter), a step's activations, the fixed evaluation
    windows. The estimate is rough (within 2x); it catches a typo's 100x, not a tight fit."""
    C, L, H, T, B = cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.block_size, cfg.batch_size
    params = vocab_size * C + T * C + L * (12 * C * C + 13 * C)
    activations = B * T * (L * (34 * C + 3 * H * T) + 4 * C) * 4   # fp32, what backward keeps
    eval_windows = 2 * (cfg.eval_batches or 0) * B * (T + 1) * 8
    need = 16 * params + activations + eval_windows
    have = physical_memory()
    if have and need > limit_share * have:
        raise ConfigError(f"this run needs about {need / 2**30:.1f} GiB (parameters {params / 1e6:.1f}M, batch "
                          f"{B} x {T} tokens, {cfg.eval_batches or 0} evaluation batches), more than "
                          f"{limit_share:.0%} of this machine's {have / 2**30:.1f} GiB; lower --batch-size, "
                          f"--block-size or --eval-batches")


def train_step(model: GPT | DDP, optimizer, x, y, lr: float, grad_clip: float, precision: str = "fp32",
               loss_fn=None) -> float:
    """One optimizer step on the batch (x, y); returns its loss. This is the step bench/bench.py times.

    precision "bf16": the forward and backward matmuls run under bf16 autocast; the weights, their
    gradients, AdamW's state and the loss stay fp32. A non-finite loss is returned without touching the weights.
    Under torchrun `model` is the DDP-wrapped LossOnly: backward averages the gradients over the processes, and the
    loss returned is the whole batch's (the mean of the processes' equal shares), the same on every process.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(x, y) if isinstance(model, DDP) else (loss_fn or model.loss)(x, y)
    if isinstance(model, DDP):
        total = loss.detach().clone()
        dist.all_reduce(total)
        loss_value = total.item() / dist.get_world_size()
    else:
        loss_value = loss.item()
    if not math.isfinite(loss_value):
        return loss_value
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss_value


@torch.no_grad()
def evaluate(model: GPT, eval_sets: dict) -> dict:
    """Mean loss (nats/token) on each split's fixed windows: {"train": ..., "val": ...}."""
    was_training = model.training
    model.eval()
    out = {}
    for split, batches in eval_sets.items():  # weighted by tokens: the last batch of a full split may be short
        losses = [model.loss(x, y).item() * x.numel() for x, y in batches]
        out[split] = sum(losses) / sum(x.numel() for x, _ in batches)
    model.train(was_training)
    return out


def save(run: Run, path: Path, resumable: bool = True):
    """Write a checkpoint of the run; weights that are not finite are never written.

    Under torchrun every process calls it for a resumable save (they hand rank 0 their RNG states); rank 0 writes.
    """
    rng = None
    if resumable:
        per_rank = [torch.get_rng_state()]
        if run.dist.world > 1:
            per_rank = [None] * run.dist.world if run.dist.main else None
            dist.gather_object(torch.get_rng_state(), per_rank)
        rng = {"batch": run.g_batch.get_state(), "torch": per_rank[0] if run.dist.main else None,
               **({"torch_per_rank": per_rank} if run.dist.world > 1 else {})}
    if not run.dist.main:
        return
    if not all(torch.isfinite(p).all() for p in run.model.parameters()):
        check_finite(run, float("nan"), f"weights before saving {path.name}")
    try:
        save_checkpoint(path, run.model, run.tokenizer, train_config=dataclasses.asdict(run.cfg), step=run.step,
                        metrics=run.metrics, optimizer=run.optimizer if resumable else None, rng=rng)
    except OSError as e:  # e.g. a full disk: the previous file is intact (atomic save)
        raise TrainingError(f"cannot write {path}: {e.strerror}; the previous {path.name} is intact. Free some "
                            f"space, then continue with --resume") from None


def check_finite(run: Run, value: float, where: str):
    if not math.isfinite(value):
        saved = load_checkpoint(run.latest)["step"] if run.latest.exists() else 0
        raise TrainingError(f"loss became {value} at step {run.step} ({where}); training stopped. The last good "
                            f"checkpoint is {run.latest} (step {saved}). Start a new run with another --out-dir "
                            f"and a lower --lr (now {run.cfg.lr}) or more --warmup-steps (now {run.cfg.warmup_steps})")


def log_eval(run: Run, elapsed_s: float, train_s: float) -> MetricsRow:
    """Evaluate, append a metrics row (with induction probes when due), keep best.pt."""
    cfg = run.cfg
    loss = evaluate(run.model, run.eval_sets)
    check_finite(run, loss["train"] + loss["val"], "evaluation")
    probes = run.probe() if run.probe and run.step in probe_steps(cfg) else {}
    row = MetricsRow(run.step, run.step * cfg.tokens_per_step, loss["train"], loss["val"],
                     loss["val"] * run.tokens_per_char / math.log(2), lr_at(run.step, cfg), elapsed_s, train_s, probes,
                     cfg.precision)
    is_best = all(row.val_loss < m.val_loss for m in run.metrics)
    run.metrics.append(row)
    write_record(cfg.run_dir / "metrics.json", "metrics", run.metrics)
    if is_best:
        save(run, run.best, resumable=False)
    return row


@dataclass
class TrainResult:
    model: GPT = field(repr=False)
    tokenizer: Tokenizer = field(repr=False)
    metrics: list[MetricsRow] = field(repr=False)
    latest: Path
    best: Path
    loss_curve: Path | None
    sample: str | None
    interrupted: bool
    config: RunConfig

    def __str__(self):
        last = self.metrics[-1]
        lines = [f"{last} after {last.tokens / 1e6:.2f}M tokens, {last.train_s / 60:.1f} min of training",
                 f"checkpoints: {self.latest} (resumable) and {self.best} (best validation loss)"]
        if self.loss_curve:
            lines.append(f"loss curve: {portable(self.loss_curve)}")
        if self.sample:
            lines.append("sample:\n" + self.sample)
        return "\n".join(lines)


class _StopFlag:
    """SIGINT sets a flag that the loop checks between steps, so Ctrl-C never lands mid-update.

    Under torchrun (patient=True) SIGTERM does too, and a repeated signal is not a second Ctrl-C: torchrun passes
    the user's Ctrl-C on to its workers, who then still need a moment to agree on the step and save.
    """

    def __init__(self, patient: bool = False):
        self.stop, self.patient = False, patient
        self.signals = (signal.SIGINT, signal.SIGTERM) if patient else (signal.SIGINT,)

    def __enter__(self):
        try:
            self.previous = {s: signal.signal(s, self._handle) for s in self.signals}
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self.previous = {}
        return self

    def _handle(self, signum, frame):
        if self.stop and not self.patient:  # a second Ctrl-C: give up on saving
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def train(cfg: RunConfig, resume: bool = False, overwrite: bool = False, progress: bool = True,
          samples: bool = True, plots_dir: str | Path | bool | None = True) -> TrainResult:
    """Run (or continue) training; the run directory is locked while it runs. Under torchrun every process calls
    it: rank 0 holds the lock, evaluates and writes; all of them step together.

    samples: at the end, two samples from held-out prompts into sample.txt (samples.held_out_samples).
    plots_dir: the loss curve's folder; True: the run's own, Plots/<name>/; None or False: no loss curve.
    """
    return _train([cfg], resume, overwrite, progress, samples, plots_dir)[0]


def train_seeds(cfgs: list[RunConfig], resume: bool = False, overwrite: bool = False, progress: bool = True,
                samples: bool = True) -> list[TrainResult]:
    """Train several seeds of one configuration in one process (StackedSeeds); each seed's run folder, loss curve,
    checkpoints, metrics, probes and sample are those a single run of that seed writes (seed_configs)."""
    return _train(cfgs, resume, overwrite, progress, samples, True)


def seed_configs(preset: str, seeds, **overrides) -> list[RunConfig]:
    """The configuration of each seed's single run: run_config(preset, seed=s, **overrides), its own folder and name."""
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise TrainingError(f"--seeds takes two or more different seeds, got {seeds}")
    if overrides.get("out_dir") or overrides.get("name"):
        raise TrainingError("--seeds trains one folder per seed, named as its single run would be: leave out "
                            "--out-dir and --name")
    cfgs = [run_config(preset, **overrides, seed=s) for s in seeds]
    if any(c.dropout for c in cfgs):
        raise TrainingError("--seeds needs dropout 0: under vmap each seed's dropout masks would come from one stream, "
                            "so a seed would no longer follow its single run")
    return cfgs


def _train(cfgs: list[RunConfig], resume, overwrite, progress, with_samples, plots_dir) -> list[TrainResult]:
    """The training loop of one run, or of several seeds stacked (len(cfgs) > 1)."""
    proc = init_distributed(pick_device(cfgs[0].device))
    if len(cfgs) > 1 and proc.world > 1:
        raise TrainingError("--seeds trains in one process; run it without torchrun")
    curve_paths = []
    for cfg in cfgs:
        curve_path, folder = None, cfg.plots_dir if plots_dir is True else plots_dir
        if folder and proc.main:  # checked now, not after an hour of training
            check_writable(folder, "loss curve")
            if plots_dir is True:  # Plots/<name>/: this run's alone
                claim_plots(folder, cfg.run_dir)
            curve_path = output_path(Path(folder) / f"Loss_Curve_{check_name(cfg.name)}.png", folder, "loss curve")
        curve_paths.append(curve_path)
    with ExitStack() as held:
        if proc.main:
            for cfg in cfgs:
                held.enter_context(locked(cfg.run_dir))
        runs = [start_run(cfg, resume, overwrite, proc) for cfg in cfgs]
        if len({r.step for r in runs}) > 1:
            steps = ", ".join(f"{r.cfg.name}: {r.step:,}" for r in runs)
            raise TrainingError(f"the seeds' runs are at different steps ({steps}); resume each alone to the same "
                                f"step, or start them over with --overwrite")
        cfg = runs[0].cfg  # the shared settings, with "auto" precision resolved
        device = next(runs[0].model.parameters()).device.type
        compile_ = proc.world == 1 and pick_compile(cfg, cfg.precision, device)
        if compile_ and proc.main:
            print(f"the training step runs under torch.compile (--compile {cfg.compile}): about 40 s of compiling "
                  f"at the first steps; --compile off to skip it")
        if compile_:  # kernels are generated at the first steps, inside this block
            held.enter_context(deterministic_kernels(device))
        stack = StackedSeeds(runs, compile_) if len(runs) > 1 else None
        if compile_ and stack is None:  # evaluation stays eager (its batches vary in size)
            runs[0].loss_fn = torch.compile(runs[0].model.loss)
        for run in runs:
            if proc.main and run.cfg.run_dir.resolve().parent == CHECKPOINTS:  # what InductionHeads.ipynb studies
                write_file(LAST_RUN, (run.cfg.run_dir.name + "\n").encode(), "the last run's name")
        prior = [(r.metrics[-1].elapsed_s, r.metrics[-1].train_s) if r.metrics else (0.0, 0.0) for r in runs]
        t0, train_s, start_step = time.perf_counter(), 0.0, runs[0].step
        for run in runs:
            if not run.metrics:
                if proc.main:
                    log_eval(run, 0.0, 0.0)
                _save(run, stack)
        bar = tqdm(total=cfg.max_steps, initial=start_step, desc=cfg.name if stack is None else f"{len(runs)} seeds",
                   disable=not (progress and proc.main), dynamic_ncols=True, mininterval=1.0)
        evals = probe_steps(cfg) | set(range(cfg.eval_interval, cfg.max_steps + 1, cfg.eval_interval)) | {cfg.max_steps}
        for run in runs:
            run.model.train()
        with _StopFlag(patient=proc.world > 1) as flag:
            while runs[0].step < cfg.max_steps and not proc.any(flag.stop):  # all processes stop at one step
                t_step = time.perf_counter()
                step, lr = runs[0].step, lr_at(runs[0].step, cfg)
                batches = [r.batches.sample(r.g_batch, device, repeat_frac_at(step, cfg)) for r in runs]
                if stack is None:
                    run = runs[0]
                    losses = [train_step(run.ddp or run.model, run.optimizer, *batches[0], lr, cfg.grad_clip,
                                         cfg.precision, run.loss_fn)]
                else:
                    losses = stack.step(batches, lr, cfg.grad_clip, cfg.precision)
                for run, loss in zip(runs, losses):
                    check_finite(run, loss, "training batch")
                    run.step += 1
                train_s += time.perf_counter() - t_step
                bar.update(1)
                bar.set_postfix(loss="/".join(f"{x:.3f}" for x in losses),
                                tok_s=f"{(runs[0].step - start_step) * cfg.tokens_per_step * len(runs) / train_s:,.0f}")
                for run, (elapsed, trained) in zip(runs, prior):
                    if proc.main and run.step in evals:
                        row = log_eval(run, elapsed + time.perf_counter() - t0, trained + train_s)
                        bar.write(str(row) if stack is None else f"{run.cfg.name}: {row}")
                    if run.step % (cfg.save_interval or cfg.eval_interval) == 0 or run.step == cfg.max_steps:
                        _save(run, stack)
        bar.close()
        stopped = runs[0].step < cfg.max_steps  # by Ctrl-C (or torchrun passing one on)
        samples = [None] * len(runs)
        for i, run in enumerate(runs):
            if stopped:
                _save(run, stack)
                if proc.main:
                    print(f"interrupted at step {run.step:,}: saved {run.latest}; continue with --resume")
            elif with_samples and proc.main:
                val_text = load_corpus(run.cfg.novels, run.cfg.held_out).val
                try:
                    samples[i] = str(held_out_samples(run.model, run.tokenizer, val_text))
                except SampleError as e:  # e.g. a validation text shorter than a prompt: the run itself is fine
                    print(f"no sample: {e}")
                    continue
                write_file(run.cfg.run_dir / "sample.txt", (samples[i] + "\n").encode(), "sample")
    results = []
    for run, curve_path, sample in zip(runs, curve_paths, samples):
        curve = None
        if curve_path is not None:
            curve = utils.plot_loss_curve(run.metrics, curve_path,
                                          f"{run.cfg.name} ({run.model.num_params() / 1e6:.2f}M params, "
                                          f"{run.tokenizer.kind} tokens)")
        results.append(TrainResult(run.model.eval(), run.tokenizer, run.metrics, run.latest, run.best, curve, sample,
                                   stopped, run.cfg))
    if proc.world > 1:
        end_distributed(runs[0])
    return results


def _save(run: Run, stack: "StackedSeeds | None"):
    """save(run, run.latest), after handing a stacked run its own slice of the optimizer's state."""
    if stack is not None:
        stack.unstack_optimizer(run)
    save(run, run.latest)


# ---- several seeds in one process ---------------------------------------------------------------------------

class _SeedLoss(torch.nn.Module):
    """GPT.loss for torch.vmap: the same loss with the logits materialised (vmap cannot run the chunked loss, whose
    gradient is written by hand); under autocast the logits go to fp32 first, as the chunked loss does."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, x, y):  # x, y: (B, T) of one seed
        m = self.model
        logits = m.lm_head(m.ln_final(m.run_blocks(m.embed(x))))           # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())


class StackedSeeds:
    """The runs of several seeds of one configuration, their parameters stacked on a leading seed dimension (S, ...)
    and trained by one vmapped step (torch.func.functional_call + vmap over the one model class).

    Each run's model holds views into the stack, so its evaluation, probes, samples and checkpoints are a single run's
    code, unchanged. Each seed draws its own batches from its own generator, clips its own gradient norm and keeps its
    own AdamW state (the stacked state's slice), so in fp32 it follows its single run within float rounding.
    """

    def __init__(self, runs: list[Run], compiled: bool = False):
        self.runs = runs
        self.model = runs[0].model  # the module whose code vmap runs, on the stacked parameters
        loss_of = _SeedLoss(self.model)
        self.losses = torch.vmap(lambda params, x, y: functional_call(loss_of, params, (x, y)))  # -> (S,)
        if compiled:  # where a single run's loss is (config.pick_compile): 1.5-1.7x the eager stack's tokens/s in
            self.losses = torch.compile(self.losses)  # bf16 (bench, an EPYC with avx512_bf16)
        self.names = [n for n, _ in self.model.named_parameters()]
        self.params = {n: torch.stack([r.model.get_parameter(n).detach() for r in runs]).requires_grad_()
                       for n in self.names}                                   # each (S, *shape)
        for i, r in enumerate(runs):
            for n in self.names:
                r.model.get_parameter(n).data = self.params[n].data[i]       # a view: the seed's slice
        cfg, device = runs[0].cfg, self.params[self.names[0]].device.type
        decay = [p for p in self.params.values() if p.dim() >= 3]            # as make_optimizer: matrices decay
        no_decay = [p for p in self.params.values() if p.dim() < 3]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                                           betas=(0.9, cfg.beta2), fused=device in ("cpu", "cuda"))
        self.stack_optimizer()

    def stack_optimizer(self):
        """The stacked AdamW state from each run's own (restored from its latest.pt on resume; empty when new)."""
        for n in self.names:
            states = [r.optimizer.state.get(r.model.get_parameter(n)) for r in self.runs]
            if all(states):
                self.optimizer.state[self.params[n]] = {
                    k: v.clone() if k == "step" else torch.stack([s[k] for s in states]) for k, v in states[0].items()}

    def unstack_optimizer(self, run: Run):
        """The run's own AdamW state and learning rate: its slice of the stacked ones (what its checkpoint saves)."""
        lr = self.optimizer.param_groups[0]["lr"]
        for i, r in ((i, r) for i, r in enumerate(self.runs) if r is run):
            for group in r.optimizer.param_groups:
                group["lr"] = lr
            for n in self.names:
                state = self.optimizer.state.get(self.params[n])
                if state:
                    r.optimizer.state[r.model.get_parameter(n)] = {k: v.clone() if k == "step" else v[i].clone()
                                                                   for k, v in state.items()}

    def step(self, batches, lr: float, grad_clip: float, precision: str) -> list[float]:
        """One optimizer step of every seed on its own batch (x, y); returns each seed's loss (as train_step)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = torch.stack([b[0] for b in batches])                             # (S, B, T)
        y = torch.stack([b[1] for b in batches])
        kernels = [b.attn.attention for b in self.model.blocks]
        for b in self.model.blocks:  # vmap has no batching rule for the fused attention kernel: it would loop
            b.attn.attention = "explicit"
        try:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"), \
                    self.model.unchecked_ids():
                losses = self.losses({f"model.{n}": p for n, p in self.params.items()}, x, y)  # (S,)
        finally:
            for b, kernel in zip(self.model.blocks, kernels):
                b.attn.attention = kernel
        values = losses.tolist()
        if not all(math.isfinite(v) for v in values):
            return values
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the seeds' graphs are independent: each slice gets its own seed's gradient
        grads = [p.grad for p in self.params.values()]
        norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (S,) as clip_grad_norm_
        scale = (grad_clip / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
        self.optimizer.step()
        return values


ERRORS = (TrainingError, CheckpointError, ConfigError, CorpusError, TokenizerError, ProbeError, SampleError)


def parse_args(argv=None) -> tuple[RunConfig, argparse.Namespace]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap, RunConfig, defaults_from="the preset")
    ap.add_argument("--resume", action="store_true", help="continue <out_dir>/latest.pt if it exists")
    ap.add_argument("--overwrite", action="store_true", help="start over even if <out_dir> holds a run")
    ap.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ap.add_argument("--plots-dir", help="where the loss-curve PNG goes (default: the run's own, Plots/<name>/)")
    ap.add_argument("--seeds", nargs="+", metavar="SEED", help="train these seeds of the configuration in one "
                    "process (stacked), each into the folder its single run would use; integers, or one string of them "
                    "(make's SEEDS)")
    ap.add_argument("--args", default="", help="more of these flags in one string, split into words as a shell "
                    "would but never run by one (make's TRAIN_ARGS)")
    args = ap.parse_args(argv)
    if args.args:
        try:
            extra = shlex.split(args.args)
        except ValueError as e:  # e.g. an unclosed quote
            ap.error(f"--args {args.args!r}: {e}")
        args = ap.parse_args([*(sys.argv[1:] if argv is None else argv), *extra])
    overrides = given(args, RunConfig)
    return run_config(overrides.pop("preset", "2M"), **overrides), args


def main(argv=None):
    try:
        cfg, args = parse_args(argv)
        if args.seeds:
            overrides = given(args, RunConfig)
            overrides.pop("seed", None)
            if args.plots_dir:
                raise TrainingError("--seeds writes each seed's loss curve into its own Plots/<run>/: leave out "
                                    "--plots-dir")
            try:
                seeds = [int(x) for a in args.seeds for x in a.replace(",", " ").split()]
            except ValueError:
                raise TrainingError(f"--seeds takes integers, got {' '.join(args.seeds)!r}") from None
            results = train_seeds(seed_configs(overrides.pop("preset", "2M"), seeds, **overrides),
                                  resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
            if int(os.environ.get("RANK", "0")) == 0:
                print("\n\n".join(map(str, results)))
            if results[0].interrupted:
                raise SystemExit(INTERRUPTED)
            return
        result = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                       plots_dir=args.plots_dir or True)
    except ERRORS as e:
        raise SystemExit(f"error: {e}")
    except OSError as e:  # e.g. a full disk while writing the loss curve or the sample: the checkpoints are saved
        raise SystemExit(f"error: cannot write {e.filename or 'an output'}: {e.strerror}; free some space or choose "
                         f"another path, then rerun with --resume")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(result)
    if result.interrupted:
        raise SystemExit(INTERRUPTED)


if __name__ == "__main__":
    run_command(main, bool(_CTRL_C_WHILE_IMPORTING), INTERRUPTED)  # the training loop saves and exits on Ctrl-C itself
