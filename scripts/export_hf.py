"""Export a run as a Hugging Face GPT-2 folder (interop.to_hf): config.json, model.safetensors, tokenizer.json, a
model card. transformers.GPT2LMHeadModel.from_pretrained(folder) and AutoTokenizer.from_pretrained(folder) load it.

    make export RUN=checkpoints/MiniGPT-2M/best.pt TO=exports/MiniGPT-2M   # or a run's name (its best.pt)
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import study  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a run's name (its best.pt) or a checkpoint's path")
    ap.add_argument("to", help="the folder to create")
    a = ap.parse_args(argv)
    try:
        from interop import to_hf
        checkpoint = study.resolve(study.StudyConfig(checkpoint=a.run)).checkpoint
        folder = to_hf(checkpoint, a.to)
    except (*study.ERRORS, ValueError, FileExistsError, ModuleNotFoundError) as e:
        raise SystemExit(f"error: {e}")
    size = sum(p.stat().st_size for p in folder.iterdir()) / 2 ** 20
    print(f"exported {checkpoint} to {folder}/ ({size:.1f} MB): " + ", ".join(sorted(p.name for p in folder.iterdir())))


if __name__ == "__main__":
    main()
