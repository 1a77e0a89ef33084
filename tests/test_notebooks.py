"""Execute both notebooks headlessly with tiny parameters, as a user would (papermill), and check the sources."""
import ast
import hashlib
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
    from config import PARAMETERS_MARK
    assert cell.source.startswith(PARAMETERS_MARK), "notebook_parameters finds the parameters cell by its first line"
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
    from config import RunConfig, fields
    p, cfg = parameters("InductionHeads.ipynb"), study.StudyConfig()
    for key, value in p.items():
        assert value == getattr(cfg, key.lower() if key != "S" else "S"), key
    assert p["CHECKPOINT"] is None  # the run trained last: MiniGPT.ipynb's
    sizes = {"N_LAYER", "N_HEAD", "N_EMBD", "BLOCK_SIZE", "VOCAB_SIZE"}
    m = parameters("MiniGPT.ipynb")
    assert sizes <= set(m) and all(m[k] is None for k in sizes)  # None: the preset's
    assert set(m) - {"PLOTS_DIR", "RESUME"} <= {f.name.upper() for f in fields(RunConfig)}


def tree_hashes(folder: Path) -> dict:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.slow
def test_the_notebook_loop_trains_another_size_and_studies_it_without_touching_other_runs(tmp_path, monkeypatch):
    """Change N_EMBD in MiniGPT.ipynb, train, then open InductionHeads.ipynb with its defaults: the study follows the
    new run, into its own folders; the preset's run and the committed reference results are untouched."""
    from config import run_config
    home = tmp_path / "home"  # a user's repository as the kernels see it: checkpoints/ and Plots/ (config.HOME)
    monkeypatch.setenv("MINIGPT_HOME", str(home))
    CHECKPOINTS, PLOTS = home / "checkpoints", home / "Plots"
    small = dict(MAX_STEPS=20, EVAL_INTERVAL=10)  # logging only: not part of the run's name
    seconds = run_notebook(ROOT / "MiniGPT.ipynb", tmp_path, PRESET="tiny", **small)  # the preset's own run
    text = (tmp_path / "MiniGPT.ipynb").read_text()
    assert "parameters: " in text and "bits/char" in text and "run MiniGPT-tiny: checkpoints in" in text
    print(f"MiniGPT.ipynb (tiny, {small['MAX_STEPS']} steps) ran in {seconds:.1f} s")
    default = run_config("tiny").name
    assert default == "MiniGPT-tiny"
    guarded = {d: tree_hashes(d) for d in (CHECKPOINTS / default, PLOTS / default, ROOT / "results",
                                           ROOT / "checkpoints" / "reference")}
    assert guarded[CHECKPOINTS / default] and guarded[PLOTS / default]
    run_notebook(ROOT / "MiniGPT.ipynb", tmp_path, PRESET="tiny", N_EMBD=48, **small)
    name = "MiniGPT-tiny-n_embd=48"
    assert (CHECKPOINTS / name / "best.pt").exists() and (PLOTS / name / f"Loss_Curve_{name}.png").exists()
    run_notebook(ROOT / "InductionHeads.ipynb", tmp_path, N_PROMPTS=16, N_ABLATE=8, N_RANDOM_DRAWS=2)
    out = (tmp_path / "InductionHeads.ipynb").read_text()
    assert f"studying {name}: {CHECKPOINTS / name / 'best.pt'} (the run trained last here" in out
    import study
    result = study.read_result(CHECKPOINTS / name / f"induction_{name}.json")
    assert result.model == name and result.params == read_params(CHECKPOINTS / name / "best.pt")
    assert (CHECKPOINTS / "last_run.txt").read_text() == name + "\n"
    assert (PLOTS / name / f"Attention_HeatMap_zoom_{name}.png").exists()
    for folder, hashes in guarded.items():
        assert tree_hashes(folder) == hashes, f"{folder} changed"


def read_params(path) -> int:
    from checkpoint import load_model
    return load_model(path)[0].num_params()


@pytest.mark.slow
def test_deleting_a_parameter_line_gives_the_presets_value_again(tmp_path):
    """In one kernel, as a user re-executes cells: set N_LAYER = 1, run; delete the line, run again."""
    from nbclient import NotebookClient
    nb = nbformat.read(ROOT / "MiniGPT.ipynb", as_version=4)
    params, setup = nb.cells[1], nb.cells[2]
    client = NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    with client.setup_kernel():
        def layers(param_source):
            params.source = param_source
            client.execute_cell(params, 1)
            client.execute_cell(setup, 2)
            probe = nbformat.v4.new_code_cell("print('n_layer', cfg.n_layer, cfg.name)")
            client.execute_cell(probe, 3)
            return probe.outputs[0]["text"].split()
        original = params.source
        assert layers(original.replace('PRESET = "2M"', 'PRESET = "tiny"') + "\nN_LAYER = 1") == \
            ["n_layer", "1", "MiniGPT-tiny-n_layer=1"]
        deleted = original.replace('PRESET = "2M"', 'PRESET = "tiny"').replace("N_LAYER = None", "")
        assert "N_LAYER" not in deleted
        assert layers(deleted) == ["n_layer", "2", "MiniGPT-tiny"]  # the preset's, not the stale 1


@pytest.mark.slow
def test_the_induction_notebook_runs_what_its_edited_parameters_cell_says(tmp_path, tiny_run):
    """A user edits cell 1 and runs all (no papermill parameters; the loop test passes them): the edit, not a stale
    value, is analysed, and every figure, the offline attention page and the typed summary come out."""
    nb = nbformat.read(ROOT / "InductionHeads.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    plots = tmp_path / "plots"
    edits = {"CHECKPOINT": str(tiny_run.best), "N_PROMPTS": 40, "N_ABLATE": 16, "PLOTS_DIR": str(plots),
             "OUT_JSON": str(tmp_path / "summary.json")}
    cell.source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in edits.items())
    edited = tmp_path / "src" / "InductionHeads.ipynb"
    edited.parent.mkdir()
    nbformat.write(nb, edited)
    seconds = run_notebook(edited, tmp_path)
    expected = ["Attention_HeatMap_full", "Attention_HeatMap_zoom", "InductionScore_Delta", "PrevTokenScore",
                "HeadAblation_HeatMap", "HeadAblation_Loss", "HeadAblation_DeltaMatrix", "LossByPosition",
                "Candidates_vs_Random", "Roles", "Patching", "Patching_ByChunk", "CircuitSearch", "Specificity",
                "PathPatching"]
    name = tiny_run.best.parent.name  # a run's name is its folder's
    for stem in expected:
        assert (plots / f"{stem}_{name}.png").exists(), stem
    page = (plots / f"Attention_Page_{name}.html").read_text()
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]*\bsrc=", page)  # plotly.js inlined: offline
    assert "<iframe" in (tmp_path / "InductionHeads.ipynb").read_text()  # shown inline
    import study
    result = study.read_result(tmp_path / "summary.json")
    assert set(result.scores) == {"text-val", "text-train", "random", "random-known"}
    assert result.scores["random"].delta.mean.shape == (2, 2)  # layers x heads
    assert result.checkpoint == str(tiny_run.best) and result.config.n_prompts == 40 and result.config.n_ablate == 16
    assert result.figures["page"] == str(plots / f"Attention_Page_{name}.html")
    assert 0 <= result.validation.zero.tested.hi or result.validation.zero.tested.hi < 0  # typed, read back
    print(f"InductionHeads.ipynb (tiny) ran in {seconds:.1f} s")


@pytest.mark.slow
def test_a_misspelt_parameter_is_an_error_not_a_silent_default(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="unknown notebook parameter.* N_PROMTPS; the parameters are"):
        run_notebook(ROOT / "InductionHeads.ipynb", tmp_path, CHECKPOINT="x.pt", N_PROMTPS=5)
    with pytest.raises(pm.PapermillExecutionError, match="unknown notebook parameter.* MAX_STEP;"):
        run_notebook(ROOT / "MiniGPT.ipynb", tmp_path, PRESET="tiny", MAX_STEP=5)


@pytest.mark.slow
def test_wrong_parameter_type_is_explained(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="RunConfig.max_steps must be int, got '100' \\(str\\)"):
        run_notebook(ROOT / "MiniGPT.ipynb", tmp_path, PRESET="tiny", MAX_STEPS="100", OUT_DIR=str(tmp_path / "c"))


def test_the_parameters_are_the_names_assigned_in_the_parameters_cell_and_papermills():
    """Scratch variables of other cells, in capitals or not, neither fail nor apply; a deleted line takes the preset's
    value though the namespace still holds the old one; papermill's injected cell counts (issue #42)."""
    from config import PARAMETERS_MARK, ConfigError, RunConfig, notebook_parameters
    history = ["", f"{PARAMETERS_MARK}\nPRESET = 'tiny'\nN_EMBD = 64\n", "MY_TABLE = {}\nn_head = 3\n",
               f"{PARAMETERS_MARK}\nPRESET = 'tiny'\n",                      # rerun with the N_EMBD line deleted
               "# Parameters\nSEED = 3\n", "SCRATCH = 5\n"]
    ns = {"In": history, "PRESET": "tiny", "N_EMBD": 64, "MY_TABLE": {}, "n_head": 3, "SEED": 3, "SCRATCH": 5}
    assert notebook_parameters(ns, RunConfig) == {"preset": "tiny", "seed": 3}
    history.append("# Parameters\nN_EMBED = 64\n")  # a misspelt parameter from papermill is still an error
    with pytest.raises(ConfigError, match="unknown notebook parameter"):
        notebook_parameters({**ns, "N_EMBED": 64}, RunConfig)
