"""The Austen corpus: verified loading of Data/*.txt and the fixed train/val split.

Every load checks each file against Data/MANIFEST.json (SHA-256 and size), so a run
can never silently train on a truncated or edited novel. The split is fixed: the
last 10% of each novel (cut at a line boundary) is validation, the rest training,
so every novel appears in both and no text is in both. With held-out novels the
split is by novel instead: the training novels are trained on whole, and the
held-out novels, never trained on, are the validation text.

A novel is named by its file's stem ("emma") or by the stem and a prefix in characters ("emma[:24576]": its first
24,576 characters, as the original study's truncated Emma file); the manifest check is on the whole file.
"""
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "Data"
MANIFEST = DATA_DIR / "MANIFEST.json"
REBUILD = "python scripts/build_corpus.py"
VAL_FRACTION = 0.1

TITLES = {
    "prideprejudice": "Pride and Prejudice",
    "sensesensibility": "Sense and Sensibility",
    "emma": "Emma",
    "mansfieldpark": "Mansfield Park",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
DEFAULT_NOVELS = ("prideprejudice", "sensesensibility", "emma")
ALL_NOVELS = tuple(TITLES)
SPEC = re.compile(r"(?P<name>[a-z]+)(?:\[:(?P<chars>[1-9][0-9]{0,8})\])?")


class CorpusError(RuntimeError):
    """A data file is missing, empty, not UTF-8 or not the file the manifest describes."""


def parse_novel(spec: str) -> tuple[str, int | None]:
    """"emma" -> ("emma", None); "emma[:24576]" -> ("emma", 24576): the novel and how many characters to keep."""
    m = SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if m is None or m["name"] not in TITLES:
        raise CorpusError(f"unknown novel {spec!r}; name one of {', '.join(ALL_NOVELS)}, optionally with a prefix "
                          f"length in characters, e.g. 'emma[:24576]'")
    return m["name"], int(m["chars"]) if m["chars"] else None


def read_novel(name: str, data_dir: Path = DATA_DIR) -> str:
    """Return the text of one novel after checking it against the manifest."""
    if name not in TITLES:
        raise CorpusError(f"unknown novel {name!r}; choose from {', '.join(ALL_NOVELS)}")
    data_dir = Path(data_dir)
    path = data_dir / f"{name}.txt"
    rebuild = REBUILD + ("" if name in DEFAULT_NOVELS else " --all")
    if not path.is_file():
        raise CorpusError(f"data file {path} is missing; rebuild it with `{rebuild}`")
    manifest_path = data_dir / MANIFEST.name
    if not manifest_path.is_file():
        raise CorpusError(f"{manifest_path} is missing; restore it with `git checkout {MANIFEST.name}` "
                          f"in {data_dir} or rebuild with `{REBUILD} --all`")
    expected = read_manifest(manifest_path).get(path.name)
    if expected is None:
        raise CorpusError(f"{path.name} is not listed in {manifest_path}; rebuild with `{rebuild}`")
    size = path.stat().st_size  # checked before reading, so a huge file is never read whole
    if size == 0:
        raise CorpusError(f"data file {path} is empty; rebuild it with `{rebuild}`")
    mismatch = (f"data file {path} does not match {manifest_path} ({size:,} bytes, expected {expected['bytes']:,}); "
                f"it was modified or truncated: restore it with `git checkout -- {path.name}` or `{rebuild}`")
    if size != expected["bytes"]:
        raise CorpusError(mismatch)
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != expected["sha256"]:
        raise CorpusError(mismatch)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:  # only reachable if the manifest itself was edited
        raise CorpusError(f"data file {path} is not valid UTF-8 ({e}); rebuild it with `{rebuild}`") from None


def read_manifest(manifest_path: Path) -> dict:
    """{file name: {"bytes": int, "sha256": str}}, or a CorpusError naming the file and the fix."""
    fix = f"restore it with `git checkout -- Data/{manifest_path.name}` or rebuild with `{REBUILD} --all`"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CorpusError(f"{manifest_path} is not valid JSON ({type(e).__name__}: {e}); {fix}") from None
    ok = isinstance(manifest, dict) and all(
        isinstance(v, dict) and type(v.get("bytes")) is int and isinstance(v.get("sha256"), str)
        for v in manifest.values())
    if not ok:
        raise CorpusError(f"{manifest_path} must map each file name to {{\"bytes\": <int>, \"sha256\": <str>}}; {fix}")
    return manifest


def split_text(text: str, val_fraction: float = VAL_FRACTION) -> tuple[str, str]:
    """Split one novel into (train, val): val is the last `val_fraction`, cut at a newline."""
    cut = text.rfind("\n", 0, int(len(text) * (1 - val_fraction))) + 1
    return text[:cut], text[cut:]


@dataclass
class Corpus:
    novels: dict          # name -> full text, the held-out novels included
    train: str            # training parts of all novels, joined by blank lines
    val: str              # validation parts, likewise
    held_out: tuple = ()  # novels that are validation text only

    def parts(self, name: str) -> tuple[str, str]:
        """(train, val) text of one novel."""
        text = self.novels[name]
        if not self.held_out:
            return split_text(text)
        return ("", text) if name in self.held_out else (text, "")

    def __str__(self):
        lines = [f"{'novel':<28}{'chars':>10}{'lines':>8}{'words':>9}{'train chars':>13}{'val chars':>11}"]
        for name, text in self.novels.items():
            tr, va = self.parts(name)
            title, chars = parse_novel(name)
            title = TITLES[title] + (f" [:{chars:,}]" if chars else "")
            lines.append(f"{title:<28}{len(text):>10,}{text.count(chr(10)):>8,}{len(text.split()):>9,}"
                         f"{len(tr):>13,}{len(va):>11,}")
        lines.append(f"\ntrain: {len(self.train):,} characters, validation: {len(self.val):,} characters")
        return "\n".join(lines)


def load_corpus(novels=DEFAULT_NOVELS, held_out=(), data_dir: Path = DATA_DIR) -> Corpus:
    """The training novels and their validation text: the last tenth of each, or the held-out novels whole."""
    if not novels:
        raise CorpusError("no novels to train on; name at least one (corpus.ALL_NOVELS)")
    both = sorted({parse_novel(s)[0] for s in novels} & {parse_novel(s)[0] for s in held_out})
    if both:
        raise CorpusError(f"{', '.join(both)} both trained on and held out; a held-out novel must not be a training "
                          "novel")
    texts = {}
    for spec in (*novels, *held_out):
        name, chars = parse_novel(spec)
        texts[spec] = read_novel(name, data_dir)[:chars]
    if held_out:
        return Corpus(texts, "\n\n".join(texts[n] for n in novels), "\n\n".join(texts[n] for n in held_out),
                      tuple(held_out))
    parts = [split_text(t) for t in texts.values()]
    return Corpus(texts, "\n\n".join(p[0] for p in parts), "\n\n".join(p[1] for p in parts))
