"""MiniGPT as a Hugging Face GPT-2 folder (interop.to_hf, `make export`): transformers loads it with no code of ours
and computes our logits; AutoTokenizer gives our ids; load_hf brings it back (`make test-interop`)."""
import json

import pytest
import torch

from checkpoint import load_model
from config import ROOT
from reference_runs import REF, weights
from TransformerModel import GPT, GPTConfig

pytestmark = pytest.mark.interop
TOL = 1e-4
PERSUASION = (ROOT / "Data" / "persuasion.txt").read_text()[20_000:21_500]  # a paragraph of a held-out novel


@pytest.fixture(scope="module", params=["MiniGPT-2M", "MiniGPT-5.6M", "tokenizers/tokenizer-char-2M"])
def exported(request, tmp_path_factory):
    from interop import to_hf
    folder = to_hf(weights(request.param), tmp_path_factory.mktemp("hf") / "model")
    return request.param, folder


@torch.no_grad()
def test_transformers_loads_the_folder_alone_and_computes_our_logits_and_ids(exported):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, GPT2LMHeadModel
    run, folder = exported
    model, tok, _ = load_model(weights(run))
    hf = GPT2LMHeadModel.from_pretrained(str(folder)).eval()
    hf_tok = AutoTokenizer.from_pretrained(str(folder))
    ids = tok.encode(PERSUASION)
    assert hf_tok(PERSUASION)["input_ids"] == ids  # the whole paragraph, token for token
    T = model.config.block_size
    idx = torch.tensor([ids[i:i + T] for i in range(0, len(ids) - T, T)][:8])  # (n, T)
    worst = (hf(idx).logits - model(idx)[0]).abs().max().item()
    print(f"{run}: largest logit difference {worst:.1e}")
    assert worst < TOL
    config = json.loads((folder / "config.json").read_text())
    assert config["activation_function"] == "gelu" and config["layer_norm_epsilon"] == 1e-5
    assert config["tie_word_embeddings"] and "lm_head.weight" not in load_file(str(folder / "model.safetensors"))
    assert f"--preset {json.loads((folder / 'minigpt.json').read_text())['train_config']['preset']}" in \
           (folder / "README.md").read_text()


@torch.no_grad()
def test_load_hf_round_trips_to_our_model_and_tokenizer(exported):
    from interop import load_hf
    run, folder = exported
    model, tok, _ = load_model(weights(run))
    back, back_tok = load_hf(folder)
    assert back_tok.state() == tok.state()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))


@pytest.mark.parametrize("lever", ["char2M-ctx256-norep-shortformer", "char2M-ctx256-norep-attn-only-2-layers"])
def test_architectures_gpt2_cannot_represent_are_refused_with_the_way_out(lever, tmp_path):
    from interop import to_hf
    with pytest.raises(ValueError, match="GPT-2 cannot represent this model .* TransformerLens"):
        to_hf(REF / "levers" / lever / "best.pt", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_model_without_biases_exports_with_zero_biases():
    from gpt2_folder import hf_state_dict
    torch.manual_seed(0)
    sd = hf_state_dict(GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8, bias=False)))
    assert not sd["transformer.h.0.attn.c_attn.bias"].any() and sd["transformer.h.0.attn.c_attn.weight"].shape == (8, 24)


@torch.no_grad()
def test_nnsight_reads_our_activations_and_reproduces_a_study_score(tmp_path):
    """nnsight on the exported 2M reference: layer 1's attention output is our blocks.1.hook_attn_out, and L1H3's
    prefix-matching score on 8 random-known probe prompts, computed from nnsight's queries and keys, is ours."""
    import math

    from nnsight import LanguageModel

    import induction as ind
    from corpus import load_corpus
    from interop import to_hf
    model, tok, _ = load_model(REF / "MiniGPT-2M")
    folder = to_hf(REF / "MiniGPT-2M", tmp_path / "hf")  # an exported folder exports again
    lm = LanguageModel(str(folder), dispatch=True)
    train = torch.tensor(tok.encode(load_corpus().train))
    S, T, (H, D) = ind.PROBE_S, model.config.block_size, (model.config.n_head, model.config.d_head)
    probes = ind.random_probes(ind.probe_alphabets(train, tok)["random-known"], S, 8, 0, T)
    idx = torch.cat([probes.repeat, probes.control])                                # (16, 4S)
    with lm.trace(idx):
        qkv = lm.transformer.h[1].attn.c_attn.output.save()                         # (16, T, 3C)
        attn_out = lm.transformer.h[1].attn.output.save()                           # (out, weights)
    _, cache = model.run_with_cache(idx, ["blocks.1.hook_attn_out", "blocks.1.attn.hook_pattern"])
    assert (attn_out[0] - cache["blocks.1.hook_attn_out"]).abs().max() < TOL
    q, k, _ = (t.view(len(idx), -1, H, D).transpose(1, 2) for t in qkv.split(H * D, -1))  # (16, H, T, D)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(D)).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -math.inf)
    pm = ind.prefix_matching(scores.softmax(-1)[:, 3], S)                           # L1H3, per prompt
    ours = ind.prefix_matching(cache["blocks.1.attn.hook_pattern"][:, 3], S)
    theirs, mine = (pm[:8] - pm[8:]).mean().item(), (ours[:8] - ours[8:]).mean().item()
    print(f"L1H3 prefix matching on 8 random-known probes: nnsight {theirs:.4f}, ours {mine:.4f}")
    assert abs(theirs - mine) < TOL and mine > 0.5  # an induction head, seen through nnsight
