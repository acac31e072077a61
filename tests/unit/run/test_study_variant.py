"""study.variant: what kind of training budget a run had, as the study's checklist reads it."""

from __future__ import annotations

from types import SimpleNamespace

from hftl.config import load_config
from hftl.run import study


def test_an_lbfgs_probe_is_converged_even_without_loop_patience():
    no_patience = load_config(None, ["training.early_stopping_patience=null"])
    patience = load_config(None, ["training.early_stopping_patience=2"])
    lbfgs = SimpleNamespace(budget={"solver": "lbfgs", "cap_steps": 1000, "steps": 23, "stopped": "converged"})
    loop = SimpleNamespace(budget=None)  # a loop-trained run: its budget comes from the loop's state
    assert study.variant(no_patience, lbfgs) == "converged"  # was 'fixed_budget': the fit ran to the optimiser's stop
    assert study.variant(no_patience, loop) == "fixed_budget"
    assert study.variant(patience, loop) == "converged"
