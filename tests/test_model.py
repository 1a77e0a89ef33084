import math

import pytest
import torch

from config import PRESETS, ConfigError, preset_table, run_config
from TransformerModel import GPT, GPTConfig


def small(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32, **kw)).eval()


def test_causal_mask_future_tokens_never_change_past_logits():
    model = small()
    x = torch.randint(0, 50, (2, 16))
    base, _ = model(x)
    for t in range(16):
        y = x.clone()
        y[:, t] = (y[:, t] + 1) % 50
        out, _ = model(y)
        assert torch.equal(out[:, :t], base[:, :t]), f"changing token {t} changed earlier logits"
        assert not torch.allclose(out[:, t:], base[:, t:])


def test_fused_and_explicit_attention_agree():
    model = small()
    x = torch.randint(0, 50, (3, 16))
    fused, _ = model(x)
    for b in model.blocks:
        b.attn.attention = "explicit"
    explicit, _ = model(x)
    assert (fused - explicit).abs().max() < 1e-5


def test_hook_points_have_documented_shapes():
    model = small()
    B, T, C, H, D = 2, 10, 32, 4, 8
    names = {"hook_embed": (B, T, C), "hook_pos_embed": (B, T, C), "blocks.0.hook_resid_pre": (B, T, C),
             "blocks.1.hook_resid_post": (B, T, C), "blocks.0.hook_attn_out": (B, T, C),
             "blocks.0.hook_mlp_out": (B, T, C), "blocks.1.hook_resid_mid": (B, T, C),
             "blocks.0.attn.hook_q": (B, T, H, D), "blocks.0.attn.hook_k": (B, T, H, D),
             "blocks.0.attn.hook_v": (B, T, H, D), "blocks.1.attn.hook_z": (B, T, H, D),
             "blocks.1.attn.hook_attn_scores": (B, H, T, T), "blocks.1.attn.hook_pattern": (B, H, T, T),
             "blocks.0.mlp.hook_post": (B, T, 4 * C), "ln_final.hook_normalized": (B, T, C)}
    idx = torch.randint(0, 50, (B, T))
    logits, cache = model.run_with_cache(idx, list(names))  # (logits, cache), as in TransformerLens
    # the same logits (a pattern hook makes attention take the explicit path instead of the fused kernel)
    assert torch.allclose(logits, model(idx)[0], atol=1e-5) and set(cache) == set(names)
    assert set(model.run_with_cache(idx)[1]) == set(model.hook_points())  # no names: every hook point
    # return_type=None (TransformerLens's) skips the unembedding and caches the same activations, ln_final's too
    none, cache_only = model.run_with_cache(idx, list(names), return_type=None)
    assert none is None and all(torch.equal(cache_only[n], cache[n]) for n in names)
    with pytest.raises(ValueError, match="return_type must be 'logits' or None"):
        model.run_with_cache(idx, return_type="loss")
    for name, shape in names.items():
        assert tuple(cache[name].shape) == shape, name
    pattern = cache["blocks.1.attn.hook_pattern"]
    assert torch.allclose(pattern.sum(-1), torch.ones(B, H, T))
    assert (pattern.triu(1) == 0).all()
    scores = cache["blocks.1.attn.hook_attn_scores"]  # after the causal mask, as in TransformerLens
    assert torch.isinf(scores.triu(1)[scores.triu(1) != 0]).all() and torch.isfinite(scores.tril()).all()


def test_a_hook_receives_its_hook_point():
    model = small()
    seen = []
    with model.hooks([(f"blocks.{l}.attn.hook_z", lambda z, hook: seen.append((hook.name, hook.layer)))
                      for l in range(2)] + [("ln_final.hook_normalized", lambda x, hook: seen.append((hook.name, hook.layer)))]):
        model(torch.randint(0, 50, (1, 5)))
    assert seen == [("blocks.0.attn.hook_z", 0), ("blocks.1.attn.hook_z", 1), ("ln_final.hook_normalized", None)]


def test_editing_a_hook_changes_the_output_and_hooks_are_removed():
    model = small()
    x = torch.randint(0, 50, (2, 12))
    base, _ = model(x)

    def zero_head(z, hook):
        z = z.clone()
        z[:, :, 1] = 0
        return z

    with model.hooks([("blocks.0.attn.hook_z", zero_head)]):
        edited, _ = model(x)
    assert not torch.allclose(edited, base)
    after, _ = model(x)
    assert torch.equal(after, base)
    assert all(not hp._forward_hooks for hp in model.hook_points().values())
    with pytest.raises(KeyError, match="no hook point named"):
        with model.hooks([("blocks.9.attn.hook_z", zero_head)]):
            pass


def test_pattern_hook_switches_to_explicit_path():
    model = small()
    attn = model.blocks[0].attn
    assert not attn.needs_pattern()
    with model.hooks([("blocks.0.attn.hook_pattern", lambda p, n: None)]):
        assert attn.needs_pattern()
    assert not attn.needs_pattern()


@pytest.mark.parametrize("kw, match", [
    (dict(n_embd=30, n_head=4), "divisible by n_head"),
    (dict(block_size=0), "block_size must be a positive integer"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(dropout=-0.1), r"dropout must be in \[0, 1\)"),
    (dict(n_layer=2.5), "n_layer must be a positive integer"),
])
def test_config_validation(kw, match):
    args = dict(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8) | kw
    with pytest.raises(ValueError, match=match):
        GPTConfig(**args)


def test_unknown_preset_and_field():
    with pytest.raises(ConfigError, match="unknown preset 'huge'; choose one of tiny, 2M"):
        run_config("huge")
    with pytest.raises(ConfigError, match="unknown RunConfig field.* max_step;"):
        run_config("2M", max_step=5)


def test_input_longer_than_context_is_an_error_but_generation_crops():
    model = small()
    with pytest.raises(ValueError, match="exceeds block_size 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 50\)"):
        model(torch.full((1, 4), 50))
    out = model.generate(torch.zeros(1, 20, dtype=torch.long), 5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 25)


def test_init_and_parameter_counts():
    model = small()
    # GPT-2 init: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)
    assert abs(model.blocks[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002
    assert abs(model.blocks[0].attn.c_proj.weight.std().item() - 0.02 / math.sqrt(4)) < 0.002
    assert model.lm_head.weight is model.wte.weight
    # the original study's models had 2,008,064 and 5,588,992 params at its 9,378-token
    # vocabulary; ours differ only by LayerNorm parameters (2,048 / 4,096: one LayerNorm
    # per block more than the original's layout)
    for name, expected in (("2M", 2_008_064), ("5.6M", 5_588_992)):
        cfg = run_config(name, block_size=128)  # the original's context
        n = GPT(cfg.model_config(9378)).num_params()
        assert 0 < n - expected <= 16 * cfg.n_embd, (name, n)
    x, y = torch.randint(0, 50, (2, 1, 16))
    logits, loss = model(x, y)
    assert abs(loss.item() - math.log(50)) < 0.2  # near-uniform at init


def test_readme_preset_table_is_the_one_the_code_prints():
    from pathlib import Path
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert preset_table() in readme, "README's preset table is stale: paste the output of `python config.py`"
    assert set(PRESETS) == {"tiny", "2M", "5.6M", "char-2M", "char-5.6M", "original-2M", "original-5.6M"}



def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("chunk", [7, 128])  # a ragged last chunk, and one chunk for all rows
def test_chunked_loss_equals_cross_entropy_on_the_logits_with_the_same_gradients(chunk):
    from TransformerModel import linear_cross_entropy
    model = small().train()
    x, y = torch.randint(0, 50, (3, 16)), torch.randint(0, 50, (3, 16))
    ref_loss = model(x, y)[1]
    ref = _grads(model, ref_loss)
    h = model.ln_final(model.run_blocks(model.embed(x))).flatten(0, 1)
    loss = linear_cross_entropy(h, model.lm_head.weight, y.flatten(), chunk=chunk)
    got = _grads(model, loss)
    assert abs(loss.item() - ref_loss.item()) < 1e-5
    for n in ref:
        assert (got[n] - ref[n]).abs().max() <= 1e-5 * ref[n].abs().max() + 1e-8, n
    with torch.no_grad():
        per_token = model.loss(x, y, reduction="none")
        assert torch.allclose(per_token, model(x, y, reduction="none")[1], atol=1e-5)
    with pytest.raises(ValueError, match="computes no gradients"):
        linear_cross_entropy(h, model.lm_head.weight, y.flatten(), reduction="none")
    with pytest.raises(ValueError, match="reduction must be"):
        linear_cross_entropy(h, model.lm_head.weight, y.flatten(), reduction="sum")


def test_bf16_autocast_loss_and_gradients_stay_close_to_fp32():
    model = small().train()
    x, y = torch.randint(0, 50, (4, 16)), torch.randint(0, 50, (4, 16))
    ref_loss = model.loss(x, y)
    ref = _grads(model, ref_loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(x, y)
    assert loss.dtype == torch.float32 and abs(loss.item() - ref_loss.item()) < 1e-2
    got = _grads(model, loss)
    for n in ref:  # bf16 keeps 8 bits of mantissa: gradients agree to about 1%
        assert got[n].dtype == torch.float32
        assert (got[n] - ref[n]).norm() <= 0.05 * ref[n].norm() + 1e-8, n


def test_attention_path_under_cpu_autocast_is_the_explicit_one():
    attn = small().blocks[0].attn
    x = torch.zeros(1, 4, 32)
    assert not attn.explicit(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert attn.explicit(x)
        attn.attention = "fused"
        assert not attn.explicit(x)


def test_the_levers_change_what_they_say_and_nothing_else():
    """Shortformer positions reach the queries and keys only; attn_only drops the MLPs; init_std scales the init."""
    idx = torch.tensor([[3, 7, 3, 9, 3, 1]])
    sf = small(positions="shortformer")
    _, cache = sf.run_with_cache(idx)
    v, q, resid = cache["blocks.0.attn.hook_v"], cache["blocks.0.attn.hook_q"], cache["blocks.0.hook_resid_pre"]
    assert torch.equal(resid[0, 0], resid[0, 2]) and torch.allclose(v[0, 0], v[0, 2])  # token 3 at positions 0 and 2
    assert not torch.allclose(q[0, 0], q[0, 2])  # the queries see the positions
    assert torch.allclose(sf.loss(idx, idx), sf(idx, idx)[1]) and sf.num_params() == small().num_params()
    ao = small(attn_only=True)
    assert not any("mlp" in n or "ln_2" in n for n, _ in ao.named_parameters())
    assert "blocks.0.hook_mlp_out" not in ao.hook_points() and "blocks.1.hook_resid_post" in ao.hook_points()
    assert ao.num_params() < small().num_params() and torch.isfinite(ao(idx, idx)[1])
    std = lambda m: m.blocks[0].attn.c_attn.weight.std().item()  # noqa: E731
    assert std(small(init_std=0.005)) == pytest.approx(0.005, rel=0.1) and std(small()) == pytest.approx(0.02, rel=0.1)
    with pytest.raises(ValueError, match="positions must be one of residual, shortformer"):
        small(positions="rotary")
    from interop import transformer_lens_config
    assert transformer_lens_config(small())["positional_embedding_type"] == "standard"
    for lever in (dict(positions="shortformer"), dict(attn_only=True)):  # not mapped: refused, never exported wrong
        with pytest.raises(ValueError, match="the TransformerLens export covers the standard architecture"):
            transformer_lens_config(small(**lever))
    for lever in (dict(positions="shortformer"), dict(attn_only=True), dict(init_std=0.01)):
        cfg = run_config("tiny", **lever)
        assert cfg.name == "MiniGPT-tiny-" + "-".join(f"{k}={v}" for k, v in lever.items())  # off by default
        assert all(getattr(cfg.model_config(80), k) == v for k, v in lever.items())
