"""Promote a finished run into the committed reference results (checkpoints/reference/), as one command.

    make promote RUN=runs/seeds/5.6M-seed1 AS=seeds/5.6M-seed1    # -> checkpoints/reference/seeds/5.6M-seed1/

What is copied: best.pt without optimizer or RNG state (weights, run config and vocabulary: checkpoint.export_weights),
metrics.json, sample.txt and train.log (the command's output, which `python -m experiments X run` writes there); with
--final (FINAL=1) also the last step's weights as final.pt, for a run whose end, not its best validation loss, is what
is studied (the original recipe, which memorises). The run must have reached its
max_steps (--unfinished to promote a run in progress), the destination must not exist yet (--overwrite to replace
it), and the weights must stay under 30 MB, the repository's limit for a committed file. Writing into
checkpoints/reference/ needs MINIGPT_WRITE_REFERENCE=1, which `make promote` sets. A run in progress whose resumable
latest.pt was committed in the destination keeps it until you `git rm` it: promote writes, and never deletes.
"""
import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checkpoint import CheckpointError, export_weights, load_checkpoint, output_path  # noqa: E402
from config import ConfigError, RunConfig  # noqa: E402

REFERENCE = ROOT / "checkpoints" / "reference"
MAX_BYTES = 30 * 2 ** 20  # the repository's limit for one committed file


def promote(run: Path, dest: Path, unfinished: bool = False, overwrite: bool = False,
            final: bool = False) -> list[Path]:
    """Copy the run's weights (best.pt, and latest.pt's as final.pt with `final`), metrics, sample and log into dest
    (a folder under checkpoints/reference/)."""
    missing = [f for f in ("best.pt", "metrics.json") if not (run / f).is_file()]
    if missing:
        raise CheckpointError(f"{run} holds no {' or '.join(missing)}: is it a run's folder (train.py --out-dir)?")
    latest = run / "latest.pt"
    if latest.exists() and not unfinished:
        ckpt = load_checkpoint(latest)
        step, max_steps = ckpt.get("step"), RunConfig.from_checkpoint(ckpt).max_steps
        if step != max_steps:
            raise CheckpointError(f"{run} is at step {step:,} of {max_steps:,}: finish it (train.py --resume), or "
                                  f"pass --unfinished to promote it as it is")
    if final and not latest.exists():
        raise CheckpointError(f"{run} holds no latest.pt, so no final weights to promote")
    if not dest.resolve().is_relative_to(REFERENCE.resolve()):
        raise CheckpointError(f"promote writes under {REFERENCE}, not {dest}")
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise CheckpointError(f"{dest} already holds a reference run; pass --overwrite to replace it")
    output_path(dest, what="reference run")  # refused unless MINIGPT_WRITE_REFERENCE=1 (make promote)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src, name in [(run / "best.pt", "best.pt")] + ([(latest, "final.pt")] if final else []):
        written.append(export_weights(src, dest / name))
        size = written[-1].stat().st_size
        if size > MAX_BYTES:
            for path in written:
                path.unlink()
            raise CheckpointError(f"{src} exports to {size / 2**20:.0f} MB of weights, "
                                  f"above the {MAX_BYTES // 2**20} MB a committed file may hold; not promoted")
    for name in ("metrics.json", "sample.txt", "train.log"):
        if (run / name).is_file():
            written.append(Path(shutil.copyfile(run / name, dest / name)))
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="the run's folder (its --out-dir)")
    ap.add_argument("dest", help="the folder under checkpoints/reference/ to create, e.g. seeds/5.6M-seed1")
    ap.add_argument("--unfinished", action="store_true", help="promote a run that has not reached max_steps")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing reference run")
    ap.add_argument("--final", action="store_true", help="also the last step's weights, as final.pt")
    a = ap.parse_args(argv)
    try:
        for path in promote(a.run, REFERENCE / a.dest, a.unfinished, a.overwrite, a.final):
            print(f"wrote {path}")
    except (CheckpointError, ConfigError) as e:  # e.g. a latest.pt whose stored preset is not one
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    main()
