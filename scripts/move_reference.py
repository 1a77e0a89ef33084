"""Move committed runs to other folders under checkpoints/reference/ and rewrite every tracked record that names them.

    MINIGPT_WRITE_REFERENCE=1 .venv/bin/python scripts/move_reference.py OLD=NEW [OLD=NEW ...] [--check]

OLD and NEW are folders relative to checkpoints/reference/ (e.g. make-run/MiniGPT-2M-seed1=verdicts/MiniGPT-2M-seed1).
Each OLD is moved with `git mv`, and every tracked JSON record and Markdown write-up that names
checkpoints/reference/OLD/ names checkpoints/reference/NEW/ instead (a study summary records the checkpoint it read; the
weights and logs themselves are moved unchanged). Code that names a folder is the author's to change: the script lists
what it finds there. --check lists what would change and writes nothing. Issue #42 used it once to give every run the
folder the registry's rule gives it (experiments/<experiment>/<run>).
"""
import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF = "checkpoints/reference/"
sys.path.insert(0, str(ROOT))

from checkpoint import write_file  # noqa: E402


def git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("moves", nargs="+", metavar="OLD=NEW", help="folders relative to checkpoints/reference/")
    ap.add_argument("--check", action="store_true", help="list what would change; write nothing")
    a = ap.parse_args(argv)
    moves = []
    for spec in a.moves:
        old, sep, new = (p.strip("/") for p in spec.partition("="))
        if not (sep and old and new):
            ap.error(f"{spec!r}: expected OLD=NEW, two folders under {REF}")
        if not (ROOT / REF / old).is_dir():
            ap.error(f"{spec!r}: {REF}{old} is not a folder")
        if (ROOT / REF / new).exists():
            ap.error(f"{spec!r}: {REF}{new} exists already; moving onto it would mix two runs' files")
        moves.append((f"{REF}{old}/", f"{REF}{new}/"))
    for old, new in moves:
        print(f"{'would move' if a.check else 'moving'} {old} -> {new}")
        if not a.check:
            (ROOT / new).parent.mkdir(parents=True, exist_ok=True)
            git("mv", old.rstrip("/"), new.rstrip("/"))
            parent = (ROOT / old).parent
            if parent != ROOT / REF and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()  # the folder a run was moved out of, left empty
    for path in (ROOT / p for p in git("ls-files", "*.json", "*.md").split()):
        text = path.read_text()
        moved = text
        for old, new in moves:
            moved = moved.replace(old, new)
        if moved != text:
            print(f"{'would rewrite' if a.check else 'rewrote'} {path.relative_to(ROOT)}")
            if not a.check:
                write_file(path, moved.encode(), "record")
    for path in git("ls-files", "*.py", "*.ipynb", "Makefile").split():
        text = (ROOT / path).read_text()
        for old, _ in moves:
            if old in text:
                print(f"still to change by hand: {path} names {old}")


if __name__ == "__main__":
    main()
