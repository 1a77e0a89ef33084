"""MiniGPT in other tools: the TransformerLens export (`make test-interop`; needs requirements-interop.txt)."""
import pytest
import torch

import induction as ind
from checkpoint import load_model
from config import ROOT
from corpus import load_corpus
from reference_runs import REF, weights
from TransformerModel import GPT, GPTConfig

pytestmark = pytest.mark.interop
TOL = 1e-4


def export(run):
    from interop import to_transformer_lens
    model, tok, _ = load_model(weights(run))
    return model, tok, to_transformer_lens(model, tok)


@pytest.fixture(scope="module", params=["MiniGPT-2M", "MiniGPT-5.6M", "tokenizers/tokenizer-char-2M"])
def exported(request):
    return export(request.param)


def patterns(model, idx):
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.config.n_layer)]
    return model.run_with_cache(idx, names)


@torch.no_grad()
def test_logits_and_every_attention_pattern_match(exported):
    model, tok, tl = exported
    val = torch.tensor(tok.encode(load_corpus().val[:20000]))
    idx = torch.stack([val[i:i + model.config.block_size] for i in range(0, 800, 100)])  # (8, T) held-out text
    ours, cache = patterns(model, idx)
    theirs, tl_cache = tl.run_with_cache(idx)
    assert theirs.shape == ours.shape
    assert (theirs - ours).abs().max() < TOL
    for name, pattern in cache.items():
        assert tl_cache[name].shape == pattern.shape  # (B, H, T, T) in both
        assert (tl_cache[name] - pattern).abs().max() < TOL, name


@pytest.mark.parametrize("run", ["MiniGPT-2M", "tokenizers/tokenizer-char-2M"])  # models with induction heads
@torch.no_grad()
def test_transformer_lens_induction_detector_agrees_with_our_prefix_matching(run):
    """TL's own head detector on our random probes, through TL's tokenizer, against our score after the documented
    conversion (interop.tl_induction_score)."""
    from transformer_lens.head_detector import detect_head
    from interop import tl_induction_score
    model, tok, tl = export(run)
    corpus = load_corpus()
    alphabet = ind.probe_alphabet(torch.tensor(tok.encode(corpus.train)), tok.vocab_size, tok.special_ids)
    S = (model.config.block_size - 1) // ind.N_CHUNKS  # TL's detector needs fewer than n_ctx tokens
    probes = ind.random_probes(alphabet, S, 24, seed=3, block_size=model.config.block_size)
    texts = [tok.decode(row) for row in probes.repeat]
    assert all(tl.to_tokens(t)[0].tolist() == row.tolist() for t, row in zip(texts, probes.repeat))
    theirs = detect_head(tl, texts, "induction_head")  # (L, H)
    ours = ind.prefix_matching(ind.attention_patterns(model, probes.repeat), S).mean(0)  # (L, H)
    assert theirs.shape == ours.shape
    assert (theirs - tl_induction_score(ours)).abs().max() < TOL
    assert ours.max() > 2 * ind.chance_levels(S).prefix_match  # a head to agree about: well above uniform attention


@pytest.mark.parametrize("run", ["MiniGPT-2M", "tokenizers/tokenizer-char-2M", "tokenizers/tokenizer-bpe-2M"])
def test_transformer_lens_tokenizer_is_ours(run):
    from interop import hf_tokenizer
    _, tok, _ = load_model(weights(run))
    text = load_corpus().val[:30000]
    hf = hf_tokenizer(tok)
    ids = tok.encode(text)
    assert hf(text, add_special_tokens=False)["input_ids"] == ids
    assert hf.decode(ids[:50]) == tok.decode(ids[:50])


@torch.no_grad()
def test_a_model_without_biases_exports_with_zero_biases():
    from interop import to_transformer_lens, transformer_lens_state_dict
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16, bias=False)).eval()
    for p in model.parameters():  # LayerNorm weights away from 1, so a wrong LayerNorm would show
        p.add_(0.1 * torch.randn_like(p))
    sd = transformer_lens_state_dict(model)
    assert sd["blocks.0.attn.b_Q"].abs().sum() == 0 and sd["unembed.b_U"].abs().sum() == 0
    idx = torch.randint(0, 50, (3, 16))
    assert (to_transformer_lens(model)(idx) - model(idx)[0]).abs().max() < TOL


# ---- the attention page in a real browser (Debian's Chromium, network off) ------------------------------------

def browser_check():
    import sys
    sys.path.insert(0, str(ROOT / "scripts"))
    from browser_check import check_page
    return check_page


def test_the_attention_page_renders_every_head_offline_with_no_console_errors(tmp_path):
    import study
    cfg = study.StudyConfig(checkpoint=str(REF / "MiniGPT-2M"), n_prompts=16, n_ablate=8, precision="fp32",
                            plots_dir=str(tmp_path), out_json=str(tmp_path / "summary.json"))
    ctx = study.load(cfg)
    probes = study.make_probes(ctx, cfg)
    page = study.attention_page(ctx, cfg, probes, study.score_heads(ctx, probes))
    report = browser_check()(page, screenshot=tmp_path / "shot.png")
    print(report)
    heads = ctx.model.config.n_layer * ctx.model.config.n_head
    assert report.panels == {f"section-{i}": heads for i in range(1 + len(probes))}  # the prompt + each probe set
    assert report.errors == [] and report.blocked == []
    assert "query" in report.tooltip and "key" in report.tooltip  # hovering shows the tokens and the value
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_the_browser_check_catches_a_script_error_and_a_cdn_script(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>'
                   '<script>throw new Error("boom")</script></body></html>')
    report = browser_check()(bad)
    assert report.panels == {}
    assert any("boom" in e for e in report.errors)
    assert report.blocked == ["https://cdn.plot.ly/plotly-2.35.2.min.js"]
