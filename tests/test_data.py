import json
import shutil

import pytest

import corpus
from corpus import CorpusError, load_corpus, read_novel, split_text
from tokenizer import CharTokenizer, TokenizerError, WordTokenizer, build_tokenizer, from_state


@pytest.fixture
def data_copy(tmp_path):
    for name in corpus.DEFAULT_NOVELS:
        shutil.copy(corpus.DATA_DIR / f"{name}.txt", tmp_path)
    shutil.copy(corpus.MANIFEST, tmp_path)
    return tmp_path


def test_committed_novels_match_manifest():
    c = load_corpus()
    assert set(c.novels) == {"prideprejudice", "sensesensibility", "emma"}
    assert c.novels["prideprejudice"].startswith("PRIDE AND PREJUDICE")
    assert len(c.novels["emma"]) > 800_000  # the whole novel, not the original's 24 KB excerpt


@pytest.mark.parametrize("damage, match", [
    (lambda p: p.unlink(), "is missing; rebuild it with `python scripts/build_corpus.py`"),
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), "does not match .*truncated"),
    (lambda p: p.write_text(p.read_text().replace("Elizabeth", "Elisabeth", 1)), "does not match"),
])
def test_damaged_data_file_is_named_with_the_fix(data_copy, damage, match):
    damage(data_copy / "emma.txt")
    with pytest.raises(CorpusError, match=match) as e:
        read_novel("emma", data_copy)
    assert "emma.txt" in str(e.value)


def test_non_utf8_file_gets_a_clear_error(data_copy):
    # a file that matches its manifest entry but is not UTF-8 (e.g. a hand-edited manifest)
    bad = "Emma Woodhouse".encode("latin-1") + b"\xe9\xff"
    (data_copy / "emma.txt").write_bytes(bad)
    manifest = json.loads((data_copy / "MANIFEST.json").read_text())
    import hashlib
    manifest["emma.txt"] = {"sha256": hashlib.sha256(bad).hexdigest(), "bytes": len(bad)}
    (data_copy / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match="is not valid UTF-8"):
        read_novel("emma", data_copy)


def test_other_novels_point_to_the_all_flag(tmp_path):
    shutil.copy(corpus.MANIFEST, tmp_path)
    with pytest.raises(CorpusError, match="build_corpus.py --all"):
        read_novel("persuasion", tmp_path)
    with pytest.raises(CorpusError, match="unknown novel 'ulysses'"):
        read_novel("ulysses")


def test_split_is_last_tenth_of_each_novel_without_overlap():
    c = load_corpus()
    for text in c.novels.values():
        train, val = split_text(text)
        assert train + val == text
        assert 0.09 < len(val) / len(text) < 0.11
        assert train.endswith("\n")
        # no line of 60+ characters of the validation part appears in the training part
        long_lines = [l for l in val.splitlines() if len(l) > 60]
        assert long_lines and not any(l in train for l in long_lines[:200])
    assert c.val not in c.train


def test_a_held_out_novel_is_the_whole_validation_text_and_never_trained_on():
    c = load_corpus(("prideprejudice", "sensesensibility"), held_out=("emma",))
    assert c.val == c.novels["emma"] and c.held_out == ("emma",)
    assert c.novels["prideprejudice"] in c.train and c.novels["sensesensibility"] in c.train
    long_lines = [l for l in c.val.splitlines() if len(l) > 60]
    assert long_lines and not any(l in c.train for l in long_lines[:200])
    row = next(l for l in str(c).splitlines() if l.startswith("Emma"))
    assert row.split()[-2:] == ["0", f"{len(c.val):,}"]  # train chars, val chars
    with pytest.raises(CorpusError, match="emma both trained on and held out"):
        load_corpus(("emma", "prideprejudice"), held_out=("emma",))


def test_a_novel_can_be_cut_to_a_prefix_as_the_original_study_cut_emma():
    c = load_corpus(("prideprejudice", "emma[:24576]"), held_out=("persuasion",))
    assert c.novels["emma[:24576]"] == read_novel("emma")[:24576] and c.train.endswith(read_novel("emma")[:24576])
    assert next(l for l in str(c).splitlines() if l.startswith("Emma")).startswith("Emma [:24,576]")
    for bad in ("emma[:0]", "emma[24576]", "emma[:-5]", "Emma", "emma[:24576] "):
        with pytest.raises(CorpusError, match=r"unknown novel .* e.g. 'emma\[:24576\]'"):
            load_corpus((bad,))
    with pytest.raises(CorpusError, match="emma both trained on and held out"):
        load_corpus(("emma[:100]",), held_out=("emma",))


def test_word_tokenizer_matches_original_rules_and_stats():
    tok = WordTokenizer.train("It is a truth, universally acknowledged; 1813 _Emma_ café")
    assert tok.split("Mr. Darcy's 10,000 a-year!") == ["mr", ".", "darcy", "'", "s", "10", ",", "000", "a", "-",
                                                       "year", "!"]
    assert tok.decode(tok.encode("It IS a truth")) == "it is a truth"  # lossy: case and spacing
    assert tok.encode("zebra") == [0]                                   # unseen word -> <unk>
    c = load_corpus()
    word = build_tokenizer("word", c.train, c.train + c.val)
    n_train, val = len(word.encode(c.train)), word.encode(c.val)
    assert 9_000 < word.vocab_size < 11_000
    assert 450_000 < n_train + len(val) < 530_000
    assert 0.004 < val.count(0) / len(val) < 0.012      # <unk> rate on validation
    capped = build_tokenizer("word", c.train, c.train, vocab_size=2000)
    assert capped.vocab_size == 2000


def test_char_tokenizer_round_trip_and_unknown_characters():
    c = load_corpus()
    tok = build_tokenizer("char", c.train, c.train + c.val)
    sample = c.val[:5000]
    assert tok.decode(tok.encode(sample)) == sample
    with pytest.raises(TokenizerError, match=r"2 character\(s\) outside the vocabulary: '\\t', 'é'"):
        tok.encode("caf\u00e9\tbar")


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_tokenizer_state_round_trip(kind):
    text = "It is a truth universally acknowledged.\n\nThat a single man in possession of a good fortune."
    tok = build_tokenizer(kind, text, text, vocab_size=300 if kind == "bpe" else None)
    again = from_state(json.loads(json.dumps(tok.state())))
    assert again.encode(text) == tok.encode(text) and again.vocab_size == tok.vocab_size
    if kind != "word":
        assert again.decode(again.encode(text)) == text
    with pytest.raises(TokenizerError, match="unknown tokenizer kind"):
        from_state({"kind": "sentencepiece"})


def test_char_vocabulary_is_sorted_and_unique():
    assert CharTokenizer("banana").chars == "abn"


def test_the_prepared_corpus_is_built_once_then_read_back_and_rebuilt_when_an_input_changes(data_copy, tmp_path,
                                                                                           monkeypatch, capsys):
    """prepare.py: a second load reads the tokenizer and the token ids back (nothing rebuilt); other settings, another
    text (a novel and its manifest changed together) and a damaged entry each build anew; the result is always what
    building it directly gives."""
    import hashlib

    import torch

    import prepare
    import tokenizer
    monkeypatch.setattr(prepare, "CACHE", tmp_path / "cache")
    built = []
    monkeypatch.setattr(prepare, "build_tokenizer", lambda *a: built.append(a[0]) or build_tokenizer(*a))
    c = load_corpus(data_dir=data_copy)
    tok = prepare.prepare(c, "word", 2000)
    train, val = prepare.encode_splits(tok, c)
    direct = build_tokenizer("word", c.train, c.train + c.val, 2000)
    assert tok.state() == direct.state() and built == ["word"]
    assert torch.equal(train, torch.tensor(direct.encode(c.train))) and torch.equal(val, torch.tensor(direct.encode(c.val)))
    assert train.dtype == torch.long and train.dim() == 1

    monkeypatch.setattr(tokenizer.WordTokenizer, "encode", lambda *a: pytest.fail("encoded again"))
    again = prepare.prepare(c, "word", 2000)                              # the second load: a hit
    assert again.state() == tok.state() and built == ["word"]
    assert all(torch.equal(a, b) for a, b in zip(prepare.encode_splits(again, c), (train, val)))
    monkeypatch.undo()
    monkeypatch.setattr(prepare, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(prepare, "build_tokenizer", lambda *a: built.append(a[0]) or build_tokenizer(*a))

    prepare.prepare(c, "word", 1000)                                      # other settings
    prepare.prepare(c, "char", None)
    assert built == ["word", "word", "char"]
    novel = data_copy / "emma.txt"                                        # another text, its manifest updated with it
    novel.write_text(novel.read_text().replace("Emma", "Emmy"))
    manifest = json.loads((data_copy / "MANIFEST.json").read_text())
    manifest["emma.txt"] = {"bytes": novel.stat().st_size, "sha256": hashlib.sha256(novel.read_bytes()).hexdigest()}
    (data_copy / "MANIFEST.json").write_text(json.dumps(manifest))
    changed = load_corpus(data_dir=data_copy)
    assert "emmy" in prepare.prepare(changed, "word", 2000).state()["itos"] and built[-1] == "word" and len(built) == 4

    entry = next(p.parent for p in (tmp_path / "cache").rglob("train.npy"))  # a damaged entry: truncated ids
    (entry / "train.npy").write_bytes((entry / "train.npy").read_bytes()[:100])
    capsys.readouterr()
    assert torch.equal(prepare.encode_splits(tok, c)[0], train)
    assert "is damaged (ValueError: train.npy does not match its SHA-256); rebuilding it" in capsys.readouterr().out
    assert torch.equal(prepare.encode_splits(tok, c)[0], train) and capsys.readouterr().out == ""  # rebuilt whole


def test_a_cache_that_cannot_be_written_costs_time_not_the_run(tmp_path, monkeypatch, capsys):
    import prepare
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache's folder would go")
    monkeypatch.setattr(prepare, "CACHE", blocked / "cache")
    c = load_corpus(novels=("emma[:20000]",))
    tok = prepare.prepare(c, "char", None)
    assert tok.state() == build_tokenizer("char", c.train, c.train + c.val).state()
    assert "cannot keep the prepared corpus" in capsys.readouterr().out
