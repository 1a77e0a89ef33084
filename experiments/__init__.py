"""The experiments, apart from the library: each module owns one experiment's runs, its criterion (fixed in the
module, with its reason, before the runs), its figure and its report.

    python -m experiments                   # the experiments, one line each
    python -m experiments dose              # its report: verdict and figure from the committed runs (seconds)
    python -m experiments dose run          # train its runs into runs/<experiment>/ (resumable: rerun to continue)
    python -m experiments seeds study       # study its committed weights (an experiment with STUDIES)
    make exp NAME=dose [RUN=1 | STUDY=1]    # the same

An experiment is data. Each module defines RUNS (a list of Run: a preset and the RunConfig fields it changes, checked
when the module is imported; trained one thread each, PARALLEL at a time, as every reported run was), optionally
STUDIES (a list of study.StudyConfig, checked the same way), and `report()`, which reads the committed runs in
checkpoints/reference/ and draws into results/figures/. A finished run joins the committed results with `make promote`.
"""
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from config import RunConfig, run_config

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "checkpoints" / "reference"   # the committed runs the reports read
FIG = ROOT / "results" / "figures"          # where the reports draw
RUNS = ROOT / "runs"                        # where `run` trains (git-ignored)
# The one rule for a run's folders: experiment E's run R trains into RUNS/E/R and is committed as REF/E/R.

EXPERIMENTS = ("reference", "recipe", "seeds", "tokenizers", "precision", "curriculum", "natural_text", "held_out",
               "dose", "original", "levers", "verdicts", "default_recipe", "relabel_natural")


@dataclass(frozen=True)
class Run:
    """One training run of an experiment: a preset and the RunConfig fields it changes. The configuration is built
    when the run is declared, so a misspelt field or a bad value fails as the experiment is imported."""
    name: str
    preset: str
    overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        self.config()

    def config(self) -> RunConfig:
        return run_config(self.preset, **self.overrides)

    def argv(self) -> list[str]:
        """train.py's flags for this run (train.parse_args(run.argv()) builds run.config(), tested)."""
        out = ["--preset", self.preset]
        for k, v in self.overrides.items():
            values = v if isinstance(v, (tuple, list)) else [v]
            out += [f"--{k.replace('_', '-')}", *(str(x).lower() if isinstance(x, bool) else str(x) for x in values)]
        return out


def home(experiment: str) -> Path:
    """Where an experiment's runs are committed: checkpoints/reference/<experiment>/, and the reference models (the
    `reference` experiment) at the top of checkpoints/reference/, where every reader has always found them."""
    return REF if experiment == "reference" else REF / experiment


def committed_folder(run_dir) -> Path:
    """Where a run trained into runs/<experiment>/<run> is committed: checkpoints/reference/<experiment>/<run>."""
    try:
        rel = Path(os.path.realpath(run_dir)).relative_to(os.path.realpath(RUNS))
    except ValueError:
        rel = None
    if rel is None or len(rel.parts) < 2 or rel.parts[0] not in EXPERIMENTS:
        raise ValueError(f"{run_dir} is not a run of an experiment (runs/<experiment>/<run>, the experiment one of "
                         f"{', '.join(EXPERIMENTS)}); name the folder under checkpoints/reference/ with AS=")
    return home(rel.parts[0]) / rel.relative_to(rel.parts[0])


def labelled(specs) -> dict[str, Path]:
    """{label: run folder} from command-line arguments LABEL=RUN_DIR."""
    out = {}
    for spec in specs:
        label, eq, folder = str(spec).partition("=")
        if not (eq and label and folder):
            raise SystemExit(f"error: {spec!r} is not LABEL=RUN_DIR (a label, '=', then a run's folder)")
        out[label] = Path(folder)
    return out


def logged_runs(runs: dict) -> dict:
    """{label: [MetricsRow, ...]} of each run {label: run folder} whose training log is committed; the rest are named,
    not drawn: every report's one rule for runs not finished or not promoted yet."""
    from training_log import read_metrics
    logs = {label: read_metrics(d) for label, d in runs.items() if (Path(d) / "metrics.json").exists()}
    if missing := [label for label in runs if label not in logs]:
        print(f"not committed yet, so not shown: {', '.join(missing)} (train with `make exp NAME=<experiment> RUN=1`, "
              f"then make promote)")
    return logs


def train_runs(experiment: str, runs: list[Run], parallel: int = 2, threads: int = 1) -> list[Path]:
    """Train (or continue) each run into runs/<experiment>/<name>/, `threads` threads each, `parallel` at a time; the
    command's output goes to train.log inside the run's folder, with everything else the run made."""
    from train import INTERRUPTED  # train.py's exit status after Ctrl-C
    out, by_name, failed, stopped = RUNS / experiment, {r.name: r for r in runs}, [], []
    names = list(by_name)
    for start in range(0, len(names), parallel):
        procs = {}
        for name in names[start:start + parallel]:
            log = out / name / "train.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            beside = out / f"{name}.log"  # where runs begun before the log moved inside kept it; it continues inside
            if beside.is_file() and not log.exists():
                beside.rename(log)
            cmd = [sys.executable, str(ROOT / "train.py"), *by_name[name].argv(), "--out-dir", str(out / name),
                   "--resume", "--no-progress", "--plots-dir", str(out / "plots")]
            print(f"training {name} (log: {log}): {' '.join(cmd[1:])}")
            procs[name] = subprocess.Popen(cmd, stdout=log.open("a"), stderr=subprocess.STDOUT,
                                           env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        codes = {name: p.wait() for name, p in procs.items()}
        stopped += [name for name, code in codes.items() if code == INTERRUPTED]
        failed += [name for name, code in codes.items() if code not in (0, INTERRUPTED)]
    if failed:
        raise SystemExit(f"error: {', '.join(failed)} failed; see their logs in {out}")
    if stopped:
        raise SystemExit(f"{', '.join(stopped)} stopped by Ctrl-C; rerun to continue from their latest.pt")
    print(f"done; to commit a run: make promote RUN={out}/<run> (into {home(experiment)}/<run>)")
    return [out / name for name in names]
