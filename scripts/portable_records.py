"""Rewrite the committed records that still name a path of the machine that wrote them (issue #41), once.

    MINIGPT_WRITE_REFERENCE=1 .venv/bin/python scripts/portable_records.py --root <the checkout they name>

Every tracked train.log loses the prefix `<root>/` (its paths become relative to the repository), and every tracked
checkpoint whose stored run configuration holds out_dir under `<root>` gets it relative to the repository; the weights,
vocabulary and metrics are copied unchanged. Promote now writes both forms portable itself (checkpoint.export_weights,
scripts/promote.py); tests/test_records.py fails if a tracked record names an absolute path again. --check lists what
would change and exits 1 if anything would.
"""
import argparse
import io
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checkpoint import load_checkpoint, write_file  # noqa: E402


def tracked(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / p for p in out.split()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(ROOT), help="the absolute path the records name (default: this repository)")
    ap.add_argument("--check", action="store_true", help="list what would change; write nothing")
    a = ap.parse_args(argv)
    prefix = a.root.rstrip("/") + "/"
    changed = []
    for log in tracked("*train.log"):
        text = log.read_bytes()
        if prefix.encode() in text:
            changed.append(log)
            if not a.check:
                write_file(log, text.replace(prefix.encode(), b""), "training log")
    for pt in tracked("*.pt"):
        ckpt = load_checkpoint(pt)
        out_dir = (ckpt.get("train_config") or {}).get("out_dir")
        if isinstance(out_dir, str) and out_dir.startswith(prefix):
            changed.append(pt)
            if not a.check:
                ckpt["train_config"]["out_dir"] = out_dir[len(prefix):]
                buf = io.BytesIO()
                torch.save(ckpt, buf)
                write_file(pt, buf.getvalue(), "checkpoint")
    for path in changed:
        print(f"{'would rewrite' if a.check else 'rewrote'} {path.relative_to(ROOT)}")
    if a.check and changed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
