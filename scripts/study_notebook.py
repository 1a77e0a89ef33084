"""Execute InductionHeads.ipynb on one run, into that run's folder (what `make study` does).

    python scripts/study_notebook.py                  # the run trained last here (checkpoints/last_run.txt)
    python scripts/study_notebook.py MiniGPT-5.6M     # a run by name, or a checkpoint's path

The executed notebook goes beside the study's summary, checkpoints/<run>/InductionHeads.ipynb; the figures to
Plots/<run>/. The notebook's source is never written.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import study  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="a run's name or a checkpoint's path (default: the run trained last)")
    a = ap.parse_args(argv)
    try:
        target = study.resolve(study.StudyConfig(checkpoint=a.run))
        out = study.output_path(target.out_json.parent / "InductionHeads.ipynb", what="executed notebook")
    except study.ERRORS as e:
        raise SystemExit(f"error: {e}")
    print(target)
    import papermill as pm
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(ROOT / "InductionHeads.ipynb"), str(out), cwd=str(ROOT), log_output=False,
                        parameters={} if a.run is None else {"CHECKPOINT": a.run})
    print(study.read_result(target.out_json))
    print(f"executed notebook: {out}\nfigures: {target.plots_dir}/")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
