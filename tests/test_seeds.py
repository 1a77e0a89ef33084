"""Several seeds trained in one process (train.py --seeds, issue #40): each stacked seed follows its single run and
writes the files a single run writes, and Ctrl-C then --resume equals an uninterrupted stacked run."""
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import study
from checkpoint import load_checkpoint
from training_log import read_metrics
from config import run_config
from ctrl_c import ctrl_c, start
from train import TrainingError, seed_configs, train, train_seeds

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (1337, 1, 2)
# fp32 on every CPU (bf16's rounding would swamp the agreement checked); probes every 100 steps
KW = dict(novels=("emma",), max_steps=200, eval_interval=50, eval_batches=2, probe_interval=100, precision="fp32",
          batch_size=8)


def stacked(tmp_path, seeds=SEEDS, **kw):
    cfgs = seed_configs("tiny", seeds, **{**KW, **kw})
    return [dataclasses.replace(c, out_dir=str(tmp_path / c.name)) for c in cfgs]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three seeds stacked, and each seed's single run."""
    root = tmp_path_factory.mktemp("seeds")
    together = train_seeds(stacked(root / "stacked"), progress=False)
    alone = [train(run_config("tiny", seed=s, out_dir=str(root / "alone" / str(s)), **KW), progress=False,
                   plots_dir=root / "alone" / "plots") for s in SEEDS]
    return together, alone


@pytest.mark.slow
def test_each_stacked_seed_follows_its_single_run_within_float_rounding(runs):
    together, alone = runs
    for t, a in zip(together, alone):
        assert [m.step for m in t.metrics] == [m.step for m in a.metrics] == list(range(0, 201, 50))
        worst = max(max(abs(x.train_loss - y.train_loss), abs(x.val_loss - y.val_loss))
                    for x, y in zip(t.metrics, a.metrics))
        print(f"seed {t.config.seed}: largest loss difference {worst:.1e} nats/token over 200 steps")
        assert worst < 1e-4
        for x, y in zip(t.metrics, a.metrics):  # the probes: each best head's score within the other's CI
            for kind, p in x.probes.items():
                q = y.probes[kind]
                assert q.gain.lo <= p.gain.mean <= q.gain.hi
                assert q.best_delta.value.lo <= p.best_delta.value.mean <= q.best_delta.value.hi
    assert len({round(t.metrics[-1].val_loss, 6) for t in together}) == 3  # three seeds, not one run three times
    assert together[0].metrics[-1].val_loss < together[0].metrics[0].val_loss - 0.5  # they learn


@pytest.mark.slow
def test_a_stacked_seed_writes_the_files_of_a_single_run_and_can_be_studied(runs, tmp_path, monkeypatch):
    together, alone = runs
    for t, a in zip(together, alone):
        assert sorted(p.name for p in t.best.parent.iterdir() if not p.name.startswith(".")) == \
               sorted(p.name for p in a.best.parent.iterdir() if not p.name.startswith("."))
        assert t.sample and (t.best.parent / "sample.txt").read_text().strip() == t.sample.strip()
        assert t.loss_curve is not None and t.loss_curve.exists()
        ckpt = load_checkpoint(t.latest)
        assert ckpt["train_config"]["seed"] == t.config.seed and ckpt["step"] == 200
        state = ckpt["optimizer"]["state"]  # the seed's own AdamW state, in a single run's layout
        assert len(state) == len(load_checkpoint(a.latest)["optimizer"]["state"])
    assert [t.config.name for t in together] == [run_config("tiny", seed=s, **KW).name for s in SEEDS]
    ctx = study.load(study.StudyConfig(checkpoint=str(together[1].best), n_prompts=8, n_ablate=4, n_random_draws=2,
                                       plots_dir=str(tmp_path / "plots"), out_json=str(tmp_path / "s.json"),
                                       precision="fp32"))
    assert ctx.run.seed == 1


@pytest.mark.slow
def test_ctrl_c_during_a_stacked_run_then_resume_equals_an_uninterrupted_one(runs, tmp_path, monkeypatch):
    together, _ = runs
    cmd = [sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--seeds", *map(str, SEEDS), "--no-progress",
           *[a for k, v in KW.items() for a in (f"--{k.replace('_', '-')}", str(v[0] if isinstance(v, tuple) else v))]]
    monkeypatch.setenv("MINIGPT_HOME", str(tmp_path))  # the seeds' folders: tmp_path/checkpoints/<run>/
    proc = start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    first = tmp_path / "checkpoints" / together[0].config.name / "latest.pt"
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None:
        if first.exists() and load_checkpoint(first)["step"] >= 50:
            break
        time.sleep(0.05)
    out, err = ctrl_c(proc, timeout=120)
    assert proc.returncode == 130 and out.count("interrupted at step") == 3, err[-3000:]
    steps = {load_checkpoint(tmp_path / "checkpoints" / t.config.name / "latest.pt")["step"] for t in together}
    assert len(steps) == 1 and 50 <= steps.pop() < 200  # every seed saved at the same step
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    for t in together:
        a, b = load_checkpoint(t.latest), load_checkpoint(tmp_path / "checkpoints" / t.config.name / "latest.pt")
        assert b["step"] == 200 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # bit for bit
        assert [m.val_loss for m in read_metrics(t.latest.parent)] == \
               [m.val_loss for m in read_metrics(tmp_path / "checkpoints" / t.config.name)]


@pytest.mark.slow
def test_compiled_stacked_seeds_follow_the_eager_stack(tmp_path, capsys):
    """--compile on (auto turns it on for long bf16 runs on CPUs with native bf16) compiles the vmapped loss: in fp32
    each seed's run is the eager stack's within float rounding."""
    short = dict(max_steps=30, eval_interval=15, probe_interval=0)
    eager, compiled = (train_seeds([dataclasses.replace(cfg, out_dir=str(tmp_path / f"{cfg.name}-compile={c}"))
                                    for cfg in seed_configs("tiny", SEEDS[:2], **{**KW, **short}, compile=c)],
                                   progress=False, samples=False) for c in ("off", "on"))
    assert capsys.readouterr().out.count("runs under torch.compile") == 1  # said once, for the compiled stack
    for e, c in zip(eager, compiled):
        assert [m.step for m in c.metrics] == [m.step for m in e.metrics] == [0, 15, 30]
        worst = max(abs(x.val_loss - y.val_loss) for x, y in zip(e.metrics, c.metrics))
        assert worst < 1e-4, worst
    assert abs(compiled[0].metrics[-1].val_loss - compiled[1].metrics[-1].val_loss) > 1e-3  # two seeds, not one


def test_seeds_are_refused_where_they_cannot_follow_their_single_runs():
    with pytest.raises(TrainingError, match="two or more different seeds"):
        seed_configs("tiny", [1, 1])
    with pytest.raises(TrainingError, match="leave out --out-dir"):
        seed_configs("tiny", [1, 2], out_dir="x")
    with pytest.raises(TrainingError, match="dropout 0"):
        seed_configs("tiny", [1, 2], dropout=0.1)

