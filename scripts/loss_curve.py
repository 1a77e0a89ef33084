"""Draw a run's loss curve from its committed metrics.json.

    python scripts/loss_curve.py checkpoints/reference/MiniGPT-2M results/figures/Loss_Curve_MiniGPT-2M.png
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402
from checkpoint import load_model  # noqa: E402
from training_log import read_metrics  # noqa: E402
from config import RunConfig  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a run's directory: metrics.json and best.pt")
    ap.add_argument("out", help="the figure's path")
    a = ap.parse_args()
    model, _, ckpt = load_model(Path(a.run_dir) / "best.pt")
    run = RunConfig.from_checkpoint(ckpt)
    print(utils.plot_loss_curve(read_metrics(a.run_dir), a.out, f"{Path(a.run_dir).resolve().name} "
                                f"({model.num_params() / 1e6:.2f}M params, {run.tokenizer} tokens)"))


if __name__ == "__main__":
    main()
