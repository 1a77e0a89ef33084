"""MiniGPT in TransformerLens: export any checkpoint to a TransformerLens model with its tokenizer.

    pip install -c requirements.txt -r requirements-interop.txt     # once (torch stays at the pinned CPU build)

    from interop import load_transformer_lens
    bridge = load_transformer_lens("checkpoints/reference/MiniGPT-2M")
    logits, cache = bridge.run_with_cache("it is a truth universally acknowledged")
    cache["blocks.1.attn.hook_pattern"]                                # (B, H, T, T), as MiniGPT's hook

transformer-lens 4.x has no HookedTransformer: `TransformerBridge.boot_native` builds a from-scratch model from a
`TransformerBridgeConfig`, and TL's `convert_tl_checkpoint` loads a HookedTransformer-format state dict into it.
`transformer_lens_state_dict` writes that format, so the same dict also loads into 3.x's HookedTransformer:
`to_transformer_lens` builds whichever the installed version has (tests/test_interop.py passes on 4.3.0 and 3.9.0).

The conventions, each one a way the export could silently be wrong:
- exact-erf GELU (act_fn "gelu", not the tanh "gelu_new"); attention scale 1/sqrt(d_head); LayerNorm eps 1e-5;
- c_attn (3C, C) split into per-head W_Q / W_K / W_V (H, C, D); c_proj into per-head W_O (H, D, C);
- W_U is the tied embedding, transposed, and b_U = 0 (MiniGPT's head has no bias);
- zero biases where the model has none (bias=False); n_ctx = block_size;
- no BOS token (MiniGPT never saw one) and no weight processing: no LayerNorm folding, no centring, so TL's
  activations are MiniGPT's, hook for hook.
TL's tokenizer is MiniGPT's, rebuilt with the `tokenizers` package (word: lowercase + the same regex; char: one
token per character; BPE: the stored tokenizer itself), so `bridge.to_tokens(text)` equals `tok.encode(text)`.
"""
import importlib.metadata
import importlib.util
from pathlib import Path

import torch

from checkpoint import load_model
from gpt2_folder import HF_CONVENTIONS, check_gpt2, write_folder
from induction import N_CHUNKS
from tokenizer import UNK, WORD_RE, Tokenizer
from TransformerModel import GPT


def transformer_lens_config(model: GPT) -> dict:
    """The TransformerLens config fields of the architecture (TransformerBridgeConfig / HookedTransformerConfig)."""
    c = model.config
    if c.positions != "residual" or c.attn_only:  # the levers of issue #26: not mapped, and not tested against TL
        raise ValueError(f"the TransformerLens export covers the standard architecture; this model has positions="
                         f"{c.positions!r}, attn_only={c.attn_only}")
    return dict(n_layers=c.n_layer, n_heads=c.n_head, d_model=c.n_embd, d_head=c.d_head, d_mlp=4 * c.n_embd,
                n_ctx=c.block_size, d_vocab=c.vocab_size, act_fn="gelu", normalization_type="LN", eps=1e-5,
                positional_embedding_type="standard", attn_only=False)


@torch.no_grad()
def transformer_lens_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """MiniGPT's weights under HookedTransformer's names and shapes (embed.W_E, blocks.{l}.attn.W_Q (H, C, D), ...)."""
    c = model.config
    H, D, C = c.n_head, c.d_head, c.n_embd

    def bias(b, n):
        return b if b is not None else torch.zeros(n)

    sd = {"embed.W_E": model.wte.weight, "pos_embed.W_pos": model.wpe.weight}
    for l, block in enumerate(model.blocks):
        p, attn, mlp = f"blocks.{l}.", block.attn, block.mlp
        # nn.Linear computes x @ W.T: rows of c_attn.weight are [q heads | k heads | v heads], each head D rows
        w_q, w_k, w_v = attn.c_attn.weight.view(3, H, D, C).transpose(2, 3).unbind(0)  # each (H, C, D)
        b_q, b_k, b_v = bias(attn.c_attn.bias, 3 * C).view(3, H, D).unbind(0)          # each (H, D)
        sd.update({
            p + "ln1.w": block.ln_1.weight, p + "ln1.b": bias(block.ln_1.bias, C),
            p + "attn.W_Q": w_q, p + "attn.W_K": w_k, p + "attn.W_V": w_v,
            p + "attn.b_Q": b_q, p + "attn.b_K": b_k, p + "attn.b_V": b_v,
            p + "attn.W_O": attn.c_proj.weight.T.reshape(H, D, C), p + "attn.b_O": bias(attn.c_proj.bias, C),
            p + "ln2.w": block.ln_2.weight, p + "ln2.b": bias(block.ln_2.bias, C),
            p + "mlp.W_in": mlp.c_fc.weight.T, p + "mlp.b_in": bias(mlp.c_fc.bias, 4 * C),
            p + "mlp.W_out": mlp.c_proj.weight.T, p + "mlp.b_out": bias(mlp.c_proj.bias, C),
        })
    sd.update({"ln_final.w": model.ln_final.weight, "ln_final.b": bias(model.ln_final.bias, C),
               "unembed.W_U": model.lm_head.weight.T, "unembed.b_U": torch.zeros(c.vocab_size)})
    return {k: v.detach().float().cpu().contiguous().clone() for k, v in sd.items()}


def hf_tokenizer(tok: Tokenizer):
    """MiniGPT's tokenizer as a transformers PreTrainedTokenizerFast (same ids for the same text)."""
    require_interop()
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import PreTrainedTokenizerFast

    special = {}
    if tok.kind == "word":
        t = HFTokenizer(models.WordLevel({w: i for i, w in enumerate(tok.itos)}, unk_token=UNK))
        t.normalizer = normalizers.Lowercase()
        # keep what the regex matches and drop the rest, as re.findall does
        t.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_RE.pattern), behavior="removed", invert=True)
        t.decoder = decoders.WordPiece(cleanup=False)  # words joined by spaces, as tok.decode
        special = {"unk_token": UNK, "pad_token": UNK}
    elif tok.kind == "char":
        t = HFTokenizer(models.WordLevel({ch: i for i, ch in enumerate(tok.chars)}, unk_token=tok.chars[0]))
        t.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        t.decoder = decoders.Fuse()
        special = {"pad_token": tok.chars[0]}  # TL 3.x asks for one; a character is one token either way
    elif tok.kind == "bpe":
        t = HFTokenizer.from_str(tok.json)
    else:
        raise ValueError(f"no TransformerLens tokenizer for a {tok.kind!r} tokenizer")
    return PreTrainedTokenizerFast(tokenizer_object=t, clean_up_tokenization_spaces=False, **special)


INSTALL = "pip install -c requirements.txt -r requirements-interop.txt (or: make test-interop)"


def require_interop():
    """The interop extras are optional (about 1.9 GB): without them, say how to install them."""
    for module in ("transformer_lens", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"the TransformerLens export needs the interop extras ({module} is not "
                                      f"installed): {INSTALL}", name=module)


def transformer_lens_version() -> str:
    require_interop()
    return importlib.metadata.version("transformer-lens")


def to_transformer_lens(model: GPT, tok: Tokenizer | None = None, device=None):
    """A TransformerLens model computing exactly what `model` computes (logits and every attention pattern within
    float rounding; tests/test_interop.py): a TransformerBridge with transformer-lens 4.x, a HookedTransformer with
    3.x. With `tok`, TL's to_tokens / to_str_tokens / generate use MiniGPT's tokenizer."""
    require_interop()
    device = device or next(model.parameters()).device
    hf_tok = hf_tokenizer(tok) if tok is not None else None
    sd = transformer_lens_state_dict(model)
    if int(transformer_lens_version().split(".")[0]) < 4:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
        tl = HookedTransformer(HookedTransformerConfig(**transformer_lens_config(model), default_prepend_bos=False),
                               tokenizer=hf_tok)
        missing, unexpected = tl.load_state_dict(sd, strict=False)
        if unexpected or any(not k.endswith((".mask", ".IGNORE")) for k in missing):  # buffers TL makes itself
            raise RuntimeError(f"HookedTransformer did not take the weights: missing {missing}, unexpected {unexpected}")
        return tl.to(device).eval()
    from transformer_lens import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    cfg = TransformerBridgeConfig(**transformer_lens_config(model), model_name="MiniGPT", seed=0,
                                  tokenizer_prepends_bos=False, default_prepend_bos=False)
    bridge = TransformerBridge.boot_native(cfg, tokenizer=hf_tok)
    bridge.load_state_dict(convert_tl_checkpoint(sd, cfg), strict=True)
    return bridge.to(device).eval()


def tl_induction_score(prefix_match_repeat):
    """Our prefix-matching attention on repeat prompts alone (induction.prefix_matching of the repeat patterns, mean
    over prompts) -> TransformerLens's `detect_head(..., "induction_head")` score on the same prompts.

    TL's score (error_measure "mul") is the attention to the token after any earlier copy of the query's token,
    summed and divided by the pattern's total, i.e. averaged over *all* T = 4S queries; ours averages over the 3S
    queries of chunks 2-4, the only ones with an earlier copy when the base chunk has no repeated token (random
    probes). So TL = (N_CHUNKS - 1) / N_CHUNKS x ours, exactly. Neither is repeat minus control.
    """
    return prefix_match_repeat * (N_CHUNKS - 1) / N_CHUNKS


def load_transformer_lens(path, device="cpu"):
    """A MiniGPT checkpoint (path) -> TransformerBridge, with the checkpoint's tokenizer."""
    model, tok, _ = load_model(Path(path), device)
    return to_transformer_lens(model, tok, device)


# ---- Hugging Face transformers: a GPT-2 folder (gpt2_folder.py), with tokenizer.json and a model card -------------

def model_card(model: GPT, tok: Tokenizer, ckpt: dict, source: str) -> str:
    """README.md of an exported folder: what the model is, how it was trained, and how to load it."""
    from config import RunConfig
    cfg = RunConfig.from_checkpoint(ckpt)
    tokens = ckpt.get("step", 0) * cfg.tokens_per_step
    return (f"# {cfg.name}\n\nA {model.num_params() / 1e6:.2f}M-parameter GPT from MiniGPT (preset `{cfg.preset}`, "
            f"seed {cfg.seed}), trained on Jane Austen's novels ({', '.join(cfg.novels)}) with {tok.kind} tokens "
            f"({tok.vocab_size:,}) for {ckpt.get('step', 0):,} steps, {tokens / 1e6:.2f}M tokens, context "
            f"{cfg.block_size}.\n\nExported from `{source}` by `interop.to_hf` (`make export`). Load it with\n\n"
            f"```python\nfrom transformers import AutoTokenizer, GPT2LMHeadModel\nmodel = GPT2LMHeadModel."
            f"from_pretrained(folder)\ntok = AutoTokenizer.from_pretrained(folder)\n```\n\nor back into MiniGPT with "
            f"`interop.load_hf(folder)`. The induction-head study of the checkpoint, and its verdict: `make study "
            f"RUN={source}` (results/README.md for the reference models). To reproduce the weights: `python train.py "
            f"--preset {cfg.preset} --seed {cfg.seed}` (then `make promote`, `make export`).\n\nConventions:\n"
            f"{HF_CONVENTIONS}\n")


def to_hf(checkpoint, folder, source=None) -> Path:
    """A MiniGPT checkpoint -> a folder that transformers.GPT2LMHeadModel.from_pretrained and AutoTokenizer load with
    no code of ours: config.json, model.safetensors, tokenizer.json (and its config) and a model card, which names
    `source` (default: the checkpoint) as where the weights came from and what to study."""
    require_interop()
    from checkpoint import output_path, portable_config
    model, tok, ckpt = load_model(Path(checkpoint))
    check_gpt2(model)
    folder = output_path(folder, what="exported model")
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; export into a new folder")
    write_folder(folder, model, tok, ckpt.get("step", 0), portable_config(ckpt.get("train_config")))
    hf_tokenizer(tok).save_pretrained(str(folder))
    (folder / "README.md").write_text(model_card(model, tok, ckpt, str(source or checkpoint)))
    return folder


def load_hf(folder, device="cpu"):
    """An exported folder (to_hf) -> (GPT, tokenizer), MiniGPT's own: the export round-trips (checkpoint.load_model
    reads a folder as it reads a .pt, gpt2_folder.read_folder)."""
    model, tok, _ = load_model(Path(folder), device)
    return model, tok
