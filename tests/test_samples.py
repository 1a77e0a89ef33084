"""Samples from held-out prompts and their repetition (samples.py), and the default-recipe report built on them."""
import json

import pytest
import torch

import samples
from corpus import load_corpus
from samples import SampleError, generate_text, held_out_samples, repetition


def test_repetition_counts_distinct_bigrams_and_4grams_seen_earlier_in_the_sample():
    assert repetition([1, 2, 3, 4, 5, 6, 7, 8, 9], 4) == (1.0, 0.0)  # nothing recurs
    assert repetition([1, 2, 3, 4, 1, 2, 3, 4], 4) == (1.0, 1.0)  # (1, 2, 3, 4) again: 1 of its 1 new 4-gram
    loop = [7, 8] * 20  # "perhaps , perhaps , ..."
    d2, r4 = repetition(loop, 4)
    assert d2 == pytest.approx(2 / 35) and r4 == 1.0


def test_held_out_samples_show_their_settings_prompts_and_repetition_beside_the_control(tiny_run, tmp_path,
                                                                                         monkeypatch):
    model, tok = tiny_run.model, tiny_run.tokenizer
    val = load_corpus(("emma",)).val
    a, b = held_out_samples(model, tok, val, new_tokens=30), held_out_samples(model, tok, val, new_tokens=30)
    assert str(a) == str(b)  # the same prompts and seeds: reproducible, and comparable between models
    text = str(a)
    assert text.startswith("2 samples from held-out prompts (16 tokens of the validation text each), 30 new tokens "
                           "each, temperature 0.8, top-k 40, seeds 0, 1:")
    assert all(s.prompt in val for s in a.samples) and all(len(s.text) == 30 for s in a.samples)  # characters
    assert f"repeated 4-grams in these samples: {100 * a.repeated_4:.1f}%" in text
    monkeypatch.setattr(samples, "CONTROL", tmp_path / "missing.json")
    assert "no measurement of the no-repeat control to compare with" in str(a)
    record = {"model": "2M", "tokenizer": "char", "seeds": 3, "samples": 72,
              "repeated_4": {"mean": 0.0066, "lo": 0.0036, "hi": 0.0102}}
    (tmp_path / "c.json").write_text(json.dumps(record))
    monkeypatch.setattr(samples, "CONTROL", tmp_path / "c.json")
    assert "the 2M no-repeat control's, over 72 samples of 3 seeds: 0.7% [0.4, 1.0]" in str(a)
    (tmp_path / "c.json").write_text(json.dumps({**record, "tokenizer": "word"}))
    assert "measured in word tokens, not comparable with char tokens" in str(a)
    with pytest.raises(SampleError, match="encodes to no tokens"):
        generate_text(model, tok, "")
    with pytest.raises(SampleError, match="too few for prompts"):
        held_out_samples(model, tok, "short")


def test_the_recipe_report_judges_each_seed_against_its_own_control(tmp_path, monkeypatch, capsys):
    from experiments import default_recipe as exp
    monkeypatch.setattr(exp, "RESULTS", tmp_path)
    monkeypatch.setattr(exp, "CONTROL_SAMPLES", tmp_path / "control.json")
    monkeypatch.setattr(exp, "weights", lambda run: None)  # no weights: the committed measurements alone
    rng = torch.Generator().manual_seed(0)

    def record(run, loss, r4):
        reps = (r4 + 0.01 * torch.rand(24, generator=rng)).tolist()
        (tmp_path / f"measured_{run}.json").write_text(json.dumps(dict(
            run=run, tokens=5_120_000, val_loss=loss, distinct_2=[0.9] * 24, repeated_4=reps, examples=[])))
    for seed in exp.SEEDS:
        record(f"2M-control-seed{seed}", 4.40, 0.005)
        record(f"2M-floor-seed{seed}", 4.43, 0.006)            # within 0.05, not more repetitive
    record("2M-constant-0.25-seed1337", 4.50, 0.10)           # 0.1 nats worse and looping
    exp.main(["--out", str(tmp_path / "f.png")])
    out = capsys.readouterr().out
    assert "| constant-0.25 | 1337 | +0.100 (FAIL) |" in out and "| floor | 2 | +0.030 (pass) |" in out
    assert "- constant-0.25: FAILS (loss in seed 1337, samples in seed 1337; 1 of 3 seeds trained)" in out
    assert "- floor: not judged yet (heads in seed 1337, heads in seed 1, heads in seed 2 not measured)" in out
    assert "1. floor: 2 of 3 criteria, repeated 4-grams 1.0%\n2. constant-0.25: 0 of 3 criteria" in out
    assert json.loads((tmp_path / "control.json").read_text())["samples"] == 72


def test_a_run_whose_validation_text_is_shorter_than_a_prompt_ends_without_a_sample(tmp_path, capsys):
    from config import run_config
    from train import train
    cfg = run_config("tiny", novels=("emma[:60]",), block_size=8, batch_size=4, max_steps=2, eval_interval=2,
                     out_dir=str(tmp_path / "run"))
    res = train(cfg, progress=False, plots_dir=None)  # 11 characters of validation text: shorter than a prompt
    assert res.sample is None and not (tmp_path / "run" / "sample.txt").exists() and res.best.exists()
    assert "no sample: the validation text has 11 tokens, too few for prompts of 16" in capsys.readouterr().out
