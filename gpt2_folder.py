"""A model as a Hugging Face GPT-2 folder, read without transformers or safetensors: how the reference models ship.

A folder holds config.json (GPT-2's configuration), model.safetensors (GPT-2's weight names and layout), tokenizer.json
(what AutoTokenizer loads), minigpt.json (MiniGPT's own model config, tokenizer state, run configuration and step) and
a model card. interop.to_hf writes one (`make export`); `read_folder` turns one back into the dict a .pt checkpoint
holds, so checkpoint.load_checkpoint and load_model read either form and everything downstream (the study, the
notebooks) takes either. Reading parses the safetensors header as JSON and copies each tensor's bytes, sizes checked
against the file first: nothing is unpickled and nothing allocates more than the file holds.

GPT-2's layout is HF_CONVENTIONS; a MiniGPT model without biases is written with zero biases, which reading drops.
"""
import dataclasses
import json
import struct
from pathlib import Path

import torch

from TransformerModel import GPT

FILES = ("config.json", "model.safetensors", "minigpt.json")
MAX_HEADER = 1 << 24       # a GPT-2 header of these sizes is a few KB
MAX_META = 1 << 26         # minigpt.json: a tokenizer state (the BPE's merges) and a run configuration
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


class FolderError(ValueError):
    """An exported folder that is incomplete, damaged or not a MiniGPT export."""


def is_folder(path) -> bool:
    return Path(path).is_dir() and (Path(path) / "model.safetensors").is_file()


HF_CONVENTIONS = """GPT-2 in transformers computes what MiniGPT computes when: activation_function is "gelu" (exact erf,
MiniGPT's F.gelu; GPT-2's own is the tanh "gelu_new"); layer_norm_epsilon is 1e-5; the LM head is the tied embedding;
Conv1D weights are (in, out), MiniGPT's Linear weights (out, in) transposed; c_attn fuses Q, K and V along its output
in that order, head by head, as MiniGPT's c_attn; a model without biases gets zero biases (GPT-2 always has them);
no weight is scaled (scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn off)."""


def check_gpt2(model: GPT):
    """GPT-2 has learned positions in the residual stream and an MLP in every block: anything else is refused."""
    c = model.config
    if c.positions != "residual" or c.attn_only:
        raise ValueError(f"GPT-2 cannot represent this model (positions={c.positions!r}, attn_only={c.attn_only}): "
                         f"its positions enter the residual stream and every block has an MLP. Export it to "
                         f"TransformerLens instead (interop.to_transformer_lens), which is tested for the standard "
                         f"architecture only, or train it with the standard one")


def hf_config(model: GPT) -> dict:
    c = model.config
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
            "n_positions": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer, "n_head": c.n_head,
            "n_inner": 4 * c.n_embd, "activation_function": "gelu", "layer_norm_epsilon": 1e-5,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "initializer_range": c.init_std,
            "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "tie_word_embeddings": True, "use_cache": True, "bos_token_id": None, "eos_token_id": None,
            "torch_dtype": "float32"}


@torch.no_grad()
def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """GPT2LMHeadModel's weights (without the tied lm_head, which safetensors would store twice); zero biases where
    the model has none."""
    check_gpt2(model)
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out = {}
    for ours, theirs, transposed in hf_names(model.config.n_layer):
        if ours not in sd:  # bias=False: GPT-2 always has the bias, ours is 0
            out[theirs] = torch.zeros(sd[ours.replace(".bias", ".weight")].shape[0])  # (out,) of Linear or LayerNorm
        else:
            out[theirs] = sd[ours].T.contiguous() if transposed else sd[ours]
    return out


def hf_names(n_layer: int):
    """(our name, GPT-2's name, transposed) for every weight: GPT-2's Conv1D holds (in, out), our Linear (out, in)."""
    yield from (("wte.weight", "transformer.wte.weight", False), ("wpe.weight", "transformer.wpe.weight", False),
                ("ln_final.weight", "transformer.ln_f.weight", False), ("ln_final.bias", "transformer.ln_f.bias", False))
    for l in range(n_layer):
        ours, theirs = f"blocks.{l}.", f"transformer.h.{l}."
        for ln in ("ln_1", "ln_2"):
            yield from ((f"{ours}{ln}.{p}", f"{theirs}{ln}.{p}", False) for p in ("weight", "bias"))
        for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            yield f"{ours}{name}.weight", f"{theirs}{name}.weight", True
            yield f"{ours}{name}.bias", f"{theirs}{name}.bias", False


def read_safetensors(path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file: an 8-byte little-endian header length, a JSON header {name: {dtype, shape,
    data_offsets}}, then the bytes. Every offset and shape is checked against the file before any tensor is built."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise FolderError(f"{path} is {len(data)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(MAX_HEADER, len(data) - 8):
        raise FolderError(f"{path} declares a header of {n:,} bytes, more than it can hold; it is damaged or crafted")
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, RecursionError) as e:
        raise FolderError(f"{path}: its header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise FolderError(f"{path}: its header is not a JSON object")
    body, out = memoryview(data)[8 + n:], {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = DTYPES[spec["dtype"]], [int(s) for s in spec["shape"]], spec["data_offsets"]
            count = 1
            for s in shape:
                count *= s
            ok = (all(s >= 0 for s in shape) and isinstance(start, int) and isinstance(end, int)
                  and 0 <= start <= end <= len(body) and end - start == count * dtype.itemsize)
        except (KeyError, TypeError, ValueError) as e:
            raise FolderError(f"{path}: tensor {name!r} is described badly ({type(e).__name__}: {e})") from None
        if not ok:
            raise FolderError(f"{path}: tensor {name!r} ({spec.get('dtype')}, shape {spec.get('shape')}) does not fit "
                              f"its bytes {spec.get('data_offsets')}; the file is damaged or crafted")
        out[name] = torch.frombuffer(bytearray(body[start:end]), dtype=dtype).reshape(shape) if count else \
            torch.zeros(shape, dtype=dtype)
    return out


def _json(path: Path, limit: int):
    if not path.is_file():
        raise FolderError(f"{path.parent} lacks {path.name}; an export holds {', '.join(FILES)} (make export)")
    if path.stat().st_size > limit:
        raise FolderError(f"{path} is {path.stat().st_size:,} bytes, over the {limit:,} an export's file takes")
    try:
        return json.loads(path.read_text())
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise FolderError(f"{path} is not JSON ({type(e).__name__}: {e})") from None


def read_folder(folder) -> dict:
    """An exported folder as the dict a .pt checkpoint holds (checkpoint.save_checkpoint's keys but the format marker,
    which checkpoint.load_checkpoint adds, and no optimizer)."""
    folder = Path(folder)
    meta = _json(folder / "minigpt.json", MAX_META)
    hf = _json(folder / "config.json", MAX_HEADER)
    if not isinstance(meta, dict) or not isinstance(meta.get("model_config"), dict):
        raise FolderError(f"{folder / 'minigpt.json'} has no model_config: the folder was exported before it was "
                          f"stored; export the checkpoint again (make export)")
    mc = meta["model_config"]
    if not isinstance(hf, dict) or any(hf.get(k) != mc.get(k)
                                       for k in ("n_layer", "n_head", "n_embd", "vocab_size")):
        raise FolderError(f"{folder}: config.json and minigpt.json describe different models; export it again")
    sd = read_safetensors(folder / "model.safetensors")
    model = {}
    for ours, theirs, transposed in hf_names(mc["n_layer"]):
        if theirs not in sd:
            raise FolderError(f"{folder / 'model.safetensors'} lacks {theirs}; export the checkpoint again")
        w = sd[theirs].float()
        if ours.endswith(".bias") and not mc.get("bias", True):  # exported as zeros: GPT-2 always has biases
            if w.any():
                raise FolderError(f"{folder}: {theirs} is not zero, but the model has no biases; export it again")
            continue
        model[ours] = w.T.contiguous() if transposed else w
    model["lm_head.weight"] = model["wte.weight"]  # tied
    return {"model_config": mc, "tokenizer": json.dumps(meta.get("tokenizer")), "model": model,
            "train_config": meta.get("train_config") or {}, "step": meta.get("step", 0),
            "metrics": "[]"}  # write_folder stores no log: the folder's metrics.json holds it


def write_safetensors(tensors: dict[str, torch.Tensor], path, metadata: dict | None = None) -> Path:
    """float32 tensors as a .safetensors file (the layout read_safetensors reads and the safetensors package writes)."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        if t.dtype != torch.float32:
            raise FolderError(f"{name} is {t.dtype}; an export holds float32 weights")
        blob = t.detach().cpu().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = metadata
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format pads the header to 8 bytes
    Path(path).write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    return Path(path)


def write_folder(folder, model: GPT, tok, step: int, train_config: dict) -> Path:
    """config.json, model.safetensors and minigpt.json of a model (interop.to_hf adds the tokenizer and a card)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf_config(model), indent=1) + "\n")
    write_safetensors(hf_state_dict(model), folder / "model.safetensors", {"format": "pt"})
    (folder / "minigpt.json").write_text(json.dumps({  # what read_folder rebuilds our checkpoint from
        "model_config": dataclasses.asdict(model.config), "tokenizer": tok.state(), "step": int(step),
        "train_config": train_config}, indent=1) + "\n")
    return folder
