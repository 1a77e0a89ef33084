"""The study's figures (matplotlib) and the interactive attention page (plotly), and the loss curve of a run.
Each experiment's own figures live in its module under experiments/.

Every figure function takes numbers (arrays, or the typed rows of a training log), writes
a PNG (or the HTML page) and returns its path, so notebooks stay short and every figure is reproducible
from a script. Nothing here computes a metric.
"""
import io
import textwrap
from html import escape
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from checkpoint import write_file

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "font.size": 10, "axes.titlesize": 11})


def save_figure(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", bbox_inches="tight")
    plt.close(fig)
    return write_file(path, buf.getvalue(), "figure")


def plot_loss_curve(metrics, path, title: str):
    """Train/val loss (nats/token) against tokens seen, with val bits/char on a twin axis (metrics: MetricsRow list)."""
    tokens = [m.tokens for m in metrics]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(tokens, [m.train_loss for m in metrics], "o-", ms=3, label="train")
    ax.plot(tokens, [m.val_loss for m in metrics], "s-", ms=3, label="validation")
    ax.set_xlabel("training tokens seen")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ratio = metrics[-1].val_bpc / metrics[-1].val_loss if metrics[-1].val_loss else 1.0
    sec = ax.secondary_yaxis("right", functions=(lambda y: y * ratio, lambda y: y / ratio))
    sec.set_ylabel("validation bits / character")
    return save_figure(fig, path)


def _heatmap(ax, grid, title, cmap="RdBu_r", center=True, fmt="{:.2f}", ci=None, vlim=None, notes=None):
    """Layers x heads heatmap with each cell's value (and CI, and note: notes[l][h]) written in it."""
    grid = np.asarray(grid, dtype=float)
    lim = vlim or (max(1e-6, np.nanmax(np.abs(grid))) if center else None)
    kw = dict(vmin=-lim, vmax=lim) if center else ({"vmin": 0, "vmax": lim} if lim else {})
    im = ax.imshow(grid, cmap=cmap, aspect="auto", **kw)
    L, H = grid.shape
    ax.set_xticks(range(H), [f"H{h}" for h in range(H)])
    ax.set_yticks(range(L), [f"L{l}" for l in range(L)])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    for l in range(L):
        for h in range(H):
            text = fmt.format(grid[l, h])
            if ci is not None:
                text += f"\n[{ci[0][l][h]:.2f}, {ci[1][l][h]:.2f}]"
            if notes is not None and notes[l][h]:
                text += f"\n{notes[l][h]}"
            ax.text(h, l, text, ha="center", va="center", fontsize=8 if ci is None and notes is None else 7)
    return im


def plot_head_grid(grid, path, title, cbar_label, ci=None, center=True, cmap="RdBu_r"):
    L, H = np.asarray(grid).shape
    fig, ax = plt.subplots(figsize=(1.3 * H + 2.2, 0.9 * L + 1.6), layout="constrained")
    im = _heatmap(ax, grid, title, cmap=cmap, center=center, ci=ci)
    fig.colorbar(im, ax=ax, label=cbar_label)
    return save_figure(fig, path)


def plot_head_grids(grids: dict, path, title, cbar_label, center=True, notes=None):
    """Several layers x heads grids side by side on one shared colour scale (notes[l][h]: text under each value)."""
    lim = max(1e-6, max(float(np.nanmax(np.abs(g))) for g in grids.values()))
    L, H = np.asarray(next(iter(grids.values()))).shape
    fig, axes = plt.subplots(1, len(grids), figsize=(len(grids) * (1.3 * H + 1.2) + 1.5, 0.9 * L + 1.8),
                             squeeze=False, layout="constrained")
    for ax, (name, g) in zip(axes[0], grids.items()):
        im = _heatmap(ax, g, name, center=center, vlim=lim, notes=notes)
    fig.suptitle(title)
    fig.colorbar(im, ax=axes[0].tolist(), label=cbar_label)
    return save_figure(fig, path)


def plot_attention_grid(patterns, path, title, vmax=None, center=False, chunk=None,
                        xlabel="key position", ylabel="query position"):
    """patterns: (L, H, Tq, Tk) array; one subplot per head. chunk draws the chunk boundaries."""
    patterns = np.asarray(patterns)
    L, H, Tq, Tk = patterns.shape
    fig, axes = plt.subplots(L, H, figsize=(2.4 * H + 1.4, 2.3 * L + 1.0), squeeze=False, layout="constrained")
    lim = vmax or (float(np.abs(patterns).max()) or 1.0)
    for l in range(L):
        for h in range(H):
            ax = axes[l][h]
            im = ax.imshow(patterns[l, h], cmap="RdBu_r" if center else "viridis",
                           vmin=-lim if center else 0, vmax=lim, interpolation="nearest")
            ax.set_title(f"L{l} H{h}", fontsize=9)
            if chunk:
                for b in range(chunk, max(Tq, Tk), chunk):
                    ax.axhline(b - 0.5, color="w", lw=0.4) if b < Tq else None
                    ax.axvline(b - 0.5, color="w", lw=0.4) if b < Tk else None
            ax.tick_params(labelsize=7)
            if l == L - 1:
                ax.set_xlabel(xlabel, fontsize=8)
            if h == 0:
                ax.set_ylabel(ylabel, fontsize=8)
    fig.suptitle(title)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6,
                 label="attention (repeat − control)" if center else "attention weight")
    return save_figure(fig, path)


def plot_loss_by_position(rep, ctl, path, title, chunk: int, rep_ci=None, ctl_ci=None):
    """Mean per-position loss on repeat vs control prompts; position t predicts token t+1."""
    x = np.arange(len(rep))
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for y, ci, label, c in ((ctl, ctl_ci, "control [base, other, other, other]", "C1"),
                            (rep, rep_ci, "repeat [base × 4]", "C0")):
        ax.plot(x, y, color=c, label=label)
        if ci is not None:
            ax.fill_between(x, ci[0], ci[1], color=c, alpha=0.2)
    for b in range(chunk, len(rep) + 1, chunk):
        ax.axvline(b - 0.5, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("position (predicting the next token)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_head_matrix(change, path, title, L: int, H: int):
    """(L*H, L*H) matrix: row = ablated head, column = head whose score changed."""
    change = np.asarray(change)
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
    return save_figure(fig, path)


BAR_COLORS = {"tested": "C3", "random": "C7"}


def plot_ablation_bars(labels, values, lo, hi, groups, path, title, ylabel):
    """Bars with their intervals [lo, hi]; groups[i] ("tested" or "random") picks bar i's colour. An interval is drawn
    as it is, also where it excludes its bar's value (a percentile bootstrap of a ratio whose denominator is near 0)."""
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(labels)), 4))
    colors = [BAR_COLORS[g] for g in groups]
    x, lo, hi = np.arange(len(labels)), np.asarray(lo, float), np.asarray(hi, float)
    ax.bar(x, values, color=colors)
    ax.errorbar(x, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none", ecolor="k", capsize=4)
    ax.set_xticks(x, labels, rotation=15, ha="right")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def plot_grouped_bars(groups: dict, path, title, ylabel):
    """groups: {group label: {bar label: (mean, lo, hi)}}, every group with the same bar labels: one colour per bar
    label, with a legend, and each bar's 95% interval."""
    names = list(next(iter(groups.values())))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) + 2), 4.2))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        x = np.arange(len(groups)) + (i - (len(names) - 1) / 2) * width
        mean, lo, hi = (np.array([g[name][k] for g in groups.values()], float) for k in range(3))
        ax.bar(x, mean, width, label=name, color=f"C{i}")
        ax.errorbar(x, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none", ecolor="k", capsize=3)
    ax.set_xticks(np.arange(len(groups)), [textwrap.fill(g, 20) for g in groups])  # long labels on several lines
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_search(labels, removed, restored, path, title, target: float):
    """The circuit search: each set's noising share removed and denoising share restored as heads are added."""
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(labels) + 3), 4))
    x = np.arange(1, len(labels) + 1)
    ax.plot(x, removed, "o-", label="noising: share removed")
    ax.plot(x, restored, "s-", label="denoising: share restored")
    ax.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:.0%}")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, [f"+{lab}" for lab in labels], rotation=15, ha="right")
    ax.set_xlabel("head added (its roles)")
    ax.set_ylabel("share of the in-context gain")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_specificity(scores, weights, costs, tested_score, tested_cost, path, title):
    """The patching score of every compared head set (a histogram weighted by how many sets each stands for) and
    against its cost on validation loss, with the tested set marked."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    ax1.hist(scores, bins=30, weights=weights, color=BAR_COLORS["random"])
    ax1.axvline(tested_score, color=BAR_COLORS["tested"], lw=2, label="tested set")
    ax1.set_xlabel("patching score: min(noising share removed, denoising share restored)")
    ax1.set_ylabel("head sets")
    ax1.legend()
    ax2.scatter(scores, costs, s=10, color=BAR_COLORS["random"], label="other sets")
    ax2.scatter([tested_score], [tested_cost], s=60, color=BAR_COLORS["tested"], marker="*", label="tested set")
    ax2.set_xlabel("patching score")
    ax2.set_ylabel("Δ validation loss (nats/token)\nthe set resample-ablated")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return save_figure(fig, path)


# ---- the interactive attention page (plotly) ----------------------------------------------------

PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: sans-serif; margin: 1.5em; max-width: 1400px; }} p {{ max-width: 60em; }}</style>
</head><body>
<h1>{title}</h1>
<p>{intro}</p>
{sections}
</body></html>
"""


def attention_page(path, title: str, intro: str, sections: list[dict], head_titles: dict | None = None):
    """One self-contained HTML file of attention heatmaps, one panel per head, with hover values.

    sections: [{"heading", "text", "patterns": (L, H, T, T), "labels": T axis labels, "center": bool}, ...];
    center=True draws a difference (blue < 0 < red) on a symmetric scale, else weights in [0, 1]. head_titles:
    (l, h) -> each panel's title (default "L{l}H{h}"), e.g. with the head's role. plotly.js is
    inlined once, so the page works offline; future positions (key > query) are left blank.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    html = []
    for i, sec in enumerate(sections):
        patterns = np.array(sec["patterns"], dtype=np.float32)
        L, H, T, _ = patterns.shape
        patterns[..., ~np.tri(T, dtype=bool)] = np.nan  # (L, H, T, T): only key <= query exists
        labels = [f"{j}: {tok}" for j, tok in enumerate(sec["labels"])]  # unique, so repeated tokens keep their cells
        lim = (float(np.nanmax(np.abs(patterns))) or 1.0) if sec["center"] else 1.0
        fig = make_subplots(L, H, subplot_titles=[escape((head_titles or {}).get((l, h), f"L{l}H{h}"))
                                                  for l in range(L) for h in range(H)],
                            horizontal_spacing=0.03, vertical_spacing=0.06 / max(1, L / 4))
        for l in range(L):
            for h in range(H):
                fig.add_trace(go.Heatmap(
                    z=patterns[l, h], x=labels, y=labels, coloraxis="coloraxis",
                    hovertemplate=f"L{l}H{h}<br>query %{{y}}<br>key %{{x}}<br>%{{z:.3f}}<extra></extra>"), l + 1, h + 1)
        # tokens on the axes of the outer panels (plotly thins them where they would overlap); all of them on hover
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, tickfont_size=8, tickangle=-90)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, tickfont_size=8, autorange="reversed")
        fig.update_xaxes(showticklabels=True, row=L)
        fig.update_yaxes(showticklabels=True, col=1)
        fig.update_layout(plot_bgcolor="white",
            height=260 * L + 140, width=260 * H + 260, margin=dict(t=40, l=110, r=20, b=100),
            coloraxis=dict(colorscale="RdBu_r" if sec["center"] else "Viridis", cmin=-lim if sec["center"] else 0,
                           cmax=lim, colorbar=dict(title=sec.get("scale", "attention"))))
        html.append(f"<h2>{escape(sec['heading'])}</h2>\n<p>{escape(sec['text'])}</p>\n"
                    + fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=f"section-{i}",
                                  config={"displaylogo": False}))
    page = PAGE_TEMPLATE.format(title=escape(title), intro=escape(intro), sections="\n".join(html))
    return write_file(path, page.encode("utf-8"), "attention page")
