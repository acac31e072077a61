"""The study's effects, each a PAIRED estimate with its 95% interval, from results rows (aggregate.collect).

Pairs are runs of the same (data set, backbone, training size) and seed: the same training subset (the seed draws it;
a recorded subset_digest must match too) and the same test rows. With two or more seed pairs the interval is the
paired t over seeds; with one pair and per-row correctness on the same rows, a paired bootstrap over the rows; else
the estimate stands without an interval.

    transfer gain     each transfer method minus scratch, method by method. Never "best method minus scratch": the
                      maximum of several noisy means is biased upward, and picking the winner on test is selection.
    LP-FT under shift (shifted - in-distribution accuracy) of LP-FT minus that of full fine-tuning, on the same rows:
                      Kumar et al.'s claim is that it is > 0 (also full vs linear probe: < 0).
    forgetting        after - before on the same probe rows, per method; the linear probe is the zero-change control;
                      scratch never knew the source task and is left out.
    scratch gap       full fine-tuning minus scratch at the smallest and largest training size (He et al.: it shrinks).
    source quality    one backbone minus another under the same method (Kornblith et al.: better source, better transfer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hftl.compare.aggregate import PER_ROW, cell_interval
from hftl.compare.stats import (
    Estimate,
    bootstrap_mean,
    mcnemar_p,
    paired_difference,
    t_interval,
    welch_difference,
)

Row = dict[str, Any]
SOURCE = ("modality", "dataset", "backbone", "shots_per_class")


def _key(row: Row, keys: tuple[str, ...]) -> tuple:
    return tuple(row[k] for k in keys)


def groups(rows: list[Row], keys: tuple[str, ...] = SOURCE) -> dict[tuple, list[Row]]:
    out: dict[tuple, list[Row]] = {}
    for row in rows:
        out.setdefault(_key(row, keys), []).append(row)
    return out


def by_seed(rows: list[Row], method: str) -> dict[Any, Row]:
    return {r["seed"]: r for r in rows if r["method"] == method}


def _same_subset(a: Row, b: Row) -> bool:
    return not (a.get("subset_digest") and b.get("subset_digest") and a["subset_digest"] != b["subset_digest"])


def paired(a: dict[Any, Row], b: dict[Any, Row], value: Callable[[Row], float | None],
           per_row: Callable[[Row], np.ndarray | None] | None = None) -> Estimate | None:
    """value(a) - value(b) over the seeds both have (same subset), with the interval the module docstring names."""
    seeds = [s for s in a if s in b and _same_subset(a[s], b[s])]
    estimate = paired_difference({s: value(a[s]) for s in seeds}, {s: value(b[s]) for s in seeds})
    if estimate is None or estimate.has_interval or per_row is None or len(seeds) != 1:
        return estimate
    rows_a, rows_b = per_row(a[seeds[0]]), per_row(b[seeds[0]])
    same = (rows_a is not None and rows_b is not None and len(rows_a) == len(rows_b)
            and a[seeds[0]][PER_ROW].get("test_ids") == b[seeds[0]][PER_ROW].get("test_ids"))  # fmt: skip
    return bootstrap_mean(rows_a - rows_b) if same else estimate


def accuracy(row: Row) -> float | None:
    return row.get("test_accuracy")


def test_rows(row: Row) -> np.ndarray | None:
    correct = row[PER_ROW].get("test")
    return None if correct is None else np.asarray(correct, dtype=np.float64)


def shift_minus_id(row: Row) -> float | None:
    """Shifted minus in-distribution accuracy, only when both are on the same rows (else None: not comparable)."""
    if not row.get("shift_same_rows") or row.get("shift_mean_accuracy") is None or row.get("test_accuracy") is None:
        return None
    return row["shift_mean_accuracy"] - row["test_accuracy"]


def shift_minus_id_rows(row: Row) -> np.ndarray | None:
    shifted, correct = row[PER_ROW].get("shift"), row[PER_ROW].get("test")
    if not shifted or correct is None:
        return None
    return np.mean([np.asarray(v, dtype=np.float64) for v in shifted.values()], axis=0) - np.asarray(correct, dtype=np.float64)


def transfer_gains(rows: list[Row]) -> list[Row]:
    """Per source and size, each pretrained method minus scratch (paired over seeds)."""
    out = []
    for key, members in groups(rows).items():
        scratch = by_seed(members, "scratch")
        if not scratch:
            continue
        for method in dict.fromkeys(r["method"] for r in members):
            if method == "scratch":
                continue
            mine = by_seed(members, method)
            gain = paired(mine, scratch, accuracy, test_rows)
            if gain is not None:
                out.append({**dict(zip(SOURCE, key, strict=True)), "method": method, "gain": gain,
                            "mcnemar_p": _mcnemar(mine, scratch), "scratch_variant": _variant(scratch.values())})  # fmt: skip
    return out


def _mcnemar(a: dict[Any, Row], b: dict[Any, Row]) -> float | None:
    """McNemar's exact p where exactly one seed pair has per-row correctness on the same rows (else None)."""
    seeds = [s for s in a if s in b and _same_subset(a[s], b[s])]
    if len(seeds) != 1:
        return None
    x, y = a[seeds[0]][PER_ROW], b[seeds[0]][PER_ROW]
    if x.get("test") is None or y.get("test") is None or x.get("test_ids") != y.get("test_ids"):
        return None
    return mcnemar_p(x["test"], y["test"])


def run_variant(row: Row) -> str | None:
    """study.variant as the run turned out: a run declared 'converged' (early stopping under a cap) that stopped at
    the cap did not converge: 'capped'. An L-BFGS probe fit that converged is 'converged' (runs recorded before
    hftl.run.study.variant said so carry 'fixed_budget', from the loop's unused patience)."""
    if row.get("variant") == "converged" and row.get("stopped") == "cap":
        return "capped"
    if row.get("stopped") == "converged":  # only the L-BFGS probe records this stop
        return "converged"
    return row.get("variant")


def _variant(rows: Any) -> str:
    """'converged', 'capped', 'fixed_budget', a mix, or 'not recorded' (older runs)."""
    found = sorted({str(run_variant(r)) for r in rows if run_variant(r)})
    return "/".join(found) or "not recorded"


def shift_claims(rows: list[Row], method: str, baseline: str) -> list[Row]:
    """Per source and size: (shift - ID) of method minus that of baseline, and the ID difference, paired over seeds."""
    out = []
    for key, members in groups(rows).items():
        a, b = by_seed(members, method), by_seed(members, baseline)
        if not a or not b:
            continue
        claim = paired(a, b, shift_minus_id, shift_minus_id_rows)
        if claim is None:
            continue
        in_dist = paired(a, b, accuracy, test_rows)
        shifted = paired(a, b, lambda r: r.get("shift_mean_accuracy") if r.get("shift_same_rows") else None)
        out.append({**dict(zip(SOURCE, key, strict=True)), "method": method, "baseline": baseline,
                    "claim": claim, "in_distribution": in_dist, "shifted": shifted})  # fmt: skip
    return out


def forgetting_changes(rows: list[Row]) -> list[Row]:
    """Per source, size and method (scratch left out): after - before on the probe rows, over seeds."""
    out = []
    for key, members in groups(rows).items():
        for method in dict.fromkeys(r["method"] for r in members):
            if method == "scratch":  # never had the source knowledge: nothing to forget
                continue
            mine = [r for r in members if r["method"] == method and r.get("forgetting_change") is not None]
            if not mine:
                continue
            change = t_interval(r["forgetting_change"] for r in mine)
            per_row = mine[0][PER_ROW]
            if not change.has_interval and per_row.get("before") and per_row.get("after"):
                change = bootstrap_mean(np.asarray(per_row["after"], float) - np.asarray(per_row["before"], float))
            out.append({**dict(zip(SOURCE, key, strict=True)), "method": method, "change": change,
                        "control": any(r.get("forgetting_control") for r in mine) or method == "linear_probe",
                        "probe_rows": mine[0].get("forgetting_rows"),
                        "learning_rate": mine[0].get("learning_rate")})  # fmt: skip
    return out


def scratch_gaps(rows: list[Row], method: str = "full") -> list[Row]:
    """Per (modality, data set, backbone): method minus scratch at the smallest and largest size, and how the gap
    changed (smallest minus largest; Welch: different sizes draw different subsets, so they are not paired)."""
    out = []
    for key, members in groups(rows, SOURCE[:3]).items():
        per_size = {}
        for size in dict.fromkeys(r["shots_per_class"] for r in members):
            at = [r for r in members if r["shots_per_class"] == size]
            a, b = by_seed(at, method), by_seed(at, "scratch")
            gaps = [a[s]["test_accuracy"] - b[s]["test_accuracy"] for s in a if s in b and _same_subset(a[s], b[s])
                    and a[s].get("test_accuracy") is not None and b[s].get("test_accuracy") is not None]  # fmt: skip
            if gaps:
                per_size[size] = (gaps, max(r.get("train_size") or 0 for r in at), _variant(b.values()))
        if len(per_size) < 2:
            continue
        order = sorted(per_size, key=lambda s: per_size[s][1])
        small, large = order[0], order[-1]
        out.append({**dict(zip(SOURCE[:3], key, strict=True)), "method": method, "small": small, "large": large,
                    "gap_small": t_interval(per_size[small][0], "paired t over seeds"),
                    "gap_large": t_interval(per_size[large][0], "paired t over seeds"),
                    "shrink": welch_difference(per_size[small][0], per_size[large][0]),
                    "scratch_variant": "/".join(sorted({per_size[s][2] for s in per_size}))})  # fmt: skip
    return out


def backbone_difference(rows: list[Row], better: str, worse: str, method: str) -> list[Row]:
    """Per (modality, data set, size): backbone ``better`` minus ``worse`` under one method, paired over seeds."""
    out = []
    for key, members in groups(rows, ("modality", "dataset", "shots_per_class")).items():
        a = by_seed([r for r in members if r["backbone"] == better], method)
        b = by_seed([r for r in members if r["backbone"] == worse], method)
        if a and b:
            diff = paired(a, b, accuracy, test_rows)
            if diff is not None:
                out.append({"modality": key[0], "dataset": key[1], "shots_per_class": key[2], "method": method,
                            "better": better, "worse": worse, "difference": diff})  # fmt: skip
    return out


def learning_rate_sweep(rows: list[Row], methods: tuple[str, str] = ("lora", "full")) -> list[Row]:
    """Biderman et al.: LoRA and full fine-tuning along a learning-rate sweep (runs of one cell at several learning
    rates). Per source and size with at least 2 rates per method: each point's accuracy and forgetting change (over
    seeds), and the paired differences (first minus second method) at each method's rate with the best mean
    VALIDATION accuracy (never chosen on test)."""
    out = []
    for key, members in groups(rows).items():
        curves: dict[str, dict[float, list[Row]]] = {}
        for r in members:
            if r["method"] in methods and r.get("learning_rate") is not None:
                curves.setdefault(r["method"], {}).setdefault(r["learning_rate"], []).append(r)
        if any(len(curves.get(m, {})) < 2 for m in methods):
            continue
        points = {m: [{"learning_rate": lr, "accuracy": cell_interval(rs, "test_accuracy"),
                       "forgetting": t_interval(r.get("forgetting_change") for r in rs)}
                      for lr, rs in sorted(curves[m].items())] for m in methods}  # fmt: skip
        chosen = {m: max(curves[m], key=lambda lr, m=m: np.mean([r.get("val_accuracy") or 0.0 for r in curves[m][lr]]))
                  for m in methods}  # fmt: skip
        a, b = ({r["seed"]: r for r in curves[m][chosen[m]]} for m in methods)
        out.append({**dict(zip(SOURCE, key, strict=True)), "methods": methods, "points": points, "chosen": chosen,
                    "learns": paired(a, b, accuracy, test_rows),
                    "forgets": paired(a, b, lambda r: r.get("forgetting_change"))})  # fmt: skip
    return out
