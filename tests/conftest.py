import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny char model trained for 300 steps; shared by the study and notebook tests."""
    from config import run_config
    from train import train
    out = tmp_path_factory.mktemp("tiny")
    cfg = run_config("tiny", eval_batches=4, out_dir=str(out))
    return train(cfg, progress=False, plots_dir=out / "plots")
