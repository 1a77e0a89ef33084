"""Speed benchmark: training and analysis throughput against this machine's own matmul peaks.

    python bench/bench.py              # full table, 3 interleaved rounds (18 min on 2 cores with native bf16)
    python bench/bench.py --quick      # 2M only: the default step (and bf16 where native) vs fp32 eager (2 min)

It first names the CPU and the flags that decide precision (avx2, avx512f, avx512_bf16, AMX). On a CPU without
native bf16 (config.native_bf16), where PyTorch emulates it about 15x slower than fp32, every bf16 row is skipped
with one line saying so: timing it would take minutes and measure nothing a user runs.

Every configuration runs in a fresh subprocess, so its peak RSS is its own and one
variant cannot warm caches for the next. Training throughput is the median of timed
steps (train.train_step: forward + backward + clip + AdamW) after warm-up steps. FLOPs per
token use the PaLM / nanoGPT estimate 6·N + 12·n_layer·block_size·n_embd (N: parameters
without the position embedding; the tied LM head is counted, as it is a real matmul). MFU is
achieved FLOP/s over the measured peak of a large torch.mm in the precision the row trains
in (fp32 or bf16), on the same machine, in the same run. "fp32 eager" is the trainer before
the speed work: fp32, logits materialised for F.cross_entropy, the fused attention kernel; the default takes the
same loss path in fp32 and the chunked loss under bf16 autocast (TransformerModel.GPT.unembed_loss).
Compare ratios within one run: absolute times vary with load.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def word_vocab_size() -> int:
    """The word vocabulary of the default corpus, as the 2M and 5.6M presets build it."""
    from config import PRESETS
    from corpus import load_corpus
    from prepare import prepare
    p = PRESETS["2M"]
    return prepare(load_corpus(p.novels, p.held_out), p.tokenizer, p.vocab_size).vocab_size


def matmul_peak(dtype: str = "fp32", n=2048, reps=10) -> float:
    import torch
    a, b = (torch.randn(n, n, dtype={"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]) for _ in range(2))
    for _ in range(3):
        a @ b
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(ts) / 1e9


def median_step_s(step, warmup: int, steps: int, ready=None) -> float:
    """The median seconds of `step()` over `steps` calls, after `warmup` untimed ones (then `ready()`, if given)."""
    for _ in range(warmup):
        step()
    if ready is not None:
        ready()
    ts = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def one(spec: dict) -> dict:
    """Run one configuration in this process and return its measurements."""
    import torch

    from config import run_config
    from config import pick_precision
    from train import Batches, lr_at, make_optimizer, train_step
    from TransformerModel import GPT
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    vocab = spec["vocab"]
    cfg = run_config(spec["preset"], batch_size=spec["batch"], block_size=spec["block"])
    precision = pick_precision(spec.get("precision", cfg.precision), "cpu")
    model = GPT(cfg.model_config(vocab))
    for b in model.blocks:
        b.attn.attention = spec.get("attention", "auto")
    if spec.get("loss") == "logits":  # the plain path: (B*T, V) logits, then F.cross_entropy
        model.loss = lambda x, y: model(x, y)[1]
    elif spec.get("loss") == "chunked":  # linear_cross_entropy also in fp32 (the trainer takes it under autocast)
        from TransformerModel import linear_cross_entropy
        model.loss = lambda x, y: linear_cross_entropy(model.ln_final(model.run_blocks(model.embed(x))).flatten(0, 1),
                                                       model.lm_head.weight, y.flatten())
    opt = make_optimizer(model, cfg, "cpu")
    if spec.get("optimizer") == "foreach":  # fresh groups: a group's own fused=True would silently win
        groups = [{k: v for k, v in g.items() if k not in ("fused", "foreach")} for g in opt.param_groups]
        opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2), foreach=True)
        assert opt.param_groups[0]["foreach"] and not opt.param_groups[0]["fused"]
    T = model.config.block_size
    tokens = torch.randint(0, vocab, (200_000,))
    batches = Batches(tokens, T, cfg.batch_size)
    g = torch.Generator().manual_seed(0)
    compile_s = loss_fn = None
    # the training step's loss alone, as train.py compiles it: the analysis timings below stay eager, where every
    # new shape would recompile it
    if compiled(spec, cfg, precision):
        t = time.perf_counter()
        loss_fn = torch.compile(model.loss)
        x, y = batches.sample(g, "cpu")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss_fn(x, y).backward()
        compile_s = time.perf_counter() - t

    def step():  # the trainer's own step (train.train_step), on the compiled loss if asked
        x, y = batches.sample(g, "cpu")
        train_step(model, opt, x, y, lr_at(100, cfg), cfg.grad_clip, precision, loss_fn)

    t_step = median_step_s(step, spec.get("warmup", 2), spec.get("steps", 5))
    t = time.perf_counter()
    for _ in range(50):
        batches.sample(g, "cpu")
    t_batch = (time.perf_counter() - t) / 50
    n = model.num_params() - model.wpe.weight.numel()
    flops_tok = 6 * n + 12 * model.config.n_layer * T * model.config.n_embd
    tok_s = cfg.batch_size * T / t_step
    out = dict(spec, precision=precision, params=model.num_params(), tok_s=tok_s, step_s=t_step, flops_per_token=flops_tok,
               gflops=tok_s * flops_tok / 1e9, batch_share=t_batch / t_step, compile_s=compile_s,
               rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if spec.get("eval"):
        for p in spec["eval_precisions"]:
            out.update({f"{k}_{p}": v for k, v in eval_times(model, vocab, p).items()})
    return out


def eval_times(model, vocab, precision: str) -> dict:
    """One validation-loss evaluation (8 batches of 32 x block_size), and the study's scores and single-head
    ablations at the same sizes as study.py (200 prompts; 64 prompts + 16 val windows, zero and mean)."""
    import torch

    import induction as ind
    T = model.config.block_size
    model.eval()
    x = torch.randint(0, vocab, (8, 32, T + 1))
    probes = ind.random_probes(torch.arange(100, 5000), 16, 200, 0, T)
    L, H = model.config.n_layer, model.config.n_head
    sub = ind.Probes(probes.repeat[:64], probes.control[:64], 16, "random")
    val = torch.randint(0, vocab, (16, T + 1))
    fills = (torch.zeros(L, H, model.config.d_head), ind.mean_head_outputs(model, torch.cat([sub.repeat, sub.control])))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        t = time.perf_counter()
        for b in x:
            model.loss(b[:, :-1], b[:, 1:])
        eval_s = time.perf_counter() - t
        t = time.perf_counter()
        ind.head_scores(model, probes)
        scores_s = time.perf_counter() - t
        t = time.perf_counter()
        for fill in fills:
            ind.ablate(model, sub, [[]] + [[(l, h)] for l in range(L) for h in range(H)], fill, val)
        ablate_s = time.perf_counter() - t
    return {"eval_s": eval_s, "scores_s": scores_s, "ablations_s": ablate_s}


MATMULS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "mkldnn::_linear_pointwise")


def profile_table(step, top: int = 12, warmup: int = 2) -> str:
    """torch.profiler's top operations over 3 calls of step(), and the share of the time in matrix products."""
    from torch.profiler import ProfilerActivity, profile as tprofile
    for _ in range(warmup):
        step()
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    ops = prof.key_averages()
    share = sum(e.self_cpu_time_total for e in ops if e.key in MATMULS) / sum(e.self_cpu_time_total for e in ops)
    return (ops.table(sort_by="self_cpu_time_total", row_limit=top)
            + f"\nmatrix products ({', '.join(MATMULS)}): {100 * share:.0f}% of the self CPU time")


def optimizer_steps(vocab: int, rounds: int = 2, steps: int = 15) -> str:
    """AdamW's step alone, fused vs foreach, on the 2M and 5.6M parameter sets (random gradients)."""
    import torch

    from config import run_config
    from TransformerModel import GPT
    lines = []
    for name in ("2M", "5.6M"):
        model = GPT(run_config(name).model_config(vocab))
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        ms = {}
        for impl in ("fused", "foreach") * rounds:  # alternate, so drift hits both
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, **{impl: True})
            for _ in range(3):
                opt.step()
            ts = []
            for _ in range(steps):
                t = time.perf_counter()
                opt.step()
                ts.append(time.perf_counter() - t)
            ms.setdefault(impl, []).append(1e3 * statistics.median(ts))
        lines.append(f"  {name}: " + ", ".join(f"{k} {min(v):.1f} ms" for k, v in ms.items()) +
                     f" (best of {rounds} rounds, median of {steps} steps)")
    return "AdamW step alone (no forward/backward):\n" + "\n".join(lines)


BASELINE = {"precision": "fp32", "loss": "logits", "attention": "fused"}
VARIANTS = [
    # (label, spec); the first row of each preset is the preset itself (config.PRESETS)
    ("default: the preset (precision auto, its loss path, fused AdamW, compile auto)", {"compile": "auto"}),
    ("fp32 eager (the speedup baseline)", BASELINE),
    ("bf16 autocast, chunked loss", {"precision": "bf16"}),
    ("fp32, chunked loss", {"precision": "fp32", "loss": "chunked"}),
    ("bf16, logits materialised", {"precision": "bf16", "loss": "logits"}),
    ("bf16, fused attention kernel", {"precision": "bf16", "attention": "fused"}),
    ("original study's batch 32 x context 128", {"batch": 32, "block": 128}),
    ("AdamW foreach instead of fused", {"optimizer": "foreach"}),
    ("1 thread", {"threads": 1}),
    ("torch.compile", {"compile": True}),
]


def seeds_step(spec: dict):
    """`--seeds` in this process: spec["seeds"] runs of the preset stacked (train.StackedSeeds), or one run alone
    (seeds 1), compiled where train.py compiles them; returns a step that advances every seed once, and its facts."""
    import types

    import torch

    from config import pick_compile, pick_precision, run_config
    from train import Batches, StackedSeeds, lr_at, make_optimizer, train_step
    from TransformerModel import GPT
    torch.set_num_threads(spec["threads"])
    cfg = run_config(spec["preset"])
    precision = pick_precision(spec.get("precision", cfg.precision), "cpu")
    runs = []
    for seed in range(spec["seeds"]):
        torch.manual_seed(seed)
        model = GPT(cfg.model_config(spec["vocab"]))
        runs.append(types.SimpleNamespace(model=model, optimizer=make_optimizer(model, cfg, "cpu"), cfg=cfg))
    compile_ = pick_compile(cfg, precision, "cpu")  # as train.py decides, for the stack or the single run
    stack = StackedSeeds(runs, compile_) if len(runs) > 1 else None
    loss_fn = torch.compile(runs[0].model.loss) if compile_ and stack is None else None
    batches = Batches(torch.randint(0, spec["vocab"], (200_000,)), cfg.block_size, cfg.batch_size)
    g = torch.Generator().manual_seed(0)

    def step():
        xy = [batches.sample(g, "cpu") for _ in runs]
        if stack is None:
            train_step(runs[0].model, runs[0].optimizer, *xy[0], lr_at(100, cfg), cfg.grad_clip, precision, loss_fn)
        else:
            stack.step(xy, lr_at(100, cfg), cfg.grad_clip, precision)

    n = runs[0].model.num_params() - runs[0].model.wpe.weight.numel()
    return step, dict(precision=precision, compiled=compile_, tokens_per_step=cfg.batch_size * cfg.block_size,
                      flops_per_token=6 * n + 12 * cfg.n_layer * cfg.block_size * cfg.n_embd,
                      run_tokens=cfg.max_steps * cfg.batch_size * cfg.block_size)


def seeds_steps(spec: dict) -> dict:
    """seeds_step's facts and the median seconds of its step."""
    step, facts = seeds_step(spec)

    def ready():  # warm (and compiled): wait for the processes beside this one, so that their timed steps overlap
        print("ready", flush=True)
        sys.stdin.readline()

    return dict(facts, step_s=median_step_s(step, 2, spec["steps"], ready))


def seeds_per_hour(vocab: int, peaks: dict, seeds: int = 3, steps: int = 20, precision: str = "auto") -> str:
    """3 seeds of the 2M preset stacked in one process (all cores) against 3 separate processes at one thread each,
    side by side on the same cores (today's practice): seeds per hour of the preset's full run, and MFU."""
    cores = os.cpu_count()

    def side_by_side(*specs) -> list[dict]:  # one process per spec, timed from one start
        procs = [subprocess.Popen([sys.executable, __file__, "--one-seeds", json.dumps(
            dict(preset="2M", vocab=vocab, seeds=n_seeds, threads=threads, steps=steps, precision=precision))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for n_seeds, threads in specs]
        for p in procs:
            while p.stdout.readline().strip() != "ready":
                if p.poll() is not None:
                    raise SystemExit(f"the seeds measurement failed (exit status {p.returncode})")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]

    t = time.perf_counter()
    stacked, = side_by_side((seeds, cores))
    alone = side_by_side(*[(1, 1)] * seeds)  # side by side, as experiments.train_runs runs them
    rows = {"stacked, one process": seeds * stacked["tokens_per_step"] / stacked["step_s"],
            f"{seeds} processes, 1 thread each": sum(a["tokens_per_step"] / a["step_s"] for a in alone)}
    out = [f"\n{seeds} seeds of the 2M preset ({stacked['precision']}"
           f"{', compiled as train.py compiles it' if stacked['compiled'] else ''}, {cores} cores, "
           f"{time.perf_counter() - t:.0f} s to measure): seeds per hour of its {stacked['run_tokens'] / 1e6:.2f}M-token run",
           "| how | tokens/s, all seeds | seeds per hour | MFU |", "|---|---|---|---|"]
    for how, tok_s in rows.items():
        mfu = tok_s * stacked["flops_per_token"] / 1e9 / peaks[stacked["precision"]]
        out.append(f"| {how} | {tok_s:,.0f} | {3600 * tok_s / stacked['run_tokens']:.2f} | {100 * mfu:.0f}% |")
    ratio = rows["stacked, one process"] / rows[f"{seeds} processes, 1 thread each"]
    out.append(f"stacked seeds vs separate processes: {ratio:.2f}x the seeds per hour (goal: 1.5x)")
    return "\n".join(out)


# Issue #27's goals for the default step against fp32 eager, measured in one run: at least as fast on a CPU without
# native bf16, and 1.5x (2M) / 1.7x (5.6M) where bf16 is native.
GOALS = {True: {"2M": 1.5, "5.6M": 1.7}, False: {"2M": 1.0, "5.6M": 1.0}}


def precisions() -> tuple[str, ...]:
    """The precisions worth timing on this machine: bf16 only where it is native."""
    from config import native_bf16
    return ("fp32", "bf16") if native_bf16("cpu") else ("fp32",)


def plan(quick: bool) -> tuple[tuple[str, ...], list]:
    """The presets and the variants to time on this machine (bf16 rows only where bf16 is native)."""
    timed = precisions()
    variants = [(label, spec) for label, spec in VARIANTS if spec.get("precision") in (None, *timed)]
    if quick:
        variants = variants[:3] if "bf16" in timed else variants[:2]
        return ("2M",), variants
    return ("2M", "5.6M"), [(variants[0][0], {**variants[0][1], "eval": True})] + variants[1:]


def compiled(spec: dict, cfg, precision: str) -> bool:
    """Whether a row's step runs under torch.compile: "auto" as the trainer decides (config.pick_compile)."""
    from config import pick_compile
    return pick_compile(cfg, precision, "cpu") if spec.get("compile") == "auto" else bool(spec.get("compile"))


def trainer_step(spec: dict, preset: str) -> tuple:
    """What a row's training step runs on this machine: precision (auto resolved), loss path, attention kernel,
    optimizer, compile, threads, batch and context. Two rows with the same step are one code path: their ratio is
    the noise of the measurement."""
    from config import PRESETS, pick_precision
    precision = pick_precision(spec.get("precision", PRESETS[preset].precision), "cpu")
    loss = spec.get("loss") or ("logits" if precision == "fp32" else "chunked")  # GPT.unembed_loss's choice
    attention = spec.get("attention", "auto")
    if attention == "auto":  # CausalSelfAttention.explicit: the explicit path under CPU autocast, fused otherwise
        attention = "explicit" if precision == "bf16" else "fused"
    return (precision, loss, attention, spec.get("optimizer", "fused"), compiled(spec, PRESETS[preset], precision),
            spec.get("threads"), spec.get("batch"), spec.get("block"))


def default_speedup(runs: dict, preset: str, variants) -> tuple[float, str]:
    """The default step's speedup over fp32 eager, and a note: 1.00x where they are the same step here (their two
    timings then differ by noise alone, which the note gives)."""
    measured = speedup(runs, preset)
    if trainer_step(variants[0][1], preset) == trainer_step(BASELINE, preset):
        return 1.0, (f"the default is fp32 eager's own step on this machine (one code path): 1.00x; its two timings in "
                     f"this run differ by {measured:.2f}x, the noise of the measurement")
    return measured, ""


def machine_line() -> str:
    import torch

    from config import cpu_info, native_bf16
    name, flags = cpu_info()
    has = lambda *f: "yes" if set(f) & flags else "no"  # noqa: E731
    return (f"cpu: {name}; {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, torch {torch.__version__}; "
            f"avx2 {has('avx2')}, avx512f {has('avx512f')}, avx512_bf16 {has('avx512_bf16')}, "
            f"amx {has('amx_bf16', 'amx_tile')}; native bf16: {'yes' if native_bf16('cpu') else 'no'}")


def measure(presets, variants, rounds: int, steps: int, vocab: int) -> dict:
    """(preset, variant index) -> one measurement per round, each in a fresh subprocess.

    Rounds interleave the variants, so a slow spell of a shared machine hits all of them rather than one.
    """
    from config import PRESETS
    runs = {}
    for rnd in range(rounds):
        for preset in presets:
            recipe = PRESETS[preset]
            for i, (label, extra) in enumerate(variants):
                spec = {"preset": preset, "batch": recipe.batch_size, "block": recipe.block_size, "vocab": vocab,
                        "eval": extra.get("eval", False) and rnd == 0, "eval_precisions": precisions(), "steps": steps,
                        "label": label, **extra}
                r = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
                if r.returncode:
                    print(f"{preset} {label}: failed\n{r.stderr[-2000:]}")
                    continue
                runs.setdefault((preset, i), []).append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(f"  round {rnd + 1}/{rounds}: measured {preset:>4} {label} ...", file=sys.stderr)
    return runs


def speedup(runs: dict, preset: str, variant: int = 0) -> float:
    """Median over rounds of a row's (default: the default row's) tokens/s over fp32 eager's in the same round."""
    pairs = zip(runs[(preset, variant)], runs[(preset, 1)])
    return statistics.median(d["tok_s"] / b["tok_s"] for d, b in pairs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--one-seeds", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="2M only: the default step (and bf16 where native) vs fp32 "
                                                         "eager, 4 rounds")
    ap.add_argument("--profile", action="store_true",
                    help="also print torch.profiler's top ops for the 2M step: one seed, and three stacked")
    ap.add_argument("--optimizer", action="store_true", help="only time AdamW's step, fused vs foreach")
    ap.add_argument("--repeats", type=int, help="interleaved rounds per variant (default 3; --quick 5)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    import torch  # train.py compiles under deterministic kernels (train.deterministic_kernels), so every timed row and
    torch.use_deterministic_algorithms(True)  # the profile do too; eager CPU kernels are deterministic either way
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    if args.one_seeds:
        print(json.dumps(seeds_steps(json.loads(args.one_seeds))))
        return
    vocab = word_vocab_size()
    if args.optimizer:
        print(optimizer_steps(vocab))
        return
    print(machine_line(), flush=True)
    timed = precisions()
    if "bf16" not in timed:
        print("bf16 rows skipped: this CPU has no native bf16 (no avx512_bf16 or AMX), so PyTorch would emulate it, "
              "about 15x slower than fp32; precision auto trains in fp32 here", flush=True)
    peaks = {p: matmul_peak(p) for p in timed}
    print("measured matmul peaks (2048^3 torch.mm): " + ", ".join(f"{p} {v:.1f}" for p, v in peaks.items())
          + " GFLOP/s\n", flush=True)
    rounds = args.repeats or (4 if args.quick else 3)
    presets, variants = plan(args.quick)
    bf16_row = next((i for i, (_, spec) in enumerate(variants) if spec.get("precision") == "bf16"), None)
    runs = measure(presets, variants, rounds, 10, vocab)
    rows = []
    for measured in runs.values():
        row = dict(measured[0])
        tok = sorted(m["tok_s"] for m in measured)
        row.update(tok_s=statistics.median(tok), tok_min=tok[0], tok_max=tok[-1], rounds=len(tok),
                   rss_mb=max(m["rss_mb"] for m in measured),
                   batch_share=statistics.median(m["batch_share"] for m in measured))
        row["gflops"] = row["tok_s"] * row["flops_per_token"] / 1e9
        row["mfu"] = row["gflops"] / peaks[row["precision"]]
        rows.append(row)
    print(f"tokens/s: median of {rounds} interleaved round(s), each the median of timed steps; "
          "range = slowest to fastest round; MFU against the matmul peak of the row's precision\n")
    print("| preset | variant | precision | batch x ctx | tokens/s | range | GFLOP/s | MFU | peak RSS (MB) "
          "| batching share | compile (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        compile_s = "" if r["compile_s"] is None else f"{r['compile_s']:.0f}"
        print(f"| {r['preset']} | {r['label']} | {r['precision']} | {r['batch']}x{r['block']} | {r['tok_s']:,.0f} | "
              f"{r['tok_min']:,.0f}–{r['tok_max']:,.0f} | {r['gflops']:.1f} | {100 * r['mfu']:.0f}% | "
              f"{r['rss_mb']:,.0f} | {100 * r['batch_share']:.2f}% | {compile_s} |")
    evals = [r for r in rows if r.get("eval")]
    if evals:
        print("\nFLOPs per token: " + ", ".join(f"{r['preset']} {r['flops_per_token'] / 1e6:.1f} M" for r in evals))
        print("\n| preset | precision | one val-loss evaluation (8 batches of 32 x context) | induction scores (one "
              "probe set, 200 prompts) | all single-head ablations, zero + mean (64 prompts + 16 val windows) |")
        print("|---|---|---|---|---|")
        for r in evals:
            for p in timed:
                print(f"| {r['preset']} | {p} | {r[f'eval_s_{p}']:.2f} s | {r[f'scores_s_{p}']:.2f} s | "
                      f"{r[f'ablations_s_{p}']:.2f} s |")
        goals = GOALS["bf16" in timed]
        print(f"\ngoals ({'native' if 'bf16' in timed else 'no native'} bf16): the default step >= "
              + ", ".join(f"{g:.1f}x ({k})" for k, g in goals.items()) + " fp32 eager's tokens/s")
        for r in evals:
            p, (s, note) = r["precision"], default_speedup(runs, r["preset"], variants)
            print(f"  {r['preset']}: default ({p}) {s:.2f}x fp32 eager: {'met' if s >= goals[r['preset']] else 'NOT met'}"
                  + (f" ({note})" if note else "")
                  + (f"; bf16 {speedup(runs, r['preset'], bf16_row):.2f}x" if bf16_row is not None else "")
                  + f"; MFU {100 * r['mfu']:.0f}% ({p} peak), ablations {r['ablations_s_' + p]:.1f} s ({p}), "
                  f"RSS {r['rss_mb']:,.0f} MB, batching {100 * r['batch_share']:.2f}% of a step")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_line(), "peaks_gflops": peaks, "rows": rows}, indent=1))
    if args.profile:  # the 2M step as train.py runs it: one seed, then three stacked (--seeds)
        for seeds in (1, 3):
            step, facts = seeds_step(dict(preset="2M", vocab=vocab, seeds=seeds, threads=os.cpu_count()))
            print(f"\ntorch.profiler, {seeds} seed{'s' * (seeds > 1)} of the 2M preset{' stacked' * (seeds > 1)} "
                  f"({facts['precision']}{', compiled' if facts['compiled'] else ''}, {os.cpu_count()} threads), "
                  f"3 steps:\n")
            print(profile_table(step))
    for p in ("auto", "fp32") if "bf16" in timed else ("fp32",):
        print(seeds_per_hour(vocab, peaks, precision=p))
    if bf16_row is not None:
        print(f"2M, bf16 autocast vs fp32 eager: {speedup(runs, '2M', bf16_row):.2f}×")
    s, note = default_speedup(runs, "2M", variants)
    if note:
        print(f"2M: {note}")
    print(f"speedup vs fp32 eager: {s:.2f}×")


if __name__ == "__main__":
    main()
