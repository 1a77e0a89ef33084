import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# The tests' runs, figures and studies go to a scratch home, never to the user's checkpoints/ and Plots/ (config.HOME);
# set before config is imported, and inherited by every process a test starts.
os.environ["MINIGPT_HOME"] = tempfile.mkdtemp(prefix="minigpt-test-home-")
atexit.register(shutil.rmtree, os.environ["MINIGPT_HOME"], ignore_errors=True)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Two threads, this project's machines; OMP_NUM_THREADS=1 where another job holds a core (an oversubscribed OpenMP
# team spins at every barrier: tiny models then run 100x slower). Under pytest-xdist (make test: one worker per core)
# each worker, and every process a test starts, gets one thread.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))


def pytest_collection_modifyitems(items):
    """The slow tests first: an idle worker then steals quick tests from the end of the other's queue, instead of
    waiting for a long test that started last (a stable sort keeps each file's order)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny char model trained for 300 steps; shared by the study and notebook tests."""
    from config import run_config
    from train import train
    out = tmp_path_factory.mktemp("tiny")
    cfg = run_config("tiny", eval_batches=4, out_dir=str(out))
    return train(cfg, progress=False, plots_dir=out / "plots")
