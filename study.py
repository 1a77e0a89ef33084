"""The induction-head study of one checkpoint, step by step (InductionHeads.ipynb calls these).

    python study.py checkpoints/MiniGPT-2M/best.pt            # figures -> Plots/, summary -> JSON

Steps: load -> probes -> per-head scores -> single-head ablations (zero and mean) ->
validate candidates (joint vs random ablations, previous-token circuit, K-composition)
-> figures and a JSON summary. Definitions are in induction.py's docstring.
"""
import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import induction as ind
import utils
from checkpoint import load_model
from corpus import load_corpus

ROOT = Path(__file__).resolve().parent


@dataclass
class StudyConfig:
    checkpoint: str
    name: str | None = None      # figure / file label; default MiniGPT-<preset> from the checkpoint
    S: int = 16                  # chunk length
    n_prompts: int = 200         # prompts per probe set, for the scores
    n_ablate: int = 64           # prompts (of the primary set) used by the ablations
    seed: int = 0
    primary: str = "random"      # probe set that defines candidates: "random" or "text-val"
    threshold: float = 0.1       # a candidate needs Δ >= threshold and its CI above 0
    prev_threshold: float = 0.3  # previous-token heads: score >= this (chance ≈ 0.07 at S=16)
    n_random_draws: int = 20     # random k-head sets to compare the candidates with
    plots_dir: str = str(ROOT / "Plots")
    device: str = "cpu"

    def __post_init__(self):
        for k, t in (("S", int), ("n_prompts", int), ("n_ablate", int), ("seed", int), ("n_random_draws", int),
                     ("threshold", (int, float)), ("prev_threshold", (int, float))):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, t):
                raise TypeError(f"study parameter {k} must be {getattr(t, '__name__', 'a number')}, got {v!r} "
                                f"({type(v).__name__})")
        if self.n_prompts < 2 or self.n_ablate < 2:
            raise ValueError("n_prompts and n_ablate must be at least 2 (the CIs resample prompts)")
        if self.primary not in ("random", "text-val"):
            raise ValueError(f"primary must be 'random' or 'text-val', got {self.primary!r}")


@dataclass
class Context:
    model: torch.nn.Module
    tok: object
    ckpt: dict
    name: str
    train_tokens: torch.Tensor
    val_tokens: torch.Tensor

    @property
    def label(self) -> str:
        return f"{self.name} ({self.model.num_params() / 1e6:.2f}M params)"


def load(cfg: StudyConfig) -> Context:
    model, tok, ckpt = load_model(cfg.checkpoint, cfg.device)
    tc = ckpt.get("train_config", {})
    corpus = load_corpus(tc.get("novels") or None) if tc.get("novels") else load_corpus()
    name = cfg.name or f"MiniGPT-{tc.get('preset', Path(cfg.checkpoint).parent.name)}"
    return Context(model, tok, ckpt, name, torch.tensor(tok.encode(corpus.train), dtype=torch.long),
                   torch.tensor(tok.encode(corpus.val), dtype=torch.long))


def make_probes(ctx: Context, cfg: StudyConfig) -> dict:
    bs = ctx.model.config.block_size
    alphabet = ind.probe_alphabet(ctx.train_tokens, ctx.tok.vocab_size, ctx.tok.special_ids)
    return {"text-val": ind.text_probes(ctx.val_tokens, cfg.S, cfg.n_prompts, cfg.seed, bs, "text-val"),
            "text-train": ind.text_probes(ctx.train_tokens, cfg.S, cfg.n_prompts, cfg.seed, bs, "text-train"),
            "random": ind.random_probes(alphabet, cfg.S, cfg.n_prompts, cfg.seed, bs)}


def score_heads(ctx: Context, probes: dict) -> dict:
    return {kind: ind.head_scores(ctx.model, p) for kind, p in probes.items()}


def _subset(p: ind.Probes, n: int) -> ind.Probes:
    return ind.Probes(p.repeat[:n], p.control[:n], p.S, p.kind)


def _removed(g_base: torch.Tensor, g_abl: torch.Tensor, n_boot=1000, seed=0) -> dict:
    """Share of G removed, 1 - G_ablated / G_base, with a paired bootstrap CI over prompts."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(g_base), (n_boot, len(g_base)), generator=g)
    shares = 1 - g_abl[idx].mean(1) / g_base[idx].mean(1)
    lo, hi = torch.quantile(shares.double(), torch.tensor([0.025, 0.975], dtype=torch.float64))
    return {"share": float(1 - g_abl.mean() / g_base.mean()), "lo": float(lo), "hi": float(hi),
            "G_ablated": float(g_abl.mean()), "G_base": float(g_base.mean())}


def single_head_ablations(ctx: Context, probes: dict, cfg: StudyConfig, val_windows: int = 16) -> dict:
    """Zero- and mean-ablate every head alone; G, Δ of every head and val loss for each."""
    model, (L, H) = ctx.model, (ctx.model.config.n_layer, ctx.model.config.n_head)
    p = _subset(probes[cfg.primary], cfg.n_ablate)
    heads = [(l, h) for l in range(L) for h in range(H)]
    val = ind.val_windows(ctx.val_tokens, model.config.block_size, val_windows, cfg.seed)
    out = {"heads": heads, "n_prompts": p.n, "probe": p.kind, "val_tokens": int(val[:, 1:].numel())}
    both = torch.cat([p.repeat, p.control])
    D = model.config.d_head
    fills = {"zero": torch.zeros(L, H, D), "mean": ind.mean_head_outputs(model, both)}
    t0 = time.perf_counter()
    for mode, fill in fills.items():
        r = ind.ablate(model, p, [[]] + [[hd] for hd in heads], fill, val)
        g_base = r["G"][0]
        out[mode] = {
            "G_drop": (g_base.mean() - r["G"][1:].mean(1)).view(L, H).tolist(),
            "G_removed": [_removed(g_base, r["G"][k + 1]) for k in range(len(heads))],
            "delta_change": (r["delta"][1:].mean(1) - r["delta"][0].mean(0)).view(L, H, L, H).tolist(),
            "val_loss_change": (r["val_loss"][1:] - r["val_loss"][0]).view(L, H).tolist(),
            "G_base": float(g_base.mean()), "val_loss_base": float(r["val_loss"][0]),
        }
    out["seconds"] = time.perf_counter() - t0
    out["fills"] = fills
    return out


def candidates(scores: dict, cfg: StudyConfig) -> list:
    s = scores[cfg.primary]["delta"]
    m, lo = np.array(s["mean"]), np.array(s["lo"])
    found = [(int(l), int(h)) for l, h in zip(*np.nonzero((m >= cfg.threshold) & (lo > 0)))]
    return sorted(found, key=lambda lh: -m[lh])


def validate(ctx: Context, probes: dict, scores: dict, singles: dict, cfg: StudyConfig) -> dict:
    """Joint ablation of the candidates vs random head sets; previous-token circuit; K-composition."""
    model, (L, H) = ctx.model, (ctx.model.config.n_layer, ctx.model.config.n_head)
    cands = candidates(scores, cfg)
    tested = cands or [ind.best_head(scores[cfg.primary]["delta"])]
    k = len(tested)
    others = [(l, h) for l in range(L) for h in range(H) if (l, h) not in tested]
    rng = np.random.default_rng(cfg.seed)
    draws = [[others[i] for i in rng.choice(len(others), size=min(k, len(others)), replace=False)]
             for _ in range(cfg.n_random_draws)] if others else []
    prev = np.array(scores[cfg.primary]["prev_token"]["mean"])
    prev_heads = [(int(l), int(h)) for l, h in zip(*np.nonzero(prev >= cfg.prev_threshold))
                  if l < max(lt for lt, _ in tested)]
    p = _subset(probes[cfg.primary], cfg.n_ablate)
    out = {"candidates": cands, "tested": tested, "tested_are_candidates": bool(cands),
           "previous_token_heads": prev_heads}
    for mode in ("zero", "mean"):
        mode_draws = draws if mode == "zero" else []  # the random baseline is drawn once, with zero ablation
        configs = [[], tested] + mode_draws + ([prev_heads] if prev_heads else [])
        r = ind.ablate(model, p, configs, singles["fills"][mode])
        g_base = r["G"][0]
        res = {"tested": _removed(g_base, r["G"][1])}
        if mode_draws:
            shares = np.array([_removed(g_base, r["G"][2 + i])["share"] for i in range(len(draws))])
            res["random"] = {"mean": float(shares.mean()), "median": float(np.median(shares)),
                             "p05": float(np.percentile(shares, 5)), "p95": float(np.percentile(shares, 95)),
                             "draws": shares.tolist(), "heads": draws}
        if prev_heads:
            d0, dp = r["delta"][0].mean(0), r["delta"][-1].mean(0)
            res["prev_heads_ablated_delta"] = {f"L{l}H{h}": {"before": float(d0[l, h]), "after": float(dp[l, h])}
                                               for l, h in tested}
        out[mode] = res
    kc = ind.k_composition(model, seed=cfg.seed)
    out["k_composition"] = {"random_mean": kc["random_mean"], "random_std": kc["random_std"],
                            "pairs": {f"L{la}H{ha}->L{lb}H{hb}": float(kc["scores"][la, ha, lb, hb])
                                      for lb, hb in tested for la in range(lb) for ha in range(H)}}
    out["k_composition_all"] = kc["scores"]
    return out


def figures(ctx: Context, cfg: StudyConfig, probes: dict, scores: dict, singles: dict, val: dict) -> dict:
    d, name, label, S = Path(cfg.plots_dir), ctx.name, ctx.label, cfg.S
    prim = scores[cfg.primary]
    kind = {"random": "random-token", "text-val": "validation-text"}[cfg.primary]
    L, H = ctx.model.config.n_layer, ctx.model.config.n_head
    figs = {}
    figs["full"] = utils.plot_attention_grid(
        prim["example_pattern"], d / f"Attention_HeatMap_full_{name}.png",
        f"{label}: attention on one repeat prompt ({kind}, 4 × {S} tokens)", chunk=S)
    diff = (prim["mean_pattern_repeat"] - prim["mean_pattern_control"])[:, :, S:2 * S, :S]
    figs["zoom"] = utils.plot_attention_grid(
        diff, d / f"Attention_HeatMap_zoom_{name}.png",
        f"{label}: mean attention, repeat − control (n={prim['n']})\nqueries in chunk 2 vs keys in chunk 1: "
        f"induction shows as the +1 off-diagonal stripe", center=True,
        xlabel="key position in chunk 1", ylabel="query position in chunk 2")
    ci = (prim["delta"]["lo"], prim["delta"]["hi"])
    figs["delta"] = utils.plot_head_grid(
        prim["delta"]["mean"], d / f"InductionScore_Delta_{name}.png",
        f"{label}\ninduction Δ = A(repeat) − A(control), {kind} probes [95% CI]", "Δ attention", ci=ci)
    figs["prev"] = utils.plot_head_grid(
        prim["prev_token"]["mean"], d / f"PrevTokenScore_{name}.png",
        f"{label}\nprevious-token score (chance ≈ {prim['chance']['prev_token']:.2f})", "attention to t−1",
        center=False, cmap="viridis")
    figs["ablation"] = utils.plot_head_grids(
        {f"{m} ablation (G = {singles[m]['G_base']:.2f})": singles[m]["G_drop"] for m in ("zero", "mean")},
        d / f"HeadAblation_HeatMap_{name}.png",
        f"{label}: drop in in-context gain G when one head is ablated ({kind} probes)", "G drop (nats/token)")
    figs["ablation_loss"] = utils.plot_head_grids(
        {f"{m} ablation": singles[m]["val_loss_change"] for m in ("zero", "mean")},
        d / f"HeadAblation_Loss_{name}.png", f"{label}: change in validation loss when one head is ablated",
        "Δ val loss (nats/token)")
    change = np.array(singles["zero"]["delta_change"]).reshape(L * H, L * H)
    figs["ablation_delta"] = _delta_matrix(change, d / f"HeadAblation_DeltaMatrix_{name}.png",
                                           f"{label}: change in each head's Δ under zero ablation", L, H)
    figs["loss_by_position"] = utils.plot_loss_by_position(
        prim["loss_repeat"]["mean"], prim["loss_control"]["mean"], d / f"LossByPosition_{name}.png",
        f"{label}: loss by position, {kind} probes (G = {prim['G']['mean']:.2f} nats/token)", S,
        (prim["loss_repeat"]["lo"], prim["loss_repeat"]["hi"]), (prim["loss_control"]["lo"], prim["loss_control"]["hi"]))
    tested = ", ".join(f"L{l}H{h}" for l, h in val["tested"])
    labels, vals, errs = [], [], []
    for mode in ("zero", "mean"):
        t = val[mode]["tested"]
        labels.append(f"{'candidates' if val['tested_are_candidates'] else 'top head'} ({mode})")
        vals.append(t["share"])
        errs.append([t["share"] - t["lo"], t["hi"] - t["share"]])
    r = val["zero"].get("random")
    if r:
        labels.append("random heads (zero)")
        vals.append(r["median"])
        errs.append([r["median"] - r["p05"], r["p95"] - r["median"]])
    figs["bars"] = utils.plot_ablation_bars(
        labels, vals, np.array(errs).T, d / f"Candidates_vs_Random_{name}.png",
        f"{label}: share of G removed by ablating {tested}\nvs {len(val['tested'])} random other heads "
        f"({cfg.n_random_draws} draws: median, 5–95th pct; candidates: 95% CI)", "share of G removed")
    return figs


def _delta_matrix(change, path, title, L, H):
    import matplotlib.pyplot as plt
    lim = max(1e-6, float(np.abs(change).max()))
    fig, ax = plt.subplots(figsize=(0.45 * L * H + 2.5, 0.45 * L * H + 1.5))
    im = ax.imshow(change, cmap="RdBu_r", vmin=-lim, vmax=lim)
    names = [f"L{l}H{h}" for l in range(L) for h in range(H)]
    ax.set_xticks(range(L * H), names, rotation=90, fontsize=7)
    ax.set_yticks(range(L * H), names, fontsize=7)
    ax.set_xlabel("head whose Δ is measured")
    ax.set_ylabel("ablated head")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="change in Δ")
    return utils._save(fig, path)


def summary(ctx: Context, cfg: StudyConfig, scores: dict, singles: dict, val: dict, timings: dict) -> dict:
    drop = lambda d: {k: v for k, v in d.items() if k not in ("mean_pattern_repeat", "mean_pattern_control",  # noqa: E731
                                                             "example_pattern", "fills", "k_composition_all")}
    tc = ctx.ckpt.get("train_config", {})
    return {"model": ctx.name, "checkpoint": str(cfg.checkpoint), "params": ctx.model.num_params(),
            "step": ctx.ckpt.get("step"), "tokenizer": ctx.tok.kind, "vocab_size": ctx.tok.vocab_size,
            "tokens_seen": ctx.ckpt.get("step", 0) * tc.get("batch_size", 0) * ctx.model.config.block_size,
            "config": asdict(cfg), "scores": {k: drop(v) for k, v in scores.items()},
            "single_head_ablations": drop(singles), "validation": drop(val), "timings_s": timings}


def run(cfg: StudyConfig, out_json: str | None = None) -> dict:
    t = {}
    t0 = time.perf_counter()
    ctx = load(cfg)
    probes = make_probes(ctx, cfg)
    t["load_and_probes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score_heads(ctx, probes)
    t["scores"] = time.perf_counter() - t0
    singles = single_head_ablations(ctx, probes, cfg)
    t["single_head_ablations"] = singles["seconds"]
    t0 = time.perf_counter()
    val = validate(ctx, probes, scores, singles, cfg)
    t["validation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    figs = figures(ctx, cfg, probes, scores, singles, val)
    t["figures"] = time.perf_counter() - t0
    result = summary(ctx, cfg, scores, singles, val, t)
    result["figures"] = {k: str(v) for k, v in figs.items()}
    path = Path(out_json or Path(cfg.checkpoint).parent / f"induction_{ctx.name}.json")
    utils.write_json(path, result)
    result["summary_path"] = str(path)
    return result


def describe(result: dict) -> str:
    """A plain-language paragraph of what the study found."""
    cfgp = result["config"]["primary"]
    s = result["scores"][cfgp]
    l, h = ind.best_head(s["delta"])
    v = result["validation"]
    lines = [f"{result['model']}: best head L{l}H{h}, Δ = {s['delta']['mean'][l][h]:.3f} "
             f"[{s['delta']['lo'][l][h]:.3f}, {s['delta']['hi'][l][h]:.3f}] on {cfgp} probes "
             f"(chance {s['chance']['induction']:.3f}); G = {s['G']['mean']:.3f} "
             f"[{s['G']['lo']:.3f}, {s['G']['hi']:.3f}] nats/token."]
    pl, ph = ind.best_head(s["prefix_match"])
    lines.append(f"Prefix matching (attention to the token after every earlier copy, repeat − control): best "
                 f"L{pl}H{ph}, {s['prefix_match']['mean'][pl][ph]:.3f} [{s['prefix_match']['lo'][pl][ph]:.3f}, "
                 f"{s['prefix_match']['hi'][pl][ph]:.3f}].")
    if v["candidates"]:
        lines.append("Candidate induction heads: " + ", ".join(f"L{a}H{b}" for a, b in v["candidates"]) + ".")
    else:
        lines.append(f"No head passes the candidate test (Δ ≥ {result['config']['threshold']} with CI above 0); "
                     f"the top head by Δ is tested instead.")
    for mode in ("zero", "mean"):
        t = v[mode]["tested"]
        lines.append(f"{mode} ablation of {', '.join(f'L{a}H{b}' for a, b in v['tested'])} removes "
                     f"{100 * t['share']:.0f}% [{100 * t['lo']:.0f}, {100 * t['hi']:.0f}] of G.")
    r = v["zero"].get("random")
    if r:
        lines.append(f"{len(v['tested'])} random other heads (zero ablation, {len(r['draws'])} draws) remove a median "
                     f"{100 * r['median']:.0f}% (5–95th pct {100 * r['p05']:.0f} to {100 * r['p95']:.0f}).")
    if v["previous_token_heads"]:
        lines.append("Previous-token heads: " + ", ".join(f"L{a}H{b}" for a, b in v["previous_token_heads"]) + ".")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--name")
    ap.add_argument("--S", type=int, default=16)
    ap.add_argument("--n-prompts", type=int, default=200)
    ap.add_argument("--n-ablate", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--primary", default="random")
    ap.add_argument("--out-json")
    ap.add_argument("--plots-dir", default=str(ROOT / "Plots"), help="where the figures go (default Plots/)")
    a = ap.parse_args(argv)
    try:
        cfg = StudyConfig(a.checkpoint, a.name, a.S, a.n_prompts, a.n_ablate, a.seed, a.primary, plots_dir=a.plots_dir)
        result = run(cfg, a.out_json)
    except (ValueError, TypeError, RuntimeError) as e:
        raise SystemExit(f"error: {e}")
    print(describe(result))
    print(f"summary: {result['summary_path']}")
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings_s"].items()))


if __name__ == "__main__":
    main()
