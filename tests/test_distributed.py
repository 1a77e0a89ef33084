"""torchrun: DistributedDataParallel on CPU (gloo) follows the single-process run, and resumes."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from checkpoint import load_checkpoint
from training_log import read_metrics
from train import Batches, TrainingError

ROOT = Path(__file__).resolve().parent.parent


def _args(out_dir, steps, **kw):
    # fp32 on every CPU: the tiny preset's "auto" picks bf16 where it is native (avx512_bf16), and bf16's rounding
    # (about 1e-3 of the loss) would swamp the float-rounding agreement these tests check
    args = dict(preset="tiny", novels="emma", batch_size=16, max_steps=steps, eval_interval=50, eval_batches=2,
                precision="fp32", out_dir=out_dir, plots_dir=Path(out_dir) / "plots", **kw)
    return [a for k, v in args.items() for a in (f"--{k.replace('_', '-')}", str(v))] + ["--no-progress"]


def torchrun(*args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            str(ROOT / "train.py"), *args]


STEPS = 100


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """One uninterrupted torchrun run of 2 processes (saving every 10 steps changes nothing it computes)."""
    out = tmp_path_factory.mktemp("torchrun") / "two"
    log = subprocess.run(torchrun(*_args(out, STEPS, save_interval=10)), capture_output=True, text=True)
    assert log.returncode == 0, log.stdout + log.stderr
    return out, log.stdout


@pytest.mark.slow
def test_two_processes_at_half_the_batch_follow_the_one_process_loss_curve(tmp_path, two_processes):
    one, (two, out) = tmp_path / "one", two_processes
    subprocess.run([sys.executable, str(ROOT / "train.py"), *_args(one, STEPS)], check=True, capture_output=True)
    assert out.count(f"step    {STEPS}:") == 2  # the eval line and the summary, from rank 0 alone
    a, b = read_metrics(one), read_metrics(two)
    assert [m.step for m in a] == [m.step for m in b] == list(range(0, STEPS + 1, 50))
    worst = max(max(abs(x.train_loss - y.train_loss), abs(x.val_loss - y.val_loss)) for x, y in zip(a, b))
    print(f"largest loss difference over {len(a)} evaluations: {worst:.2e} nats/token")
    assert worst < 1e-4  # float rounding: each process averages its 8 rows, then DDP averages the two
    assert a[-1].val_loss < a[0].val_loss - 0.5  # it did learn
    # (the weights themselves drift apart by up to 1% in a few tensors: AdamW's normalised steps amplify rounding
    # differences in coordinates whose gradient is near 0, without changing the loss)


@pytest.mark.slow
def test_ctrl_c_under_torchrun_saves_once_and_the_resumed_run_matches_an_uninterrupted_one(tmp_path, two_processes):
    (ref, _), run = two_processes, tmp_path / "run"
    proc = subprocess.Popen(torchrun(*_args(run, STEPS, save_interval=10)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < 60 and proc.poll() is None:
        if (run / "latest.pt").exists() and load_checkpoint(run / "latest.pt")["step"] >= 20:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does: the signal reaches every process
    out, _ = proc.communicate(timeout=60)
    assert out.count("interrupted at step") == 1, out  # rank 0 alone reports and saves
    step = load_checkpoint(run / "latest.pt")["step"]
    assert 20 <= step < STEPS
    resumed = subprocess.run(torchrun(*_args(run, STEPS, save_interval=10), "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    out = resumed.stdout
    assert f"resuming {run / 'latest.pt'} at step {step:,}" in out
    a, b = load_checkpoint(ref / "latest.pt"), load_checkpoint(run / "latest.pt")
    assert a["step"] == b["step"] == STEPS
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # bit for bit
    assert [m.val_loss for m in read_metrics(ref)] == [m.val_loss for m in read_metrics(run)]


def test_each_process_gets_its_rows_of_the_same_global_batch():
    tokens = torch.arange(1000)
    full = Batches(tokens, 16, 6, repeat_frac=0.5).sample(torch.Generator().manual_seed(0), "cpu")[0]
    parts = [Batches(tokens, 16, 6, repeat_frac=0.5, rank=r, world=3).sample(torch.Generator().manual_seed(0), "cpu")[0]
             for r in range(3)]
    assert torch.equal(torch.cat(parts), full)
    with pytest.raises(TrainingError, match="batch_size 8 does not split evenly over 3 processes"):
        Batches(tokens, 16, 8, world=3)
