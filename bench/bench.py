"""Speed benchmark: training and analysis throughput against this machine's own matmul peak.

    python bench/bench.py              # full table, 3 interleaved rounds (~15 min on 2 cores); markdown
    python bench/bench.py --quick --repeats 1   # default rows only, fewer steps

Every configuration runs in a fresh subprocess, so its peak RSS is its own and one
variant cannot warm caches for the next. Training throughput is the median of timed
steps (forward + backward + clip + AdamW) after warm-up steps. FLOPs per token use the
PaLM / nanoGPT estimate 6·N + 12·n_layer·block_size·n_embd (N: parameters without the
position embedding; the tied LM head is counted, as it is a real matmul). MFU is
achieved FLOP/s over the measured fp32 peak of a large torch.mm on the same machine,
in the same run. Compare ratios within one run: absolute times vary with load.
"""
import argparse
import json
import os
import platform
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
    from tokenizer import build_tokenizer
    c, p = load_corpus(PRESETS["2M"].novels), PRESETS["2M"]
    return build_tokenizer(p.tokenizer, c.train, c.train + c.val, p.vocab_size).vocab_size


def matmul_peak(n=2048, reps=10) -> float:
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(ts) / 1e9


def one(spec: dict) -> dict:
    """Run one configuration in this process and return its measurements."""
    import torch

    from config import run_config
    from train import Batches, lr_at, make_optimizer, train_step
    from TransformerModel import GPT
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    vocab = spec["vocab"]
    cfg = run_config(spec["preset"], batch_size=spec["batch"], block_size=spec["block"])
    model = GPT(cfg.model_config(vocab))
    for b in model.blocks:
        b.attn.explicit_attention = spec.get("explicit", False)
    opt = make_optimizer(model, cfg, "cpu")
    if spec.get("optimizer") == "foreach":  # fresh groups: a group's own fused=True would silently win
        groups = [{k: v for k, v in g.items() if k not in ("fused", "foreach")} for g in opt.param_groups]
        opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2), foreach=True)
        assert opt.param_groups[0]["foreach"] and not opt.param_groups[0]["fused"]
    T = model.config.block_size
    tokens = torch.randint(0, vocab, (200_000,))
    batches = Batches(tokens, T, cfg.batch_size)
    g = torch.Generator().manual_seed(0)
    step_fn = model
    compile_s = None
    if spec.get("compile"):
        t = time.perf_counter()
        step_fn = torch.compile(model)
        x, y = batches.sample(g, "cpu")
        step_fn(x, y)[1].backward()
        compile_s = time.perf_counter() - t

    def step():  # the trainer's own step (train.train_step), on the compiled model if asked
        x, y = batches.sample(g, "cpu")
        train_step(step_fn, opt, x, y, lr_at(100, cfg), cfg.grad_clip)

    for _ in range(spec.get("warmup", 2)):
        step()
    ts = []
    for _ in range(spec.get("steps", 5)):
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
    t_step = statistics.median(ts)
    t = time.perf_counter()
    for _ in range(50):
        batches.sample(g, "cpu")
    t_batch = (time.perf_counter() - t) / 50
    n = model.num_params() - model.wpe.weight.numel()
    flops_tok = 6 * n + 12 * model.config.n_layer * T * model.config.n_embd
    tok_s = cfg.batch_size * T / t_step
    out = dict(spec, params=model.num_params(), tok_s=tok_s, step_s=t_step, flops_per_token=flops_tok,
               gflops=tok_s * flops_tok / 1e9, batch_share=t_batch / t_step, compile_s=compile_s,
               rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if spec.get("eval"):
        out.update(eval_times(model, vocab))
    return out


def eval_times(model, vocab) -> dict:
    """One validation-loss evaluation (8 batches of 32 x block_size) and the study's scores + single-head ablations."""
    import torch

    import induction as ind
    T = model.config.block_size
    model.eval()
    x = torch.randint(0, vocab, (8, 32, T + 1))
    t = time.perf_counter()
    with torch.no_grad():
        for b in x:
            model(b[:, :-1], b[:, 1:])
    eval_s = time.perf_counter() - t
    probes = ind.random_probes(torch.arange(100, 5000), 16, 200, 0, T)
    t = time.perf_counter()
    ind.head_scores(model, probes)
    scores_s = time.perf_counter() - t
    L, H = model.config.n_layer, model.config.n_head
    sub = ind.Probes(probes.repeat[:64], probes.control[:64], 16, "random")
    val = torch.randint(0, vocab, (16, T + 1))
    t = time.perf_counter()
    for fill in (torch.zeros(L, H, model.config.d_head), ind.mean_head_outputs(model, torch.cat([sub.repeat, sub.control]))):
        ind.ablate(model, sub, [[]] + [[(l, h)] for l in range(L) for h in range(H)], fill, val)
    ablate_s = time.perf_counter() - t
    return {"eval_s": eval_s, "scores_s": scores_s, "ablations_s": ablate_s}


def profile(preset: str, batch: int, vocab: int, top: int = 12) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile as tprofile

    from config import run_config
    from train import Batches, lr_at, make_optimizer, train_step
    from TransformerModel import GPT
    cfg = run_config(preset, batch_size=batch)
    model = GPT(cfg.model_config(vocab))
    opt = make_optimizer(model, cfg, "cpu")
    batches = Batches(torch.randint(0, vocab, (100_000,)), model.config.block_size, batch)
    g = torch.Generator().manual_seed(0)

    def step():
        x, y = batches.sample(g, "cpu")
        train_step(model, opt, x, y, lr_at(100, cfg), cfg.grad_clip)

    step()
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


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


VARIANTS = [
    # (label, spec); the first row of each preset is the preset itself (config.PRESETS)
    ("default: recipe batch, fused attention, fused AdamW", {}),
    ("original study's batch 32 x context 128", {"batch": 32, "block": 128}),
    ("batch 4 x context 128 (same tokens per step)", {"batch": 4, "block": 128}),
    ("explicit softmax attention", {"explicit": True}),
    ("AdamW foreach instead of fused", {"optimizer": "foreach"}),
    ("1 thread", {"threads": 1}),
    ("torch.compile", {"compile": True}),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="default rows only, fewer steps")
    ap.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops for 2M")
    ap.add_argument("--optimizer", action="store_true", help="only time AdamW's step, fused vs foreach")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds per variant (default 3)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    vocab = word_vocab_size()
    if args.optimizer:
        print(optimizer_steps(vocab))
        return
    import torch
    peak = matmul_peak()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; measured fp32 matmul peak (2048^3 torch.mm): {peak:.1f} GFLOP/s\n")
    variants = VARIANTS[:1] if args.quick else VARIANTS
    from config import PRESETS
    runs = {}  # (preset, variant index) -> one measurement per round
    # Rounds interleave the variants, so a slow spell of a shared machine hits all of them
    # rather than one; each row reports the median round and the range.
    for rnd in range(args.repeats):
        for preset in ("2M", "5.6M"):
            recipe = PRESETS[preset]
            for i, (label, extra) in enumerate(variants):
                spec = {"preset": preset, "batch": recipe.batch_size, "block": recipe.block_size, "vocab": vocab,
                        "eval": i == 0 and rnd == 0, "steps": 5 if args.quick else 10, "label": label, **extra}
                r = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
                if r.returncode:
                    print(f"{preset} {label}: failed\n{r.stderr[-2000:]}")
                    continue
                runs.setdefault((preset, i), []).append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(f"  round {rnd + 1}/{args.repeats}: measured {preset:>4} {label} ...", file=sys.stderr)
    rows = []
    for measured in runs.values():
        row = dict(measured[0])
        tok = sorted(m["tok_s"] for m in measured)
        row.update(tok_s=statistics.median(tok), tok_min=tok[0], tok_max=tok[-1], rounds=len(tok),
                   rss_mb=max(m["rss_mb"] for m in measured),
                   batch_share=statistics.median(m["batch_share"] for m in measured))
        row["gflops"] = row["tok_s"] * row["flops_per_token"] / 1e9
        row["mfu"] = row["gflops"] / peak
        rows.append(row)
    print(f"tokens/s: median of {args.repeats} interleaved round(s), each the median of timed steps; "
          "range = slowest to fastest round\n")
    print("| preset | variant | batch x ctx | tokens/s | range | GFLOP/s | MFU | peak RSS (MB) | batching share "
          "| compile (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ctx = r["block"]
        compile_s = "" if r["compile_s"] is None else f"{r['compile_s']:.0f}"
        print(f"| {r['preset']} | {r['label']} | {r['batch']}x{ctx} | {r['tok_s']:,.0f} | "
              f"{r['tok_min']:,.0f}–{r['tok_max']:,.0f} | {r['gflops']:.1f} | {100 * r['mfu']:.0f}% | "
              f"{r['rss_mb']:,.0f} | {100 * r['batch_share']:.2f}% | {compile_s} |")
    print("\nFLOPs per token: " + ", ".join(f"{r['preset']} {r['flops_per_token'] / 1e6:.1f} M"
                                             for r in rows if r.get("eval")))
    print("\n| preset | one val-loss evaluation (8 batches of 32 x context) | induction scores (one probe set, 200 prompts) "
          "| all single-head ablations, zero + mean (64 prompts + 16 val windows) |")
    print("|---|---|---|---|")
    for r in rows:
        if r.get("eval"):
            print(f"| {r['preset']} | {r['eval_s']:.2f} s | {r['scores_s']:.2f} s | {r['ablations_s']:.2f} s |")
    print("\ngoals (2-core machine): MFU >= 70% (2M) / 80% (5.6M); all single-head ablations <= 10 s (5.6M); "
          "training peak RSS <= 2 GB (5.6M); data batching <= 5% of a step")
    for r in rows:
        if r.get("eval"):
            print(f"  {r['preset']}: MFU {100 * r['mfu']:.0f}%, ablations {r['ablations_s']:.1f} s, "
                  f"RSS {r['rss_mb']:,.0f} MB, batching {100 * r['batch_share']:.2f}% of a step")
    if args.json:
        Path(args.json).write_text(json.dumps({"peak_gflops": peak, "rows": rows}, indent=1))
    if args.profile:
        print("\ntorch.profiler, 2M, 3 training steps:\n")
        print(profile("2M", PRESETS["2M"].batch_size, vocab))


if __name__ == "__main__":
    main()
