"""The files of a run: checkpoints (atomic saving, safe loading) and JSON records of typed results.

A checkpoint is a dict of tensors and plain data (str, int, float, list, dict):

    format, version       "minigpt-checkpoint", 1
    model_config          GPTConfig as a dict (the single source of truth for the architecture)
    tokenizer             tokenizer.state() as a JSON string
    model                 state_dict
    train_config          config.RunConfig as a dict (the complete run: tokenizer, architecture, recipe)
    step, metrics         progress so far
    optimizer, rng        only in resumable checkpoints (absent in exported reference weights)

A checkpoint is a .pt file, or an exported Hugging Face GPT-2 folder (gpt2_folder.py: how the reference models ship),
which load_checkpoint reads into the same dict. Loading a .pt uses torch.load(weights_only=True): the unpickler only
rebuilds tensors and plain containers, so a checkpoint can never execute code. Saving writes a temp file
in the same directory, fsyncs it, then renames it over the target: a crash mid-save
leaves the previous checkpoint intact.

JSON records (metrics.json, study summaries) are written the same way, each in an envelope that names its kind and
version: {"format": "minigpt-metrics", "version": 2, "record": ...}. `upgrade` is the one place that knows how older
versions differ; every reader gets the current shape. `to_plain` turns a typed result (nested dataclasses, arrays) into
JSON data and `from_plain` reads it back into the same types, so every caller reads fields, never string keys.
"""
import dataclasses
import errno
import fcntl
import json
import os
import pickle
import re
import shutil
import signal
import tempfile
import threading
import types
import typing
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from gpt2_folder import FolderError, is_folder, read_folder
from tokenizer import Tokenizer, TokenizerError, from_state
from TransformerModel import GPT, GPTConfig

FORMAT, VERSION = "minigpt-checkpoint", 1
ROOT = Path(__file__).resolve().parent


class CheckpointError(RuntimeError):
    pass


# ---- where files may go ------------------------------------------------------------------------
# The committed reference results are read-only to every command but the ones that regenerate them (`make reference`,
# `make promote`, an experiment's report), which set this variable; nothing else writes there, whatever its flags.
PROTECTED = ("checkpoints/reference", "results", "Data")
WHO_WRITES = {"Data": "the Austen corpus, which only scripts/build_corpus.py rewrites"}  # whatever the environment
WHO_WRITES_REF = "the committed reference results, which only `make reference`, `make exp` and `make promote` rewrite"
WRITE_REFERENCE = "MINIGPT_WRITE_REFERENCE"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,119}")


class OutputError(CheckpointError):
    """An output path or name that would write where it must not."""


def check_name(name, what: str = "run name") -> str:
    """A name that becomes part of a file name (a run's, a figure's): letters, digits and . _ + = -, no separators."""
    if not (isinstance(name, str) and NAME.fullmatch(name) and ".." not in name):
        raise OutputError(f"the {what} {name!r} cannot name files: use 1-120 letters, digits and . _ + = - "
                          f"(starting with a letter or digit; no '/', no '..')")
    return name


def reference_folder(path) -> str | None:
    """The folder of the committed reference results (PROTECTED) that a path lies in, if any."""
    resolved = Path(os.path.realpath(path))
    return next((p for p in PROTECTED if resolved.is_relative_to(os.path.realpath(ROOT / p))), None)


def is_reference(path) -> bool:
    return reference_folder(path) is not None


def portable(path) -> str:
    """A path as a record or a log shows it: relative to the repository's root when it lies inside, so that no
    committed file records this machine's absolute path."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def output_path(path, under=None, what: str = "output") -> Path:
    """Resolve a path to be written; refuse one outside `under` (e.g. a figure outside its plots folder) and one in the
    committed reference results unless a regenerating command set MINIGPT_WRITE_REFERENCE=1."""
    resolved = Path(os.path.realpath(path))
    if under is not None and not resolved.is_relative_to(os.path.realpath(under)):
        raise OutputError(f"the {what} {path} would be written outside {under}; give a name without '/' or '..'")
    protected = reference_folder(resolved)
    if protected and (protected in WHO_WRITES or os.environ.get(WRITE_REFERENCE) != "1"):  # Data/: never
        raise OutputError(f"refusing to write the {what} {path}: {protected}/ holds "
                          f"{WHO_WRITES.get(protected, WHO_WRITES_REF)}; write your run elsewhere (the defaults are "
                          f"checkpoints/<run>/ and Plots/<run>/)")
    return resolved


def in_training(folder) -> bool:
    """Whether a training run holds the folder's lock (train.locked) now; a folder without one is not training."""
    try:
        fd = os.open(Path(folder) / ".lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


OWNER = ".run"  # in Plots/<name>/: the run folder whose figures it holds


def claim_plots(plots_dir, run_folder) -> Path:
    """Plots/<name>/ holds one run's figures. The first run to write there records its folder (relative to the
    repository when inside it); a run from another folder with the same name is refused, where it would overwrite
    them."""
    plots_dir, mine = Path(plots_dir), portable(run_folder)
    owner = plots_dir / OWNER
    if owner.is_symlink() or owner.exists():
        theirs = owner.read_bytes()[:4096].decode("utf-8", "replace").strip() if owner.is_file() else "?"
        if theirs != mine:
            raise OutputError(f"{plots_dir} holds the figures of the run in {theirs}, not of {mine}; give this one "
                              f"another name (study: --name; training: another --out-dir name) or --plots-dir, or "
                              f"delete {plots_dir}")
        return plots_dir
    write_file(owner, (mine + "\n").encode(), "figures folder's owner")
    return plots_dir


def check_writable(directory, what: str) -> Path:
    """Fail before the work, not after it, if an output folder cannot be written (or is protected)."""
    directory = output_path(directory, what=what)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write the {what} into {directory}: {e.strerror}; choose another path") from None
    return directory


FULL = 16 * 2 ** 20  # free bytes below which a failed write is read as a full disk


def disk_full(e: BaseException, folder) -> bool:
    """A full disk, by errno. torch.save's zip writer reports a failed write as a RuntimeError ("unexpected pos")
    whatever its cause: the OSError it carries as context (a write to a Python file) says which, and without one
    the free space left in `folder` does (a Ctrl-C or any other failure there is not a full disk)."""
    for cause in _chain(e):
        if isinstance(cause, OSError):
            return cause.errno in (errno.ENOSPC, errno.EDQUOT)
        if isinstance(cause, KeyboardInterrupt):
            return False
    return "unexpected pos" in str(e) and shutil.disk_usage(folder).free < FULL


def _chain(e: BaseException, depth=8):
    """e, then the exception that caused each (`raise ... from`), or else the one being handled when it was raised."""
    for _ in range(depth):
        yield e
        e = e.__cause__ or e.__context__
        if e is None:
            return


def stopped_by_ctrl_c(e: BaseException) -> bool:
    """A Ctrl-C, raised as itself or inside code that turned it into another error: one landing in a lazy import
    (torch.optim imports torch._dynamo on first use) can surface as "RuntimeError: Error calling __set_name__"."""
    return any(isinstance(cause, KeyboardInterrupt) for cause in _chain(e))


def run_command(main, ctrl_c_while_importing: bool, status: int = 130):
    """A command's main (train.py, study.py), with Ctrl-C raising KeyboardInterrupt from here on: one pressed while the
    imports loaded, or one caught at any depth (stopped_by_ctrl_c), ends it quietly with `status`, not a traceback."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if ctrl_c_while_importing:
            raise KeyboardInterrupt
        main()
    except (KeyboardInterrupt, Exception) as e:
        if not stopped_by_ctrl_c(e):
            raise
        raise SystemExit(status) from None


@contextmanager
def ctrl_c_after():
    """Hold a Ctrl-C until the block ends, then deliver it: raised inside torch.save's writer it would surface as a
    RuntimeError ("unexpected pos") and leave a half-written file. Only the main thread receives signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(*caught[0])  # e.g. the training loop's stop flag, or Python's KeyboardInterrupt
        elif caught and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def save_checkpoint(path, model: GPT, tokenizer: Tokenizer, *, train_config=None, step=0, metrics=None,
                    optimizer=None, rng=None) -> Path:
    path = output_path(path, what="checkpoint")
    ckpt = {
        "format": FORMAT, "version": VERSION,
        "model_config": dataclasses.asdict(model.config),
        "tokenizer": json.dumps(tokenizer.state()),
        "model": model.state_dict(),
        "train_config": dict(train_config or {}),
        "step": int(step),
        "metrics": json.dumps(envelope("metrics", metrics or [])),
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if rng is not None:
        ckpt["rng"] = rng
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with ctrl_c_after(), open(tmp, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
    except RuntimeError as e:
        if disk_full(e, path.parent):  # as an OSError, so every caller's "disk full" message applies
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def run_weights(folder) -> Path:
    """A run folder's weights: the folder itself where it is an exported GPT-2 folder (the reference models ship so),
    else its best.pt."""
    return Path(folder) if is_folder(folder) else Path(folder) / "best.pt"


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read and validate a checkpoint dict; never executes code from the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with `python train.py` "
                              f"or pass the path of an existing .pt file")
    if is_folder(path):  # an exported GPT-2 folder (make export): the reference models ship so
        try:
            ckpt = {**read_folder(path), "format": FORMAT, "version": VERSION}
        except FolderError as e:
            raise CheckpointError(str(e)) from None
        return checked(ckpt, path)
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
    return checked(ckpt, path)


def checked(ckpt, path) -> dict:
    """A checkpoint's dict, as read from either form, checked: its format and version, its entries' types and every
    tensor's layout."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a MiniGPT checkpoint (no '{FORMAT}' format marker)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt.get('version')!r}; this code reads {VERSION}")
    missing = [k for k in ("model_config", "tokenizer", "model") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    for key, tp in ENTRY_TYPES.items():
        if key in ckpt and (not isinstance(ckpt[key], tp) or isinstance(ckpt[key], bool)):
            raise CheckpointError(f"{path}: its {key!r} is a {type(ckpt[key]).__name__}, not a {tp.__name__}; the "
                                  f"file was not written by this project or was edited")
    check_layout(ckpt, path)
    return ckpt


ENTRY_TYPES = {"model_config": dict, "tokenizer": str, "model": dict, "train_config": dict, "step": int,
               "metrics": str, "optimizer": dict, "rng": dict}


def check_layout(obj, path, where: str = "", depth: int = 0):
    """Every tensor in the checkpoint is a plain dense array that its stored bytes hold in full, checked before any
    value is read: torch.load builds a tensor as a view of its storage, so a crafted shape with zero strides could
    present one stored float as billions, which reading it (even a NaN check) would allocate."""
    if depth > 8:
        raise CheckpointError(f"{path}: {where} is nested deeper than a checkpoint ever is; the file was crafted")
    if isinstance(obj, torch.Tensor):
        held = obj.untyped_storage().nbytes()
        if (obj.layout != torch.strided or not obj.is_contiguous() or obj.is_quantized
                or (obj.storage_offset() + obj.numel()) * obj.element_size() > held):
            raise CheckpointError(f"{path}: tensor {where} of shape {tuple(obj.shape)} is not a dense array held by "
                                  f"its {held:,} stored bytes; the file was crafted or damaged")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            check_layout(v, path, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_layout(v, path, f"{where}[{i}]", depth + 1)


def check_weights(path, state: dict, cfg: GPTConfig):
    """The weights are exactly the config's (names, shapes, float32) and finite; compared against a model built on the
    meta device, which allocates nothing, so a config that the stored weights do not hold is refused for free."""
    with torch.device("meta"):
        expected = GPT(cfg).state_dict()
    names, stored = set(expected), {k for k in state}
    if names != stored:
        raise CheckpointError(f"{path}: weights do not fit its config (missing {sorted(names - stored)[:5]}, "
                              f"unexpected {sorted(map(str, stored - names))[:5]})")
    for name, want in expected.items():
        t = state[name]
        if not isinstance(t, torch.Tensor) or t.shape != want.shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise CheckpointError(f"{path}: weights do not fit its config ({name} is {got}, the config needs "
                                  f"{tuple(want.shape)})")
        if t.dtype != torch.float32:
            raise CheckpointError(f"{path}: weight {name} is {t.dtype}, but MiniGPT checkpoints hold float32; "
                                  f"it was not written by this project (convert it to float32 first)")
    for name, t in state.items():
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: weight {name} holds NaN or infinity; the run diverged before this "
                                  f"checkpoint was written, so use an earlier one (e.g. best.pt)")


def check_vocabulary(path, ckpt: dict, tok: Tokenizer):
    """The stored vocabulary is the one the run's corpus and settings build (a changed entry would silently remap
    every token the model learnt)."""
    stored = json.loads(ckpt["tokenizer"])
    if stored != json.loads(json.dumps(tok.state())):
        raise CheckpointError(f"{path}: its stored {stored.get('kind', '?')} vocabulary differs from the one its corpus "
                              f"and settings build ({tok.describe()}); the file was edited, or Data/ changed since "
                              f"the run began. Restore the file (or Data/), or retrain")


def run_vocabulary(path, ckpt: dict) -> Tokenizer | None:
    """The vocabulary the checkpoint's run builds from its corpus and settings (prepare.prepare: built once, then
    read back); None for a checkpoint without a complete run configuration (a hand-built or test model: nothing to
    rebuild it from)."""
    from config import ConfigError, RunConfig
    from corpus import CorpusError, load_corpus
    from prepare import prepare
    try:
        run = RunConfig.from_checkpoint(ckpt)
    except ConfigError:
        return None
    try:
        return prepare(load_corpus(run.novels, run.held_out), run.tokenizer, run.vocab_size)
    except (CorpusError, TokenizerError) as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_model(path, device="cpu", expect_config: dict | None = None, expect_tokenizer: Tokenizer | None = None):
    """Load (model, tokenizer, checkpoint dict) for inference.

    expect_config / expect_tokenizer: if given, a checkpoint whose architecture or
    vocabulary differs raises a CheckpointError naming the differences.
    """
    ckpt = load_checkpoint(path)
    try:
        cfg = GPTConfig(**ckpt["model_config"])
        tok = from_state(json.loads(ckpt["tokenizer"]))
    except (TypeError, ValueError, KeyError, TokenizerError, RecursionError) as e:
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
    if (built := run_vocabulary(path, ckpt)) is not None:  # as the study checks it
        check_vocabulary(path, ckpt, built)
    check_weights(path, ckpt["model"], cfg)
    model = GPT(cfg)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), tok, ckpt


def portable_config(train_config: dict | None) -> dict:
    """A stored run configuration whose out_dir is relative to the repository (portable) when it lies inside it."""
    cfg = dict(train_config or {})
    if isinstance(cfg.get("out_dir"), str) and cfg["out_dir"]:
        cfg["out_dir"] = portable(cfg["out_dir"])
    return cfg


def export_weights(src, dst) -> Path:
    """Copy a checkpoint without optimizer and RNG state (for committing reference models), its stored out_dir
    relative to the repository (a committed file records no path of this machine)."""
    model, tok, ckpt = load_model(src)
    return save_checkpoint(dst, model, tok, train_config=portable_config(ckpt.get("train_config")),
                           step=ckpt.get("step", 0), metrics=metrics_data(ckpt))


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


UMASK = os.umask(0)
os.umask(UMASK)


def write_file(path, data: bytes, what: str = "file") -> Path:
    """Write a file atomically (a temp file of this process's own, then a rename): a crash or a full disk leaves the
    previous file intact and no temp file behind. Every output of a run goes through here or save_checkpoint."""
    path = output_path(path, what=what)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes the file private; a run's outputs get the usual mode
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_json(path, obj) -> Path:
    """Write JSON data atomically (write_file); NaN or infinity is an error, not invalid JSON."""
    return write_file(path, (json.dumps(to_plain(obj), indent=1, allow_nan=False) + "\n").encode(), "record")


def read_json(path):
    """Read JSON data; a file that is not JSON is a CheckpointError."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path} is not JSON ({type(e).__name__}: {str(e)[:200]}); regenerate it") from None


# ---- versioned records ----------------------------------------------------------------------------

# The current version of each kind of record. A record is {"format": "minigpt-<kind>", "version": N, "record": data};
# version 1 of both kinds was the bare data, without the envelope.
RECORDS = {"metrics": 2, "study": 2}


def envelope(kind: str, obj) -> dict:
    return {"format": f"minigpt-{kind}", "version": RECORDS[kind], "record": to_plain(obj)}


def upgrade(kind: str, version: int, data):
    """An older version's data in the current version's shape: the one place that knows the records' history."""
    if kind == "metrics" and version < 2:
        # v1 logged each probe set's in-context gain twice: G (a float) and, from 2026-11-26 on, gain (G with its CI).
        # v2 keeps gain alone; a log from before gain has G as a gain without its CI.
        for row in data if isinstance(data, list) else []:
            for log in (row.get("probes") or {}).values() if isinstance(row, dict) else []:
                if isinstance(log, dict):
                    g = log.pop("G", None)
                    if log.get("gain") is None:
                        log["gain"] = {"mean": g, "lo": None, "hi": None}
    return data  # study v1 -> v2: the envelope alone


def unwrap(kind: str, data, where) -> tuple[int, object]:
    """(version, data) of a record as read: an envelope of this kind, or a bare version 1."""
    if isinstance(data, dict) and "format" in data:
        if data.get("format") != f"minigpt-{kind}" or not isinstance(data.get("version"), int) or "record" not in data:
            raise CheckpointError(f"{where} is a {data.get('format')!r} record, not minigpt-{kind}")
        if data["version"] > RECORDS[kind]:
            raise CheckpointError(f"{where} is version {data['version']} of minigpt-{kind}, newer than this code's "
                                  f"{RECORDS[kind]}; update the code")
        return data["version"], data["record"]
    return 1, data


def from_record(kind: str, data, tp, where):
    """Record data as read (an envelope, or a bare version 1) as type `tp`, upgraded to the current version."""
    version, data = unwrap(kind, data, where)
    return from_plain(tp, upgrade(kind, version, data))


def read_record(path, kind: str, tp):
    """Read a record of `kind` as type `tp` (e.g. list[MetricsRow]), upgraded to the current version."""
    try:
        return from_record(kind, read_json(path), tp, path)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        what = getattr(tp, "__name__", str(tp))
        raise CheckpointError(f"{path} is not a {what} record ({type(e).__name__}: {str(e)[:200]}); regenerate "
                              f"it") from None


def write_record(path, kind: str, obj) -> Path:
    return write_json(path, envelope(kind, obj))


def metrics_data(ckpt: dict) -> list:
    """The training log a checkpoint holds, as plain data in the current version (training_log.metrics_of types it)."""
    version, data = unwrap("metrics", json.loads(ckpt.get("metrics", "[]")), "the checkpoint's metrics")
    return upgrade("metrics", version, data)
