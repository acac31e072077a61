"""The reviewer's checklist at the top of the report, rendered from the spec and the run records (never by hand):
what was tuned and how, budgets and why runs stopped, seeds and whether they resampled the training subset, test
sizes (and the standard error they allow), and what this report does NOT conclude.
"""

from __future__ import annotations

import math
from typing import Any

from hftl.compare.aggregate import PER_ROW
from hftl.compare.effects import run_variant
from hftl.compare.spec import CompareSpec
from hftl.compare.transcripts import is_transcript_row


def _count(values: list[Any]) -> str:
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def _per_dataset(rows: list[dict[str, Any]], describe: Any) -> str:
    """'DATASET: m1, m2: what; m3: what' with describe(method's rows) -> str; methods that read the same share it."""
    parts = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        said: dict[str, list[str]] = {}
        for method in dict.fromkeys(r["method"] for r in rows if r["dataset"] == dataset):
            mine = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
            said.setdefault(describe(mine), []).append(method)
        parts.append(f"{dataset}: " + "; ".join(f"{', '.join(methods)}: {text}" for text, methods in said.items()))
    return " | ".join(parts)


def _tuning_of(mine: list[dict[str, Any]]) -> str:
    tuned = sorted({r["tuned"] for r in mine if r.get("tuned")})
    if tuned:
        recorded = sum(bool(r.get("tuned")) for r in mine)
        return (f"searched on validation ({'; '.join(tuned[:3])}{' ...' if len(tuned) > 3 else ''}), "
                f"{recorded} of {len(mine)} runs record it")  # fmt: skip
    rates = sorted({r["learning_rate"] for r in mine if r.get("learning_rate") is not None})
    return f"NOT tuned (fixed learning rate {', '.join(f'{x:g}' for x in rates) or 'of the recipe'})"


def tuning(spec: CompareSpec, rows: list[dict[str, Any]]) -> str:
    search = " A per-cell search ran first (spec tune:)." if getattr(spec, "tune", None) is not None else ""
    return "Tuning: " + _per_dataset(rows, _tuning_of) + "." + search


def _budget_of(mine: list[dict[str, Any]]) -> str:
    steps = [r["steps"] for r in mine if isinstance(r.get("steps"), int)]
    caps = sorted({r["cap_steps"] for r in mine if r.get("cap_steps")})
    span = f"{min(steps)}-{max(steps)} steps" if steps else "steps not recorded"
    return (span + (f" under a cap of {', '.join(map(str, caps))}" if caps else "")
            + f", stopped by {_count([r.get('stopped') or 'not recorded' for r in mine])}"
            + f" ({_count([run_variant(r) or 'variant not recorded' for r in mine])})")  # fmt: skip


def budgets(rows: list[dict[str, Any]]) -> str:
    return "Budgets: " + _per_dataset(rows, _budget_of) + "."


def seeds(spec: CompareSpec, rows: list[dict[str, Any]]) -> str:
    line = f"Seeds: {', '.join(map(str, spec.seeds))}."
    groups: dict[tuple, set[str]] = {}
    for r in rows:
        if r.get("subset_digest"):
            groups.setdefault((r["dataset"], r["shots_per_class"]), set()).add(r["subset_digest"])
    if not groups:
        return line + (" Training subsets: not recorded (study.subset_digest); older runs drew the same subset for "
                       "every seed, so their intervals leave out which examples were drawn.")  # fmt: skip
    resampled = sum(len(d) > 1 for d in groups.values())
    return line + (f" Training subsets: {resampled} of {len(groups)} (data set, size) groups drew a different subset "
                   "per seed (subset_digest); intervals over seeds include which examples were drawn.")  # fmt: skip


def test_sizes(rows: list[dict[str, Any]]) -> str:
    sizes: dict[str, set[int]] = {}
    for r in rows:
        if isinstance(r.get("test_rows"), int):
            sizes.setdefault(r["dataset"], set()).add(r["test_rows"])
    transcribed = {r["dataset"] for r in rows if is_transcript_row(r)}
    parts = [f"{d}: {', '.join(map(str, sorted(n)))} rows "
             + ("(corpus word error rate; intervals over seeds)" if d in transcribed else
                f"(standard error at 50% accuracy {100 * 0.5 / math.sqrt(min(n)):.1f} pt)")
             for d, n in sizes.items()]  # fmt: skip
    shifted = [r for r in rows if r.get("shift_mean_accuracy") is not None]
    same = sum(bool(r.get("shift_same_rows")) for r in shifted)
    shift = (f" Shifted accuracy on the same rows as in-distribution: {same} of {len(shifted)} runs." if shifted else "")
    names = list(dict.fromkeys(n for r in rows for n in (r.get(PER_ROW) or {}).get("shift", {})))
    if names:  # named by the measurement: CIFAR-10-C names only for CIFAR-10-C corruptions
        shift += f" Shifts (averaged): {', '.join(names)}."
    return "Test sizes: " + ("; ".join(parts) or "not recorded") + "." + shift


def scores(rows: list[dict[str, Any]]) -> str | None:
    scored = [r for r in rows if r.get("logme") is not None]
    if not scored:
        return None
    small = sum(r.get("n_le_d") is True for r in scored)
    unknown = sum(r.get("n_le_d") is None for r in scored)
    return (f"Transferability scores: {len(scored)} runs carry LogME; {small} computed with N <= D rows (flagged: the "
            f"prior dominates), {unknown} without a recorded N and D. The evidence keeps the (D - k) log alpha term "
            "(as the ICML 2021 code and TLlib do).")  # fmt: skip


def not_concluded(rows: list[dict[str, Any]]) -> str:
    backbones = {(r["dataset"], r["shots_per_class"]): set() for r in rows}
    for r in rows:
        backbones[(r["dataset"], r["shots_per_class"])].add(r["backbone"])
    notes = [
        "which method is best in general (only these data sets, backbones, sizes and budgets)",
        "the papers' magnitudes (verdicts judge directions and the LogME band only)",
        "transferability across methods or pooled over data sets (scores rank backbones within one data set and size)",
    ]
    if max((len(b) for b in backbones.values()), default=0) < 3:
        notes.append("any transferability ranking (fewer than 3 candidate backbones per data set and size)")
    scratch = [r for r in rows if r["method"] == "scratch"]
    capped = sum(run_variant(r) == "capped" for r in scratch)
    if capped:
        notes.append(f"what pre-training is worth: scratch stopped at its step cap in {capped} of {len(scratch)} runs "
                     "(capped, not converged; the gain over it is convergence speed)")  # fmt: skip
    elif any(run_variant(r) != "converged" for r in scratch):
        notes.append("what pre-training is worth where scratch did not train to convergence (the gain there is speed)")
    if any(r.get("shift_mean_accuracy") is not None and not r.get("shift_same_rows") for r in rows):
        notes.append("shift effects of runs whose shifted rows differ from their in-distribution rows")
    return "Not concluded: " + "; ".join(notes) + "."


def checklist(spec: CompareSpec, rows: list[dict[str, Any]]) -> list[str]:
    """The checklist's lines (each a sentence or two)."""
    lines = [tuning(spec, rows), budgets(rows), seeds(spec, rows), test_sizes(rows), scores(rows), not_concluded(rows)]
    return [line for line in lines if line]
