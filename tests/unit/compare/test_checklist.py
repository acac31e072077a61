"""The reviewer's checklist says how runs stopped: a run declared 'converged' that hit its cap is 'capped'."""

from __future__ import annotations

from hftl.compare import checklist


def _row(method, stopped, variant="converged"):
    return {"dataset": "d", "method": method, "shots_per_class": 16, "backbone": "b", "steps": 60 if stopped == "cap" else 30,
            "cap_steps": 60, "stopped": stopped, "variant": variant}  # fmt: skip


def test_capped_scratch_is_named_in_budgets_and_not_concluded():
    rows = [_row("scratch", "cap"), _row("scratch", "cap"), _row("scratch", "early_stopping"), _row("full", "early_stopping")]
    assert "scratch: 30-60 steps under a cap of 60, stopped by 2 cap, 1 early_stopping (2 capped, 1 converged)" \
        in checklist.budgets(rows)
    said = checklist.not_concluded(rows)
    assert "scratch stopped at its step cap in 2 of 3 runs (capped, not converged; the gain over it is convergence speed)" in said


def test_converged_scratch_leaves_the_worth_of_pretraining_open_to_conclusion():
    rows = [_row("scratch", "early_stopping"), _row("full", "early_stopping")]
    assert "pre-training is worth" not in checklist.not_concluded(rows)
    assert "what pre-training is worth where scratch did not train to convergence" in checklist.not_concluded(
        [_row("scratch", "cap", variant="fixed_budget")]
    )


def test_the_transfer_gain_line_calls_a_capped_scratch_capped():
    from hftl.compare.findings import transfer_summary

    rows = []
    for seed in range(3):
        for method, acc in (("scratch", 0.3), ("full", 0.8 + 0.01 * seed)):
            rows.append({**_row(method, "cap" if method == "scratch" else "early_stopping"), "modality": "text",
                         "seed": seed, "test_accuracy": acc})  # fmt: skip
    (line,) = [x for x in transfer_summary(rows) if x.endswith("not what pre-training is worth.")]
    assert "Scratch here stopped at its step cap (capped, not converged): unless it converged" in line


def test_an_lbfgs_probe_fit_reads_converged_whatever_its_record_says():
    # probe runs recorded before hftl.run.study.variant knew the L-BFGS fit carry 'fixed_budget' (the loop's unused
    # patience); their budget says the optimiser converged: the checklist must not say both
    rows = [_row("linear_probe", "converged", variant="fixed_budget"), _row("linear_probe", "converged"),
            _row("linear_probe", "cap", variant="converged")]  # fmt: skip
    line = checklist.budgets(rows)
    assert "stopped by 2 converged, 1 cap (2 converged, 1 capped)" in line and "fixed_budget" not in line
