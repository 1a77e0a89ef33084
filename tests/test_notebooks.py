"""Execute both notebooks headlessly with tiny parameters, as a user would (papermill)."""
import json
import time
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_notebook(name, out_dir, **params):
    t0 = time.perf_counter()
    pm.execute_notebook(str(ROOT / name), str(out_dir / name), parameters=params, cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False)
    return time.perf_counter() - t0


def test_minigpt_notebook_trains_a_tiny_model(tmp_path):
    seconds = run_notebook("MiniGPT.ipynb", tmp_path, PRESET="tiny", MAX_STEPS=150, BATCH_SIZE=8,
                           EVAL_INTERVAL=50, OUT_DIR=str(tmp_path / "ckpt"), PLOTS_DIR=str(tmp_path / "plots"))
    assert (tmp_path / "ckpt" / "best.pt").exists() and (tmp_path / "ckpt" / "latest.pt").exists()
    assert (tmp_path / "plots" / "Loss_Curve_MiniGPT-tiny.png").exists()
    text = (tmp_path / "MiniGPT.ipynb").read_text()
    assert "parameters: " in text and "bits/char" in text
    print(f"MiniGPT.ipynb (tiny) ran in {seconds:.1f} s")
    assert seconds < 120


def test_induction_notebook_runs_on_a_tiny_checkpoint(tmp_path, tiny_run):
    plots = tmp_path / "plots"
    seconds = run_notebook("InductionHeads.ipynb", tmp_path, CHECKPOINT=str(tiny_run["best"]), N_PROMPTS=40,
                           N_ABLATE=16, PLOTS_DIR=str(plots), SUMMARY_JSON=str(tmp_path / "summary.json"))
    expected = ["Attention_HeatMap_full", "Attention_HeatMap_zoom", "InductionScore_Delta", "PrevTokenScore",
                "HeadAblation_HeatMap", "HeadAblation_Loss", "HeadAblation_DeltaMatrix", "LossByPosition",
                "Candidates_vs_Random"]
    for stem in expected:
        assert (plots / f"{stem}_MiniGPT-tiny.png").exists(), stem
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["scores"]) == {"text-val", "text-train", "random"}
    assert len(summary["scores"]["random"]["delta"]["mean"]) == 2  # layers
    assert "share" in summary["validation"]["zero"]["tested"]
    print(f"InductionHeads.ipynb (tiny) ran in {seconds:.1f} s")


def test_wrong_parameter_type_is_explained(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="TrainConfig.max_steps must be int, got '100' \\(str\\)"):
        run_notebook("MiniGPT.ipynb", tmp_path, PRESET="tiny", MAX_STEPS="100", OUT_DIR=str(tmp_path / "c"))
