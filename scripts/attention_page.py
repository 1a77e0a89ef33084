"""Write the interactive attention page of a checkpoint (one self-contained HTML file, works offline), without the
rest of the study: every head's attention on a prompt and the mean repeat − control pattern of each probe set.

    python scripts/attention_page.py checkpoints/MiniGPT-2M/best.pt --prompt "it is a truth universally acknowledged"

The page is study.attention_page's, the same the study writes beside its figures (Plots/<run>/Attention_Page_<run>.html).
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import study  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a checkpoint's path or a run's name (as for study.py)")
    ap.add_argument("--prompt", help="the prompt of the first section (default: the first repeat probe)")
    ap.add_argument("--plots-dir", help="where the page goes (default Plots/<run>/)")
    ap.add_argument("--name", help="the page's label (default: the run's name)")
    a = ap.parse_args()
    try:
        cfg = study.StudyConfig(checkpoint=a.checkpoint, page_prompt=a.prompt, plots_dir=a.plots_dir, name=a.name,
                                precision="fp32")
        ctx = study.load(cfg)
        probes = study.make_probes(ctx, cfg)
        print(study.attention_page(ctx, cfg, probes, study.score_heads(ctx, probes)))
    except study.ERRORS as e:
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
