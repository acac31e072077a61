"""What a run records for a transfer study (results.json 'study' and 'per_row'; /work STUDY_CONTRACT fields).

    study.subset_seed / subset_digest   which training subset this run drew (each seed of a study draws its own)
    study.selection                     how its hyper-parameters were chosen on validation (hftl compare's grid or
                                        search, and the probe's own C sweep), never on test
    study.budget                        the step cap, the steps taken, and why training stopped
    study.variant                       "converged" (early stopping on validation, or an L-BFGS probe fit, under a
                                        cap) or "fixed_budget"
    per_row                             the test rows' ids and this run's correctness on each, clean and shifted
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from hftl.config import Config
from hftl.run.training import TrainResult


def subset_digest(row_ids: list[str]) -> str:
    """sha256 (first 16 hex) of the sorted training row ids: equal digests, equal subsets."""
    return hashlib.sha256("\n".join(sorted(row_ids)).encode()).hexdigest()[:16]


def stopped(cfg: Config, result: TrainResult) -> str:
    if cfg.training.early_stopping_patience is None:
        return "fixed_budget"
    return "early_stopping" if result.state.stop_reason == "early_stopping" else "cap"


def budget(cfg: Config, result: TrainResult, probe_result: TrainResult | None) -> dict[str, Any]:
    """The loop's cap, steps and stop; a probe fitted by L-BFGS says so (its iterations are not loop steps)."""
    if result.budget is not None:  # the linear probe: the L-BFGS fit is the whole training
        return dict(result.budget)
    out = {
        "cap_steps": result.total_steps,
        "steps": result.state.step,
        "best_step": result.state.best_step,
        "stopped": stopped(cfg, result),
        "patience_evals": cfg.training.early_stopping_patience,
        "min_steps": cfg.training.min_steps,
        "eval_steps": cfg.training.eval_steps,
    }
    if probe_result is not None:  # lp_ft: the fine-tune phase has full fine-tuning's cap; the probe phase apart
        out["probe_phase"] = probe_result.budget or {
            "solver": "sgd", "cap_steps": probe_result.total_steps, "steps": probe_result.state.step,
        }
        out["matched_to_full"] = "fine-tune phase: the same step cap and early stopping as method=full; " + (
            "the probe phase is an L-BFGS fit on cached features (no loop steps)" if probe_result.budget
            else f"plus {probe_result.state.step} probe-phase steps on the frozen backbone"
        )
    return out


def selection(cfg: Config, result: TrainResult, probe_result: TrainResult | None) -> dict[str, Any] | None:
    """The study's selection (from hftl compare) merged with the probe's own C sweep, if any."""
    declared = json.loads(cfg.study.selection) if cfg.study.selection else None
    probe = (probe_result or result).selection
    if declared is None:
        return probe
    if probe is None:
        return declared
    return {
        **declared,
        "searched": {**declared.get("searched", {}), **probe["searched"]},
        "chosen": {**declared.get("chosen", {}), **probe["chosen"]},
        "probe": probe,
    }


def study_section(cfg: Config, train_ids: list[str], result: TrainResult, probe_result: TrainResult | None) -> dict[str, Any]:
    return {
        "subset_seed": cfg.data.split_seed if cfg.data.subset_seed is None else cfg.data.subset_seed,
        "subset_digest": subset_digest(train_ids),
        "train_rows": len(train_ids),
        "selection": selection(cfg, result, probe_result),
        "budget": budget(cfg, result, probe_result),
        "variant": variant(cfg, result),
    }


def variant(cfg: Config, result: TrainResult) -> str:
    """'converged': trained until validation (early stopping) or the optimiser (an L-BFGS probe fit, whatever the
    loop's patience) said stop, under a cap; 'fixed_budget': a set number of loop steps."""
    if result.budget is not None or cfg.training.early_stopping_patience is not None:
        return "converged"
    return "fixed_budget"


def correct(preds: np.ndarray, labels: np.ndarray) -> list[int]:
    return [int(p == t) for p, t in zip(np.asarray(preds).tolist(), np.asarray(labels).tolist(), strict=True)]
