"""Seeds: the 2M and 5.6M presets at seeds 1 and 2 beside seed 1337, the reference models.

    python -m experiments seeds        # the formation figure across seeds and sizes, from the committed logs
    python -m experiments seeds run    # train the four runs with weights, fp32, one thread each (hours)

A claim about a preset holds for three seeds, or says that it rests on one (issue #25).
"""
from experiments import FIG, REF
from experiments.formation import main  # noqa: F401  (the report)

RUNS = {f"{m}-seed{s}": ["--preset", m, "--precision", "fp32", "--seed", str(s)]
        for m in ("2M", "5.6M") for s in (1, 2)}
REPORTS = [["--out", FIG / "Induction_Formation_Sizes_Seeds.png", "--title",
            "Induction-head formation across seeds and sizes (the recipe)",
            f"2M, seed 1337 (reference)={REF}/MiniGPT-2M", f"2M, seed 1={REF}/seeds/MiniGPT-2M-seed1",
            f"2M, seed 2={REF}/seeds/MiniGPT-2M-seed2", f"5.6M, seed 1337 (reference)={REF}/MiniGPT-5.6M",
            f"5.6M, seed 1337, 2 threads (make run)={REF}/make-run/MiniGPT-5.6M"]]
