"""Careless and hostile input: no path loses a run, no file exhausts memory, every bad input gets a clear error."""
import fcntl
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

import config
import torch

import corpus
import train as train_mod
from checkpoint import CheckpointError, load_checkpoint, load_model
from config import ConfigError, run_config
from corpus import CorpusError, read_novel
from tokenizer import TokenizerError, from_state
from train import TrainingError, train

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(preset="tiny", batch_size=8, lr=3e-3, eval_batches=2, novels=("emma",))
QUIET = dict(progress=False, samples=False, plots_dir=None)


# ---- data loss ---------------------------------------------------------------------------------

def test_weights_that_are_not_finite_are_never_saved(tmp_path, monkeypatch):
    """A save that does not follow an evaluation (save_interval 3, eval_interval 10) checks the weights itself."""
    real, calls = train_mod.train_step, {"n": 0}

    def poisoned(model, *a, **kw):
        loss = real(model, *a, **kw)
        calls["n"] += 1
        if calls["n"] == 9:  # the weights blow up at the step before a save; its loss was still finite
            with torch.no_grad():
                model.wte.weight[0, 0] = float("inf")
        return loss

    monkeypatch.setattr(train_mod, "train_step", poisoned)
    cfg = run_config(**TINY, max_steps=30, eval_interval=10, save_interval=3, out_dir=str(tmp_path))
    with pytest.raises(TrainingError, match=r"weights before saving latest.pt.* last good checkpoint is .*latest.pt "
                                            r"\(step 6\)\. Start a new run with another --out-dir"):
        train(cfg, **QUIET)
    model, _, ckpt = load_model(tmp_path / "latest.pt")
    assert ckpt["step"] == 6 and all(torch.isfinite(p).all() for p in model.parameters())


def test_a_second_run_on_a_locked_directory_is_refused_and_touches_nothing(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    temp = tmp_path / ".latest.pt.4242.tmp"  # the running run's checkpoint, half written
    temp.write_bytes(b"in progress")
    metrics_temp = tmp_path / ".metrics.json.x7q2ab9c.tmp"  # as write_file names its temp file
    metrics_temp.write_bytes(b"[")
    with open(tmp_path / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the running run holds it
        for resume in (False, True):
            with pytest.raises(TrainingError, match="is in use by another training run"):
                train(run_config(**TINY, max_steps=5, out_dir=str(tmp_path)), resume=resume, **QUIET)
    assert temp.read_bytes() == b"in progress" and metrics_temp.exists() and not (tmp_path / "metrics.json").exists()
    train(run_config(**TINY, max_steps=5, out_dir=str(tmp_path)), **QUIET)  # released: the directory works again
    assert not temp.exists() and not metrics_temp.exists()  # a dead run's temp files are cleaned up by the next run


@pytest.mark.slow
def test_a_killed_run_releases_its_lock(tmp_path):
    proc = subprocess.Popen([os.sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--novels", "emma",
                             "--max-steps", "100000", "--out-dir", str(tmp_path), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not (tmp_path / "latest.pt").exists() and time.time() - t0 < 60:
        time.sleep(0.05)
    with pytest.raises(TrainingError, match="in use by another training run"):
        train(run_config(**TINY, max_steps=5, out_dir=str(tmp_path)), resume=True, **QUIET)
    proc.kill()
    proc.wait()
    with pytest.raises(CheckpointError, match="settings differ"):  # the lock is gone; only the settings differ now
        train(run_config(**TINY, max_steps=5, out_dir=str(tmp_path)), resume=True, **QUIET)


def test_your_runs_write_where_the_reference_results_are_not():
    import study
    from config import CHECKPOINTS, PLOTS
    t = study.resolve(study.StudyConfig(checkpoint="checkpoints/reference/MiniGPT-2M"))
    # a reference checkpoint's study gets its own name and folder: never the user's own 2M run's
    assert t.name == "reference-MiniGPT-2M" and t.out_json == CHECKPOINTS / t.name / f"induction_{t.name}.json"
    assert t.plots_dir == PLOTS / t.name
    assert run_config("2M").run_dir == CHECKPOINTS / "MiniGPT-2M" and run_config("2M").plots_dir == PLOTS / "MiniGPT-2M"
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "runs/x.json", "Plots/MiniGPT-2M/Loss_Curve_MiniGPT-2M.png",
                              "Plots/MiniGPT-2M/Attention_Page_MiniGPT-2M.html", "checkpoints/MiniGPT-2M/best.pt",
                              "checkpoints/last_run.txt", "checkpoints/reference-MiniGPT-2M/induction.json"], cwd=ROOT,
                             capture_output=True, text=True).stdout
    assert len(ignored.split()) == 6, "a user's outputs must be git-ignored, never committed reference files"
    tracked = subprocess.run(["git", "ls-files", "Plots"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    # the one committed image is the page's screenshot, a name no run writes (runs write Plots/<run>/)
    assert tracked == ["Plots/AttentionPage_Screenshot.png", "Plots/README.md"]


# ---- memory ------------------------------------------------------------------------------------

def _tiny_checkpoint(tmp_path):
    return train(run_config(**TINY, max_steps=2, eval_interval=2, out_dir=str(tmp_path / "run")), **QUIET).best


def test_a_compressed_checkpoint_is_refused_before_it_is_inflated(tmp_path):
    src = _tiny_checkpoint(tmp_path)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
        zout.writestr(f"{zin.namelist()[0].split('/')[0]}/data/999", b"\0" * 50_000_000)  # inflates 1000x
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(CheckpointError, match="holds compressed entries .* refusing to inflate them"):
        load_checkpoint(bomb)


def test_a_context_longer_than_the_data_is_refused_before_anything_is_allocated(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(TrainingError, match="too few for windows of block_size 3,000; use a block_size below"):
        train(run_config(**{**TINY, "novels": ("emma[:2000]",)}, block_size=3000, out_dir=str(tmp_path)), **QUIET)
    with pytest.raises(ConfigError, match="block_size is 300,000, above this project's limit of 4,096"):
        run_config(**TINY, block_size=300_000)
    assert time.perf_counter() - t0 < 30


def test_a_data_file_is_not_read_when_its_size_is_wrong(tmp_path, monkeypatch):
    shutil.copy(corpus.MANIFEST, tmp_path)
    (tmp_path / "emma.txt").write_bytes(b"x" * 2_000_000)
    read = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self.name) or real(self))
    with pytest.raises(CorpusError, match=r"emma.txt does not match .*\(2,000,000 bytes, expected 883,028\)"):
        read_novel("emma", tmp_path)
    assert "emma.txt" not in read


# ---- values that used to be accepted -----------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(max_new_tokens=-1), r"max_new_tokens must be an integer in \[0, 10,000\]"),
    (dict(max_new_tokens=10 ** 9), r"max_new_tokens must be an integer in \[0, 10,000\]"),
    (dict(top_k=True), "top_k must be None or an integer >= 1"),
    (dict(top_k=0), "top_k must be None or an integer >= 1"),
    (dict(temperature=float("nan")), "temperature must be a finite number > 0"),
    (dict(temperature=float("inf")), "temperature must be a finite number > 0"),
])
def test_bad_generation_arguments(kw, match):
    from TransformerModel import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
    args = dict(max_new_tokens=3) | kw
    with pytest.raises(ValueError, match=match):
        model.generate(torch.zeros(1, 2, dtype=torch.long), **args)


def test_negative_seeds_are_refused_before_any_work():
    import study
    for seed in (-1, 2 ** 64):
        with pytest.raises(ConfigError, match=r"seed must be in \[0, 2\*\*32\)"):
            run_config("2M", seed=seed)
        with pytest.raises(ConfigError, match=r"seed must be in \[0, 2\*\*32\)"):
            study.StudyConfig(checkpoint="x.pt", seed=seed)
    with pytest.raises(ConfigError, match=r"n_random_draws must be in \[0, 1,000\]"):
        study.StudyConfig(checkpoint="x.pt", n_random_draws=-1)


# ---- messages instead of tracebacks ------------------------------------------------------------

def test_checkpoint_paths_that_exist_but_are_not_files(tmp_path):
    with pytest.raises(CheckpointError, match="is not a regular file"):
        load_checkpoint(tmp_path)
    os.mkfifo(tmp_path / "fifo.pt")
    with pytest.raises(CheckpointError, match="fifo.pt is not a regular file"):
        load_checkpoint(tmp_path / "fifo.pt")


def test_an_architecture_mismatch_names_the_weights(tmp_path):
    path = _tiny_checkpoint(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["n_embd"] = 64
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"weights do not fit its config \(wte.weight is \(\d+, 32\), the config "
                                              r"needs \(\d+, 64\)"):
        load_model(path)


def test_a_corrupt_bpe_tokenizer_is_a_tokenizer_error():
    with pytest.raises(TokenizerError, match="the stored BPE tokenizer is corrupt"):
        from_state({"kind": "bpe", "json": "{not json"})


def test_resuming_weights_only_is_explained(tmp_path):
    best = _tiny_checkpoint(tmp_path)
    run = tmp_path / "weights-only"
    run.mkdir()
    shutil.copy(best, run / "latest.pt")
    with pytest.raises(CheckpointError, match="holds weights only .* cannot be resumed"):
        train(run_config(**TINY, max_steps=5, out_dir=str(run)), resume=True, **QUIET)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_missing_device_is_named():
    with pytest.raises(ConfigError, match="device 'cuda' is not available here; use --device auto or one of cpu"):
        config.pick_device("cuda")


def test_study_outputs_are_checked_before_the_work(tmp_path):
    import study
    best = _tiny_checkpoint(tmp_path)
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ConfigError, match="the summary path .*dir.json is a directory"):
        study.load(study.StudyConfig(checkpoint=str(best), out_json=str(tmp_path / "dir.json")))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CheckpointError, match="cannot write the figures into .*a-file/plots"):
        study.load(study.StudyConfig(checkpoint=str(best), plots_dir=str(tmp_path / "a-file" / "plots"),
                                     out_json=str(tmp_path / "s.json")))


@pytest.mark.parametrize("manifest, match", [
    ("[]", "must map each file name"),
    ('{"emma.txt": {"sha256": "ab"}}', "must map each file name"),
    ('{"emma.txt": {"sha256": "ab", "bytes": "12"}}', "must map each file name"),
    ('{"emma.txt": {"sha256": "ab", "by', "is not valid JSON"),
])
def test_a_malformed_manifest_is_named(tmp_path, manifest, match):
    shutil.copy(corpus.DATA_DIR / "emma.txt", tmp_path)
    (tmp_path / "MANIFEST.json").write_text(manifest)
    with pytest.raises(CorpusError, match=f"MANIFEST.json {match}"):
        read_novel("emma", tmp_path)


@pytest.mark.slow
def test_a_notebook_parameter_of_the_wrong_type_is_named(tmp_path):
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match=r"StudyConfig.checkpoint must be str or None, got 5 \(int\)"):
        pm.execute_notebook(str(ROOT / "InductionHeads.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"CHECKPOINT": 5}, cwd=str(ROOT), kernel_name="python3", progress_bar=False)


@pytest.mark.slow
def test_the_cli_prints_errors_without_a_traceback(tmp_path):
    r = subprocess.run([os.sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--grad-clip", "-1",
                        "--out-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == "error: RunConfig.grad_clip must be > 0, got -1.0"
    r = subprocess.run([os.sys.executable, str(ROOT / "study.py"), str(tmp_path / "none.pt")], capture_output=True,
                       text=True)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "none.pt does not exist" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_full_disk_during_training_is_a_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import checkpoint
    real, calls = checkpoint.torch.save, {"n": 0}

    def full_disk(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] > 4:  # steps 0 and 10 saved best.pt and latest.pt
            raise OSError(28, "No space left on device")
        return real(obj, f, *a, **kw)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(TrainingError, match=r"cannot write .*\.pt: No space left on device; the previous .*\.pt is "
                                            r"intact\. Free some space, then continue with --resume"):
        train(run_config(**TINY, max_steps=30, eval_interval=10, out_dir=str(tmp_path)), **QUIET)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "latest.pt")["step"] == 10 and not list(tmp_path.glob(".*.tmp"))
