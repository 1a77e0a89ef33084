"""The report scripts that turn committed training logs into results (scripts/natural_text.py, dose_response.py)."""
import sys

import numpy as np
import pytest

import induction as ind
from config import ROOT
from train import MetricsRow

sys.path.insert(0, str(ROOT / "scripts"))
import dose_response  # noqa: E402
import natural_text  # noqa: E402


def _log(pm: float, cp: float) -> ind.ProbeLog:
    """A probe log whose one head has prefix matching pm and copying cp, each with a CI of ± 0.05."""
    one = lambda v: ind.HeadScores(np.full((1, 1), v), np.full((1, 1), v - 0.05), np.full((1, 1), v + 0.05))  # noqa: E731
    hv = one(pm).at(0, 0)
    return ind.ProbeLog(hv, hv, 0.1, 0.0, np.zeros((1, 1)), one(pm), one(cp), hv, ind.Estimate(0, 0, 0))


def _run(scores, tokens_per_step=512, losses=None):
    """A log with one row per (prefix matching, copying) pair, 1,000 steps apart."""
    losses = losses or [5.0] * len(scores)
    return [MetricsRow(step=1000 * (i + 1), tokens=1000 * (i + 1) * tokens_per_step, train_loss=loss, val_loss=loss,
                       val_bpc=1.0, lr=1e-3, elapsed_s=1.0, train_s=1.0,
                       probes={k: _log(*s) for k in ("random", "random-known", "text-val")})
            for i, (s, loss) in enumerate(zip(scores, losses))]


def test_the_law_predicts_what_the_paper_tabulates():
    assert natural_text.predicted_tokens(8 * 64) / 1e6 == pytest.approx(11.3, abs=0.1)
    assert natural_text.predicted_tokens(32 * 128) / 1e6 == pytest.approx(32.1, abs=0.1)


def test_natural_text_report_places_formation_at_the_first_row_where_both_lower_bounds_clear():
    pm, cp = (ind.CRITERIA[k].threshold for k in ind.INDUCTION_SCORES)
    run = _run([(0.1, 0.1), (pm + 0.1, cp - 0.01), (pm + 0.05, cp + 0.05), (0.9, 3.0)])
    lines = natural_text.report("r", run)
    assert "predicts formation at 11.3M tokens" in lines[0] and "logged to 2.05M tokens (0.18x" in lines[0]
    assert "first induction head at 1.54M tokens (L0H0; previous probe 1.02M)" in lines[1]
    never = natural_text.report("r", _run([(0.1, 0.2), (0.3, 0.1)]))
    assert "no induction head within 1.02M tokens" in never[1] and "prefix_match L0H0 0.300" in never[1]


def test_a_lever_moves_formation_earlier_only_by_more_than_one_probe_interval():
    no, yes = (0.1, 0.1), (0.9, 3.0)  # 512,000 tokens between rows
    control = _run([no, no, yes, yes])
    assert natural_text.earlier(_run([yes] * 4), control).startswith("EARLIER: 0.51M tokens against the control's 1.54M")
    assert natural_text.earlier(_run([no, yes, yes, yes]), control).startswith("not earlier: 1.02M")  # one interval
    assert natural_text.earlier(_run([no] * 4), control).startswith("not earlier: no induction head within 2.05M")
    assert natural_text.earlier(_run([no, no, no, yes]), _run([no] * 4)).startswith("EARLIER: an induction head at 2.05M")


def test_dose_response_measures_pace_and_cost_against_the_control():
    control = _run([(0.1, 0.1)] * 4, losses=[5.0, 4.8, 4.6, 4.5])
    fast = _run([(0.1, 0.1), (0.9, 3.0), (0.9, 3.0), (0.9, 3.0)], losses=[5.2, 4.9, 4.7, 4.6])
    lines = dose_response.report({0.0: control, 0.5: fast})
    assert "no induction head within 2.05M tokens" in lines[0]
    assert "final validation loss 4.600 after 2.05M tokens (+0.100 against the control" in lines[1]
    assert "first induction head after 1.02M tokens (L0H0), at least 2.0x the control's pace" in lines[1]
