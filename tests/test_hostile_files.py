"""Robustness, round 3 (issue #28): a checkpoint can neither write nor allocate where it likes, the committed results
are read-only, real faults give their messages, resume checks what it resumes, inputs are checked before the work."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import checkpoint
import config
import study
import train as train_mod
from checkpoint import CheckpointError, OutputError, load_model, write_json
from config import ConfigError, run_config
from ctrl_c import ctrl_c, start
from tokenizer import TokenizerError
from samples import SampleError, generate_text
from train import TrainingError, train

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(preset="tiny", batch_size=8, lr=3e-3, eval_batches=2, novels=("emma",))
QUIET = dict(progress=False, samples=False, plots_dir=None)


def tree_hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny resumable run (latest.pt, best.pt)."""
    out = tmp_path_factory.mktemp("run")
    train(run_config(**TINY, max_steps=4, eval_interval=2, out_dir=str(out)), **QUIET)
    return out


def crafted(ckpt_path: Path, dst: Path, edit) -> Path:
    ckpt = torch.load(ckpt_path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


# ---- 1. a checkpoint's own fields never reach file paths -----------------------------------------

def test_a_preset_that_climbs_out_of_runs_is_refused_and_the_results_are_untouched(run_dir, tmp_path):
    before = tree_hashes(ROOT / "results")
    for preset in ("x/../../results/induction_MiniGPT-2M", "../x", "a/b", "x\0y", "..", "a" * 200):
        bad = crafted(run_dir / "best.pt", tmp_path / "bad.pt", lambda c: c["train_config"].update(preset=preset))
        with pytest.raises(CheckpointError, match="cannot name files"):
            study.load(study.StudyConfig(checkpoint=str(bad), plots_dir=str(tmp_path / "plots")))
    assert tree_hashes(ROOT / "results") == before and not (tmp_path / "plots").exists()
    # and a study's outputs are named after the checkpoint's folder and file, never after a field inside the file
    t = study.resolve(study.StudyConfig(checkpoint=str(bad)))
    assert t.name == f"{tmp_path.name}-bad" and t.out_json.parent == tmp_path


@pytest.mark.parametrize("name", ["/../../x", "../x", "a/b", "..", "x..y/"])
def test_names_from_flags_are_refused(name):
    with pytest.raises(OutputError, match="cannot name files"):
        study.StudyConfig(checkpoint="x.pt", name=name)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "attention_page.py"), "x.pt", "--name", name],
                       capture_output=True, text=True) if name == "/../../x" else None
    if r is not None:
        assert r.returncode == 1 and "cannot name files" in r.stderr and "Traceback" not in r.stderr


def test_every_output_stays_in_its_folder(tmp_path):
    with pytest.raises(OutputError, match="would be written outside"):
        checkpoint.output_path(tmp_path / "plots" / ".." / "x.png", tmp_path / "plots")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "link").symlink_to(tmp_path)  # a link out of the folder is followed, then refused
    with pytest.raises(OutputError, match="would be written outside"):
        checkpoint.output_path(tmp_path / "plots" / "link" / "x.png", tmp_path / "plots")


# ---- 2. a small file never allocates large memory -----------------------------------------------

def peak_load(path: Path) -> tuple[str, float, float]:
    """Load a checkpoint in a fresh process: (its stderr, peak resident MB, seconds of load_model; importing torch
    before it is not timed, as it took seconds on a loaded 2-core machine)."""
    code = ("import resource, sys, time; sys.path.insert(0, sys.argv[2]); import checkpoint; t = time.time()\n"
            "try:\n    checkpoint.load_model(sys.argv[1])\nexcept checkpoint.CheckpointError as e:\n"
            "    print('refused:', e, file=sys.stderr)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.time() - t)")
    r = subprocess.run([sys.executable, "-c", code, str(path), str(ROOT)], capture_output=True, text=True, timeout=120)
    mb, s = map(float, r.stdout.split())
    return r.stderr, mb, s


@pytest.mark.parametrize("edit, match", [
    # one stored float presented as a 60,000 x 50,000 tensor (zero strides), and a 2.5e9-element one
    (lambda c: c["model"].update({"wte.weight": torch.zeros(1).expand(60_000, 50_000)}), "not a dense array"),
    (lambda c: c["model"].update({"wpe.weight": torch.zeros(1).expand(50_000, 50_000)}), "not a dense array"),
    (lambda c: c["optimizer"]["state"][0].update(exp_avg=torch.zeros(1).expand(60_000, 50_000)), "not a dense array"),
    # a stored config far larger than the weights the file holds, or than any model here
    (lambda c: c["model_config"].update(n_embd=4096, n_head=4), r"weights do not fit its config"),
    (lambda c: c["model_config"].update(n_layer=10 ** 6), "n_layer is 1,000,000, above this project's limit"),
    (lambda c: c["model_config"].update(n_embd=10 ** 6), "n_embd is 1,000,000, above this project's limit"),
    (lambda c: c["model_config"].update(block_size=10 ** 9), "block_size is 1,000,000,000, above"),
])
def test_a_crafted_checkpoint_is_refused_within_10_s_and_1_GB(run_dir, tmp_path, edit, match):
    bad = crafted(run_dir / "latest.pt", tmp_path / "bad.pt", edit)
    assert bad.stat().st_size < 2_000_000
    err, mb, s = peak_load(bad)
    assert "refused:" in err and re.search(match, err), err
    assert mb < 1024 and s < 10, f"peak {mb:.0f} MB, {s:.1f} s"


@pytest.mark.parametrize("kw, match", [
    (dict(preset="2M", tokenizer="bpe", vocab_size=10 ** 9), "vocab_size is 1,000,000,000, above"),
    (dict(preset="2M", block_size=2_000_000), "block_size is 2,000,000, above this project's limit of 4,096"),
    (dict(preset="2M", max_steps=10 ** 12), "max_steps is 1,000,000,000,000, above the limit"),
    (dict(preset="2M", warmup_steps=10 ** 12), "warmup_steps is 1,000,000,000,000, above the limit"),
])
def test_sizes_from_flags_have_upper_bounds(kw, match):
    with pytest.raises(ConfigError, match=match):
        run_config(**kw)


def test_a_run_too_large_for_this_machine_is_refused_before_allocating(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"eval_batches 1,000,000 x batch 8 x context 64 is .* above the limit"):
        run_config(**{**TINY, "eval_batches": 10 ** 6})
    monkeypatch.setattr(train_mod, "physical_memory", lambda: 16 * 2 ** 30)  # the same verdict on any machine
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"this run needs about 22.0 GiB .* more than 80% of this machine's 16.0 GiB"):
        train(run_config(**{**TINY, "batch_size": 30_000}, max_steps=5, out_dir=str(tmp_path)), **QUIET)
    assert time.perf_counter() - t0 < 30 and not (tmp_path / "latest.pt").exists()


def test_study_and_generation_sizes_have_upper_bounds(tiny_run):
    with pytest.raises(ConfigError, match=r"n_prompts <= 4,096"):
        study.StudyConfig(checkpoint="x.pt", n_prompts=10 ** 7)
    with pytest.raises(ConfigError, match=r"n_random_draws must be in \[0, 1,000\]"):
        study.StudyConfig(checkpoint="x.pt", n_random_draws=10 ** 6)
    with pytest.raises(ValueError, match=r"max_new_tokens must be an integer in \[0, 10,000\]"):
        generate_text(tiny_run.model, tiny_run.tokenizer, "it is", max_new_tokens=10 ** 9)


# ---- 3. the committed reference results are read-only ------------------------------------------------

def test_no_command_writes_into_the_reference_results(run_dir, tmp_path):
    before = {d: tree_hashes(ROOT / d) for d in ("checkpoints/reference/MiniGPT-2M", "results")}
    ref = ROOT / "checkpoints" / "reference"
    for out_dir in (ref / "MiniGPT-2M", ref, ROOT / "results", ref / "new-run"):
        with pytest.raises(OutputError, match="holds the committed reference results"):
            train(run_config(**TINY, max_steps=2, out_dir=str(out_dir)), overwrite=True, **QUIET)
    with pytest.raises(OutputError, match="holds the committed reference results"):
        train(run_config(**TINY, max_steps=2, out_dir=str(tmp_path / "r")), progress=False, samples=False,
              plots_dir=ROOT / "results" / "figures")
    for kw in (dict(out_json=str(ROOT / "results" / "induction_MiniGPT-5.6M.json")),
               dict(plots_dir=str(ROOT / "results" / "figures")), dict(plots_dir=str(ref / "MiniGPT-2M"))):
        with pytest.raises(OutputError, match="holds the committed reference results"):
            study.load(study.StudyConfig(checkpoint=str(run_dir / "best.pt"), **kw))
    after = {d: tree_hashes(ROOT / d) for d in before}
    assert after == before and not list(ref.rglob(".lock")) and not (ref / "new-run").exists()


def test_the_regenerating_commands_may_write_there(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "ROOT", tmp_path)  # a stand-in repository
    with pytest.raises(OutputError, match="only `make reference`, `make exp` and `make promote` rewrite"):
        write_json(tmp_path / "results" / "x.json", [1])
    monkeypatch.setenv(checkpoint.WRITE_REFERENCE, "1")
    assert json.loads(write_json(tmp_path / "results" / "x.json", [1]).read_text()) == [1]


# ---- 4. real faults give the promised messages ------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB filesystem (tmpfs) where this machine allows mounting one, else skip."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def fill(disk: Path, leave: int):
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_a_really_full_disk_during_training_is_the_promised_message(small_disk):
    out = small_disk / "run"
    fill(small_disk, 500_000)  # room for the first checkpoints (~370 KB each), not for the next
    with pytest.raises(TrainingError, match=r"cannot write .*\.pt: No space left on device; the previous .* is "
                                            r"intact\. Free some space, then continue with --resume"):
        train(run_config(**TINY, max_steps=30, eval_interval=10, out_dir=str(out)), **QUIET)
    assert not list(out.glob(".*.tmp"))
    (small_disk / "filler").unlink()
    res = train(run_config(**TINY, max_steps=30, eval_interval=10, out_dir=str(out)), resume=True, **QUIET)
    assert res.metrics[-1].step == 30


def test_torch_s_own_full_disk_error_becomes_an_os_error(tmp_path, monkeypatch):
    """Where no filesystem can be mounted: torch.save's real exception (its zip writer's) on a file that fails."""
    real_open = open

    class Full:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            if self.n > 1000:
                raise OSError(28, "No space left on device")
            return self.f.write(b)

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr("builtins.open", lambda p, m="r", *a, **k: Full(real_open(p, m, *a, **k))
                        if str(p).endswith(".tmp") else real_open(p, m, *a, **k))
    from TransformerModel import GPT, GPTConfig
    from tokenizer import CharTokenizer
    with pytest.raises(OSError) as e:
        checkpoint.save_checkpoint(tmp_path / "x.pt", GPT(GPTConfig(10, 8, 1, 1, 8)), CharTokenizer.train("abcdefghij"))
    assert e.value.errno == 28 and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_full_disk_at_the_study_summary_is_a_message_and_leaves_no_temp_file(run_dir, small_disk):
    fill(small_disk, 30_000)
    with pytest.raises(SystemExit) as exit_:  # a message as the code: Python prints it to stderr and exits 1
        study.main([str(run_dir / "best.pt"), "--n-prompts", "8", "--n-ablate", "4", "--n-random-draws", "2",
                    "--plots-dir", str(small_disk / "plots"), "--out-json", str(small_disk / "s.json"),
                    "--precision", "fp32"])
    assert isinstance(exit_.value.code, str) and "No space left on device" in exit_.value.code
    assert not list(small_disk.rglob("*.tmp"))


def test_two_processes_writing_one_record_never_collide(tmp_path):
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from checkpoint import write_json\n"
            "for i in range(100): write_json(sys.argv[1], {'i': i, 'pad': 'x' * 50_000})")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "r.json"), str(ROOT)], stderr=subprocess.PIPE)
             for _ in range(2)]
    assert [p.wait() for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    assert json.loads((tmp_path / "r.json").read_text())["i"] == 99 and not list(tmp_path.glob(".*"))
    assert (tmp_path / "r.json").stat().st_mode & 0o044  # readable by others, as a plain write would make it


@pytest.mark.parametrize("delay", [0.3, 1.5, 4.0])
def test_ctrl_c_anywhere_exits_quietly_with_130(tmp_path, delay):
    """In the imports, the corpus and tokenizer, or the training loop: never a KeyboardInterrupt traceback."""
    proc = start([sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--novels", "emma", "--max-steps",
                  "100000", "--out-dir", str(tmp_path), "--no-progress", "--plots-dir", str(tmp_path / "plots")],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(delay)
    out, err = ctrl_c(proc, timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err


# train.py run as __main__ with `hook` (Python lines that see the module `name` being imported) before each import.
WITH_IMPORT_HOOK = """
import builtins, os, runpy, signal, sys
real_import = builtins.__import__
def import_(name, *args, **kwargs):
{hook}
    return real_import(name, *args, **kwargs)
builtins.__import__ = import_
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def train_with_import_hook(tmp_path, hook: str) -> subprocess.CompletedProcess:
    code = WITH_IMPORT_HOOK.format(hook=textwrap.indent(textwrap.dedent(hook).strip(), "    "))
    return subprocess.run([sys.executable, "-c", code, str(ROOT / "train.py"), "--preset", "tiny", "--novels", "emma",
                           "--max-steps", "1", "--eval-batches", "1", "--no-progress", "--out-dir", str(tmp_path / "run"),
                           "--plots-dir", str(tmp_path / "plots")], capture_output=True, text=True, timeout=300)


def test_ctrl_c_inside_torchs_own_numpy_import_is_not_lost(tmp_path):
    """At its first import of numpy, which comes from inside torch's C init, which clears whatever error it raises:
    a CI run lost its Ctrl-C there and trained on."""
    proc = train_with_import_hook(tmp_path, """
        if name.startswith("numpy") and not hasattr(import_, "sent"):
            import_.sent = True
            os.kill(os.getpid(), signal.SIGINT)""")
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr[-3000:])
    assert not list(tmp_path.iterdir())  # stopped before it made anything


def test_ctrl_c_that_surfaces_as_another_error_still_exits_quietly_with_130(tmp_path):
    """Inside a lazy import after the script's own: a CI run's landed in torch._dynamo, which torch.optim imports on
    first use, inside a dataclass's __set_name__, and surfaced as a RuntimeError caused by the KeyboardInterrupt."""
    proc = train_with_import_hook(tmp_path, """
        if name == "torch._dynamo" and "torch._dynamo" not in sys.modules:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from KeyboardInterrupt()""")
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr[-3000:])


# ---- 5. resume checks what it resumes ----------------------------------------------------------------

@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(step=-50), r"records step -50, not an integer >= 0"),
    (lambda c: c.update(step=10.5), r"its 'step' is a float, not a int"),
    (lambda c: c.update(metrics='[{"step": "x"}]'), "its metrics are not a training log"),
    (lambda c: c.update(metrics="{{{"), "its metrics are not a training log"),
    (lambda c: c["rng"].update(batch=torch.zeros(3, dtype=torch.uint8)), "its RNG state is not a generator state"),
    (lambda c: c["model"].update({"wte.weight": torch.zeros(5, 5)}), r"weights do not fit its config"),
    (lambda c: c["optimizer"]["param_groups"].pop(), "optimizer state does not fit the model's parameters"),
    (lambda c: c["optimizer"]["state"][0].update(exp_avg=torch.zeros(3)), "optimizer state does not fit the model's"),
    (lambda c: c["optimizer"]["state"].update({0: "x"}), "optimizer state does not fit the model's"),
    (lambda c: c["model"]["wte.weight"].__setitem__((0, 0), float("nan")),
     r"holds NaN or infinity; the run diverged before this checkpoint was written, so use an earlier one"),
])
def test_a_tampered_latest_is_refused_and_nothing_is_trained(run_dir, tmp_path, edit, match):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    crafted(run / "latest.pt", run / "latest.pt", edit)
    metrics = (run / "metrics.json").read_bytes()
    with pytest.raises(CheckpointError, match=match):
        train(run_config(**TINY, max_steps=8, eval_interval=2, out_dir=str(run)), resume=True, **QUIET)
    assert (run / "metrics.json").read_bytes() == metrics


def test_resume_below_the_step_reached_is_refused(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with pytest.raises(TrainingError, match=r"is at step 4, beyond --max-steps 2; pass --max-steps 4 or more"):
        train(run_config(**TINY, max_steps=2, eval_interval=2, out_dir=str(run)), resume=True, **QUIET)


def test_a_swapped_vocabulary_entry_is_refused(run_dir, tmp_path):
    def swap(c):
        state = json.loads(c["tokenizer"])
        chars = state["chars"]
        state["chars"] = chars[0] + chars[2] + chars[1] + chars[3:]
        c["tokenizer"] = json.dumps(state)
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    crafted(run / "latest.pt", run / "latest.pt", swap)
    with pytest.raises(CheckpointError, match="vocabulary differs from the one its corpus and settings build"):
        train(run_config(**TINY, max_steps=8, eval_interval=2, out_dir=str(run)), resume=True, **QUIET)
    crafted(run_dir / "best.pt", tmp_path / "swapped.pt", swap)
    with pytest.raises(CheckpointError, match="vocabulary differs"):
        study.load(study.StudyConfig(checkpoint=str(tmp_path / "swapped.pt"), plots_dir=str(tmp_path / "p"),
                                     out_json=str(tmp_path / "s.json")))


# ---- 6. inputs are checked before the work -----------------------------------------------------------

@pytest.mark.parametrize("prompt, error", [("", ConfigError), ("x", ConfigError), ("\u2603 snow", TokenizerError)])
def test_a_bad_page_prompt_fails_before_the_study(run_dir, tmp_path, prompt, error):
    t0 = time.perf_counter()
    with pytest.raises(error):
        study.load(study.StudyConfig(checkpoint=str(run_dir / "best.pt"), page_prompt=prompt,
                                     plots_dir=str(tmp_path / "p"), out_json=str(tmp_path / "s.json")))
    assert time.perf_counter() - t0 < 20 and not list((tmp_path / "p").glob("*.png"))


def test_an_unwritable_plots_dir_fails_before_training(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputError, match="cannot write the loss curve into"):
        train(run_config(**TINY, max_steps=3, out_dir=str(tmp_path / "run")), progress=False, samples=False,
              plots_dir=tmp_path / "a-file" / "plots")
    assert not (tmp_path / "run").exists()


# ---- 7. the remaining tracebacks and silent accepts ------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--lr", "inf"], "error: RunConfig.lr must be a finite number, got inf"),
    (["--seed", str(2 ** 64)], r"error: RunConfig.seed must be in [0, 2**32), got 18446744073709551616"),
    (["--device", "banana"], "error: RunConfig.device must be one of auto, cpu, cuda, mps, got 'banana'"),
])
def test_train_cli_errors(tmp_path, args, message):
    """In this process (a process start costs seconds); test_the_cli_prints_errors_without_a_traceback runs one."""
    with pytest.raises(SystemExit) as exit_:  # a message as the code: Python prints it to stderr and exits 1
        train_mod.main(["--preset", "tiny", "--out-dir", str(tmp_path), *args])
    assert exit_.value.code == message and not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--seed", str(2 ** 64)], r"seed must be in [0, 2**32)"),
    (["--device", "banana"], "device 'banana' is not available here"),
    (["--n-ablate", "1000", "--n-prompts", "20"], "need 2 <= n_ablate <= n_prompts"),
] + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "device 'cuda' is not available here")]))
def test_study_cli_errors(run_dir, args, message):
    with pytest.raises(SystemExit) as exit_:
        study.main([str(run_dir / "best.pt"), *args])
    assert isinstance(exit_.value.code, str) and message in exit_.value.code


def test_a_deeply_nested_manifest_is_named(tmp_path):
    from corpus import CorpusError, read_novel
    shutil.copy(ROOT / "Data" / "emma.txt", tmp_path)
    (tmp_path / "MANIFEST.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CorpusError, match="is not valid JSON"):
        read_novel("emma", tmp_path)


def test_notebook_parameters_of_the_wrong_type_are_named():
    with pytest.raises(ConfigError, match=r"notebook parameter PLOTS_DIR must be str, got 5 \(int\)"):
        config.notebook_parameters({"PLOTS_DIR": 5}, config.RunConfig, {"PLOTS_DIR": str, "RESUME": bool})
    with pytest.raises(ConfigError, match=r"notebook parameter RESUME must be bool, got 'maybe'"):
        config.notebook_parameters({"RESUME": "maybe"}, config.RunConfig, {"PLOTS_DIR": str, "RESUME": bool})
    with pytest.raises(ConfigError, match=r"unknown preset \['2M'\]"):
        run_config(["2M"])


def test_interop_without_its_extras_says_how_to_install_them(monkeypatch, tiny_run):
    import importlib.util

    import interop
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModuleNotFoundError, match="pip install -c requirements.txt -r requirements-interop.txt"):
        interop.to_transformer_lens(tiny_run.model, tiny_run.tokenizer)


@pytest.mark.parametrize("prompt, kw, match", [
    (None, {}, "the prompt must be text"), (b"it is", {}, "the prompt must be text"),
    ("", {}, "encodes to no tokens"), ("it is", dict(seed=2 ** 64), r"seed must be an integer in \[0, 2\*\*32\)"),
])
def test_bad_generation_inputs(tiny_run, prompt, kw, match):
    with pytest.raises(SampleError, match=match):
        generate_text(tiny_run.model, tiny_run.tokenizer, prompt, **kw)


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(model=[1, 2]), r"its 'model' is a list, not a dict"),
    (lambda c: c["model"].update({"wte.weight": "a string"}), r"wte.weight is str"),
    (lambda c: c.update(train_config="2M"), r"its 'train_config' is a str, not a dict"),
    (lambda c: c.update(tokenizer=["x"]), r"its 'tokenizer' is a list, not a str"),
])
def test_a_checkpoint_of_the_wrong_shape_is_named(run_dir, tmp_path, edit, match):
    with pytest.raises(CheckpointError, match=match):
        load_model(crafted(run_dir / "best.pt", tmp_path / "bad.pt", edit))


def test_a_warmup_longer_than_the_run_is_said(tmp_path, capsys):
    train(run_config(**TINY, max_steps=3, warmup_steps=50, out_dir=str(tmp_path)), **QUIET)
    assert "warmup_steps 50 exceeds max_steps 3, so the learning rate never reaches its peak" in capsys.readouterr().out


# ---- checkpoints/last_run.txt is read safely (issue #43 item 4) --------------------------------------------------

@pytest.mark.parametrize("make_it, why", [
    (lambda p: p.symlink_to("/dev/zero"), "is a symbolic link, not the file training writes"),
    (lambda p: os.mkfifo(p), "is not a regular file"),
    (lambda p: p.write_bytes(b"\xff\xfe run"), "does not hold one run's name"),
    (lambda p: p.write_bytes(b"x" * 10_000_000), "does not hold one run's name"),
    (lambda p: p.symlink_to(Path(__file__).resolve().parent.parent / "README.md"), "is a symbolic link"),
    (lambda p: p.write_text("../../etc\n"), "does not hold one run's name"),
])
def test_a_last_run_file_that_is_not_one_run_name_gets_one_line_that_never_echoes_it(tmp_path, monkeypatch,
                                                                                     make_it, why):
    import study
    last = tmp_path / "last_run.txt"
    make_it(last)
    monkeypatch.setattr(study, "LAST_RUN", last)
    with pytest.raises(study.ConfigError) as e:
        study.resolve(study.StudyConfig())
    assert why in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 400


def test_a_last_run_file_names_the_run_to_study(tmp_path, monkeypatch):
    import study
    (tmp_path / "last_run.txt").write_text("MiniGPT-2M\n")
    monkeypatch.setattr(study, "LAST_RUN", tmp_path / "last_run.txt")
    assert study.last_run() == "MiniGPT-2M"


# ---- a full disk only when it is, and Ctrl-C during a save (issue #43 item 6) ----------------------------------

def test_a_failed_save_is_a_full_disk_only_when_the_disk_is_full(tmp_path, monkeypatch):
    import checkpoint
    from TransformerModel import GPT, GPTConfig
    from tokenizer import build_tokenizer
    tok = build_tokenizer("char", "abc", "abc")
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8))

    def failing_save(obj, f):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(RuntimeError, match="unexpected pos"):  # the disk has room: not "No space left on device"
        checkpoint.save_checkpoint(tmp_path / "a.pt", model, tok)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: shutil_usage(free=1024))
    with pytest.raises(OSError, match="No space left on device"):
        checkpoint.save_checkpoint(tmp_path / "a.pt", model, tok)
    assert not list(tmp_path.iterdir())  # no half-written file either way


def shutil_usage(free):
    import shutil
    return shutil._ntuple_diskusage(10 ** 9, 10 ** 9 - free, free)


def test_ctrl_c_during_a_save_is_held_until_the_file_is_whole_then_raised(tmp_path, monkeypatch):
    import signal
    import checkpoint
    from TransformerModel import GPT, GPTConfig
    from tokenizer import build_tokenizer
    tok = build_tokenizer("char", "abc", "abc")
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8))
    real_save = checkpoint.torch.save

    def interrupted_save(obj, f):
        os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, while the file is being written
        real_save(obj, f)

    monkeypatch.setattr(checkpoint.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):  # train.py's main turns it into exit 130
        checkpoint.save_checkpoint(tmp_path / "a.pt", model, tok)
    assert checkpoint.load_model(tmp_path / "a.pt")[0].config.n_embd == 8  # written whole before the interrupt
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


@pytest.mark.parametrize("env", [{}, {"MINIGPT_WRITE_REFERENCE": "1"}])
def test_the_corpus_folder_is_never_an_output(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    data = Path(checkpoint.ROOT) / "Data"
    with pytest.raises(OutputError, match="Data/ holds the Austen corpus, which only scripts/build_corpus.py rewrites"):
        checkpoint.output_path(data / "run" / "best.pt", what="checkpoint")
    with pytest.raises(OutputError, match="Data/ holds the Austen corpus"):  # train.py --out-dir Data
        train_mod.locked(data).__enter__()


def test_promote_of_a_run_whose_stored_preset_climbs_out_is_a_one_line_error(run_dir, tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(checkpoint.ROOT) / "scripts"))
    import promote
    monkeypatch.setattr(promote, "REFERENCE", tmp_path / "reference")
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    crafted(run_dir / "latest.pt", run / "latest.pt", lambda c: c["train_config"].update(preset="../../etc"))
    with pytest.raises(SystemExit, match="^error: ") as e:
        promote.main([str(run), "x"])
    assert "preset" in str(e.value) and not any((tmp_path / "reference").rglob("*"))


def test_the_study_notebook_of_a_file_that_is_not_a_checkpoint_is_one_line_before_papermill_starts(tmp_path, capsys):
    sys.path.insert(0, str(Path(checkpoint.ROOT) / "scripts"))
    import study_notebook
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(SystemExit, match="^error: .*notes.pt"):
        study_notebook.main([str(tmp_path / "notes.pt")])
    assert "Traceback" not in capsys.readouterr().err and not (tmp_path / "InductionHeads.ipynb").exists()


# ---- one study, one name (issue #43 item 3) -------------------------------------------------------------------

def test_best_and_final_of_one_run_get_their_own_outputs(run_dir):
    best = study.resolve(study.StudyConfig(checkpoint=str(run_dir / "best.pt")))
    final = study.resolve(study.StudyConfig(checkpoint=str(run_dir / "latest.pt")))
    assert best.name == run_dir.name and final.name == f"{run_dir.name}-latest"
    assert len({best.out_json, final.out_json}) == 2 and best.plots_dir != final.plots_dir


def test_a_figures_folder_belongs_to_one_run_folder(tmp_path):
    plots = tmp_path / "Plots" / "run"
    checkpoint.claim_plots(plots, tmp_path / "a" / "run")
    checkpoint.claim_plots(plots, tmp_path / "a" / "run")  # the same run again: its own folder
    with pytest.raises(OutputError, match=r"holds the figures of the run in .*a/run, not of .*b/run; give this one "
                                          r"another name \(study: --name"):
        checkpoint.claim_plots(plots, tmp_path / "b" / "run")


def test_training_a_second_run_of_the_same_name_elsewhere_keeps_the_first_runs_loss_curve(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "PLOTS", tmp_path / "Plots")
    train(run_config(**TINY, max_steps=2, eval_interval=2, out_dir=str(tmp_path / "a" / "run")), progress=False)
    curve = tmp_path / "Plots" / "run" / "Loss_Curve_run.png"
    before = curve.read_bytes()
    with pytest.raises(OutputError, match="holds the figures of the run in"):
        train(run_config(**TINY, max_steps=2, eval_interval=2, out_dir=str(tmp_path / "b" / "run")), progress=False)
    assert curve.read_bytes() == before and not (tmp_path / "b" / "run").exists()


def test_a_run_still_training_is_not_studied(run_dir):
    with train_mod.locked(run_dir):  # what a training holds while it runs
        with pytest.raises(ConfigError, match="is still training"):
            study.load(study.StudyConfig(checkpoint=str(run_dir / "best.pt")))
        sys.path.insert(0, str(ROOT / "scripts"))
        import study_notebook
        with pytest.raises(SystemExit, match="^error: .* is still training"):
            study_notebook.main([str(run_dir / "best.pt")])
    study.check_not_training(study.resolve(study.StudyConfig(checkpoint=str(run_dir / "best.pt"))))  # it ended


def test_loading_a_model_whose_vocabulary_was_edited_is_refused_as_the_study_refuses_it(run_dir, tmp_path):
    def swap(c):
        state = json.loads(c["tokenizer"])
        key = next(k for k, v in state.items() if isinstance(v, (list, str)) and k != "kind")
        v = state[key]
        state[key] = [v[1], v[0], *v[2:]] if isinstance(v, list) else v[1] + v[0] + v[2:]
        c["tokenizer"] = json.dumps(state)

    bad = crafted(run_dir / "best.pt", tmp_path / "best.pt", swap)
    with pytest.raises(CheckpointError, match="vocabulary differs from the one its corpus and settings build"):
        load_model(bad)  # and with it generation and the TransformerLens export
