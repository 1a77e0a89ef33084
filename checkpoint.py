"""The files of a run: checkpoints (atomic saving, safe loading) and JSON records of typed results.

A checkpoint is a dict of tensors and plain data (str, int, float, list, dict):

    format, version       "minigpt-checkpoint", 1
    model_config          GPTConfig as a dict (the single source of truth for the architecture)
    tokenizer             tokenizer.state() as a JSON string
    model                 state_dict
    train_config          config.RunConfig as a dict (the complete run: tokenizer, architecture, recipe)
    step, metrics         progress so far
    optimizer, rng        only in resumable checkpoints (absent in exported reference weights)

Loading uses torch.load(weights_only=True): the unpickler only rebuilds tensors and
plain containers, so a checkpoint can never execute code. Saving writes a temp file
in the same directory, fsyncs it, then renames it over the target: a crash mid-save
leaves the previous checkpoint intact.

JSON records (metrics.json, study summaries) are written the same way. `to_plain` turns a
typed result (nested dataclasses, arrays) into JSON data and `from_plain` reads it back
into the same types, so every caller reads fields, never string keys.
"""
import dataclasses
import json
import os
import pickle
import re
import types
import typing
import zipfile
from pathlib import Path

import numpy as np
import torch

from tokenizer import Tokenizer, TokenizerError, from_state
from TransformerModel import GPT, GPTConfig

FORMAT, VERSION = "minigpt-checkpoint", 1


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path, model: GPT, tokenizer: Tokenizer, *, train_config=None, step=0, metrics=None,
                    optimizer=None, rng=None) -> Path:
    path = Path(path)
    ckpt = {
        "format": FORMAT, "version": VERSION,
        "model_config": dataclasses.asdict(model.config),
        "tokenizer": json.dumps(tokenizer.state()),
        "model": model.state_dict(),
        "train_config": dict(train_config or {}),
        "step": int(step),
        "metrics": json.dumps(to_plain(metrics or [])),
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if rng is not None:
        ckpt["rng"] = rng
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read and validate a checkpoint dict; never executes code from the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with `python train.py` "
                              f"or pass the path of an existing .pt file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a regular file (a directory or a pipe?); pass the path of a .pt file")
    try:
        with zipfile.ZipFile(path) as z:
            # torch.save stores entries uncompressed: a compressed entry could inflate far beyond the file's size
            # (a zip bomb), so refuse it, and any declared size the file cannot hold, before reading anything
            entries = z.infolist()
            packed = [i.filename for i in entries if i.compress_type != zipfile.ZIP_STORED]
            if packed:
                raise CheckpointError(f"{path} holds compressed entries ({packed[0]}), which torch.save never "
                                      f"writes; refusing to inflate them. Only load checkpoints written by this project.")
            if sum(i.file_size for i in entries) > path.stat().st_size:
                raise CheckpointError(f"{path} declares more data than the file holds; it is corrupt or crafted")
            bad = z.testzip()  # torch does not verify the zip's CRCs, so a flipped bit would load silently
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path} is truncated, corrupt or not a PyTorch checkpoint ({e}); "
                              f"use another checkpoint, e.g. best.pt instead of latest.pt") from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupt: entry {bad} fails its CRC check; use another checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL (\S+)", str(e))
        raise CheckpointError(f"refusing to load {path}: it contains objects other than tensors and plain "
                              f"data ({found.group(1) if found else 'an unsupported pickled object'}), which "
                              f"could run code when unpickled. Only load checkpoints written by this project.") from None
    except (RuntimeError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:  # a damaged file, as the user sees it
        raise CheckpointError(f"{path} is corrupt or truncated, or not a PyTorch file "
                              f"({str(e).splitlines()[0]}); use another checkpoint, e.g. best.pt "
                              f"instead of latest.pt") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a MiniGPT checkpoint (no '{FORMAT}' format marker)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt.get('version')!r}; this code reads {VERSION}")
    missing = [k for k in ("model_config", "tokenizer", "model") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    return ckpt


def load_model(path, device="cpu", expect_config: dict | None = None, expect_tokenizer: Tokenizer | None = None):
    """Load (model, tokenizer, checkpoint dict) for inference.

    expect_config / expect_tokenizer: if given, a checkpoint whose architecture or
    vocabulary differs raises a CheckpointError naming the differences.
    """
    ckpt = load_checkpoint(path)
    try:
        cfg = GPTConfig(**ckpt["model_config"])
        tok = from_state(json.loads(ckpt["tokenizer"]))
    except (TypeError, ValueError, KeyError, TokenizerError) as e:
        raise CheckpointError(f"{path} has an invalid config or tokenizer: {e}") from None
    if expect_config is not None:
        diff = {k: (ckpt["model_config"].get(k), v) for k, v in expect_config.items()
                if ckpt["model_config"].get(k) != v}
        if diff:
            raise CheckpointError(f"{path} does not match the expected model config: " + ", ".join(
                f"{k} is {a!r}, expected {b!r}" for k, (a, b) in diff.items()))
    if expect_tokenizer is not None and expect_tokenizer.state() != tok.state():
        raise CheckpointError(f"{path} was trained with a different vocabulary ({tok.describe()}) than "
                              f"expected ({expect_tokenizer.describe()}); use the tokenizer stored in the checkpoint")
    if cfg.vocab_size != tok.vocab_size:
        raise CheckpointError(f"{path}: model vocab_size {cfg.vocab_size} != tokenizer's {tok.vocab_size}")
    for name, t in ckpt["model"].items():
        if t.dtype != torch.float32:
            raise CheckpointError(f"{path}: weight {name} is {t.dtype}, but MiniGPT checkpoints hold float32; "
                                  f"it was not written by this project (convert it to float32 first)")
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: weight {name} holds NaN or infinity; the run diverged before this "
                                  f"checkpoint was written, so use an earlier one (e.g. best.pt)")
    model = GPT(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:600]  # torch's message spans lines; keep what names the weights
        raise CheckpointError(f"{path}: weights do not fit its config ({detail})") from None
    return model.to(device).eval(), tok, ckpt


def export_weights(src, dst) -> Path:
    """Copy a checkpoint without optimizer and RNG state (for committing reference models)."""
    ckpt = load_checkpoint(src)
    model, tok, _ = load_model(src)
    return save_checkpoint(dst, model, tok, train_config=ckpt.get("train_config"), step=ckpt.get("step", 0),
                           metrics=json.loads(ckpt.get("metrics", "[]")))


# ---- JSON records of typed results -------------------------------------------------------------

def to_plain(obj):
    """Dataclasses, arrays and tensors -> JSON data. Fields marked metadata={"json": False} are left out."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.metadata.get("json", True)}
    if isinstance(obj, (np.ndarray, torch.Tensor, np.generic)):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def from_plain(tp, data):
    """JSON data -> an instance of type `tp` (a dataclass, dict[str, X], list[X], tuple, np.ndarray, ...)."""
    if data is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: from_plain(hints[f.name], data[f.name]) for f in dataclasses.fields(tp)
                     if f.name in data and f.metadata.get("json", True)})
    if origin in (typing.Union, types.UnionType):
        return from_plain(next(a for a in args if a is not type(None)), data)
    if origin is dict:
        return {k: from_plain(args[1], v) for k, v in data.items()}
    if origin is list:
        return [from_plain(args[0], v) for v in data]
    if origin is tuple or tp is tuple:
        return tuple(data)
    if tp is np.ndarray:
        return np.asarray(data, dtype=float)
    return data


def write_json(path, obj) -> Path:
    """Write a record atomically (temp file + rename); NaN or infinity is an error, not invalid JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_plain(obj), indent=1, allow_nan=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)
    return path


def read_json(path, tp=None):
    """Read a record; with `tp`, as that type (e.g. list[MetricsRow])."""
    data = json.loads(Path(path).read_text())
    return data if tp is None else from_plain(tp, data)
