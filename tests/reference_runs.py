"""The committed reference runs, as the interop tests read them."""
from config import ROOT

REF = ROOT / "checkpoints" / "reference"


def weights(run):
    """A reference run's weights: the reference models ship as exported folders, the other runs as best.pt."""
    return REF / run if (REF / run / "model.safetensors").exists() else REF / run / "best.pt"
