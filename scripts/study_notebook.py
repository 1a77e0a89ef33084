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
from checkpoint import load_checkpoint  # noqa: E402

RATES = ROOT / "results" / "verdict_rates.json"  # written by `make exp NAME=verdicts`


def fail_note(result) -> str | None:
    """On a FAIL, one sentence: what failed, and how often the committed 2M runs failed the same way."""
    v = result.validation
    if v.validated:
        return None
    failed = v.failed()
    try:
        import json
        rates = json.loads(RATES.read_text()) if RATES.stat().st_size < 1_000_000 else None
        counts = [f"{rates['failed'].get(part, 0)}" for part in failed]
        how_often = (f"of the {rates['runs']} committed 2M runs (results/README.md, `make exp NAME=verdicts`), "
                     f"{', '.join(counts)} failed the same way{'' if len(failed) == 1 else ' (each, in that order)'} "
                     f"and {rates['passed']} passed")
    except (OSError, ValueError, KeyError, TypeError):
        how_often = f"no failure counts to compare with ({RATES.name} is missing or unreadable)"
    return f"Verdict FAIL: {'; '.join(failed)}; {how_often}."


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="a run's name or a checkpoint's path (default: the run trained last)")
    a = ap.parse_args(argv)
    try:
        target = study.resolve(study.StudyConfig(checkpoint=a.run))
        study.check_not_training(target)
        load_checkpoint(target.checkpoint)  # not a checkpoint: our one line, before papermill's two tracebacks
        folder = target.out_json.parent  # one notebook per study: a run's best.pt, final.pt, ... each its own
        out = study.output_path(folder / ("InductionHeads.ipynb" if target.name == folder.name
                                          else f"InductionHeads_{target.name}.ipynb"), what="executed notebook")
    except study.ERRORS as e:
        raise SystemExit(f"error: {e}")
    print(target)
    import papermill as pm
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(ROOT / "InductionHeads.ipynb"), str(out), cwd=str(ROOT), log_output=False,
                        parameters={"CHECKPOINT": study.portable(target.checkpoint)})  # the one resolved
    # above: a run trained meanwhile (last_run.txt) must not swap the notebook's subject
    result = study.read_result(target.out_json)
    print(result)
    if (note := fail_note(result)) is not None:
        print(note)
    print(f"executed notebook: {out}\nfigures: {target.plots_dir}/")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
