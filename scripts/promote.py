"""Promote a finished run into the committed reference results (checkpoints/reference/), as one command.

    make promote RUN=runs/seeds/5.6M-seed1                # -> checkpoints/reference/seeds/5.6M-seed1/
    make promote RUN=checkpoints/my-run AS=mine/my-run    # any other run: name its folder

A run of an experiment (runs/<experiment>/<run>, where `python -m experiments <experiment> run` trains it) goes to
checkpoints/reference/<experiment>/<run>, the one rule (experiments.committed_folder); AS names another folder.

What is copied: best.pt without optimizer or RNG state (weights, run config and vocabulary: checkpoint.export_weights),
metrics.json, sample.txt and train.log (the command's output, which `python -m experiments X run` writes there); with
--final (FINAL=1) also the last step's weights as final.pt, for a run whose end, not its best validation loss, is what
is studied (the original recipe, which memorises). The run must have reached its
max_steps (--unfinished to promote a run in progress), the destination must not exist yet (--overwrite to replace
it), and the weights must stay under 30 MB, the repository's limit for a committed file. Writing into
checkpoints/reference/ needs MINIGPT_WRITE_REFERENCE=1, which `make promote` sets. Promote is a transaction: it checks
everything first (symbolic links are refused, the run and the destination are different folders, the destination is
a folder under checkpoints/reference/), writes into a temporary folder beside the destination, then swaps it in whole,
so an overwrite keeps nothing of the old folder (git shows what went) and a failure leaves it as it was. One promote
at a time: a second is refused while one runs. --records-only (RECORDS_ONLY=1) copies no weights: for a run whose
measurements and study are committed as records (results/), so that the clone stays lean.
"""
import argparse
import fcntl
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checkpoint import CheckpointError, check_name, export_weights, load_checkpoint, output_path  # noqa: E402
from config import ConfigError, RunConfig  # noqa: E402
from experiments import committed_folder  # noqa: E402

REFERENCE = ROOT / "checkpoints" / "reference"
MAX_BYTES = 30 * 2 ** 20  # the repository's limit for one committed file


def _plain_file(path: Path) -> bool:
    """Whether the run holds `path` as a regular file of its own; a symbolic link (which could bring a file from
    outside the run into the reference) is refused."""
    if path.is_symlink():
        raise CheckpointError(f"{path} is a symbolic link; promote copies only a run's own files (copy the file "
                              f"into the run, or remove the link)")
    return path.is_file()


def check(run: Path, dest: Path, unfinished: bool, overwrite: bool, final: bool) -> list[str]:
    """Everything promote checks before it writes anything. Returns the run's files to copy beside the weights."""
    if run.is_symlink() or not run.is_dir():
        link = " but a link" if run.is_symlink() else ""
        raise CheckpointError(f"{run} is not a run's folder (train.py --out-dir){link}")
    missing = [f for f in ("best.pt", "metrics.json") if not _plain_file(run / f)]
    if missing:
        raise CheckpointError(f"{run} holds no {' or '.join(missing)}: is it a run's folder (train.py --out-dir)?")
    latest = run / "latest.pt"
    if _plain_file(latest) and not unfinished:
        ckpt = load_checkpoint(latest)
        step, max_steps = ckpt.get("step"), RunConfig.from_checkpoint(ckpt).max_steps
        if step != max_steps:
            raise CheckpointError(f"{run} is at step {step:,} of {max_steps:,}: finish it (train.py --resume), or "
                                  f"pass --unfinished to promote it as it is")
    if final and not latest.is_file():
        raise CheckpointError(f"{run} holds no latest.pt, so no final weights to promote")
    reference, target = REFERENCE.resolve(), dest.resolve()
    if target == reference:
        raise CheckpointError(f"AS names {REFERENCE} itself; give a folder under it, e.g. AS=seeds/<run>")
    if not target.is_relative_to(reference):
        raise CheckpointError(f"promote writes into a folder under {REFERENCE}, not {dest}")
    for part in target.relative_to(reference).parts:
        check_name(part, "destination folder (AS)")
    source = run.resolve()
    if target == source or target.is_relative_to(source) or source.is_relative_to(target):
        raise CheckpointError(f"{run} and {dest} are the same folder, or one holds the other; promote a run from "
                              f"its own folder (e.g. under runs/)")
    if dest.is_symlink():
        raise CheckpointError(f"{dest} is a symbolic link; remove it first")
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise CheckpointError(f"{dest} already holds a reference run; pass --overwrite to replace it")
    output_path(dest, what="reference run")  # refused unless MINIGPT_WRITE_REFERENCE=1 (make promote)
    return [name for name in ("metrics.json", "sample.txt", "train.log") if _plain_file(run / name)]


@contextmanager
def one_at_a_time():
    """An exclusive lock on checkpoints/reference/ itself: a second promote is refused while one runs."""
    REFERENCE.mkdir(parents=True, exist_ok=True)
    fd = os.open(REFERENCE, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(f"another promote into {REFERENCE} is running; wait for it, then try again") from None
        yield
    finally:
        os.close(fd)


def promote(run: Path, dest: Path, unfinished: bool = False, overwrite: bool = False,
            final: bool = False, records_only: bool = False) -> list[Path]:
    """Copy the run's weights (best.pt, and latest.pt's as final.pt with `final`; none with `records_only`), metrics,
    sample and log into dest (a folder under checkpoints/reference/), as a transaction: everything is checked first,
    then written into a temporary folder beside dest that replaces dest whole; a failure leaves the old reference
    exactly as it was."""
    run, dest = Path(run), Path(dest)
    with one_at_a_time():
        files = check(run, dest, unfinished, overwrite, final)
        dest.parent.mkdir(parents=True, exist_ok=True)
        new = Path(tempfile.mkdtemp(prefix=f".{dest.name}.promote-", dir=dest.parent))
        try:
            weights = [] if records_only else [(run / "best.pt", "best.pt")] + ([(run / "latest.pt", "final.pt")]
                                                                                 if final else [])
            for src, name in weights:
                size = export_weights(src, new / name).stat().st_size
                if size > MAX_BYTES:
                    raise CheckpointError(f"{src} exports to {size / 2**20:.0f} MB of weights, above the "
                                          f"{MAX_BYTES // 2**20} MB a committed file may hold; not promoted, and "
                                          f"{dest} is as it was")
            for name in files:
                shutil.copyfile(run / name, new / name)
            if "train.log" in files:  # the command's output names the run's files by their paths on this machine
                log = new / "train.log"
                log.write_bytes(log.read_bytes().replace(f"{ROOT}/".encode(), b""))
            os.chmod(new, 0o755)
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            if dest.exists():
                os.rename(dest, old)
            os.rename(new, dest)  # the swap: dest is the old folder or the new one, never a mixture
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(new, ignore_errors=True)
    return sorted(dest / p.name for p in dest.iterdir())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="the run's folder (its --out-dir)")
    ap.add_argument("dest", nargs="?", help="the folder under checkpoints/reference/ to create, e.g. seeds/5.6M-seed1 "
                    "(default: <experiment>/<run> for a run in runs/<experiment>/<run>)")
    ap.add_argument("--unfinished", action="store_true", help="promote a run that has not reached max_steps")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing reference run")
    ap.add_argument("--final", action="store_true", help="also the last step's weights, as final.pt")
    ap.add_argument("--records-only", action="store_true", help="no weights: metrics, sample and log alone (a run "
                    "whose measurements and study are committed as records in results/, keeping the clone lean)")
    a = ap.parse_args(argv)
    if a.records_only and a.final:
        raise SystemExit("error: --final promotes weights and --records-only none; choose one")
    try:
        dest = REFERENCE / a.dest if a.dest else committed_folder(a.run)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    try:
        for path in promote(a.run, dest, a.unfinished, a.overwrite, a.final, a.records_only):
            print(f"wrote {path}")
    except (CheckpointError, ConfigError) as e:  # e.g. a latest.pt whose stored preset is not one
        raise SystemExit(f"error: {e}")
    except OSError as e:  # e.g. a full disk while writing the new folder: the old one is untouched
        raise SystemExit(f"error: cannot write {e.filename or 'the new reference folder'}: {e.strerror}; "
                         f"{dest} is as it was")


if __name__ == "__main__":
    main()
