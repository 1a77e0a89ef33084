"""The corpus prepared once: a run's tokenizer and its token ids, cached under .cache/prepared/ (git-ignored).

nanoGPT prepares its data once (prepare.py -> train.bin, val.bin, meta.pkl); here the first load of a configuration
builds the tokenizer and encodes the splits, and every later load reads them back. The text is still read and checked
against Data/MANIFEST.json on every load (corpus.load_corpus, milliseconds), so a damaged novel is never hidden by the
cache. An entry is keyed by everything its contents follow from: the SHA-256 of the training and validation text, the
tokenizer's kind and vocabulary size (or, for a stored tokenizer, its state), and the source of tokenizer.py and of
this file. A changed input is a new key; an entry that fails its own checks (a file missing, truncated or edited) is
rebuilt, with a message. Loading reads JSON and .npy arrays without pickles, their sizes checked first.

    rm -rf .cache/prepared      # forget every entry (the next load of each configuration rebuilds it)
"""
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from corpus import Corpus
from tokenizer import Tokenizer, build_tokenizer, from_state

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache" / "prepared"
CODE = hashlib.sha256((ROOT / "tokenizer.py").read_bytes() + Path(__file__).read_bytes()).hexdigest()
MAX_BYTES = 1 << 30  # no split of these novels comes near; a bigger file is not read
ENTRY_FILES = ("tokenizer.json", "train.npy", "val.npy")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(**parts) -> str:
    return _sha(json.dumps({"code": CODE, **parts}, sort_keys=True).encode())[:32]


def _texts(corpus: Corpus) -> dict:
    return {"train": _sha(corpus.train.encode()), "val": _sha(corpus.val.encode())}


def _npy(ids: list[int]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(ids, dtype=np.int32), allow_pickle=False)  # every vocabulary here is far below 2**31
    return buf.getvalue()


def _load(folder: Path, parse):
    """parse(files) of an entry, its files ({name: bytes}) each checked against the SHA-256 its meta.json records;
    None when there is no entry yet, and a note (then None) when it is damaged in any way."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        files = {}
        for name, digest in json.loads(meta_path.read_text())["files"].items():
            if name not in ENTRY_FILES:  # never a path of meta.json's choosing
                raise ValueError(f"meta.json names {name!r}, not one of {', '.join(ENTRY_FILES)}")
            path = folder / name
            if path.stat().st_size > MAX_BYTES:
                raise ValueError(f"{name} is over {MAX_BYTES:,} bytes")
            data = path.read_bytes()
            if _sha(data) != digest:
                raise ValueError(f"{name} does not match its SHA-256")
            files[name] = data
        return parse(files)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"note: the prepared corpus in {folder} is damaged ({type(e).__name__}: {e}); rebuilding it")
        return None


def _write(folder: Path, files: dict[str, bytes]):
    """Each file through a temporary file of this process's own and a rename, meta.json last: a reader sees a whole
    entry or none, however many processes prepare the same corpus at once."""
    meta = json.dumps({"files": {name: _sha(data) for name, data in files.items()}}).encode()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in {**files, "meta.json": meta}.items():
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / name)
    except OSError as e:  # a read-only checkout or a full disk: the run goes on, preparing again next time
        print(f"note: cannot keep the prepared corpus in {folder} ({e.strerror}); it is rebuilt at every load")


def _ids(data: bytes) -> torch.Tensor:
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    if arr.dtype != np.int32 or arr.ndim != 1:
        raise ValueError(f"token ids are {arr.dtype} of {arr.ndim} dimensions, not int32 of 1")
    return torch.from_numpy(arr.astype(np.int64))  # (N,)


def encode_splits(tok: Tokenizer, corpus: Corpus) -> tuple[torch.Tensor, torch.Tensor]:
    """The corpus's training and validation token ids (each (N,) int64) under a given tokenizer, cached."""
    folder = CACHE / _key(text=_texts(corpus), tokenizer=_sha(json.dumps(tok.state(), sort_keys=True).encode()))
    ids = _load(folder, lambda files: (_ids(files["train.npy"]), _ids(files["val.npy"])))
    if ids is not None:
        return ids
    train, val = tok.encode(corpus.train), tok.encode(corpus.val)
    _write(folder, {"train.npy": _npy(train), "val.npy": _npy(val)})
    return torch.tensor(train, dtype=torch.long), torch.tensor(val, dtype=torch.long)


def prepare(corpus: Corpus, kind: str, vocab_size: int | None) -> Tokenizer:
    """The tokenizer a run of this corpus, kind and vocabulary size builds (tokenizer.build_tokenizer), cached."""
    folder = CACHE / _key(text=_texts(corpus), kind=kind, vocab_size=vocab_size)
    tok = _load(folder, lambda files: from_state(json.loads(files["tokenizer.json"])))
    if tok is not None:
        return tok
    tok = build_tokenizer(kind, corpus.train, corpus.train + corpus.val, vocab_size)
    _write(folder, {"tokenizer.json": json.dumps(tok.state()).encode()})
    return tok
