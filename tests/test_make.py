"""make variables never reach a shell or make as syntax (issue #43): each value arrives as one literal argument that the
script it is passed to checks, and a toolchain path with shell syntax is refused before anything runs."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import train

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent  # the environment running the tests: make must not rebuild it


def make(*args, cwd=ROOT):
    return subprocess.run(["make", "-s", "-o", f"{VENV}/.installed", f"VENV={VENV}", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("target, variable", [
    ("study", "RUN=; touch {w}/pwned"),
    ("study", "RUN=$(shell touch {w}/pwned)"),
    ("promote", 'AS=x"; touch {w}/pwned; echo "'),
    ("exp", "NAME=nope; touch {w}/pwned"),
    ("exp", "NAME=$(shell touch {w}/pwned)"),
])
def test_a_make_variable_with_shell_or_make_syntax_runs_nothing(tmp_path, target, variable):
    reference, root_files = tree_hash(ROOT / "checkpoints" / "reference"), set(os.listdir(ROOT))
    extra = [f"RUN={tmp_path}/base"] if target == "promote" else []
    r = make(target, *extra, variable.format(w=tmp_path))
    assert not (tmp_path / "pwned").exists(), r.stdout + r.stderr
    assert r.returncode != 0 and "error" in (r.stdout + r.stderr).lower()  # refused by the script, with its message
    assert tree_hash(ROOT / "checkpoints" / "reference") == reference and set(os.listdir(ROOT)) == root_files


@pytest.mark.parametrize("variable", ["VENV=$(shell touch {w}/pwned)", "VENV=a; touch {w}/pwned",
                                      "PYTHON=python3; touch {w}/pwned"])
def test_a_toolchain_path_with_shell_syntax_is_refused_before_anything_runs(tmp_path, variable):
    r = subprocess.run(["make", "-n", "test", variable.format(w=tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "must be a plain path" in r.stderr
    assert not (tmp_path / "pwned").exists()


def test_train_args_reach_train_py_as_one_quoted_string_that_it_splits_without_a_shell(tmp_path):
    r = make("-n", "train", "TRAIN_ARGS=--n-embd 64 --out-dir '$(HOME)/x; y'")
    assert r.returncode == 0 and "--args '--n-embd 64 --out-dir '\"'\"'$(HOME)/x; y'\"'\"''" in r.stdout
    cfg, _ = train.parse_args(["--preset", "tiny", "--args", "--n-embd 64 --out-dir '$(HOME)/x; y'"])
    assert cfg.n_embd == 64 and cfg.out_dir == "$(HOME)/x; y"  # taken literally
    with pytest.raises(SystemExit):
        train.parse_args(["--preset", "tiny", "--args", "--n-embd '64"])  # "No closing quotation", from argparse


def test_python_m_experiments_refuses_extra_arguments_and_says_why_it_cannot_write(monkeypatch):
    from experiments.__main__ import main
    with pytest.raises(SystemExit, match="usage: python -m experiments NAME"):
        main(["seeds", "report", "--out", "x"])
    monkeypatch.delenv("MINIGPT_WRITE_REFERENCE", raising=False)
    with pytest.raises(SystemExit, match="^error: refusing to write .* only `make reference`, `make exp`"):
        main(["seeds"])



def test_make_run_with_no_variables_trains_the_2m_preset_then_studies_it():
    """The README's first command. A variable's default set after `unexport` names it was empty: `make run` trained
    --preset '' and failed ("unknown preset ''")."""
    r = make("-n", "run")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0].endswith("train.py --preset '2M' --resume --args '' \\"), r.stdout
    assert "study_notebook.py" in r.stdout
    assert "--preset '5.6M'" in make("-n", "train", "PRESET=5.6M").stdout


def test_seeds_reach_train_py_as_one_string_of_integers():
    r = make("-n", "train", "SEEDS=1337 1 2")
    assert r.returncode == 0 and "--seeds '1337 1 2'" in r.stdout
    with pytest.raises(SystemExit, match="--seeds takes integers, got '1 x'"):
        train.main(["--preset", "tiny", "--seeds", "1 x"])


def test_export_passes_its_folder_as_one_literal_argument(tmp_path):
    r = make("-n", "-o", f"{VENV}/.interop-installed", "export", "RUN=MiniGPT-2M", f"TO=; touch {tmp_path}/pwned")
    assert r.returncode == 0 and f"scripts/export_hf.py 'MiniGPT-2M' '; touch {tmp_path}/pwned'" in r.stdout
    r = make("-o", f"{VENV}/.interop-installed", "export", "RUN=MiniGPT-2M")
    assert r.returncode == 2 and "usage: make export RUN=" in r.stdout
