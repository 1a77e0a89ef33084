"""python -m experiments [NAME [report|run|study]]: list the experiments, report one, train its runs, or study their
weights (an experiment with STUDIES: one study.StudyConfig per study), or an action of its own (ACTIONS: name ->
function). NAME all: every experiment's studies, or every report (`make reference` runs both)."""
import importlib
import os
import sys
from pathlib import Path

from checkpoint import CheckpointError, OutputError
from config import ConfigError
from experiments import EXPERIMENTS, ROOT, train_runs


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        for name in EXPERIMENTS:
            doc = (importlib.import_module(f"experiments.{name}").__doc__ or "").strip().splitlines()[0]
            print(f"  {name:<13} {doc}")
        return
    name, action = argv[0], argv[1] if len(argv) > 1 else "report"
    extra = getattr(importlib.import_module(f"experiments.{name}"), "ACTIONS", {}) if name in EXPERIMENTS else {}
    if name not in (*EXPERIMENTS, "all") or action not in ("report", "run", "study", *extra) or len(argv) > 2:
        raise SystemExit(f"usage: python -m experiments NAME [report|run|study{''.join('|' + a for a in extra)}], "
                         f"NAME one of {', '.join(EXPERIMENTS)}, or all (every experiment's studies or reports: make "
                         f"reference)")
    if name == "all" and action == "run":
        raise SystemExit("error: all run would train every experiment's runs, days of CPU; name one experiment")
    try:
        for each in EXPERIMENTS if name == "all" else [name]:
            module = importlib.import_module(f"experiments.{each}")
            if name == "all" and action == "study" and not getattr(module, "STUDIES", None):
                continue
            print(f"== {each} {action}", flush=True)
            run(module, each, action)
    except (OutputError, CheckpointError, ConfigError) as e:  # e.g. results/ written outside make exp
        raise SystemExit(f"error: {e}")


def run(module, name: str, action: str):
    os.chdir(ROOT)  # the studies' paths are relative to the repository's root (checkpoint.portable)
    if action in getattr(module, "ACTIONS", {}):
        module.ACTIONS[action]()
    elif action == "study":
        if not getattr(module, "STUDIES", None):
            raise SystemExit(f"error: {name} has no studies of its own")
        import study
        for cfg in module.STUDIES:
            if not Path(cfg.checkpoint).exists():
                print(f"skipping {cfg.checkpoint}: no weights yet (train and promote the run first)")
                continue
            study.run_and_print(cfg)
    elif action == "run":
        if not module.RUNS:
            raise SystemExit(f"error: {name} has no runs of its own to train (its report reads runs of others)")
        train_runs(name, module.RUNS, getattr(module, "PARALLEL", 2), getattr(module, "THREADS", 1))
    else:
        module.report()


if __name__ == "__main__":
    main()
