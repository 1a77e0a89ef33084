"""A 2-layer MiniGPT with hand-set weights: L0H0 is an exact previous-token head and
L1H0 an exact induction head (K-composition through L0H0); every other head is inert.

The residual stream holds three one-hot subspaces, each stored as a (+1, -1) channel
pair so that every vector has zero mean and LayerNorm only rescales it:
tok (the current token), pos (the position) and prev (the previous token, written by L0H0).

build(dup_head=True) adds a duplicate-token head that carries part of the circuit, as L1H1, L0H0 or L0H3 do in the
trained models of issue #39: L0H1 attends to the earlier copy of the query's own token (never to itself) and writes
minus that token into the tok channels, so a repeated token stops predicting itself. The embedding then also writes
the token into a fourth block, qtok, which the induction head reads for its query and value instead of tok (the
duplicate-token head's write would otherwise turn its query around). On a repeat, the gain then comes from the
induction head's copy and from the duplicate-token head's suppression of the current token, which the tied
unembedding otherwise predicts with a logit as large as a copy's: the circuit at the measured positions is exactly
{L1H0, L0H1}, and L0H0 acts only through the keys of chunk 1.
"""
import torch

from TransformerModel import GPT, GPTConfig

V, T = 40, 32        # vocabulary, context (4 chunks of S = 8)
TOK, POS, PREV = 0, 2 * V, 2 * V + 2 * T      # start of each (+, -) channel pair block
C = 4 * V + 2 * T
QTOK = C             # the dup_head model's fourth block
DUP_WRITE = 2.0      # how much of minus the current token the duplicate-token head writes (in units of tok)


def _pair(w, out_plus, out_minus, col, value):
    w[out_plus, col] += value
    w[out_minus, col] -= value


def build(dup_head: bool = False) -> GPT:
    torch.manual_seed(0)
    c = C + 2 * V * dup_head
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=c, dropout=0.0))
    D = model.config.d_head
    read = QTOK if dup_head else TOK   # where the induction head reads the token
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.fill_(1.0)
        for t in range(V):
            model.wte.weight[t, TOK + t], model.wte.weight[t, TOK + V + t] = 1.0, -1.0
            if dup_head:
                model.wte.weight[t, QTOK + t], model.wte.weight[t, QTOK + V + t] = 1.0, -1.0
        for p in range(T):
            model.wpe.weight[p, POS + p], model.wpe.weight[p, POS + T + p] = 1.0, -1.0

        # Layer 0, head 0: previous-token head. q_i = e_i, k_j = e_{j+1}: i attends to i-1.
        a0 = model.blocks[0].attn
        wq, wk, wv = a0.c_attn.weight[:c], a0.c_attn.weight[c:2 * c], a0.c_attn.weight[2 * c:]
        for p in range(T):
            wq[p, POS + p] = 3.0
            if p + 1 < T:
                wk[p + 1, POS + p] = 3.0
        ln_scale0 = (c / (6 if dup_head else 4)) ** 0.5   # LayerNorm gain with 4 (6) nonzero entries
        for t in range(V):
            wv[t, TOK + t] = 1.0                      # value: the key's token
            _pair(a0.c_proj.weight, PREV + t, PREV + V + t, t, 1.0 / ln_scale0)  # write it to prev

        if dup_head:  # Layer 0, head 1: duplicate-token head. Same token, never itself; writes minus that token.
            for t in range(V):
                wq[D + t, TOK + t] = 3.0
                wk[D + t, TOK + t] = 3.0
                wv[D + t, TOK + t] = 1.0
                _pair(a0.c_proj.weight, TOK + t, TOK + V + t, D + t, -DUP_WRITE / ln_scale0)
            for p in range(T):
                wq[D + V + p, POS + p] = 3.0
                wk[D + V + p, POS + p] = -3.0

        # Layer 1, head 0: induction head. Query token X matches keys whose prev is X,
        # with a small recency bias (dim V of the head) so the latest copy wins.
        a1 = model.blocks[1].attn
        wq, wk, wv = a1.c_attn.weight[:c], a1.c_attn.weight[c:2 * c], a1.c_attn.weight[2 * c:]
        for t in range(V):
            wq[t, read + t] = 3.0
            wk[t, PREV + t] = 3.0
            wq[V, read + t] = 1.0                     # constant query component
        for p in range(T):
            wk[V, POS + p] = 0.2 * p                  # recency: later keys score higher
        ln_scale1 = (c / (8 if dup_head else 6)) ** 0.5
        for t in range(V):
            wv[t, read + t] = 1.0
            _pair(a1.c_proj.weight, TOK + t, TOK + V + t, t, 3.0 / ln_scale1)  # boost the copied token
        assert D >= V + T + 1
    return model.eval()
