"""Execute both notebooks headlessly with tiny parameters, as a user would (papermill), and check the sources."""
import ast
import json
import re
import time
from pathlib import Path

import nbformat
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("MiniGPT.ipynb", "InductionHeads.ipynb")


def run_notebook(source, out_dir, **params):
    t0 = time.perf_counter()
    pm.execute_notebook(str(source), str(out_dir / Path(source).name), parameters=params, cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False)
    return time.perf_counter() - t0


def parameters(name) -> dict:
    """The parameters cell's assignments, as values."""
    nb = nbformat.read(ROOT / name, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in cell.metadata.get("tags", []), f"{name}: the first code cell must hold the parameters"
    return {t.targets[0].id: ast.literal_eval(t.value) for t in ast.parse(cell.source).body}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_sources_have_no_injected_parameters_and_no_outputs(name):
    nb = nbformat.read(ROOT / name, as_version=4)
    for cell in nb.cells:
        assert "injected-parameters" not in cell.metadata.get("tags", []), f"{name} holds papermill's injected cell"
        assert not cell.get("outputs") and not cell.get("execution_count"), f"{name} has outputs: strip them"
    parameters(name)


def test_notebook_defaults_are_the_study_and_run_defaults():
    import study
    from config import PRESETS
    p, cfg = parameters("InductionHeads.ipynb"), study.StudyConfig(checkpoint="x")
    assert p.pop("CHECKPOINT") == f"checkpoints/{PRESETS[parameters('MiniGPT.ipynb')['PRESET']].name}/best.pt"
    assert Path(ROOT / p.pop("PLOTS_DIR")) == Path(cfg.plots_dir)
    for key, value in p.items():
        assert value == getattr(cfg, key.lower() if key != "S" else "S"), key


def test_minigpt_notebook_trains_a_tiny_model(tmp_path):
    seconds = run_notebook(ROOT / "MiniGPT.ipynb", tmp_path, PRESET="tiny", MAX_STEPS=150, BATCH_SIZE=8,
                           EVAL_INTERVAL=50, OUT_DIR=str(tmp_path / "ckpt"), PLOTS_DIR=str(tmp_path / "plots"))
    assert (tmp_path / "ckpt" / "best.pt").exists() and (tmp_path / "ckpt" / "latest.pt").exists()
    assert (tmp_path / "plots" / "Loss_Curve_MiniGPT-tiny.png").exists()
    text = (tmp_path / "MiniGPT.ipynb").read_text()
    assert "parameters: " in text and "bits/char" in text
    print(f"MiniGPT.ipynb (tiny) ran in {seconds:.1f} s")


def test_induction_notebook_runs_on_a_tiny_checkpoint(tmp_path, tiny_run):
    plots = tmp_path / "plots"
    seconds = run_notebook(ROOT / "InductionHeads.ipynb", tmp_path, CHECKPOINT=str(tiny_run.best), N_PROMPTS=40,
                           N_ABLATE=16, PLOTS_DIR=str(plots), OUT_JSON=str(tmp_path / "summary.json"))
    expected = ["Attention_HeatMap_full", "Attention_HeatMap_zoom", "InductionScore_Delta", "PrevTokenScore",
                "HeadAblation_HeatMap", "HeadAblation_Loss", "HeadAblation_DeltaMatrix", "LossByPosition",
                "Candidates_vs_Random"]
    for stem in expected:
        assert (plots / f"{stem}_MiniGPT-tiny.png").exists(), stem
    page = (plots / "Attention_Page_MiniGPT-tiny.html").read_text()
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]*\bsrc=", page)  # plotly.js inlined: offline
    assert "<iframe" in (tmp_path / "InductionHeads.ipynb").read_text()  # shown inline
    import study
    result = study.read_result(tmp_path / "summary.json")
    assert set(result.scores) == {"text-val", "text-train", "random", "random-known"}
    assert result.scores["random"].delta.mean.shape == (2, 2)  # layers x heads
    assert result.config.checkpoint == str(tiny_run.best) and result.config.n_prompts == 40
    assert result.figures["page"] == str(plots / "Attention_Page_MiniGPT-tiny.html")
    assert 0 <= result.validation.zero.tested.hi or result.validation.zero.tested.hi < 0  # typed, read back
    print(f"InductionHeads.ipynb (tiny) ran in {seconds:.1f} s")


def test_editing_the_parameters_cell_changes_what_is_analysed(tmp_path, tiny_run):
    """A user edits cell 1 and runs all (no papermill parameters): the edit, not a stale value, is analysed."""
    nb = nbformat.read(ROOT / "InductionHeads.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    edits = {"CHECKPOINT": str(tiny_run.best), "N_PROMPTS": 12, "N_ABLATE": 4, "PLOTS_DIR": str(tmp_path / "p"),
             "OUT_JSON": str(tmp_path / "edited.json")}
    cell.source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in edits.items())
    edited = tmp_path / "src" / "InductionHeads.ipynb"
    edited.parent.mkdir()
    nbformat.write(nb, edited)
    run_notebook(edited, tmp_path)
    summary = json.loads((tmp_path / "edited.json").read_text())
    assert summary["checkpoint"] == str(tiny_run.best) and summary["config"]["n_prompts"] == 12


def test_a_misspelt_parameter_is_an_error_not_a_silent_default(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="unknown notebook parameter.* N_PROMTPS; the parameters are"):
        run_notebook(ROOT / "InductionHeads.ipynb", tmp_path, CHECKPOINT="x.pt", N_PROMTPS=5)
    with pytest.raises(pm.PapermillExecutionError, match="unknown notebook parameter.* MAX_STEP;"):
        run_notebook(ROOT / "MiniGPT.ipynb", tmp_path, PRESET="tiny", MAX_STEP=5)


def test_wrong_parameter_type_is_explained(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="RunConfig.max_steps must be int, got '100' \\(str\\)"):
        run_notebook(ROOT / "MiniGPT.ipynb", tmp_path, PRESET="tiny", MAX_STEPS="100", OUT_DIR=str(tmp_path / "c"))
