"""The experiments' reports, which turn committed training logs into results (experiments/), and the commands around
them (the Makefile, promote, the study notebook)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import induction as ind
from checkpoint import write_json
from config import ROOT
from training_log import MetricsRow, ProbeLog

from experiments import dose as dose_response
from experiments import formation, precision

sys.path.insert(0, str(ROOT / "scripts"))


def _log(pm: float, cp: float) -> ProbeLog:
    """A probe log whose one head has prefix matching pm and copying cp, each with a CI of ± 0.05, and Δ = pm."""
    one = lambda v: ind.HeadScores(np.full((1, 1), v), np.full((1, 1), v - 0.05), np.full((1, 1), v + 0.05))  # noqa: E731
    hv = one(pm).at(0, 0)
    return ProbeLog(hv, hv, 0.1, ind.Estimate(0, 0, 0), np.zeros((1, 1)), one(pm), one(cp), hv)


def _run(scores, tokens_per_step=512, losses=None):
    """A log with one row per (prefix matching, copying) pair, 1,000 steps apart."""
    losses = losses or [5.0] * len(scores)
    return [MetricsRow(step=1000 * (i + 1), tokens=1000 * (i + 1) * tokens_per_step, train_loss=loss, val_loss=loss,
                       val_bpc=1.0, lr=1e-3, elapsed_s=1.0, train_s=1.0,
                       probes={k: _log(*s) for k in ("random", "random-known", "text-val")})
            for i, (s, loss) in enumerate(zip(scores, losses))]


def test_the_law_predicts_what_the_paper_tabulates():
    assert formation.predicted_tokens(8 * 64) / 1e6 == pytest.approx(11.3, abs=0.1)
    assert formation.predicted_tokens(32 * 128) / 1e6 == pytest.approx(32.1, abs=0.1)


def test_natural_text_report_places_formation_at_the_first_row_where_both_lower_bounds_clear():
    pm, cp = (ind.CRITERIA[k].threshold for k in ind.INDUCTION_SCORES)
    run = _run([(0.1, 0.1), (pm + 0.1, cp - 0.01), (pm + 0.05, cp + 0.05), (0.9, 3.0)])
    lines = formation.findings_against_law("r", run)
    assert "predicts formation at 11.3M tokens" in lines[0] and "logged to 2.05M tokens (0.18x" in lines[0]
    assert "first induction head at 1.54M tokens (L0H0; previous probe 1.02M)" in lines[1]
    never = formation.findings_against_law("r", _run([(0.1, 0.2), (0.3, 0.1)]))
    assert "no induction head within 1.02M tokens" in never[1] and "prefix_match L0H0 0.300" in never[1]


def test_a_lever_moves_formation_earlier_only_by_more_than_one_probe_interval():
    no, yes = (0.1, 0.1), (0.9, 3.0)  # 512,000 tokens between rows
    control = _run([no, no, yes, yes])
    assert formation.earlier(_run([yes] * 4), control).startswith("EARLIER: 0.51M tokens against the control's 1.54M")
    assert formation.earlier(_run([no, yes, yes, yes]), control).startswith("not earlier: 1.02M")  # one interval
    assert formation.earlier(_run([no] * 4), control).startswith("not earlier: no induction head within 2.05M")
    assert formation.earlier(_run([no, no, no, yes]), _run([no] * 4)).startswith("EARLIER: an induction head at 2.05M")
    # a run still short of the budget, or of the control's formation, is not judged yet
    assert formation.earlier(_run([no] * 3), _run([no] * 4)).startswith("not decided yet: no induction head within "
                                                                           "1.54M tokens so far")
    assert formation.earlier(_run([no]), control).startswith("not decided yet")
    assert formation.earlier(_run([no, no]), control).startswith("not earlier")  # past 1.54M - one interval
    # "within" is what the probes reach: an evaluation logged after the last probe does not extend it
    evaluated = _run([no] * 4) + [MetricsRow(step=5000, tokens=2_560_000, train_loss=5.0, val_loss=5.0, val_bpc=1.0,
                                             lr=1e-3, elapsed_s=1.0, train_s=1.0)]
    assert formation.earlier(evaluated, control).startswith("not earlier: no induction head within 2.05M tokens")


def test_dose_response_measures_pace_and_cost_against_the_control():
    control = _run([(0.1, 0.1)] * 4, losses=[5.0, 4.8, 4.6, 4.5])
    fast = _run([(0.1, 0.1), (0.9, 3.0), (0.9, 3.0), (0.9, 3.0)], losses=[5.2, 4.9, 4.7, 4.6])
    lines = dose_response.findings({0.0: control, 0.5: fast})
    assert "no induction head within 2.05M tokens" in lines[0]
    assert "final validation loss 4.600 after 2.05M tokens (+0.100 against the control" in lines[1]
    assert "first induction head after 1.02M tokens (L0H0), at least 2.0x the control's pace" in lines[1]


def test_precision_compares_at_equal_tokens_and_takes_a_run_kept_elsewhere(tmp_path, capsys):
    no, yes = (0.1, 0.1), (0.9, 3.0)  # best Δ 0.1 or 0.9 (formed_at: Δ >= 0.3 with the CI above 0)
    runs = {"5.6M-fp32-seed1": _run([no, yes, yes], losses=[5.0, 4.5, 4.4]),
            "5.6M-bf16-seed1": _run([no, no, yes], losses=[5.0, 4.6, 4.39]),
            "5.6M-bf16-seed1337": _run([no, yes, yes], losses=[5.1, 4.5, 4.3])}
    for name, metrics in runs.items():
        write_json(tmp_path / "runs" / name / "metrics.json", metrics)
    write_json(tmp_path / "elsewhere" / "metrics.json", _run([no, no, no], losses=[5.1, 4.5, 4.31]))
    precision.main([str(tmp_path / "runs"), "--also", f"5.6M-fp32-seed1337={tmp_path / 'elsewhere'}"])
    out = capsys.readouterr().out
    assert "| 1 | 1.54M | 4.400 | 4.390 | -0.010 | step 2,000 | step 3,000 |" in out
    assert "| 1337 | 1.54M | 4.310 | 4.300 | -0.010 | not formed | step 2,000 |" in out
    assert "0.050 nats/token (step 2,000; criterion <= 0.02; no null run given): FAIL" in out  # (0.1 + 0) / 2
    assert "for every seed: FAIL" in out  # seed 1337: formed in bf16 only; seed 1: within one interval (1,000 steps)
    write_json(tmp_path / "null" / "metrics.json", _run([no, yes, yes], losses=[5.1, 4.47, 4.3]))
    precision.main([str(tmp_path / "runs"), "--also", f"5.6M-fp32-seed1337={tmp_path / 'elsewhere'}",
                    "--null-5.6M", str(tmp_path / "null")])
    out = capsys.readouterr().out  # the null: the fp32 run of seed 1337 against a rerun differing only in rounding
    assert "null, two fp32 runs differing only in rounding: 0.030" in out
    assert "null, the same two fp32 runs: step 2,000 and not formed: FAIL" in out
    with pytest.raises(SystemExit, match="expected <preset>-<precision>-seed<seed>=DIR"):
        precision.main([str(tmp_path / "runs"), "--also", str(tmp_path / "elsewhere")])
    with pytest.raises(SystemExit, match="no metrics.json in"):
        precision.main([str(tmp_path / "runs"), "--also", f"5.6M-fp32-seed1337={tmp_path}"])


def test_the_5_6M_reference_is_the_fp32_run_of_its_seed():
    """make precision takes the reference model's log as the fp32 run of seed 1337 at 16,000 steps; a rerun of that
    command at 1 thread (train.py --preset 5.6M --precision fp32 --seed 1337), stopped after its first evaluation,
    logged the same losses and probe scores bit for bit."""
    rerun = (ROOT / "checkpoints/reference/precision/16k/reproduction-of-reference-500-steps/metrics.json").read_text()
    reference = (ROOT / "checkpoints/reference/MiniGPT-5.6M/metrics.json").read_text()
    untimed = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    rows = untimed(json.loads(rerun))
    assert [r["step"] for r in rows] == [0, 500] and rows == untimed(json.loads(reference))[:2]


# ---- the Makefile and the commands it runs ------------------------------------------------------

def test_make_help_prints_every_target_and_no_step_is_left_by_hand():
    import re
    import subprocess
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", makefile, re.M).group(1).replace("\\\n", " ").split())
    rules = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.M))
    assert rules <= phony
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = {line.split()[1] for line in out.splitlines()}
    assert listed == phony, f"make help misses {phony - listed}"
    assert all(len(line.split(None, 2)) == 3 for line in out.splitlines())  # each with its line
    assert "by hand" not in makefile.lower()


def test_promote_copies_a_finished_run_and_refuses_what_it_should(tiny_run, tmp_path, monkeypatch):
    import checkpoint
    import promote
    from checkpoint import CheckpointError, OutputError, load_checkpoint
    monkeypatch.setattr(checkpoint, "ROOT", tmp_path)  # a stand-in repository, its checkpoints/reference protected
    monkeypatch.setattr(promote, "REFERENCE", tmp_path / "checkpoints" / "reference")
    run, dest = tiny_run.best.parent, tmp_path / "checkpoints" / "reference" / "seeds" / "tiny"
    with pytest.raises(OutputError, match="holds the committed reference results"):
        promote.promote(run, dest)  # only `make promote` sets MINIGPT_WRITE_REFERENCE
    monkeypatch.setenv(checkpoint.WRITE_REFERENCE, "1")
    written = promote.promote(run, dest)
    assert sorted(p.name for p in written) == ["best.pt", "metrics.json", "sample.txt"]
    kept = load_checkpoint(dest / "best.pt")
    assert "optimizer" not in kept and kept["train_config"] and kept["tokenizer"]  # weights, config, vocabulary
    assert (dest / "metrics.json").read_bytes() == (run / "metrics.json").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a reference run; pass --overwrite"):
        promote.promote(run, dest)
    assert promote.promote(run, dest, overwrite=True)
    with pytest.raises(CheckpointError, match="promote writes into a folder under"):
        promote.promote(run, tmp_path / "elsewhere")
    (run / "train.log").write_text("step 1: ...\n")  # the command's output, as `python -m experiments X run` writes it
    try:
        final = promote.promote(run, dest, overwrite=True, final=True)
    finally:
        (run / "train.log").unlink()  # the run is shared with other tests
    assert sorted(p.name for p in final) == ["best.pt", "final.pt", "metrics.json", "sample.txt", "train.log"]
    last = load_checkpoint(dest / "final.pt")
    assert "optimizer" not in last and last["step"] == load_checkpoint(run / "latest.pt")["step"]
    records = promote.promote(run, dest, overwrite=True, records_only=True)  # no weights: the old ones go too
    assert sorted(p.name for p in records) == ["metrics.json", "sample.txt"]


def test_promote_puts_an_experiments_run_where_the_one_rule_says(tiny_run, tmp_path, monkeypatch, capsys):
    """runs/<experiment>/<run> is committed as checkpoints/reference/<experiment>/<run>, with no AS to spell."""
    import shutil

    import checkpoint
    import experiments
    import promote
    reference = tmp_path / "checkpoints" / "reference"
    monkeypatch.setattr(checkpoint, "ROOT", tmp_path)
    monkeypatch.setattr(promote, "REFERENCE", reference)
    monkeypatch.setattr(experiments, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(experiments, "REF", reference)
    monkeypatch.setenv(checkpoint.WRITE_REFERENCE, "1")
    run = tmp_path / "runs" / "dose" / "2M-repeat0.1-seed1337"
    shutil.copytree(tiny_run.best.parent, run, ignore=shutil.ignore_patterns("plots", ".lock"))
    promote.main([str(run)])
    assert (reference / "dose" / "2M-repeat0.1-seed1337" / "best.pt").exists()
    assert experiments.committed_folder(run) == reference / "dose" / "2M-repeat0.1-seed1337"
    for elsewhere in (tmp_path / "runs" / "no-such-experiment" / "r", tmp_path / "runs" / "dose", tiny_run.best.parent):
        with pytest.raises(SystemExit, match="is not a run of an experiment .*name the folder under "
                                             "checkpoints/reference/ with AS="):
            promote.main([str(elsewhere)])
    promote.main([str(run), "mine/r"])  # AS still names any folder
    assert (reference / "mine" / "r" / "best.pt").exists()


def _tree(folder):
    import hashlib
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def test_promote_is_a_transaction_that_checks_everything_before_it_writes(tiny_run, tmp_path, monkeypatch):
    import os
    import shutil
    import checkpoint
    import promote
    from checkpoint import CheckpointError
    reference = tmp_path / "checkpoints" / "reference"
    monkeypatch.setattr(checkpoint, "ROOT", tmp_path)
    monkeypatch.setattr(promote, "REFERENCE", reference)
    monkeypatch.setenv(checkpoint.WRITE_REFERENCE, "1")
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run.best.parent, run, ignore=shutil.ignore_patterns("plots", ".lock"))
    dest = reference / "MiniGPT-tiny"
    promote.promote(run, dest)
    (dest / "final.pt").write_bytes(b"an older run's")  # stale files an overwrite must not keep
    before = _tree(reference)

    def refused(match, run=run, dest=dest, **kw):
        with pytest.raises(CheckpointError, match=match):
            promote.promote(run, dest, **kw)
        assert _tree(reference) == before and not list(reference.glob(".*"))  # untouched, no temp folder left

    monkeypatch.setattr(promote, "MAX_BYTES", 1000)  # weights too large for a committed file, with --overwrite
    refused("above the 0 MB a committed file may hold; not promoted", overwrite=True)
    monkeypatch.setattr(promote, "MAX_BYTES", 30 * 2 ** 20)
    os.symlink(dest, tmp_path / "link")  # a run folder that is the reference itself
    refused("not a run's folder", run=tmp_path / "link", overwrite=True)
    refused("the same folder, or one holds the other", run=dest, overwrite=True)
    refused("AS names .* itself; give a folder under it", dest=reference / ".", overwrite=True)  # make promote AS=.
    refused("cannot name files", dest=reference / "a b", overwrite=True)
    (tmp_path / "outside.txt").write_text("not the run's")
    (run / "sample.txt").rename(run / "sample.bak")
    os.symlink(tmp_path / "outside.txt", run / "sample.txt")
    refused("sample.txt is a symbolic link", overwrite=True)
    (run / "sample.txt").unlink()
    (run / "sample.bak").rename(run / "sample.txt")
    with promote.one_at_a_time():  # a second promote while one runs
        refused("another promote into .* is running", overwrite=True)

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:  # a failure while writing: the old reference stays whole
        m.setattr(promote.shutil, "copyfile", full_disk)
        with pytest.raises(OSError):
            promote.promote(run, dest, overwrite=True)
        assert _tree(reference) == before and not list(reference.glob(".*"))
    promote.promote(run, dest, overwrite=True)
    assert sorted(p.name for p in dest.iterdir()) == ["best.pt", "metrics.json", "sample.txt"]  # nothing stale
    # what promote commits names no path of this machine: the log's and the stored out_dir, relative to the repository
    monkeypatch.setattr(promote, "ROOT", tmp_path)
    ckpt = checkpoint.load_checkpoint(run / "best.pt")
    ckpt["train_config"]["out_dir"] = str(run)
    torch.save(ckpt, run / "best.pt")
    (run / "train.log").write_text(f"checkpoints: {run}/latest.pt (resumable)\n")
    promote.promote(run, dest, overwrite=True)
    assert (dest / "train.log").read_text() == "checkpoints: runs/tiny/latest.pt (resumable)\n"
    assert checkpoint.load_checkpoint(dest / "best.pt")["train_config"]["out_dir"] == "runs/tiny"


@pytest.mark.slow
def test_study_follows_the_run_trained_last_and_says_so_when_there_is_none(tmp_path, monkeypatch):
    import subprocess
    env = {**__import__("os").environ, "MINIGPT_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "study_notebook.py")], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 1 and "no run has been trained here yet" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "study.py"), "MiniGPT-9M"], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and f"{tmp_path}/checkpoints/MiniGPT-9M/best.pt does not exist (the run named)" in r.stderr


def test_every_experiment_is_data_checked_when_imported():
    """An experiment's runs are Run (a preset and RunConfig fields), its studies StudyConfig, its report a function;
    each run's train.py command builds exactly its configuration."""
    import dataclasses
    import importlib

    import experiments
    import study
    from train import parse_args
    for name in experiments.EXPERIMENTS:
        module = importlib.import_module(f"experiments.{name}")
        assert module.__doc__ and callable(module.report) and module.RUNS, name
        assert all(isinstance(s, study.StudyConfig) for s in getattr(module, "STUDIES", [])), name
        names = [run.name for run in module.RUNS]
        assert len(set(names)) == len(names), name  # one folder each
        for run in module.RUNS:
            assert isinstance(run, experiments.Run), (name, run)
            cfg = parse_args([*run.argv(), "--out-dir", "x"])[0]
            assert cfg == dataclasses.replace(run.config(), out_dir="x"), (name, run.name)


def test_a_misspelt_or_bad_field_fails_when_the_run_is_declared():
    from config import ConfigError
    from experiments import Run
    with pytest.raises(ConfigError, match="unknown RunConfig field.*repeat_fraction"):
        Run("x", "2M", dict(repeat_fraction=0.5))
    with pytest.raises(ConfigError, match="unknown preset"):
        Run("x", "3M")
    with pytest.raises(ConfigError):
        Run("x", "2M", dict(repeat_frac=1.5))  # RunConfig's own checks run too
    run = Run("x", "2M", dict(held_out=("persuasion",), attn_only=True, lr=1e-3))
    assert run.argv() == ["--preset", "2M", "--held-out", "persuasion", "--attn-only", "true", "--lr", "0.001"]
    import utils
    assert not [f for f in dir(utils) if f.startswith("plot_") and any(k in f for k in ("formation", "dose", "precision"))]
    # study.py keeps no single experiment's constants
    import study
    assert not hasattr(study, "ORIGINAL_FIGURES")


def test_a_report_draws_the_committed_runs_and_names_the_missing_ones(tmp_path, capsys):
    ref = ROOT / "checkpoints" / "reference" / "natural_text"
    runs = formation.against_law({"control": ref / "char2M-ctx256-norep-seed1337", "lever": tmp_path / "not-trained"},
                                 tmp_path / "f.png", control="control")
    out = capsys.readouterr().out
    assert list(runs) == ["control"] and "not committed yet, so not shown: lever" in out
    assert (tmp_path / "f.png").exists()
    assert formation.with_repeats({"a": tmp_path / "x"}, tmp_path / "g.png") == {}  # nothing to draw
    assert not (tmp_path / "g.png").exists()


def test_the_formation_command_line_takes_label_equals_folder_and_names_a_bad_one(tmp_path, capsys):
    ref = ROOT / "checkpoints" / "reference" / "natural_text"
    formation.main(["--law", "--control", "c", "--out", str(tmp_path / "f.png"), f"c={ref}/char2M-ctx256-norep-seed1",
                    f"d={ref}/word2M-32x128-norep-seed1"])
    assert "d against c: not earlier" in capsys.readouterr().out and (tmp_path / "f.png").exists()
    with pytest.raises(SystemExit, match="'nolabel' is not LABEL=RUN_DIR"):
        formation.main(["--out", str(tmp_path / "g.png"), "nolabel"])
    with pytest.raises(SystemExit):  # --control without --law would be ignored
        formation.main(["--control", "c", "--out", str(tmp_path / "g.png"), f"c={ref}/char2M-ctx256-norep-seed1"])
    assert "give --law with it" in capsys.readouterr().err


def test_the_original_recipe_report_draws_its_delta_against_the_original(tmp_path, capsys):
    from training_log import read_metrics
    from experiments import original
    run = ROOT / "checkpoints" / "reference" / "original" / "original-2M-seed1337"
    original.main([f"seed 1337={run}", "--out", str(tmp_path / "f.png"), "--delta-out", str(tmp_path / "d.png"),
                   "--size", "2M", "--title", "t"])
    out = capsys.readouterr().out
    last = original.logged_delta(read_metrics(run))[-1]
    assert f"at {last.tokens / 1e6:.2f}M tokens" in out and f"text-train {last.probes['text-train'].original_delta}" in out
    assert "the original reported 0.727 (2M" in out
    assert (tmp_path / "f.png").stat().st_size > 1000 and (tmp_path / "d.png").stat().st_size > 1000


def test_the_original_recipe_answers_a_b_r_or_c_by_its_fixed_rule():
    from types import SimpleNamespace as NS

    from experiments import original

    def result(validated, delta_lo, primary="random-known", specific_lo=None, shuffled_lo=None):
        v = NS(validated=validated, validated_old=validated, candidates=[(1, 3)] if validated else [], roles={})
        est = lambda lo: ind.Estimate(lo + 0.1, lo, lo + 0.2)  # noqa: E731
        rec = None if specific_lo is None else {"random-known": NS(G_repeat=est(0.5), G_shuffled=est(shuffled_lo),
                                                                   G_specific=est(specific_lo))}
        return NS(config=NS(primary=primary), validation=v, original=NS(delta=est(delta_lo), n_prompts=2000),
                  recurrence=rec)

    # the rule of issue #39, with the recurrence control
    assert original.answer(result(True, 0.5, specific_lo=0.5, shuffled_lo=0.1), "2M").startswith(
        "(a) a real induction head: L1H3")
    assert original.answer(result(False, 0.01, specific_lo=0.01, shuffled_lo=0.1), "2M").startswith(
        "(b) δ without an induction head, beyond recurrence")
    assert original.answer(result(False, 0.5, specific_lo=-0.01, shuffled_lo=0.1), "2M").startswith(
        "(r) recurrence alone")                                            # δ, but no gain from the order
    assert original.answer(result(False, -0.01, specific_lo=0.5, shuffled_lo=0.1), "2M").startswith(
        "(r) recurrence alone")                                            # no δ on training text
    assert original.answer(result(False, 0.5, specific_lo=-0.01, shuffled_lo=-0.01), "2M").startswith("(c) neither")
    assert "induction-specific" in original.answer(result(False, 0.5, specific_lo=0.1, shuffled_lo=0.1), "2M")
    # the rule of issue #26, without the control, reported beside it
    assert original.answer_old(result(True, 0.5), "2M").startswith("(a) a real induction head: L1H3")
    assert original.answer_old(result(False, 0.01), "2M").startswith("(b) δ without an induction head:")
    assert original.answer_old(result(False, -0.01), "2M").startswith("(c) neither")
    assert original.answer_old(result(False, 0.5, specific_lo=-0.01, shuffled_lo=0.1), "2M").startswith("(b)")
    assert "reported 0.727 for 2M, inside this CI" in original.answer_old(result(False, 0.6), "2M")  # [0.6, 0.8]
    assert "outside this CI" in original.answer_old(result(False, 0.3), "2M")      # 0.727 above [0.3, 0.5]
    assert "reported 0.419 for 5.6M, inside" in original.answer_old(result(False, 0.3), "5.6M")  # each size its own
    with pytest.raises(ValueError, match="random-known"):
        original.answer(result(True, 0.5, primary="text-val", specific_lo=0.5, shuffled_lo=0.1), "2M")  # a head on memorised text is not (a)
    for cfg in original.STUDIES:  # the final weights, studied as the answer reads them
        assert cfg.checkpoint.endswith("final.pt") and cfg.n_prompts == 2000


@pytest.mark.slow
def test_the_answer_reads_a_real_study_made_as_the_original_recipe_studies_its_final_weights(tiny_run, tmp_path,
                                                                                            capsys):
    """STUDIES' own arguments on the tiny run's last weights, with fewer prompts and draws; the answer reads it back.
    Each step of the study is named on stderr as it runs (2,000 prompts take many minutes on a CPU)."""
    import dataclasses

    import study
    from experiments import original
    cfg = dataclasses.replace(original.STUDIES[0], checkpoint=str(tiny_run.best.parent / "latest.pt"), n_prompts=16,
                              out_json=str(tmp_path / "s.json"), plots_dir=str(tmp_path / "plots"), n_ablate=8,
                              n_random_draws=2, n_sets=8)
    study.run_and_print(cfg)
    steps = re.findall(r"^(\w+) \.\.\. \d+\.\d s$", capsys.readouterr().err, re.M)
    result = study.read_result(tmp_path / "s.json")
    # path patching runs only where a head sits below the tested ones
    assert steps == ["scores", "scores", "single_head_ablations", "patching"] + (
        ["path_patching"] if result.validation.circuit else []) + ["validation", "recurrence", "original", "page"], steps
    assert result.config.primary == "random-known" and result.original.n_prompts == 16
    assert re.match(r"\((a|b|r|c)\) .*the original's δ .* on 16 training-text prompts \(null 0; the original reported "
                    r"0\.727 for 2M, (inside|outside) this CI\)", original.answer(result, "2M"))


@pytest.mark.slow
def test_train_runs_trains_each_run_at_one_thread_and_names_what_failed(tmp_path, monkeypatch):
    import experiments
    monkeypatch.setattr(experiments, "RUNS", tmp_path)
    from experiments import Run
    tiny = dict(max_steps=4, eval_interval=2, novels=("emma",))
    dirs = experiments.train_runs("demo", [Run("a", "tiny", tiny), Run("b", "tiny", {**tiny, "seed": 1})], parallel=2)
    assert [d.name for d in dirs] == ["a", "b"] and all((d / "best.pt").exists() for d in dirs)
    assert "step      4:" in (tmp_path / "demo" / "a" / "train.log").read_text()  # inside the run's folder
    (tmp_path / "demo" / "b" / "train.log").rename(tmp_path / "demo" / "b.log")  # where earlier runs kept it
    experiments.train_runs("demo", [Run("b", "tiny", {**tiny, "seed": 1, "max_steps": 6})])
    assert not (tmp_path / "demo" / "b.log").exists()
    assert re.search(r"step      4:.*step      6:", (tmp_path / "demo" / "b" / "train.log").read_text(), re.S)
    (tmp_path / "demo" / "bad").mkdir()
    (tmp_path / "demo" / "bad" / "latest.pt").write_bytes(b"not a checkpoint")  # its resume fails
    with pytest.raises(SystemExit, match="bad failed; see their logs"):
        experiments.train_runs("demo", [Run("bad", "tiny", tiny)])


def test_train_runs_tells_a_run_stopped_by_ctrl_c_from_one_that_failed(tmp_path, monkeypatch):
    import subprocess

    import experiments

    class Exits:  # a train.py that ends with the status its run name gives
        def __init__(self, cmd, **kwargs):
            self.code = int(Path(cmd[cmd.index("--out-dir") + 1]).name.split("-")[1])

        def wait(self):
            return self.code
    monkeypatch.setattr(experiments, "RUNS", tmp_path)
    monkeypatch.setattr(subprocess, "Popen", Exits)
    with pytest.raises(SystemExit, match=r"^exit-130 stopped by Ctrl-C; rerun to continue from their latest.pt$"):
        experiments.train_runs("demo", [experiments.Run("exit-0", "tiny"), experiments.Run("exit-130", "tiny")])
    with pytest.raises(SystemExit, match=r"^error: exit-1 failed"):
        experiments.train_runs("demo", [experiments.Run("exit-1", "tiny"), experiments.Run("exit-130", "tiny")])


def test_the_verdicts_report_has_a_row_per_run_and_counts_the_2m_failures():
    from experiments import verdicts
    lines, rates = verdicts.table()
    assert len(lines) == 2 + len(verdicts.MODELS) and all(line.count("|") == 13 for line in lines[2:])
    assert sum(model == "2M" for model, _, _ in verdicts.MODELS) == 6  # the six 2M runs of issue #39
    assert rates["passed"] + (rates["runs"] - rates["passed"]) == rates["runs"] <= 6
    assert all(0 < n <= rates["runs"] for n in rates["failed"].values())
    for cfg in verdicts.STUDIES:  # relative paths: no record stores this machine's absolute path
        assert not any(str(v).startswith("/") for v in vars(cfg).values())
        assert cfg.checkpoint.startswith("checkpoints/reference/verdicts/")


def test_make_study_says_in_one_sentence_what_failed_and_how_often(tmp_path, monkeypatch):
    import importlib.util
    from types import SimpleNamespace
    spec = importlib.util.spec_from_file_location("study_notebook", ROOT / "scripts" / "study_notebook.py")
    sn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sn)
    rates = tmp_path / "verdict_rates.json"
    rates.write_text(json.dumps({"runs": 6, "passed": 4, "failed": {"sufficiency: x": 2}}))
    monkeypatch.setattr(sn, "RATES", rates)
    failing = SimpleNamespace(validation=SimpleNamespace(roles={}, validated=False, failed=lambda: ["sufficiency: x"]))
    note = sn.fail_note(failing)
    assert note == ("Verdict FAIL: sufficiency: x; of the 6 committed 2M runs (results/README.md, `make exp "
                    "NAME=verdicts`), 2 failed the same way and 4 passed.")
    assert sn.fail_note(SimpleNamespace(validation=SimpleNamespace(roles={}, validated=True))) is None
    rates.unlink()
    assert "verdict_rates.json is missing or unreadable" in sn.fail_note(failing)


def test_make_reference_visits_every_registry_study_and_skips_weights_not_committed(monkeypatch, capsys):
    """`make reference` is `python -m experiments all study` then `all report`: every StudyConfig of every experiment,
    run by study.run_and_print (here a stand-in), the ones without committed weights named."""
    import importlib

    import experiments
    import study
    from experiments.__main__ import main
    r = subprocess.run(["make", "-n", "reference"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "-m experiments all study" in r.stdout and "-m experiments all report" in r.stdout
    visited = []
    monkeypatch.setattr(study, "run_and_print", visited.append)
    main(["all", "study"])
    declared = [cfg for name in experiments.EXPERIMENTS
                for cfg in getattr(importlib.import_module(f"experiments.{name}"), "STUDIES", [])]
    assert visited == [cfg for cfg in declared if (ROOT / cfg.checkpoint).exists()]
    missing = [cfg for cfg in declared if not (ROOT / cfg.checkpoint).exists()]
    out = capsys.readouterr().out
    assert all(f"skipping {cfg.checkpoint}: no weights yet" in out for cfg in missing)
    assert {cfg.out_json for cfg in visited} >= {f"results/induction_MiniGPT-{m}.json" for m in ("2M", "5.6M")}
    with pytest.raises(SystemExit, match="all run would train every experiment's runs"):
        main(["all", "run"])


def test_the_makefile_names_no_run_and_no_checkpoint():
    """Every run, study and checkpoint a target uses comes from the registry (experiments/): the recipes name none."""
    recipes = [line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("\t")]
    assert recipes and not [line for line in recipes if re.search(r"best\.pt|final\.pt|MiniGPT-|\$\(REF\)/", line)
                            and "usage:" not in line]
    r = subprocess.run(["make", "-n", "notebooks", "screenshot", "reference-models"], cwd=ROOT, capture_output=True,
                       text=True)
    assert [line.split("-m experiments ")[1] for line in r.stdout.splitlines() if "-m experiments" in line] == [
        "reference notebooks", "reference screenshot", "reference run"], r.stdout + r.stderr
    from experiments import reference
    assert set(reference.ACTIONS) == {"notebooks", "screenshot"}
    with pytest.raises(SystemExit, match=r"usage: .*\[report\|run\|study\|notebooks\|screenshot\]"):
        from experiments.__main__ import main
        main(["reference", "nope"])


def test_the_reference_models_are_committed_at_the_top_and_every_other_run_in_its_experiments_folder():
    import experiments
    assert experiments.committed_folder(experiments.RUNS / "reference" / "MiniGPT-2M") == experiments.REF / "MiniGPT-2M"
    assert experiments.committed_folder(experiments.RUNS / "precision" / "16k" / "5.6M-bf16-seed1") == (
        experiments.REF / "precision" / "16k" / "5.6M-bf16-seed1")


def test_make_promote_without_as_lets_promote_derive_the_folder():
    """make's built-in AS is the assembler ("as"): without AS= on the command line promote must get no folder at all."""
    r = subprocess.run(["make", "-n", "promote", "RUN=runs/dose/x"], cwd=ROOT, capture_output=True, text=True)
    command = next(line for line in r.stdout.splitlines() if "scripts/promote.py" in line)
    assert command.split("scripts/promote.py", 1)[1].split() == ["'runs/dose/x'", "\\"], r.stdout
    r = subprocess.run(["make", "-n", "promote", "RUN=runs/dose/x", "AS=mine/x"], cwd=ROOT, capture_output=True,
                       text=True)
    assert "scripts/promote.py 'runs/dose/x' 'mine/x'" in r.stdout


def test_the_curriculum_report_reads_the_reference_model_as_it_ships(monkeypatch, capsys):
    """The 2M reference ships as an exported folder, not a best.pt: the report loads each run's weights through
    checkpoint.run_weights (it looked for MiniGPT-2M/best.pt and failed once the reference models became folders)."""
    from checkpoint import run_weights
    from experiments import curriculum
    ref = ROOT / "checkpoints" / "reference"
    assert run_weights(ref / "MiniGPT-2M") == ref / "MiniGPT-2M"
    assert run_weights(ref / "curriculum" / "2M-control") == ref / "curriculum" / "2M-control" / "best.pt"
    monkeypatch.setattr(curriculum, "N_SAMPLES", 2)
    monkeypatch.setattr(curriculum, "SAMPLE_TOKENS", 4)
    monkeypatch.setattr(curriculum, "val_loss", lambda model, tok: 4.0)  # the whole split is the slow part
    curriculum.main([f"curriculum={ref}/curriculum/2M-curriculum", f"control={ref}/curriculum/2M-control",
                     f"preset={ref}/MiniGPT-2M"])
    assert "| preset | 5.12M | 9,500 | 4.000 |" in capsys.readouterr().out


def test_the_executed_notebooks_record_paths_relative_to_the_repository(monkeypatch, tmp_path):
    """Papermill writes the paths it is given into the executed notebook's metadata: `make notebooks` gives relative
    ones (it gave absolute ones, which tests/test_records.py then found in results/)."""
    import papermill

    from experiments import reference
    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda src, dst, **kw: calls.append((src, dst, kw["cwd"])))
    monkeypatch.chdir(tmp_path)
    reference.notebooks()
    assert len(calls) == 1 + len(reference.STUDIES) and Path.cwd() == ROOT
    for src, dst, cwd in calls:
        assert not Path(src).is_absolute() and not Path(dst).is_absolute() and (ROOT / src).exists() and cwd == "."
