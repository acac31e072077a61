"""From run results to REPORT_DIR/results.csv (one row per run) and each grid cell's mean with its 95% interval.

A run's optional measurements (transferability, shift, forgetting, and the study's sections of
STUDY_CONTRACT.md: study, per_row) are read with .get(): a column is empty where a run did not measure it, so older
runs still aggregate. Per-row correctness (test rows, shifted rows, forgetting probe rows) stays in memory under
PER_ROW for the paired statistics; results.csv holds the per-run numbers only.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hftl import files
from hftl.compare.grid import GridRun
from hftl.compare.runner import run_status
from hftl.compare.stats import (
    Estimate,
    chance_normalised,
    log_t_interval,
    normalised_estimate,
    proportion_interval,
    t_interval,
    wilson_interval,
)
from hftl.run.record import RunRecord, read_record

COLUMNS = [
    "modality", "dataset", "backbone", "method", "shots_per_class", "train_size", "seed",
    "test_accuracy", "test_f1_macro", "trainable_params", "total_params", "train_runtime_s",
    "shift_mean_accuracy", "knn_before", "knn_after", "cka", "wer_before", "wer_after", "logme", "knn_transfer",
    "run_dir",
    # the study's fields (STUDY_CONTRACT.md); empty for older runs
    "classes", "test_rows", "chance_normalised_accuracy", "val_accuracy", "learning_rate", "variant", "steps",
    "cap_steps", "stopped", "tuned", "tuning_trials", "subset_seed", "subset_digest", "shift_same_rows",
    "forgetting_change", "forgetting_rows", "forgetting_control", "score_rows", "feature_dim", "n_le_d", "cka_debiased",
    "probe_transfer",  # transferability: logistic-probe accuracy train -> validation on the frozen features
    # speech recognition runs (task speech_recognition): word error rates, lower is better; empty for classifiers
    "task", "test_wer", "test_cer", "val_wer", "source_test_wer", "extra_splits_wer",
    "run_state",  # runner.run_status when collected: done, or changed (finished under another config than the spec's now)
]  # fmt: skip
CONFIG_CHANGES = "config_changes"  # in-memory only: a changed run's differing config keys (runner.run_status)
PER_ROW = "per_row"  # in-memory only: {"test": [0|1...], "test_ids": [...], "shift": {name: [0|1...]},
#                       "before": [0|1...], "after": [0|1...]} (whichever the run recorded)
# A grid cell: the runs that differ only by seed.
CELL = ("modality", "dataset", "backbone", "method", "shots_per_class")
# Columns averaged over seeds.
MEASURES = [
    "test_accuracy", "test_f1_macro", "shift_mean_accuracy", "train_size", "trainable_params", "train_runtime_s",
    "knn_before", "knn_after", "cka", "wer_before", "wer_after", "logme", "knn_transfer",
    "chance_normalised_accuracy", "test_rows", "steps", "forgetting_change", "probe_transfer",
]  # fmt: skip


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _mean01(values: Any) -> float | None:
    return float(sum(values) / len(values)) if isinstance(values, list) and values else None


def _tuned(selection: dict[str, Any]) -> str | None:
    """'learning_rate=0.0003 of 6 (validation accuracy)': what the search chose, from how many values."""
    chosen = selection.get("chosen") or {}
    if not chosen:
        return None
    searched = selection.get("searched") or {}
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items()]
    sizes = [f"{len(searched[k])}" for k in chosen if isinstance(searched.get(k), list)]
    return "; ".join(parts) + (f" (of {' x '.join(sizes)} on {selection.get('split', 'validation')})" if sizes else "")


def row_from_results(run: GridRun, results: RunRecord) -> dict[str, Any]:
    """The results.csv row of one finished run (plus its per-row correctness under PER_ROW, in memory only)."""
    transfer = results.measurement("transferability")
    shift = results.measurement("shift")
    forgetting = results.measurement("forgetting")
    study = results.measurement("study")
    per_row = results.measurement("per_row")
    budget, selection = study.get("budget") or {}, study.get("selection") or {}
    accuracy = _number(results.test.get("accuracy"))
    classes = len(results.data.labels) or None
    test_correct = per_row.get("test_correct") if isinstance(per_row.get("test_correct"), list) else None
    shifted = {k: v for k, v in (per_row.get("shift") or {}).items() if isinstance(v, list) and v}
    same_rows = bool(shifted) and test_correct is not None and all(len(v) == len(test_correct) for v in shifted.values())
    shift_mean = (sum(_mean01(v) for v in shifted.values()) / len(shifted)) if same_rows else _number(shift.get("mean_accuracy"))
    before, after = forgetting.get("correct_before"), forgetting.get("correct_after")
    change = (_mean01(after) - _mean01(before)) if _mean01(before) is not None and _mean01(after) is not None else None
    if change is None and _number(forgetting.get("knn_accuracy_after")) is not None:
        change = _number(forgetting.get("knn_accuracy_after")) - (_number(forgetting.get("knn_accuracy_before")) or 0.0)
    n_rows, dim = transfer.get("n_rows"), transfer.get("feature_dim")
    n_le_d = transfer.get("n_le_d", (n_rows <= dim) if isinstance(n_rows, int) and isinstance(dim, int) else None)
    row = {
        "modality": run.modality,
        "dataset": run.dataset,
        "backbone": run.backbone,
        "method": run.method,
        "shots_per_class": run.shots,
        "train_size": results.data.sizes.get("train"),
        "seed": run.seed,
        "test_accuracy": accuracy,
        "test_f1_macro": _number(results.test.get("f1_macro")),
        "trainable_params": results.params.get("trainable"),
        "total_params": results.params.get("total"),
        "train_runtime_s": _number(results.train.runtime_s),
        "shift_mean_accuracy": shift_mean,
        "knn_before": _number(forgetting.get("knn_accuracy_before")),
        "knn_after": _number(forgetting.get("knn_accuracy_after")),
        "cka": _number(forgetting.get("cka")),
        "wer_before": _number(forgetting.get("wer_before")),
        "wer_after": _number(forgetting.get("wer_after")),
        "logme": _number(transfer.get("logme")),
        "knn_transfer": _number(transfer.get("knn", transfer.get("knn_accuracy"))),
        "probe_transfer": _number(transfer.get("probe_accuracy")),
        "run_dir": str(run.run_dir),
        "classes": classes,
        "test_rows": len(test_correct) if test_correct else results.data.sizes.get("test"),
        "chance_normalised_accuracy": chance_normalised(accuracy, classes) if accuracy is not None and classes and classes > 1 else None,
        "val_accuracy": _number(results.eval.get("accuracy")),
        "learning_rate": _number((selection.get("chosen") or {}).get("learning_rate", run.config.training.learning_rate)),
        "variant": study.get("variant"),
        "steps": budget.get("steps", results.train.steps),
        "cap_steps": budget.get("cap_steps"),
        "stopped": budget.get("stopped") or results.train.stop_reason or ("early_stopping" if results.train.stopped_early else None),
        "tuned": _tuned(selection),
        "tuning_trials": selection.get("trials"),
        "subset_seed": study.get("subset_seed"),
        "subset_digest": study.get("subset_digest"),
        "shift_same_rows": same_rows if shift_mean is not None else None,
        "forgetting_change": change,
        "forgetting_rows": forgetting.get("probe_rows", len(before) if isinstance(before, list) else None),
        "forgetting_control": forgetting.get("control"),
        "score_rows": n_rows,
        "feature_dim": dim,
        "n_le_d": n_le_d,
        "cka_debiased": _number(forgetting.get("cka_debiased")),  # similarity.linear_cka(..., debiased=True)
        **_wer_fields(results),
    }  # fmt: skip
    row[PER_ROW] = {
        k: v for k, v in {"test": test_correct, "test_ids": per_row.get("test_ids"), "shift": shifted if same_rows else None,
                          "before": before if isinstance(before, list) else None,
                          "after": after if isinstance(after, list) else None}.items()
        if v is not None
    }  # fmt: skip
    return row


def _wer_fields(results: RunRecord) -> dict[str, Any]:
    """A speech recognition run's word error rates: test / validation, the source model's on the same test rows
    (asr.source_baseline), and each extra split (asr.extra_splits) before and after training, as JSON."""
    source, after = results.measurement("source_model"), results.measurement("extra_splits")
    wer = lambda section, split: _number((section.get(split) or {}).get("wer"))  # noqa: E731
    extra = {name: {"before": wer(source, name), "after": wer(after, name)} for name in after}
    return {
        "task": results.run.task,
        "test_wer": _number(results.test.get("wer")),
        "test_cer": _number(results.test.get("cer")),
        "val_wer": _number(results.eval.get("wer")),
        "source_test_wer": wer(source, "test"),
        "extra_splits_wer": json.dumps(extra, sort_keys=True) if extra else None,
    }


def collect(runs: Iterable[GridRun], states: tuple[str, ...] = ("done",)) -> list[dict[str, Any]]:
    """Rows of the runs that finished with the config the spec asks for (in grid order); the others are left out.

    states: run states to read ("changed" too: finished with another config, e.g. a tuned one, for --verdicts).
    Each row records its run's state (run_state) and a changed run's differing keys (CONFIG_CHANGES), read here once:
    the report describes the runs as they were collected.
    """
    out = []
    for run in runs:
        state, changes = run_status(run)
        if state in states:
            out.append({**row_from_results(run, read_record(run.run_dir)), "run_state": state, CONFIG_CHANGES: changes})
    return out


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """results.csv: COLUMNS in order; an absent value is an empty field."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)  # None is written as an empty field
    files.write_text_atomic(path, buffer.getvalue())


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation (n - 1) of the values present; std is None below two values."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return None, None, 0
    mean = sum(present) / len(present)
    if len(present) < 2:
        return mean, None, len(present)
    var = sum((v - mean) ** 2 for v in present) / (len(present) - 1)
    return mean, math.sqrt(var), len(present)


# Measures that live in [0, 1] (shares of rows right, macro F1, CKA, word / character error rates) -> the column that
# counts the rows each was scored on (None: not recorded). A cell's interval for them stays inside [0, 1]
# (stats.proportion_interval); every other measure gets the t interval over seeds.
PROPORTIONS: dict[str, str | None] = {
    "test_accuracy": "test_rows", "test_f1_macro": "test_rows", "shift_mean_accuracy": "test_rows",
    "test_wer": "test_rows", "test_cer": "test_rows", "source_test_wer": "test_rows",
    "knn_before": "forgetting_rows", "knn_after": "forgetting_rows",
    "val_accuracy": None, "val_wer": None, "knn_transfer": None, "probe_transfer": None, "cka": None,
    "cka_debiased": None, "wer_before": None, "wer_after": None, "extra_split_wer": None,  # transcripts: a split's WER
}  # fmt: skip


# Positive costs: skewed and multiplicative (one run 3x slower than another under load), so their interval is on the
# log scale (stats.log_t_interval: the geometric mean, never below 0); the table and figure say "geometric mean".
COSTS = ("train_runtime_s",)


def cell_interval(members: list[dict[str, Any]], key: str,
                  value: Callable[[dict[str, Any]], float | None] | None = None) -> Estimate | None:
    """The mean of one measure over a cell's seeds with its 95% interval, chosen here for every table and figure.

    key in PROPORTIONS: stats.proportion_interval, its zero-spread fallback on the rows (PROPORTIONS[key]) pooled over
    the seeds (test rows for test measures: utterances for word error rates, fewer than words, so wider);
    test accuracy of a single seed: Wilson on its test rows. A word error rate above 1 (more insertions than
    reference words) leaves [0, 1]: that cell gets the t interval. key in COSTS: the geometric mean and the t
    interval of the log values (a cost of 0 or less, which no timing should be, falls back to t). Other keys: t over
    seeds.
    value: how to read the measure from a row (default row[key]; e.g. one extra split's WER).
    """
    read = value or (lambda r: r.get(key))
    present = [(r, read(r)) for r in members if read(r) is not None]
    values = [v for _, v in present]
    if key in COSTS and all(v > 0 for v in values):
        return log_t_interval(values)
    if key not in PROPORTIONS or not all(0.0 <= v <= 1.0 for v in values):
        return t_interval(values)
    rows = [r.get(PROPORTIONS[key]) if PROPORTIONS[key] else None for r, _ in present]
    pooled = sum(rows) if rows and all(isinstance(n, int) and n > 0 for n in rows) else None
    if len(values) == 1 and key == "test_accuracy" and pooled:
        return wilson_interval(round(values[0] * pooled), pooled)
    return proportion_interval(values, pooled)


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per grid cell (first-seen order): the cell's keys, n (seeds), MEASURE_mean / MEASURE_std, and
    the intervals: accuracy_ci, chance_ci (chance-normalised), f1_ci, shift_ci, runtime_ci (Estimates or None)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in CELL), []).append(row)
    out = []
    for key, members in groups.items():
        cell: dict[str, Any] = dict(zip(CELL, key, strict=True))
        cell["n"] = len(members)
        for measure in MEASURES:
            mean, std, _ = mean_std(r.get(measure) for r in members)
            cell[f"{measure}_mean"], cell[f"{measure}_std"] = mean, std
        cell["accuracy_ci"] = cell_interval(members, "test_accuracy")
        classes = members[0].get("classes")
        cell["chance_ci"] = (normalised_estimate(cell["accuracy_ci"], classes)
                             if cell["accuracy_ci"] is not None and classes and classes > 1 else None)  # fmt: skip
        cell["f1_ci"] = cell_interval(members, "test_f1_macro")
        cell["shift_ci"] = cell_interval(members, "shift_mean_accuracy")
        cell["runtime_ci"] = cell_interval(members, "train_runtime_s")
        cell["stopped"] = ", ".join(f"{n} {reason}" for reason, n in _counts(r.get("stopped") for r in members).items())
        out.append(cell)
    return out


def _counts(values: Iterable[Any]) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for v in values:
        if v not in (None, ""):
            counts[v] = counts.get(v, 0) + 1
    return counts


def fmt_interval(estimate: Estimate | None, digits: int = 3) -> str:
    return "-" if estimate is None else estimate.text(digits)


def _fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{round(value):,}"


TABLE_HEADER = ["modality", "dataset", "backbone", "method", "shots/class", "seeds", "train size", "test rows",
                "test accuracy [95%]", "chance-normalised [95%]", "test F1 (macro) [95%]", "shifted accuracy [95%]",
                "trainable params", "steps (stopped by)", "train s, geometric mean [95%]"]  # fmt: skip


def table_rows(cell_list: list[dict[str, Any]]) -> list[list[str]]:
    """The summary table (each number with its 95% interval), as strings; shared by the markdown and HTML reports."""
    return [
        [
            c["modality"], c["dataset"], c["backbone"], c["method"], str(c["shots_per_class"]), str(c["n"]),
            _fmt_count(c["train_size_mean"]), _fmt_count(c["test_rows_mean"]),
            fmt_interval(c["accuracy_ci"]), fmt_interval(c["chance_ci"]), fmt_interval(c["f1_ci"]),
            fmt_interval(c["shift_ci"]), _fmt_count(c["trainable_params_mean"]),
            _fmt_count(c["steps_mean"]) + (f" ({c['stopped']})" if c["stopped"] else ""),
            fmt_interval(c["runtime_ci"], digits=1),
        ]
        for c in cell_list
    ]  # fmt: skip


def markdown_table(cell_list: list[dict[str, Any]]) -> str:
    return markdown(TABLE_HEADER, table_rows(cell_list))


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table (header and string cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
