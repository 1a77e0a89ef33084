import dataclasses
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import config
import torch

import train as train_mod
from checkpoint import CheckpointError, load_checkpoint, load_model
from corpus import load_corpus
from config import ConfigError, RunConfig, run_config
from ctrl_c import ctrl_c, start
from training_log import read_metrics
from train import TrainingError, lr_at, train
from TransformerModel import GPT

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(preset="tiny", batch_size=8, lr=3e-3, eval_batches=2)


def test_tiny_model_beats_the_unigram_baseline(tiny_run):
    c = load_corpus(run_config("tiny").novels)
    tok = tiny_run.tokenizer
    counts = Counter(tok.encode(c.train))
    total = sum(counts.values())
    val = tok.encode(c.val)
    V = tok.vocab_size  # add-one smoothing: a character of the validation text may never occur in training
    unigram = -sum(math.log((counts[i] + 1) / (total + V)) for i in val) / len(val)  # cross-entropy of unigram model
    final = tiny_run.metrics[-1]
    assert final.step == 300
    assert final.val_loss < unigram - 0.4, (final.val_loss, unigram)
    assert final.val_bpc == pytest.approx(final.val_loss / math.log(2), rel=1e-6)  # 1 char = 1 token
    assert tiny_run.loss_curve.exists() and tiny_run.sample.startswith("2 samples from held-out prompts")
    assert (tiny_run.latest.parent / "sample.txt").read_text() == tiny_run.sample + "\n"
    assert read_metrics(tiny_run.latest.parent) == tiny_run.metrics


def test_lr_schedule_warms_up_then_decays_to_min_lr():
    cfg = run_config("tiny", lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-4) and lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(5.5e-4) and lr_at(110, cfg) == pytest.approx(1e-4)


def test_same_seed_same_loss_curve(tmp_path):
    runs = [train(run_config(**TINY, max_steps=30, eval_interval=10, out_dir=str(tmp_path / f"r{i}")),
                  progress=False, samples=False, plots_dir=None) for i in range(2)]
    strip = lambda ms: [(m.train_loss, m.val_loss) for m in ms]  # noqa: E731
    assert strip(runs[0].metrics) == strip(runs[1].metrics)


def test_resumed_run_ends_with_identical_weights(tmp_path):
    # constant lr after warmup, so stopping at 20 and extending to 40 is the same recipe
    kw = dict(TINY, min_lr=3e-3, warmup_steps=5, eval_interval=10, repeat_frac=0.3, dropout=0.1)
    full = train(run_config(**kw, max_steps=40, out_dir=str(tmp_path / "full")), progress=False,
                 samples=False, plots_dir=None)
    train(run_config(**kw, max_steps=20, out_dir=str(tmp_path / "part")), progress=False, samples=False,
          plots_dir=None)
    resumed = train(run_config(**kw, max_steps=40, out_dir=str(tmp_path / "part")), resume=True, progress=False,
                    samples=False, plots_dir=None)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m.val_loss for m in full.metrics] == [m.val_loss for m in resumed.metrics]


def test_existing_run_is_never_overwritten_silently(tmp_path):
    cfg = run_config(**TINY, max_steps=5, eval_interval=5, out_dir=str(tmp_path))
    train(cfg, progress=False, samples=False, plots_dir=None)
    with pytest.raises(TrainingError, match="already holds a run .* --resume .* --overwrite"):
        train(cfg, progress=False, samples=False, plots_dir=None)
    changed = run_config(**dict(TINY, lr=1e-3), max_steps=5, eval_interval=5, out_dir=str(tmp_path))
    with pytest.raises(Exception, match=r"settings differ \(lr: 0.003 -> 0.001\)"):
        train(changed, resume=True, progress=False, samples=False, plots_dir=None)


def test_unwritable_output_directory_fails_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    t0 = time.perf_counter()
    with pytest.raises(TrainingError, match="cannot write checkpoints to .*a-file/run"):
        train(run_config(**TINY, max_steps=5, out_dir=str(blocker / "run")), progress=False)
    assert time.perf_counter() - t0 < 1.0  # reported before the corpus is even loaded


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import TransformerModel
    real = TransformerModel.GPT.loss  # the training step's loss
    calls = {"n": 0}

    def flaky(*a, **kw):  # the 16th training step's loss is NaN; evaluations (no grad) stay finite
        calls["n"] += torch.is_grad_enabled()
        out = real(*a, **kw)
        return out * float("nan") if calls["n"] > 15 and torch.is_grad_enabled() else out

    monkeypatch.setattr(TransformerModel.GPT, "loss", flaky)
    with pytest.raises(TrainingError, match=r"loss became nan at step \d+ \(training batch\); training stopped. The last good "
                                            r"checkpoint is .*latest.pt \(step 10\)"):
        train(run_config(**TINY, max_steps=50, eval_interval=10, out_dir=str(tmp_path)), progress=False)
    model, _, ckpt = load_model(tmp_path / "latest.pt")
    assert ckpt["step"] == 10 and all(torch.isfinite(p).all() for p in model.parameters())


def _train_cmd(out_dir, max_steps, save_interval=1, precision="fp32"):
    # one novel only: every restart re-tokenizes the corpus, and the kill test restarts a dozen times
    return [sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--novels", "emma", "--batch-size", "8",
            "--lr", "3e-3", "--eval-batches", "2", "--max-steps", str(max_steps), "--eval-interval", "20",
            "--save-interval", str(save_interval), "--out-dir", str(out_dir), "--no-progress", "--resume",
            "--plots-dir", str(Path(out_dir) / "plots"), "--precision", precision]


def _wait_for_progress(path, after_mtime, proc, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        if path.exists() and path.stat().st_mtime_ns > after_mtime:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    latest = tmp_path / "latest.pt"
    proc = start(_train_cmd(tmp_path, 100_000, save_interval=1000), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert _wait_for_progress(latest, 0, proc)
    time.sleep(0.5)
    out, _ = ctrl_c(proc, timeout=30)
    assert proc.returncode == 130, out  # an interrupted run is not a success: `train && study` stops
    assert "interrupted at step" in out
    step = load_checkpoint(latest)["step"]
    assert 0 < step < 1000  # saved at the interruption, not at a save interval


# Each kill costs a process start (about 4 s: torch, the corpus, the tokenizer). bf16 needs fewer: what it adds is
# autocast across a resume, and on a CPU without native bf16 each of its steps is emulated.
@pytest.mark.slow
@pytest.mark.parametrize("precision, n_kills", [("fp32", 6), ("bf16", 2)])
def test_sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run(tmp_path, precision, n_kills):
    steps = 100
    ref = tmp_path / "ref"  # the uninterrupted run, in this process (same code, same thread count)
    cfg = train_mod.parse_args(_train_cmd(ref, steps, save_interval=50, precision=precision)[2:])[0]
    train(cfg, progress=False, samples=False, plots_dir=None)
    run, latest = tmp_path / "killed", tmp_path / "killed" / "latest.pt"
    rng = random.Random(0)
    kills, last_step, orphan_temp_files = 0, 0, 0
    while kills < n_kills:
        mtime = latest.stat().st_mtime_ns if latest.exists() else 0
        proc = subprocess.Popen(_train_cmd(run, steps, precision=precision), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,  # the reference run's thread count: same float rounding
                                env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
        if not _wait_for_progress(latest, mtime, proc):
            break  # finished
        if kills % 2:  # every other kill aims at a checkpoint write in progress
            t0 = time.time()
            while not list(run.glob(".*.tmp")) and time.time() - t0 < 2 and proc.poll() is None:
                pass
        else:
            time.sleep(rng.uniform(0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        orphan_temp_files += len(list(run.glob(".*.tmp")))
        step = load_checkpoint(latest)["step"]  # the latest checkpoint always loads
        assert step >= last_step
        last_step = step
    train(train_mod.parse_args(_train_cmd(run, steps, precision=precision)[2:])[0], resume=True, progress=False,
          samples=False, plots_dir=None)
    assert kills >= n_kills, f"only {kills} kills landed before the run finished"
    assert orphan_temp_files >= 1, "no kill landed during a checkpoint write"
    assert not list(run.glob(".*.tmp")), "the resumed run did not clean up half-written checkpoints"
    a, b = load_checkpoint(ref / "latest.pt"), load_checkpoint(latest)
    assert a["step"] == b["step"] == steps and b["train_config"]["precision"] == precision
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    print(f"{kills} kills, {orphan_temp_files} of them during a checkpoint write")


def test_induction_metrics_are_logged_during_training_and_plotted(tmp_path):
    import dataclasses

    from induction import Estimate, HeadValue
    from training_log import first_formed
    res = train(run_config(**TINY, max_steps=20, eval_interval=10, probe_interval=10, out_dir=str(tmp_path)),
                progress=False, samples=False, plots_dir=None)
    rows = read_metrics(tmp_path)
    assert [r.step for r in rows] == [0, 10, 20] == [r.step for r in res.metrics]
    for r in rows:
        assert set(r.probes) == {"text-val", "text-train", "random", "random-known"}  # the study's names for them
        for log in r.probes.values():
            v = log.best_delta.value
            assert v.lo <= v.mean <= v.hi and log.delta.shape == (2, 2)  # layers x heads
            assert log.best_prefix_match.value.lo <= log.best_prefix_match.value.mean
            # every head's prefix matching and copying with both CI bounds; the best previous-token head; G's CI
            for scores in (log.prefix_match, log.copying):
                assert scores.mean.shape == (2, 2) and (scores.lo <= scores.mean).all() and (scores.mean <= scores.hi).all()
            assert log.best_prev_token.value.lo <= log.best_prev_token.value.mean and log.gain.lo <= log.gain.mean
            assert log.original_delta.lo <= log.original_delta.mean <= log.original_delta.hi
    assert first_formed(rows) is None  # a 20-step model has no induction head
    formed = HeadValue(1, 0, Estimate(0.35, 0.31, 0.4))  # Δ's lower bound clears 0.3
    fake = dataclasses.replace(rows[0], probes={**rows[0].probes, "random": dataclasses.replace(
        rows[0].probes["random"], best_delta=formed)})
    assert first_formed(rows + [fake], "random", "delta") is fake
    spread = dataclasses.replace(rows[0], probes={**rows[0].probes, "random": dataclasses.replace(
        rows[0].probes["random"], best_prefix_match=HeadValue(1, 0, Estimate(0.6, 0.55, 0.65)))})
    assert first_formed(rows + [spread], "random", "delta") is None
    assert first_formed(rows + [spread], "random", "prefix_match") is spread
    from experiments.formation import plot_formation
    assert plot_formation({"tiny": rows}, tmp_path / "f.png", "t", 0.3).exists()
    # characters of text per token, recovered from the logged loss and bits/char: the tiny char model's is 1
    assert abs(rows[-1].chars_per_token - 1.0) < 1e-9
    for x in ("chars", "minutes"):
        assert plot_formation({"tiny": rows}, tmp_path / f"{x}.png", "t", 0.3, {"tiny": rows[1]}, x=x).exists()
    with pytest.raises(ValueError, match="x must be one of tokens, chars, minutes"):
        plot_formation({"tiny": rows}, tmp_path / "bad.png", "t", 0.3, x="steps")


def test_every_preset_is_a_complete_run_and_the_cli_derives_from_it():
    import dataclasses

    from config import PRESETS, RunConfig
    for name, cfg in PRESETS.items():
        assert cfg.preset == name and isinstance(cfg, RunConfig)
    with pytest.raises(TypeError, match="missing .* required"):
        RunConfig("x", tokenizer="word")  # a preset without a recipe cannot exist
    cfg, _ = train_mod.parse_args(["--preset", "5.6M", "--max-steps", "7", "--novels", "emma"])
    assert cfg == dataclasses.replace(PRESETS["5.6M"], max_steps=7, novels=("emma",))
    assert train_mod.parse_args([])[0] == PRESETS["2M"]


@pytest.mark.parametrize("kw, match", [
    (dict(max_steps="100"), r"RunConfig.max_steps must be int, got '100' \(str\)"),
    (dict(grad_clip=-1.0), "grad_clip must be > 0"),
    (dict(grad_clip=0), "grad_clip must be > 0"),
    (dict(weight_decay=-1), "weight_decay must be >= 0"),
    (dict(vocab_size=1), "vocab_size must be at least 2"),
    (dict(out_dir=""), "out_dir must not be empty"),
    (dict(repeat_frac=1.5), r"repeat_frac must be in \[0, 1\]"),
    (dict(device="tpu"), "device must be one of auto, cpu, cuda, mps"),
    (dict(held_out=("emma",)), "held_out must not name a training novel"),
    (dict(held_out=("emma[:100]",)), "held_out must not name a training novel"),
    (dict(novels=("emma[:x]",)), r"RunConfig.novels / held_out: unknown novel 'emma\[:x\]'"),
    (dict(probes_per_decade=-1), "probes_per_decade must be >= 0"),
])
def test_bad_run_settings_are_named_with_their_range(kw, match):
    with pytest.raises(ConfigError, match=match):
        run_config("2M", **kw)
    with pytest.raises(ConfigError, match="vocab_size must be None for the char tokenizer"):
        run_config("tiny", vocab_size=100)


def test_probes_are_log_spaced_when_asked_and_the_original_recipe_asks():
    from train import probe_steps
    assert sorted(probe_steps(run_config("2M", max_steps=1200))) == [0, 500, 1000, 1200]
    assert probe_steps(run_config("2M", probe_interval=0)) == set()
    steps = sorted(probe_steps(run_config("2M", probe_interval=0, probes_per_decade=8, max_steps=10_000)))
    assert steps[:8] == [0, 1, 2, 3, 4, 6, 7, 10] and steps[-3:] == [5623, 7499, 10_000]
    for decade in range(1, 4):  # at least 8 a decade, as issue #26 asks of the replication's log
        assert len([s for s in steps if 10 ** decade <= s < 10 ** (decade + 1)]) == 8
    orig = run_config("original-2M")
    assert (orig.batch_size, orig.block_size, orig.lr, orig.min_lr, orig.warmup_steps, orig.repeat_frac) == \
        (32, 128, 3e-4, 3e-4, 0, 0.0)
    assert orig.novels[-1] == "emma[:24576]" and orig.held_out == ("persuasion",) and orig.probes_per_decade >= 8
    assert {train_mod.lr_at(s, orig) for s in (0, 1, 50_000, 99_999)} == {3e-4}  # constant


def test_a_directory_with_a_runs_files_but_no_latest_is_never_overwritten(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"weights of a finished run")
    (tmp_path / "metrics.json").write_text("[]")
    for resume in (False, True):
        with pytest.raises(TrainingError, match="holds best.pt and metrics.json of a run but no resumable latest.pt"):
            train(run_config(**TINY, max_steps=5, out_dir=str(tmp_path)), resume=resume, progress=False)
    assert (tmp_path / "best.pt").read_bytes() == b"weights of a finished run"


def test_precision_auto_resolves_and_the_checkpoint_records_it(tmp_path):
    expected = "bf16" if {"avx512_bf16", "amx_bf16"} & set(Path("/proc/cpuinfo").read_text().split()) else "fp32"
    assert config.pick_precision("auto", "cpu") == expected
    assert config.pick_precision("fp32", "cpu") == "fp32" and config.pick_precision("bf16", "cpu") == "bf16"
    res = train(run_config(**TINY, max_steps=2, eval_interval=2, precision="auto", out_dir=str(tmp_path)),
                progress=False, samples=False, plots_dir=None)
    assert res.config.precision == expected and {m.precision for m in res.metrics} == {expected}
    assert load_checkpoint(res.latest)["train_config"]["precision"] == expected
    other = "fp32" if expected == "bf16" else "bf16"
    with pytest.raises(CheckpointError, match=f"precision: '{expected}' -> '{other}'"):
        train(run_config(**TINY, max_steps=4, eval_interval=2, precision=other, out_dir=str(tmp_path)), resume=True,
              progress=False, samples=False, plots_dir=None)
    # a run begun in the other precision (on another machine) keeps it when resumed with auto
    train(run_config(**TINY, max_steps=2, eval_interval=2, precision=other, out_dir=str(tmp_path / "o")),
          progress=False, samples=False, plots_dir=None)
    res = train(run_config(**TINY, max_steps=4, eval_interval=2, precision="auto", out_dir=str(tmp_path / "o")),
                resume=True, progress=False, samples=False, plots_dir=None)
    assert res.config.precision == other and [m.precision for m in res.metrics] == [other] * 3


def test_a_run_is_named_by_what_differs_from_its_preset_and_stays_in_that_folder():
    """Different settings, different folders; "auto" precision resolved at the start does not rename the run."""
    from config import CHECKPOINTS, LAST_RUN, PLOTS
    assert run_config("2M").name == "MiniGPT-2M" and run_config("2M", max_steps=20000).name == "MiniGPT-2M"  # logging
    assert run_config("2M", n_embd=64).name == "MiniGPT-2M-n_embd=64"
    assert run_config("2M", lr=1e-3, novels=("emma",)).name == "MiniGPT-2M-novels=emma-lr=0.001"
    assert run_config("original-2M", novels=("emma[:100]",)).name == "MiniGPT-original-2M-novels=emma__100_"
    long = run_config("2M", novels=("prideprejudice", "sensesensibility", "emma", "persuasion", "mansfieldpark",
                                    "northangerabbey")[:5], held_out=("northangerabbey",), lr=1e-3, min_lr=1e-4,
                      n_embd=96, n_layer=3, seed=7, batch_size=4, block_size=32, beta2=0.9, repeat_frac=0.25)
    assert long.name.startswith("MiniGPT-2M-custom-") and len(long.name) <= 120  # a hash of the settings
    assert run_config("2M", out_dir="/tmp/somewhere/my-run").name == "my-run"  # a folder given names the run
    cfg = run_config(**TINY, max_steps=2, eval_interval=2, precision="auto", seed=12345)
    assert cfg.name == "MiniGPT-tiny-batch_size=8-seed=12345" and cfg.run_dir == CHECKPOINTS / cfg.name
    res = train(cfg, progress=False, samples=False)
    assert res.latest == CHECKPOINTS / cfg.name / "latest.pt" and res.config.name == cfg.name
    assert res.loss_curve == PLOTS / cfg.name / f"Loss_Curve_{cfg.name}.png" and res.loss_curve.exists()
    assert LAST_RUN.read_text().strip() == cfg.name  # what InductionHeads.ipynb studies by default


@pytest.mark.parametrize("lever", [dict(positions="shortformer"), dict(attn_only=True)])
def test_a_lever_trains_resumes_and_loads_back(tmp_path, lever):
    cfg = run_config(**TINY, max_steps=4, eval_interval=2, out_dir=str(tmp_path), **lever)
    train(dataclasses.replace(cfg, max_steps=2), progress=False, samples=False, plots_dir=None)
    res = train(cfg, resume=True, progress=False, samples=False, plots_dir=None)
    model, _, ckpt = load_model(res.best)
    assert all(getattr(model.config, k) == v for k, v in lever.items())
    assert all(getattr(RunConfig.from_checkpoint(ckpt), k) == v for k, v in lever.items())


def test_the_bench_times_bf16_only_where_it_is_native(monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    import bench
    for native in (False, True):
        monkeypatch.setattr(config, "native_bf16", lambda device: native)
        for quick in (True, False):
            presets, variants = bench.plan(quick)
            timed = {spec.get("precision") for _, spec in variants} - {None}
            assert ("bf16" in timed) == native and bench.precisions() == (("fp32", "bf16") if native else ("fp32",))
            assert variants[0][0].startswith("default") and variants[1][1] == bench.BASELINE
            # without native bf16 the default step is fp32 eager's own (one code path, 1.00x); with it, bf16's
            same = bench.trainer_step(variants[0][1], "2M") == bench.trainer_step(bench.BASELINE, "2M")
            assert same != native
            assert bench.trainer_step({"precision": "bf16"}, "2M")[:3] == ("bf16", "chunked", "explicit")


def test_the_bench_steps_stacked_seeds_and_a_single_run_as_train_py_does(monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    import bench
    monkeypatch.setattr(torch, "compile", lambda f: pytest.fail("tiny runs are never compiled by auto"))
    threads = torch.get_num_threads()  # seeds_step sets its process's thread count
    try:
        for seeds in (1, 2):
            step, facts = bench.seeds_step(dict(preset="tiny", vocab=50, seeds=seeds, threads=1, precision="fp32"))
            step()
            assert facts["compiled"] is False and facts["tokens_per_step"] == run_config("tiny").tokens_per_step
    finally:
        torch.set_num_threads(threads)
    assert "matrix products" in bench.profile_table(step, top=3, warmup=0)


def test_bf16_training_step_keeps_fp32_weights_and_optimizer_state():
    cfg = run_config(**TINY, precision="bf16")
    model = GPT(cfg.model_config(50))
    opt = train_mod.make_optimizer(model, cfg, "cpu")
    x, y = torch.randint(0, 50, (4, 16)), torch.randint(0, 50, (4, 16))
    before = model.wte.weight.detach().clone()
    loss = train_mod.train_step(model, opt, x, y, 1e-3, 1.0, "bf16")
    assert math.isfinite(loss) and not torch.equal(before, model.wte.weight)
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
    assert all(v.dtype == torch.float32 for st in opt.state.values() for v in st.values() if v.dim())


def test_a_repeat_curriculum_falls_linearly_to_zero_and_then_trains_on_natural_text():
    cfg = run_config("2M", repeat_frac=0.8, repeat_end=0.5, max_steps=100)
    assert [train_mod.repeat_frac_at(s, cfg) for s in (0, 25, 50, 80)] == pytest.approx([0.8, 0.4, 0.0, 0.0])
    assert train_mod.repeat_frac_at(70, run_config("2M")) == 0.5  # no curriculum: the preset's constant share
    tokens = torch.arange(5000)  # all distinct: a periodic window repeats tokens, a natural one never does
    b = train_mod.Batches(tokens, 32, 64, repeat_frac=0.5)
    x_all, _ = b.sample(torch.Generator().manual_seed(0), "cpu", repeat_frac=1.0)
    x_none, _ = b.sample(torch.Generator().manual_seed(0), "cpu", repeat_frac=0.0)
    assert all(len(set(r.tolist())) < 32 for r in x_all) and all(len(set(r.tolist())) == 32 for r in x_none)


def test_repeats_can_fall_to_a_floor_instead_of_to_zero():
    cfg = run_config("2M", repeat_frac=0.5, repeat_end=0.6, repeat_floor=0.1, max_steps=100)
    assert [train_mod.repeat_frac_at(s, cfg) for s in (0, 30, 60, 90)] == pytest.approx([0.5, 0.3, 0.1, 0.1])
    with pytest.raises(ConfigError, match="repeat_floor 0.1 needs repeat_end"):
        run_config("2M", repeat_floor=0.1)
    with pytest.raises(ConfigError, match=r"repeat_floor must be in \[0, repeat_frac = 0.5\]"):
        run_config("2M", repeat_end=0.5, repeat_floor=0.6)
    with pytest.raises(ConfigError, match="repeat_frac is 0: set repeat_frac, or use relabel_natural"):
        run_config("2M", repeat_frac=0.0, relabel_repeats=1.0)


def test_relabelling_keeps_a_windows_own_repeats_and_only_the_chosen_share_of_windows():
    V = 50
    tokens = torch.randint(0, 40, (4000,), generator=torch.Generator().manual_seed(0))
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    plain = train_mod.Batches(tokens, 32, 256, repeat_frac=0.5)
    x0, y0 = plain.sample(g(), "cpu")
    x, y = train_mod.Batches(tokens, 32, 256, repeat_frac=0.5, relabel_repeats=1.0, vocab_size=V).sample(g(), "cpu")
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is still x shifted by one
    w0, w = torch.cat([x0, y0[:, -1:]], 1), torch.cat([x, y[:, -1:]], 1)  # (B, T+1)
    periodic = torch.tensor([len(set(r.tolist())) < 16 for r in w0])  # 4,000 tokens of 40 ids: no natural window
    same = (w == w0).all(1)  # is this short; relabelled windows almost never keep every id
    assert 80 < periodic.sum() < 176 and torch.equal(same, ~periodic)  # exactly the periodic windows, each relabelled
    for a, b in zip(w0[periodic], w[periodic]):  # a bijection per window: equal ids stay equal, distinct stay distinct
        assert torch.equal(a[:, None] == a[None], b[:, None] == b[None])
        assert b.max() < V
    maps = {tuple(b[a == t][:1].tolist()) for a, b in zip(w0[periodic], w[periodic]) for t in a[:1]}
    assert len(maps) > 20  # a fresh permutation per window, not one shared relabelling
    xn, _ = train_mod.Batches(tokens, 32, 256, repeat_frac=0.5, relabel_natural=0.5, vocab_size=V).sample(g(), "cpu")
    assert torch.equal(xn[periodic], x0[periodic]) and 0.3 < (xn[~periodic] != x0[~periodic]).any(1).float().mean() < 0.7
    with pytest.raises(TrainingError, match="give its vocab_size"):
        train_mod.Batches(tokens, 32, 8, relabel_natural=0.5)


def test_relabelling_recipes_train_resume_and_load_with_evaluation_and_probes_never_relabelled(tmp_path, monkeypatch):
    kw = dict(TINY, eval_interval=10, repeat_frac=0.5, repeat_end=0.5, repeat_floor=0.1, relabel_repeats=0.8,
              relabel_natural=0.2, probe_interval=20)
    full = train(run_config(**kw, max_steps=40, out_dir=str(tmp_path / "full")), progress=False, samples=False,
                 plots_dir=None)
    step, calls = train_mod.train_step, []

    def ctrl_c_at_step_17(*a, **k):  # the schedules depend on max_steps: stop the same run midway, as Ctrl-C does
        calls.append(1)
        if len(calls) == 17:
            os.kill(os.getpid(), signal.SIGINT)
        return step(*a, **k)
    monkeypatch.setattr(train_mod, "train_step", ctrl_c_at_step_17)
    part = train(run_config(**kw, max_steps=40, out_dir=str(tmp_path / "part")), progress=False, samples=False,
                 plots_dir=None)
    monkeypatch.undo()
    assert part.interrupted and part.metrics[-1].step == 10
    resumed = train(run_config(**kw, max_steps=40, out_dir=str(tmp_path / "part")), resume=True, progress=False,
                    samples=False, plots_dir=None)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m.val_loss for m in full.metrics] == [m.val_loss for m in resumed.metrics]
    _, _, ckpt = load_model(full.best)
    stored = RunConfig.from_checkpoint(ckpt)
    assert all(getattr(stored, k) == v for k, v in kw.items())
    plain = train(run_config(**TINY, max_steps=40, eval_interval=10, probe_interval=20, out_dir=str(tmp_path / "p")),
                  progress=False, samples=False, plots_dir=None)
    with train_mod.locked(tmp_path / "e"):  # the same evaluation windows, and the untrained model probed alike
        runs = [train_mod.start_run(run_config(**k, max_steps=40, out_dir=str(tmp_path / "e"))) for k in (kw, TINY)]
    assert all(torch.equal(p, q) for s in ("train", "val") for (p, _), (q, _) in zip(*(r.eval_sets[s] for r in runs)))
    from checkpoint import to_plain
    assert to_plain(full.metrics[0]) == {**to_plain(plain.metrics[0]), "elapsed_s": full.metrics[0].elapsed_s}


def test_a_run_with_a_held_out_novel_validates_on_it(tmp_path):
    cfg = run_config(**TINY, max_steps=1, novels=("prideprejudice",), held_out=("persuasion",), out_dir=str(tmp_path))
    with train_mod.locked(cfg.run_dir):
        run = train_mod.start_run(cfg)
    val_text = load_corpus(("prideprejudice",), ("persuasion",)).val
    assert run.tokenizer.decode(run.eval_sets["val"][0][0][0].tolist()) in val_text  # windows of Persuasion


def test_eval_batches_none_evaluates_the_whole_validation_split(tmp_path):
    cfg = dataclasses.replace(run_config(**TINY, max_steps=1, out_dir=str(tmp_path)), eval_batches=None)
    with train_mod.locked(cfg.run_dir):
        run = train_mod.start_run(cfg)
    val = sum(x.numel() for x, _ in run.eval_sets["val"])
    corpus = load_corpus(cfg.novels)
    n_val = len(run.tokenizer.encode(corpus.val))
    assert val == (n_val - 1) // cfg.block_size * cfg.block_size  # every non-overlapping window, once
    assert sum(x.numel() for x, _ in run.eval_sets["train"]) == val


@pytest.mark.slow
def test_a_compiled_training_step_follows_the_eager_one(tmp_path):
    """--compile on (auto turns it on for long bf16 runs on CPUs with native bf16): the same run within float
    rounding in fp32, and it resumes."""
    kw = dict(novels=("emma",), max_steps=20, eval_interval=10, eval_batches=2, precision="fp32", batch_size=8)
    eager = train(run_config("tiny", compile="off", out_dir=str(tmp_path / "eager"), **kw), progress=False,
                  plots_dir=None, samples=False)
    compiled = train(run_config("tiny", compile="on", out_dir=str(tmp_path / "compiled"), **{**kw, "max_steps": 10}),
                     progress=False, plots_dir=None, samples=False)
    compiled = train(run_config("tiny", compile="on", out_dir=str(tmp_path / "compiled"), **kw), resume=True,
                     progress=False, plots_dir=None, samples=False)
    worst = max(abs(a.val_loss - b.val_loss) for a, b in zip(eager.metrics, compiled.metrics))
    assert [m.step for m in compiled.metrics] == [0, 10, 20] and worst < 1e-4, worst
    assert run_config("tiny", compile="on").name == run_config("tiny").name  # how it runs, not which run


@pytest.mark.slow
def test_a_compiled_run_is_bit_for_bit_the_same_on_two_threads(tmp_path):
    """Inductor's CPU kernels summed some gradients in a thread-dependent order, so two compiled runs at 2 threads
    differed (eager ones never did); train.deterministic_kernels makes them equal, and gives the setting back."""
    from checkpoint import load_checkpoint
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        kw = dict(novels=("emma",), max_steps=20, eval_interval=20, eval_batches=2, precision="fp32", batch_size=8,
                  compile="on")
        for name in ("a", "b"):
            train(run_config("tiny", out_dir=str(tmp_path / name), **kw), progress=False, plots_dir=None, samples=False)
    finally:
        torch.set_num_threads(threads)
    a, b = (load_checkpoint(tmp_path / name / "latest.pt")["model"] for name in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.are_deterministic_algorithms_enabled()
