"""The committed records are portable and the tree stays lean (issue #41): no tracked record names a path of the
machine that wrote it, and no tracked file is over 30 MB."""
import re
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 30 * 2 ** 20  # the repository's limit for one committed file (scripts/promote.py)
# This checkout's path, and the usual homes of a machine's own files (a checkout, a home, a temp folder)
MACHINE = re.compile(rb"%s|(?<![\w.~/-])/(?:work|tmp|root|home|Users|private|mnt|var/folders)/" % re.escape(bytes(ROOT)))


def tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p.decode() for p in out.split(b"\0") if p and (ROOT / p.decode()).is_file()]


def test_no_tracked_record_names_a_path_of_the_machine():
    found = []
    for f in tracked():
        if f.is_relative_to(ROOT / "tests") or f.suffix == ".pt":  # test inputs are not records; checkpoints: below
            continue
        data = f.read_bytes()
        if b"\0" not in data[:8192] and (m := MACHINE.search(data)):  # text files only
            found.append(f"{f.relative_to(ROOT)}: {data[max(0, m.start() - 30):m.end() + 30]!r}")
    assert not found, "absolute paths (rewrite with scripts/portable_records.py):\n" + "\n".join(found)


def test_no_tracked_checkpoint_stores_an_absolute_path():
    found = []
    for f in (f for f in tracked() if f.suffix == ".pt"):
        cfg = torch.load(f, map_location="cpu", weights_only=True).get("train_config") or {}
        found += [f"{f.relative_to(ROOT)}: {k}={v!r}" for k, v in cfg.items() if isinstance(v, str) and v.startswith("/")]
    assert not found, "absolute paths in stored run configurations (scripts/portable_records.py):\n" + "\n".join(found)


def test_no_tracked_file_is_over_30_MB():
    big = [f"{f.relative_to(ROOT)}: {f.stat().st_size / 2 ** 20:.1f} MB" for f in tracked() if f.stat().st_size > MAX_BYTES]
    assert not big, "over the 30 MB a committed file may hold:\n" + "\n".join(big)
