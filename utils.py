"""The figures (matplotlib) and the interactive attention page (plotly), shared by the notebooks, the study and
the scripts.

Every figure function takes numbers (arrays, or the typed rows of a training log), writes
a PNG (or the HTML page) and returns its path, so notebooks stay short and every figure is reproducible
from a script. Nothing here computes a metric.
"""
import io
from html import escape
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from checkpoint import write_file

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "font.size": 10, "axes.titlesize": 11})


def _save(fig, path):
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
    return _save(fig, path)


def _heatmap(ax, grid, title, cmap="RdBu_r", center=True, fmt="{:.2f}", ci=None, vlim=None):
    """Layers x heads heatmap with each cell's value (and CI) written in it."""
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
            ax.text(h, l, text, ha="center", va="center", fontsize=8 if ci is None else 7)
    return im


def plot_head_grid(grid, path, title, cbar_label, ci=None, center=True, cmap="RdBu_r"):
    L, H = np.asarray(grid).shape
    fig, ax = plt.subplots(figsize=(1.3 * H + 2.2, 0.9 * L + 1.6), layout="constrained")
    im = _heatmap(ax, grid, title, cmap=cmap, center=center, ci=ci)
    fig.colorbar(im, ax=ax, label=cbar_label)
    return _save(fig, path)


def plot_head_grids(grids: dict, path, title, cbar_label, center=True):
    """Several layers x heads grids side by side on one shared colour scale."""
    lim = max(1e-6, max(float(np.nanmax(np.abs(g))) for g in grids.values()))
    L, H = np.asarray(next(iter(grids.values()))).shape
    fig, axes = plt.subplots(1, len(grids), figsize=(len(grids) * (1.3 * H + 1.2) + 1.5, 0.9 * L + 1.8),
                             squeeze=False, layout="constrained")
    for ax, (name, g) in zip(axes[0], grids.items()):
        im = _heatmap(ax, g, name, center=center, vlim=lim)
    fig.suptitle(title)
    fig.colorbar(im, ax=axes[0].tolist(), label=cbar_label)
    return _save(fig, path)


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
    return _save(fig, path)


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
    return _save(fig, path)


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
    return _save(fig, path)


BAR_COLORS = {"tested": "C3", "random": "C7"}


def plot_ablation_bars(labels, values, errors, groups, path, title, ylabel):
    """Bars with error bars; groups[i] ("tested" or "random") picks bar i's colour."""
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(labels)), 4))
    colors = [BAR_COLORS[g] for g in groups]
    ax.bar(range(len(labels)), values, yerr=errors, color=colors, capsize=4)
    ax.set_xticks(range(len(labels)), labels, rotation=15, ha="right")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


FORMATION_X = {"tokens": "training tokens seen (millions)",
               "chars": "characters of training text seen (millions)",
               "minutes": "minutes of training"}


def plot_formation(runs: dict, path, title, threshold: float, formed_at: dict | None = None, x: str = "tokens"):
    """Induction formation during training for several runs {label: [MetricsRow, ...]}.

    Panels against x (FORMATION_X: tokens, characters of text or minutes): validation loss
    (nats/token against tokens, bits/char otherwise, so different tokenizers compare); the
    best head's Δ on random and text probes (with its 95% CI on random probes) and the line
    Δ = threshold; the in-context gain G. formed_at: {label: MetricsRow} marks where a run's
    first head formed (by random-probe Δ's lower CI bound).
    """
    if x not in FORMATION_X:
        raise ValueError(f"x must be one of {', '.join(FORMATION_X)}, got {x!r}")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), layout="constrained")
    for i, (label, metrics) in enumerate(runs.items()):
        c = f"C{i}"
        scale = metrics[-1].chars_per_token if x == "chars" else 1.0
        pos = (lambda m: m.train_s / 60) if x == "minutes" else (lambda m: m.tokens * scale / 1e6)  # noqa: E731
        rows = [m for m in metrics if m.probes]
        t = [pos(m) for m in rows]
        rnd = [m.probes["random"] for m in rows]
        txt = [m.probes["text-val"] for m in rows]
        axes[0].plot([pos(m) for m in metrics], [m.val_loss if x == "tokens" else m.val_bpc for m in metrics],
                     color=c, label=label)
        axes[1].plot(t, [p.best_delta.value.mean for p in rnd], color=c, label=f"{label}: random probes")
        axes[1].fill_between(t, [p.best_delta.value.lo for p in rnd], [p.best_delta.value.hi for p in rnd],
                             color=c, alpha=0.2)
        axes[1].plot(t, [p.best_delta.value.mean for p in txt], color=c, ls="--", label=f"{label}: text probes")
        axes[2].plot(t, [p.G for p in rnd], color=c, label=f"{label}: random probes")
        axes[2].plot(t, [p.G for p in txt], color=c, ls="--", label=f"{label}: text probes")
        if formed_at and formed_at.get(label) is not None:
            for ax in axes[1:]:
                ax.axvline(pos(formed_at[label]), color=c, ls=":", lw=1.2)
    axes[0].set_ylabel("validation loss (nats/token)" if x == "tokens" else "validation bits per character")
    axes[1].set_ylabel("best head's Δ = A(repeat) − A(control)")
    axes[1].axhline(threshold, color="grey", lw=0.8, ls="-.", label=f"Δ = {threshold} (formed: CI's lower bound above)")
    axes[2].set_ylabel("in-context gain G (nats/token)")
    for ax, name in zip(axes, ("validation loss", "induction score of the best head",
                               "in-context gain (line styles as in the middle panel)")):
        ax.set_xlabel(FORMATION_X[x])
        ax.set_title(name)
        ax.grid(alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()  # below the panels, where it hides no curve
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=7.5)
    fig.suptitle(title)
    return _save(fig, path)


def plot_formation_without_repeats(runs: dict, predicted: dict, path, title: str, thresholds: dict):
    """Training on natural text alone: {label: [MetricsRow, ...]} with the copying score logged.

    Panels against training tokens (log scale): validation loss; the best head's prefix matching and copying
    (random-known probes solid with their 95% CI, held-out text probes dashed) with each criterion's line
    (thresholds {score: value}); the best previous-token score. predicted {label: tokens}: the scaling law's
    formation point for the run's batch x context, a dotted line in the run's colour.
    """
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), layout="constrained")
    axes = axes.ravel()
    for i, (label, metrics) in enumerate(runs.items()):
        c = f"C{i}"
        rows = [m for m in metrics if m.probes and m.step]
        t = [m.tokens / 1e6 for m in rows]
        axes[0].plot([m.tokens / 1e6 for m in metrics if m.step], [m.val_loss for m in metrics if m.step], color=c,
                     label=label)
        for ax, score in zip(axes[1:3], ("prefix_match", "copying")):
            for kind, ls in (("random-known", "-"), ("text-val", "--")):
                best = [getattr(m.probes[kind], score).best().value for m in rows]
                ax.plot(t, [b.mean for b in best], color=c, ls=ls, label=f"{label}: {kind} probes")
                if kind == "random-known":
                    ax.fill_between(t, [b.lo for b in best], [b.hi for b in best], color=c, alpha=0.2)
        axes[3].plot(t, [m.probes["text-val"].best_prev_token.value.mean for m in rows], color=c, label=label)
        for ax in axes:
            ax.axvline(predicted[label] / 1e6, color=c, ls=":", lw=1.2)
    for ax, score in zip(axes[1:3], ("prefix_match", "copying")):
        ax.axhline(thresholds[score], color="grey", lw=0.8, ls="-.", label=f"criterion (lower CI bound ≥ "
                                                                              f"{thresholds[score]})")
    for ax, name, ylabel in zip(axes, ("validation loss", "prefix matching of the best head",
                                       "copying of the best head", "previous-token score of the best head"),
                                ("validation loss (nats/token)", "repeat − control (null 0)",
                                 "Δ logit, repeat − control (null 0)", "attention to t−1, text probes")):
        ax.set_xscale("log")
        ax.set_xlabel("training tokens seen (millions; dotted: the law's prediction)")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[1].get_legend_handles_labels()  # below the panels, where it hides no curve
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_dose_response(runs: dict, formed: dict, path, threshold: float):
    """Repeat fraction against formation and cost: runs {repeat_frac: [MetricsRow, ...]} (0: the control), formed
    {probe kind: {repeat_frac: the first MetricsRow with an induction head, or None}}.

    Panels: the best head's prefix matching on held-out text probes against tokens (the line: its criterion,
    threshold); validation loss minus the control's at equal tokens; the tokens to the first induction head against
    the repeat fraction (an open marker at the run's end: none formed by then).
    """
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), layout="constrained")
    ctl = {m.tokens: m.val_loss for m in runs[0.0]}
    for i, (frac, metrics) in enumerate(runs.items()):
        rows = [m for m in metrics if m.probes and m.step]
        label = f"repeat fraction {frac:g}" + (" (control)" if frac == 0 else "")
        axes[0].plot([m.tokens / 1e6 for m in rows], [m.probes["text-val"].prefix_match.best().value.mean for m in rows],
                     color=f"C{i}", label=label)
        both = [m for m in metrics if m.tokens in ctl and m.step]
        axes[1].plot([m.tokens / 1e6 for m in both], [m.val_loss - ctl[m.tokens] for m in both], color=f"C{i}",
                     label=label)
    axes[0].axhline(threshold, color="grey", lw=0.8, ls="-.", label=f"criterion (lower CI bound ≥ {threshold})")
    axes[1].axhline(0, color="grey", lw=0.8)
    for j, (kind, rows) in enumerate(formed.items()):
        shift = 0.006 * (j - (len(formed) - 1) / 2)  # side by side where the probe sets agree
        got = [(f + shift, r.tokens / 1e6) for f, r in rows.items() if r is not None]
        none = [(f + shift, runs[f][-1].tokens / 1e6) for f, r in rows.items() if r is None]
        if got:
            axes[2].plot(*zip(*got), "o-", color=f"C{j}", label=f"{kind} probes")
        if none:
            axes[2].plot(*zip(*none), "^", mfc="none", color=f"C{j}", label=f"{kind} probes: none by the run's end")
    axes[2].set_xticks(list(runs))
    axes[2].set_ylim(0, 1.1 * max(m[-1].tokens for m in runs.values()) / 1e6)
    for ax, title, xlabel, ylabel in zip(
            axes, ("formation on held-out text probes", "cost: validation loss against the control",
                   "tokens to the first induction head"),
            ("training tokens seen (millions)", "training tokens seen (millions)", "repeat fraction"),
            ("best head's prefix matching (null 0)", "validation loss − control's (nats/token)",
             "training tokens (millions)")):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5)
    fig.suptitle("Synthetic repeats: how much they accelerate induction heads, and what they cost")
    return _save(fig, path)


def plot_precision(runs: dict, path, threshold: float, nulls: dict | None = None, title: str | None = None):
    """fp32 against bf16 training: {"<preset> <precision>, seed <s>": [MetricsRow, ...]}.

    One row of panels per preset: validation loss, and the best head's Δ on the held-out text probes
    (the formation criterion's score, with the line Δ = threshold), against tokens. Colour: seed;
    line: precision (solid fp32, dashed bf16). nulls {preset: (label, metrics)}: an fp32 run that differs
    only in float rounding, in grey.
    """
    presets = sorted({label.split()[0] for label in runs}, key=lambda p: float(p.rstrip("M")))
    seeds = sorted({label.rsplit(" ", 1)[1] for label in runs})
    fig, axes = plt.subplots(len(presets), 2, figsize=(12, 3.8 * len(presets)), layout="constrained", squeeze=False)

    def draw(preset, metrics, **style):
        ax_loss, ax_delta = axes[presets.index(preset)]
        ax_loss.plot([m.tokens / 1e6 for m in metrics if m.step], [m.val_loss for m in metrics if m.step], **style)
        rows = [m for m in metrics if m.probes]
        ax_delta.plot([m.tokens / 1e6 for m in rows], [m.probes["text-val"].best_delta.value.mean for m in rows],
                      **style)

    for label, metrics in runs.items():
        preset, precision = label.split(",")[0].split()
        draw(preset, metrics, color=f"C{seeds.index(label.rsplit(' ', 1)[1])}",
             ls="-" if precision == "fp32" else "--", label=label)
    for preset, (label, metrics) in (nulls or {}).items():
        if preset in presets:
            draw(preset, metrics, color="grey", ls=":", label=label)
    for i, preset in enumerate(presets):
        ax_loss, ax_delta = axes[i]
        ax_loss.set_ylabel("validation loss (nats/token)")
        ax_loss.set_title(f"{preset}: validation loss")
        ax_delta.axhline(threshold, color="grey", lw=0.8, ls="-.", label=f"Δ = {threshold} (formed, with CI > 0)")
        ax_delta.set_ylabel("best head's Δ, held-out text probes")
        ax_delta.set_title(f"{preset}: induction score of the best head")
        for ax in axes[i]:
            ax.set_xlabel("training tokens seen (millions)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title or "fp32 (solid) against bf16 autocast (dashed) training, same seeds and batches")
    return _save(fig, path)


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


def attention_page(path, title: str, intro: str, sections: list[dict]):
    """One self-contained HTML file of attention heatmaps, one panel per head, with hover values.

    sections: [{"heading", "text", "patterns": (L, H, T, T), "labels": T axis labels, "center": bool}, ...];
    center=True draws a difference (blue < 0 < red) on a symmetric scale, else weights in [0, 1]. plotly.js is
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
        fig = make_subplots(L, H, subplot_titles=[f"L{l}H{h}" for l in range(L) for h in range(H)],
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
