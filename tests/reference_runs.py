"""The committed reference runs, as the interop tests read them."""
from checkpoint import run_weights
from config import ROOT

REF = ROOT / "checkpoints" / "reference"


def weights(run):
    """A reference run's weights: the reference models ship as exported folders, the other runs as best.pt."""
    return run_weights(REF / run)
