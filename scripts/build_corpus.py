"""Rebuild Data/*.txt from Debian's r-cran-janeaustenr package.

    python scripts/build_corpus.py            # the three novels MiniGPT trains on
    python scripts/build_corpus.py --all      # all six novels
    python scripts/build_corpus.py --deb r-cran-janeaustenr_1.0.0-1_all.deb

The package ships the Project Gutenberg texts as R lazy-load data: `data/Rdata.rdx`
is a gzipped, R-serialized index {novel: (offset, length)} into `data/Rdata.rdb`,
where each entry is a 4-byte big-endian length followed by a zlib stream holding an
R-serialized character vector, one element per line. `rdata` parses the R format.
The lines are joined with "\n" and written as UTF-8, then Data/MANIFEST.json is
rewritten with each file's SHA-256 and size (corpus.py checks it on every load).
"""
import argparse
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from corpus import ALL_NOVELS, DEFAULT_NOVELS, DATA_DIR, MANIFEST  # noqa: E402

PACKAGE = "r-cran-janeaustenr"


def fetch_deb(workdir: Path) -> Path:
    subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, check=True)
    return next(workdir.glob(f"{PACKAGE}_*.deb"))


def unpack_deb(deb: Path, workdir: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir / "pkg")], check=True)
    return next((workdir / "pkg").rglob("janeaustenr/data"))


def read_novels(data: Path) -> dict:
    import rdata  # only this script needs it (requirements-dev.txt)

    def parse(raw: bytes):
        return rdata.conversion.convert(rdata.parser.parse_data(raw, extension=".rds"))

    index = parse(gzip.decompress((data / "Rdata.rdx").read_bytes()))["variables"]
    rdb = (data / "Rdata.rdb").read_bytes()
    novels = {}
    for name, (offset, length) in index.items():
        blob = rdb[int(offset): int(offset) + int(length)]
        raw = zlib.decompress(blob[4:])
        assert len(raw) == int.from_bytes(blob[:4], "big"), f"{name}: length header mismatch"
        novels[str(name)] = [str(line) for line in parse(raw)]
    return novels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="also write Mansfield Park, Northanger Abbey, Persuasion")
    ap.add_argument("--deb", type=Path, help="use this .deb instead of running `apt-get download`")
    args = ap.parse_args()
    wanted = ALL_NOVELS if args.all else DEFAULT_NOVELS
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        deb = args.deb.resolve() if args.deb else fetch_deb(tmp)
        novels = read_novels(unpack_deb(deb, tmp))
    DATA_DIR.mkdir(exist_ok=True)
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    for name in wanted:
        data = ("\n".join(novels[name]) + "\n").encode("utf-8")
        path = DATA_DIR / f"{name}.txt"
        path.write_bytes(data)
        manifest[path.name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        print(f"wrote {path.relative_to(ROOT)}: {len(data):,} bytes, {len(novels[name]):,} lines")
    MANIFEST.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    print(f"wrote {MANIFEST.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
