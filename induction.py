"""The induction-head study: probes, per-head scores, in-context gain, ablations, circuits.

Definitions (S = chunk length, prompts are 4 chunks, positions 0 .. 4S-1):

* Probes. repeat = [base, base, base, base]; control = [base, c1, c2, c3].
  - text probes: base and c1..c3 are non-overlapping excerpts of S tokens of
    (by default held-out validation) text;
  - random probes (Olsson et al. 2022): base is S distinct tokens drawn uniformly from
    the probe alphabet; each control chunk is S distinct tokens drawn from the alphabet
    minus the base tokens, so a control prompt never repeats a base token. The probe
    alphabet is every token seen in training minus special tokens (<unk>) and minus
    the most frequent 4% and the rarest 4% of those tokens (Olsson et al.'s cut).
* Induction score A of a head: mean attention from each query q in chunks 2-4
  (S <= q < 4S) to key q - S + 1, the position right after the previous occurrence
  of q's token in a repeat prompt. A(r) on repeat prompts, A(c) on control prompts,
  Δ = A(r) - A(c) (paired per prompt); its null is 0. Under uniform attention A itself
  would be the mean over those queries of 1/(q+1) (chance_levels).
* Prefix-matching score (Olsson et al. 2022): the same queries, counting attention to the
  token after *every* earlier copy (q - kS + 1, k = 1, 2, 3), repeat minus control. A head
  that spreads its attention over all earlier copies scores up to 1 here and less in Δ.
* Previous-token score: mean attention from q to q - 1 over q >= 1 (repeat prompts).
* In-context gain G: mean over positions q in [S, 4S-1) of loss_control(q) - loss_repeat(q),
  where loss(q) is the cross-entropy of predicting token q+1 from position q. Unlike the
  original study's δ it keeps each chunk's first and last positions; it is not Olsson et
  al.'s in-context-learning score either.
* CIs: percentile bootstrap over prompts (95%, 1000 resamples).
* Ablation of head (l, h) acts on blocks.{l}.attn.hook_z, the head's output before
  the output projection: zero ablation sets it to 0, mean ablation to its mean over all
  probe prompts (repeat and control) and all positions. Many ablations run in one
  batched forward pass: each replica of the probe batch carries its own head mask.
* K-composition (Elhage et al. 2021) of head a (earlier layer) into head b:
  ||W_OV^a W_QK^bᵀ||_F / (||W_OV^a||_F ||W_QK^b||_F) with W_OV = W_V W_O, W_QK = W_Q W_Kᵀ
  (LayerNorm scales ignored), against the same score for Gaussian matrices of the same shapes.
"""
from dataclasses import dataclass, field

import numpy as np
import torch

N_CHUNKS = 4
FREQ_CUT = 0.04
PROBE_S = 16            # chunk length of the study's and the training log's probes
TRAINING_PROBE_N = 48   # prompts per probe set logged during training
FORMED_DELTA = 0.3      # a head has "formed" when its score is >= this with the CI above 0


class ProbeError(ValueError):
    pass


@dataclass
class Probes:
    repeat: torch.Tensor   # (N, 4S) token ids
    control: torch.Tensor  # (N, 4S)
    S: int
    kind: str              # "text-val", "text-train" or "random": each probe set's one name, everywhere

    @property
    def n(self) -> int:
        return len(self.repeat)


def check_chunk(S, block_size: int):
    if isinstance(S, bool) or not isinstance(S, int) or S < 2:
        raise ProbeError(f"chunk length S must be an integer >= 2, got {S!r}")
    if N_CHUNKS * S > block_size:
        raise ProbeError(f"{N_CHUNKS} chunks of S={S} tokens need a context of {N_CHUNKS * S}, more than the model's "
                         f"block_size {block_size}; use S <= {block_size // N_CHUNKS}")


def text_probes(tokens: torch.Tensor, S: int, n: int, seed: int, block_size: int, kind="text-val") -> Probes:
    """Excerpts of `tokens` (1-D); control chunks never overlap the base excerpt."""
    check_chunk(S, block_size)
    if len(tokens) < 4 * S:
        raise ProbeError(f"the text has {len(tokens)} tokens, too few for probes of 4 x {S}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(tokens) - S + 1, (n, N_CHUNKS), generator=g)
    for _ in range(100):  # redraw control excerpts that overlap the base
        bad = (starts[:, 1:] - starts[:, :1]).abs() < S
        if not bad.any():
            break
        starts[:, 1:][bad] = torch.randint(0, len(tokens) - S + 1, (int(bad.sum()),), generator=g)
    chunks = tokens.unfold(0, S, 1)[starts]  # (n, 4, S)
    return Probes(chunks[:, :1].expand(-1, N_CHUNKS, -1).reshape(n, -1).clone(), chunks.reshape(n, -1).clone(), S, kind)


def probe_alphabet(train_tokens: torch.Tensor, vocab_size: int, special_ids=(), cut: float = FREQ_CUT) -> torch.Tensor:
    """Token ids seen in training, minus specials and the top / bottom `cut` fraction by frequency."""
    counts = torch.bincount(train_tokens, minlength=vocab_size)
    counts[list(special_ids)] = 0
    seen = torch.argsort(counts, descending=True, stable=True)[: int((counts > 0).sum())]
    k = int(len(seen) * cut)
    return seen[k: len(seen) - k]


def random_probes(alphabet: torch.Tensor, S: int, n: int, seed: int, block_size: int) -> Probes:
    check_chunk(S, block_size)
    if len(alphabet) < 2 * S:
        raise ProbeError(f"random probes need at least 2*S = {2 * S} distinct tokens (S for the base, S for each "
                         f"control chunk), but the probe alphabet has {len(alphabet)}; use S <= {len(alphabet) // 2}")
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(n, len(alphabet), generator=g).argsort(dim=1)
    base = alphabet[order[:, :S]]                       # (n, S) distinct
    rest = alphabet[order[:, S:]]                       # (n, |A| - S): everything but the base
    ctl = [rest.gather(1, torch.rand(rest.shape, generator=g).argsort(dim=1)[:, :S]) for _ in range(N_CHUNKS - 1)]
    return Probes(base.repeat(1, N_CHUNKS), torch.cat([base] + ctl, dim=1), S, "random")


# ---- typed results -----------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% bootstrap CI."""
    mean: float
    lo: float
    hi: float

    def __str__(self):
        return f"{self.mean:.3f} [{self.lo:.3f}, {self.hi:.3f}]"

    def clears(self, threshold: float) -> bool:
        """The formation criterion: mean >= threshold with the CI above 0."""
        return self.mean >= threshold and self.lo > 0


@dataclass(frozen=True)
class HeadValue:
    """One head's score: L{layer}H{head} mean [lo, hi]."""
    layer: int
    head: int
    value: Estimate

    @property
    def label(self) -> str:
        return f"L{self.layer}H{self.head}"

    def __str__(self):
        return f"{self.label} {self.value}"


@dataclass
class HeadScores:
    """A per-head score with its CIs: mean, lo and hi are each (L, H) arrays."""
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self):
        self.mean, self.lo, self.hi = (np.asarray(a, dtype=float) for a in (self.mean, self.lo, self.hi))

    def at(self, layer: int, head: int) -> HeadValue:
        return HeadValue(int(layer), int(head), Estimate(float(self.mean[layer, head]), float(self.lo[layer, head]),
                                                         float(self.hi[layer, head])))

    def best(self) -> HeadValue:
        """The head with the highest mean."""
        return self.at(*np.unravel_index(self.mean.argmax(), self.mean.shape))

    def passing(self, threshold: float) -> list[HeadValue]:
        """Heads whose score clears the threshold (Estimate.clears), strongest first."""
        heads = [self.at(l, h) for l, h in np.ndindex(*self.mean.shape)]
        return sorted((hv for hv in heads if hv.value.clears(threshold)), key=lambda hv: -hv.value.mean)


@dataclass(frozen=True)
class Chance:
    """What each score would be under uniform attention over the causal prefix (raw attention, not Δ)."""
    induction: float
    prefix_match: float
    prev_token: float


@dataclass
class Curve:
    """A per-position quantity with its CIs, each (T-1,)."""
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


@dataclass
class ProbeScores:
    """Every head's scores on one probe set (head_scores); patterns are kept for figures, not JSON."""
    kind: str
    S: int
    n: int
    chance: Chance
    A_repeat: HeadScores
    A_control: HeadScores
    delta: HeadScores
    prefix_match: HeadScores
    prev_token: HeadScores
    G: Estimate
    loss_repeat: Curve
    loss_control: Curve
    mean_pattern_repeat: torch.Tensor | None = field(default=None, metadata={"json": False})   # (L, H, T, T)
    mean_pattern_control: torch.Tensor | None = field(default=None, metadata={"json": False})  # (L, H, T, T)
    example_pattern: torch.Tensor | None = field(default=None, metadata={"json": False})       # (L, H, T, T)

    def __str__(self):
        return (f"{self.kind:>10}: best Δ {self.delta.best()} (null 0; chance of the raw attention A "
                f"{self.chance.induction:.3f}); best prefix matching {self.prefix_match.best()}; "
                f"G {self.G} nats/token; best previous-token {self.prev_token.best()} "
                f"(chance {self.chance.prev_token:.3f})")


# ---- scores ----------------------------------------------------------------------------

def induction_diag(pattern: torch.Tensor, S: int) -> torch.Tensor:
    """pattern (..., T, T) -> (...,): mean attention from q in [S, T) to q - S + 1."""
    return pattern.diagonal(offset=-(S - 1), dim1=-2, dim2=-1)[..., 1:].mean(-1)


def prefix_matching(pattern: torch.Tensor, S: int) -> torch.Tensor:
    """pattern (..., T, T) -> (...,): mean over q in [S, T) of the total attention from q to
    q - kS + 1 for every earlier copy k (Olsson et al.'s prefix-matching score on a prompt of
    repeated chunks). A head that splits its attention over all earlier copies scores up to 1
    here but only its share for the most recent copy in induction_diag."""
    T = pattern.shape[-1]
    q = torch.arange(S, T)
    total = 0
    for k in range(1, T // S):
        total = total + pattern[..., q, (q - k * S + 1).clamp(min=0)] * (q >= k * S)
    return total.mean(-1)


def prev_token_diag(pattern: torch.Tensor) -> torch.Tensor:
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)


def chance_levels(S: int) -> Chance:
    T = N_CHUNKS * S
    return Chance(induction=float(np.mean([1 / (q + 1) for q in range(S, T)])),
                  prefix_match=float(np.mean([(q // S) / (q + 1) for q in range(S, T)])),
                  prev_token=float(np.mean([1 / (q + 1) for q in range(1, T)])))


def bootstrap(values, n_boot: int = 1000, seed: int = 0):
    """values (N, ...) per prompt -> (mean, lo, hi), each (...): percentile 95% CI of the mean."""
    v = torch.as_tensor(values, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(v), (n_boot, len(v)), generator=g)
    means = v[idx].mean(1)  # (n_boot, ...)
    lo, hi = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64), dim=0)
    return v.mean(0).numpy(), lo.numpy(), hi.numpy()


def _layer_names(model, hook):
    return [f"blocks.{l}.attn.{hook}" for l in range(model.config.n_layer)]


@torch.no_grad()
def attention_patterns(model, idx: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(N, T) -> (N, L, H, T, T) attention patterns."""
    names = _layer_names(model, "hook_pattern")
    device = next(model.parameters()).device
    out = []
    for chunk in idx.split(batch):
        _, _, cache = model.run_with_cache(chunk.to(device), names)
        out.append(torch.stack([cache[n] for n in names], 1).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def position_losses(model, idx: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(N, T) -> (N, T-1): loss of predicting idx[:, t+1] from position t."""
    device = next(model.parameters()).device
    out = []
    for chunk in idx.split(batch):
        chunk = chunk.to(device)
        loss = model.loss(chunk[:, :-1], chunk[:, 1:], reduction="none")
        out.append(loss.float().cpu())
    return torch.cat(out)


def gain_per_prompt(rep_loss: torch.Tensor, ctl_loss: torch.Tensor, S: int) -> torch.Tensor:
    """(..., T-1) per-position losses -> (...,) in-context gain G over q in [S, 4S-1)."""
    return (ctl_loss[..., S:] - rep_loss[..., S:]).mean(-1)


def head_scores(model, probes: Probes, n_boot: int = 1000, seed: int = 0) -> ProbeScores:
    """Per-head A(r), A(c), Δ, prefix-matching and previous-token scores with CIs, plus losses and G."""
    pr, pc = attention_patterns(model, probes.repeat), attention_patterns(model, probes.control)
    a_r, a_c = induction_diag(pr, probes.S), induction_diag(pc, probes.S)  # (N, L, H)
    rep_loss, ctl_loss = position_losses(model, probes.repeat), position_losses(model, probes.control)
    per_head = lambda v: HeadScores(*bootstrap(v, n_boot, seed))  # noqa: E731
    curve = lambda v: Curve(*bootstrap(v, n_boot, seed))  # noqa: E731
    return ProbeScores(
        kind=probes.kind, S=probes.S, n=probes.n, chance=chance_levels(probes.S),
        A_repeat=per_head(a_r), A_control=per_head(a_c), delta=per_head(a_r - a_c),
        prefix_match=per_head(prefix_matching(pr, probes.S) - prefix_matching(pc, probes.S)),
        prev_token=per_head(prev_token_diag(pr)),
        G=Estimate(*map(float, bootstrap(gain_per_prompt(rep_loss, ctl_loss, probes.S), n_boot, seed))),
        loss_repeat=curve(rep_loss), loss_control=curve(ctl_loss),
        mean_pattern_repeat=pr.mean(0), mean_pattern_control=pc.mean(0), example_pattern=pr[0])


# ---- ablations ---------------------------------------------------------------------------

def check_heads(model, heads):
    L, H = model.config.n_layer, model.config.n_head
    for lh in heads:
        l, h = lh
        if not (0 <= l < L and 0 <= h < H):
            raise ValueError(f"head (layer {l}, head {h}) does not exist: this model has layers 0..{L - 1} "
                             f"and heads 0..{H - 1}")


def head_mask(model, heads_per_config) -> torch.Tensor:
    """[[(l, h), ...], ...] -> keep mask (K, L, H): 0 where that config ablates the head."""
    keep = torch.ones(len(heads_per_config), model.config.n_layer, model.config.n_head)
    for k, heads in enumerate(heads_per_config):
        check_heads(model, heads)
        for l, h in heads:
            keep[k, l, h] = 0
    return keep


@torch.no_grad()
def mean_head_outputs(model, idx: torch.Tensor) -> torch.Tensor:
    """Mean of hook_z over prompts and positions: (L, H, D), the mean-ablation values."""
    names = _layer_names(model, "hook_z")
    device = next(model.parameters()).device
    _, _, cache = model.run_with_cache(idx.to(device), names)
    return torch.stack([cache[n].mean((0, 1)) for n in names]).cpu()


@torch.no_grad()
def ablated_run(model, idx: torch.Tensor, keep: torch.Tensor, fill: torch.Tensor, S: int | None = None,
                loss_from: int = 0, max_tokens: int = 16384):
    """Run idx (n, T) once per ablation config, in batched forward passes.

    keep (K, L, H): 1 keeps a head, 0 replaces its hook_z output by fill (L, H, D).
    An ablation in layer l changes nothing before it, so each config restarts from the clean
    residual stream entering its first ablated layer, and the (10k-word) unembedding runs only
    for the targets from position loss_from on.
    Returns per-position losses (K, n, T-1-loss_from) and, if S is given, induction scores (K, n, L, H).
    """
    device = next(model.parameters()).device
    L, H = model.config.n_layer, model.config.n_head
    n, T = idx.shape
    idx, keep, fill = idx.to(device), keep.to(device), fill.to(device)
    inputs, targets = idx[:, :-1], idx[:, 1 + loss_from:]
    resid_names = [f"blocks.{l}.hook_resid_pre" for l in range(L)] + [f"blocks.{L - 1}.hook_resid_post"]
    pattern_names = _layer_names(model, "hook_pattern") if S is not None else []
    _, _, clean = model.run_with_cache(inputs, resid_names + pattern_names)
    resid = [clean[nm] for nm in resid_names]  # resid[l]: (n, T-1, C) entering layer l; resid[L]: the output
    layer_ablated = (keep == 0).any(-1)  # (K, L)
    first = torch.where(layer_ablated.any(-1), layer_ablated.float().argmax(-1), L).tolist()
    losses = torch.empty(len(keep), n, T - 1 - loss_from)
    scores = None
    if S is not None:  # layers before a config's first ablated layer keep their clean scores
        clean_scores = torch.stack([induction_diag(clean[nm], S) for nm in pattern_names], 1)  # (n, L, H)
        scores = clean_scores.float().cpu().expand(len(keep), n, L, H).clone()
    per_fwd = max(1, max_tokens // (n * T))
    for l0 in sorted(set(first)):
        todo = [k for k in range(len(keep)) if first[k] == l0]
        for c in range(0, len(todo), per_fwd):
            ks = todo[c: c + per_fwd]
            kc, K = keep[ks], len(ks)
            layer_scores = {}

            def z_hook(z, hook):  # z: (K*n, T, H, D)
                l = hook.layer
                m = kc[:, l].view(K, 1, 1, H, 1)
                z = z.view(K, n, *z.shape[1:])
                return (z * m + fill[l].view(1, 1, 1, H, -1) * (1 - m)).flatten(0, 1)

            def pattern_hook(p, hook):  # p: (K*n, H, T, T)
                layer_scores[hook.layer] = induction_diag(p, S).view(K, n, H)

            hooks = [(nm, z_hook) for nm in _layer_names(model, "hook_z")]
            hooks += [(nm, pattern_hook) for nm in pattern_names]
            x = resid[l0].repeat(K, 1, 1)  # (K*n, T-1, C)
            with model.hooks(hooks):
                for block in model.blocks[l0:]:
                    x = block(x)
            loss = model.unembed_loss(x[:, loss_from:], targets.repeat(K, 1), reduction="none")
            losses[ks] = loss.view(K, n, -1).float().cpu()
            for l, v in layer_scores.items():
                scores[ks, :, l] = v.float().cpu()
    return losses, scores


def val_windows(val_tokens: torch.Tensor, block_size: int, n: int = 16, seed: int = 0) -> torch.Tensor:
    """n fixed windows of block_size + 1 tokens (input and shifted target) of validation text."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(val_tokens) - block_size - 1, (n,), generator=g)
    return val_tokens.unfold(0, block_size + 1, 1)[starts]


def ablate(model, probes: Probes, configs, fill: torch.Tensor, val: torch.Tensor | None = None) -> dict:
    """Evaluate ablation configs [[(l, h), ...], ...] (the first should be [] = no ablation).

    Returns per config: G per prompt (K, n), Δ per prompt and head (K, n, L, H), and the
    mean validation loss (K,) if val windows are given.
    """
    keep = head_mask(model, configs)
    both = torch.cat([probes.repeat, probes.control])
    loss, sc = ablated_run(model, both, keep, fill, probes.S, loss_from=probes.S)
    n = probes.n
    out = {"G": gain_per_prompt(loss[:, :n], loss[:, n:], 0),  # the losses already start at q = S
           "delta": sc[:, :n] - sc[:, n:]}
    if val is not None:
        vloss, _ = ablated_run(model, val, keep, fill)
        out["val_loss"] = vloss.mean((1, 2))
    return out


# ---- composition ------------------------------------------------------------------------

def head_weights(model, l: int):
    """Per-head W_Q, W_K, W_V (H, C, D) and W_O (H, D, C) of layer l, in x @ W convention."""
    attn = model.blocks[l].attn
    C, H, D = model.config.n_embd, model.config.n_head, model.config.d_head
    wq, wk, wv = attn.c_attn.weight.detach().view(3, H, D, C).transpose(-1, -2).unbind(0)
    wo = attn.c_proj.weight.detach().view(C, H, D).permute(1, 2, 0)
    return wq, wk, wv, wo


def _kcomp(w_ov, w_qk):
    return torch.linalg.matrix_norm(w_ov @ w_qk.transpose(-1, -2)) / (
        torch.linalg.matrix_norm(w_ov) * torch.linalg.matrix_norm(w_qk))


def k_composition(model, n_random: int = 200, seed: int = 0) -> dict:
    """scores[a_layer][a_head][b_layer][b_head] for a_layer < b_layer (NaN otherwise) and a random baseline."""
    L, H, C, D = model.config.n_layer, model.config.n_head, model.config.n_embd, model.config.d_head
    w = [head_weights(model, l) for l in range(L)]
    w_ov = [wv @ wo for _, _, wv, wo in w]                     # (H, C, C)
    w_qk = [wq @ wk.transpose(-1, -2) for wq, wk, _, _ in w]  # (H, C, C)
    scores = torch.full((L, H, L, H), float("nan"))
    for la in range(L):
        for lb in range(la + 1, L):
            scores[la, :, lb, :] = _kcomp(w_ov[la][:, None], w_qk[lb][None, :])
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(n_random, *s, generator=g)  # noqa: E731
    base = _kcomp(r(C, D) @ r(D, C), r(C, D) @ r(C, D).transpose(-1, -2))
    return {"scores": scores, "random_mean": float(base.mean()), "random_std": float(base.std())}


# ---- cheap metrics during training -------------------------------------------------------

@dataclass
class ProbeLog:
    """One probe set's scores as logged during training (TrainingProbe)."""
    best_delta: HeadValue
    best_prefix_match: HeadValue | None   # None in logs written before the score existed
    max_prev_token: float
    G: float
    delta: np.ndarray                     # (L, H) every head's mean Δ

    def best(self, score: str = "delta") -> HeadValue | None:
        return {"delta": self.best_delta, "prefix_match": self.best_prefix_match}[score]


class TrainingProbe:
    """A small fixed probe set scored every few hundred training steps (formation curves)."""

    def __init__(self, model, train_tokens, val_tokens, tok, S: int = PROBE_S, n: int = TRAINING_PROBE_N,
                 seed: int = 0):
        self.model = model
        block_size = model.config.block_size
        S = min(S, block_size // N_CHUNKS)
        alpha = probe_alphabet(train_tokens, tok.vocab_size, tok.special_ids)
        self.sets = {"text-val": text_probes(val_tokens, S, n, seed, block_size, "text-val"),
                     "random": random_probes(alpha, S, n, seed, block_size)}

    def __call__(self) -> dict[str, ProbeLog]:
        was_training = self.model.training
        self.model.eval()
        logs = {}
        for kind, p in self.sets.items():
            s = head_scores(self.model, p, n_boot=200)
            logs[kind] = ProbeLog(best_delta=s.delta.best(), best_prefix_match=s.prefix_match.best(),
                                  max_prev_token=float(s.prev_token.mean.max()), G=s.G.mean, delta=s.delta.mean)
        self.model.train(was_training)
        return logs


def first_formed(metrics, kind: str = "random", score: str = "delta", threshold: float = FORMED_DELTA):
    """The first logged row (train.MetricsRow) whose best head's `score` ("delta" or "prefix_match")
    on the `kind` probes clears the threshold with its CI above 0, else None."""
    for m in metrics:
        best = m.probes[kind].best(score) if kind in m.probes else None
        if best is not None and best.value.clears(threshold):
            return m
    return None
