import json
import os
import pickle
import zipfile

import pytest
import torch

from checkpoint import CheckpointError, export_weights, load_checkpoint, load_model, save_checkpoint
from tokenizer import CharTokenizer
from TransformerModel import GPT, GPTConfig


@pytest.fixture
def saved(tmp_path):
    tok = CharTokenizer("abcdefghij ")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))
    opt = torch.optim.AdamW(model.parameters())
    path = save_checkpoint(tmp_path / "ck.pt", model, tok, train_config={"preset": "tiny"}, step=7,
                           optimizer=opt, rng={"torch": torch.get_rng_state()})
    return path, model.eval(), tok


def test_round_trip_gives_identical_logits(saved):
    path, model, tok = saved
    loaded, tok2, ckpt = load_model(path)
    x = torch.tensor([tok.encode("abc def")])
    assert torch.equal(loaded(x)[0], model(x)[0])
    assert tok2.state() == tok.state() and ckpt["step"] == 7
    assert not list(path.parent.glob(".*.tmp")), "the temp file of the atomic save was left behind"


def test_export_drops_optimizer_and_rng(saved, tmp_path):
    path, _, _ = saved
    out = export_weights(path, tmp_path / "weights.pt")
    ckpt = load_checkpoint(out)
    assert "optimizer" not in ckpt and "rng" not in ckpt and ckpt["step"] == 7
    assert os.path.getsize(out) < os.path.getsize(path)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this creates the marker file


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "minigpt-checkpoint", "version": 1, "payload": Evil(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refusing to load .*evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()
    # a plain pickle file (not a torch zip) is refused the same way
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(Evil(str(marker)), f)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_truncated_corrupt_and_foreign_files(saved, tmp_path):
    path, _, _ = saved
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt is truncated, corrupt"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "notes.pt").write_text("just some text")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_checkpoint(tmp_path / "notes.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt is not a MiniGPT checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="missing.pt does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    # a corrupted byte inside the weights of a valid zip
    bad = bytearray(data)
    with zipfile.ZipFile(path) as z:
        info = [i for i in z.infolist() if "/data/" in i.filename][0]
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
    bad[info.header_offset + 30 + name_len + extra_len + 5] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match="flipped.pt is corrupt: entry .* fails its CRC check"):
        load_checkpoint(tmp_path / "flipped.pt")


def test_mismatched_config_or_vocabulary_is_named(saved):
    path, _, tok = saved
    with pytest.raises(CheckpointError, match="n_embd is 16, expected 32"):
        load_model(path, expect_config={"n_embd": 32, "n_layer": 1})
    with pytest.raises(CheckpointError, match="different vocabulary"):
        load_model(path, expect_tokenizer=CharTokenizer("xyz"))
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["n_embd"] = 32
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="weights do not fit its config"):
        load_model(path)
    ckpt["tokenizer"] = json.dumps({"kind": "klingon"})
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="invalid config or tokenizer"):
        load_model(path)


@pytest.mark.parametrize("damage, match", [
    (lambda t: t * float("nan"), "holds NaN or infinity; the run diverged"),
    (lambda t: t.double(), "is torch.float64, but MiniGPT checkpoints hold float32"),
    (lambda t: t.to(torch.complex64), "is torch.complex64, but"),
])
def test_non_finite_or_foreign_dtype_weights_are_refused(saved, damage, match):
    path, _, _ = saved
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["wte.weight"] = damage(ckpt["model"]["wte.weight"])
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="weight wte.weight " + match):
        load_model(path)


def test_typed_records_round_trip_and_refuse_nan(tmp_path):
    import numpy as np

    from checkpoint import from_plain, read_json, write_json
    from induction import Estimate, HeadScores, HeadValue
    scores = HeadScores(np.eye(2), np.eye(2) - 0.1, np.eye(2) + 0.1)
    heads = [HeadValue(1, 0, Estimate(0.5, 0.4, 0.6))]
    data = read_json(write_json(tmp_path / "s.json", {"a": scores, "b": heads}))
    assert np.array_equal(from_plain(HeadScores, data["a"]).lo, np.eye(2) - 0.1)
    assert from_plain(list[HeadValue], data["b"]) == heads and str(heads[0]) == "L1H0 0.500 [0.400, 0.600]"
    with pytest.raises(ValueError, match="Out of range float"):
        write_json(tmp_path / "nan.json", {"x": float("nan")})
    assert not (tmp_path / "nan.json").exists()


def test_records_carry_their_version_and_old_versions_are_read_through_one_upgrade(tmp_path):
    """metrics.json v1 (a bare list, G beside gain) reads as v2 (gain alone); a newer or foreign record is named."""
    import json

    from checkpoint import RECORDS, CheckpointError, read_record, write_record
    from training_log import read_metrics
    from config import ROOT
    old = read_metrics(ROOT / "checkpoints/reference/recipe/2M-vocab2048-repeats")  # v1, from before gain
    raw = json.loads((ROOT / "checkpoints/reference/recipe/2M-vocab2048-repeats/metrics.json").read_text())
    log, raw_log = old[-1].probes["random"], raw[-1]["probes"]["random"]
    assert log.gain.mean == raw_log["G"] and log.gain.lo is None and "(no CI logged)" in str(log.gain)
    assert not log.gain.clears(-1e9) and not hasattr(log, "G")
    new = read_metrics(ROOT / "checkpoints/reference/seeds/2M-seed2")  # v1 with gain's CI: kept
    assert new[-1].probes["text-val"].gain.lo <= new[-1].probes["text-val"].gain.mean
    path = write_record(tmp_path / "metrics.json", "metrics", old)
    stored = json.loads(path.read_text())
    assert stored["format"] == "minigpt-metrics" and stored["version"] == RECORDS["metrics"] == 2
    back = read_metrics(tmp_path)
    assert [(r.step, r.val_loss, r.probes["random"].gain) for r in back] == [(r.step, r.val_loss, r.probes["random"].gain)
                                                                            for r in old]
    path.write_text(json.dumps({**stored, "version": 3}))
    with pytest.raises(CheckpointError, match="is version 3 of minigpt-metrics, newer than this code's 2"):
        read_metrics(tmp_path)
    path.write_text(json.dumps({**stored, "format": "minigpt-study"}))
    with pytest.raises(CheckpointError, match="is a 'minigpt-study' record, not minigpt-metrics"):
        read_record(path, "metrics", list)


def test_the_file_layer_knows_no_study_and_the_training_log_has_one_home():
    """checkpoint.py reads and writes files and records; the training log's types and questions are training_log.py's,
    so loading a checkpoint imports none of the study (issue #42)."""
    import subprocess
    import sys

    from config import ROOT
    code = "import sys, checkpoint; print(sorted(m for m in ('induction', 'training_log', 'study') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
    import checkpoint
    import induction
    import training_log
    assert not hasattr(checkpoint, "MetricsRow") and not hasattr(induction, "ProbeLog")
    assert training_log.read_metrics(ROOT / "checkpoints/reference/MiniGPT-2M")[-1].step == 10000


@pytest.mark.parametrize("bias", [True, False])
def test_an_exported_gpt2_folder_loads_as_its_checkpoint_does(tmp_path, bias):
    """gpt2_folder.write_folder then load_model on the folder: the same weights, tokenizer, step and run
    configuration as the .pt (without biases too: GPT-2's zero biases are dropped again)."""
    from gpt2_folder import FILES, read_safetensors, write_folder
    tok = CharTokenizer("abcdefghij ")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16, bias=bias)).eval()
    folder = write_folder(tmp_path / "hf", model, tok, 7, {"preset": "tiny"})
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    loaded, tok2, ckpt = load_model(folder)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    assert tok2.state() == tok.state() and ckpt["step"] == 7 and ckpt["train_config"] == {"preset": "tiny"}
    st = read_safetensors(folder / "model.safetensors")  # GPT-2's names and layout: Conv1D is (in, out)
    assert st["transformer.h.0.attn.c_attn.weight"].shape == (16, 48) and "lm_head.weight" not in st


def test_a_damaged_or_crafted_exported_folder_is_refused_before_anything_is_allocated(tmp_path):
    import shutil
    import struct

    from gpt2_folder import write_folder
    tok = CharTokenizer("abc ")
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8))
    good = write_folder(tmp_path / "good", model, tok, 1, {})

    def variant(name, change):
        bad = tmp_path / name
        shutil.copytree(good, bad)
        change(bad)
        return bad

    raw = (good / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    name = "transformer.wte.weight"
    huge = {**header, name: {**header[name], "shape": [10 ** 6, 10 ** 6]}}  # billions of floats from a few bytes
    crafted = json.dumps(huge).encode()
    cases = {
        "truncated": (lambda d: (d / "model.safetensors").write_bytes(raw[:-10]), "does not fit its bytes"),
        "huge header": (lambda d: (d / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + raw[8:]),
                        "declares a header of"),
        "huge shape": (lambda d: (d / "model.safetensors").write_bytes(
            struct.pack("<Q", len(crafted)) + crafted + raw[8 + n:]), "does not fit its bytes"),
        "no minigpt.json": (lambda d: (d / "minigpt.json").unlink(), "lacks minigpt.json"),
        "other model": (lambda d: (d / "config.json").write_text(json.dumps(
            {**json.loads((good / "config.json").read_text()), "n_layer": 3})), "describe different models"),
    }
    for case, (change, match) in cases.items():
        with pytest.raises(CheckpointError, match=match):
            load_model(variant(case.replace(" ", "-"), change))


def test_a_study_of_an_exported_folder_equals_the_study_of_its_checkpoint(tiny_run, tmp_path):
    """The reference models ship as exported folders: their scores must be those of the .pt they came from."""
    import study
    from checkpoint import portable_config
    from gpt2_folder import write_folder
    model, tok, ckpt = load_model(tiny_run.best)
    folder = write_folder(tmp_path / "exported", model, tok, ckpt["step"], portable_config(ckpt["train_config"]))
    scores = {}
    for form, path in (("pt", tiny_run.best), ("folder", folder)):
        cfg = study.StudyConfig(checkpoint=str(path), name=f"tiny-{form}", n_prompts=16, n_ablate=8, precision="fp32",
                                plots_dir=str(tmp_path / form), out_json=str(tmp_path / f"{form}.json"))
        ctx = study.load(cfg)
        scores[form] = study.score_heads(ctx, study.make_probes(ctx, cfg))
        assert ctx.ckpt["step"] == ckpt["step"] and ctx.run == study.RunConfig.from_checkpoint(ckpt)
    for kind, s in scores["pt"].items():
        assert torch.equal(torch.as_tensor(s.prefix_match.mean), torch.as_tensor(scores["folder"][kind].prefix_match.mean))
        assert s.G == scores["folder"][kind].G
    assert study.resolve(study.StudyConfig(checkpoint=str(folder))).name == "exported"  # the folder's name
