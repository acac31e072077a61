"""From run results to REPORT_DIR/results.csv (one row per run) and mean +- std over seeds per grid cell.

A run's optional measurements (transferability, shift, forgetting) are read with .get(): a column is empty where
a run did not measure it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hftl import files
from hftl.compare.grid import GridRun
from hftl.run.record import RunRecord, read_record

COLUMNS = [
    "modality", "dataset", "backbone", "method", "shots_per_class", "train_size", "seed",
    "test_accuracy", "test_f1_macro", "trainable_params", "total_params", "train_runtime_s",
    "shift_mean_accuracy", "knn_before", "knn_after", "cka", "wer_before", "wer_after", "logme", "knn_transfer",
    "run_dir",
]  # fmt: skip
# A grid cell: the runs that differ only by seed.
CELL = ("modality", "dataset", "backbone", "method", "shots_per_class")
# Columns averaged over seeds.
MEASURES = [
    "test_accuracy", "test_f1_macro", "shift_mean_accuracy", "train_size", "trainable_params", "train_runtime_s",
    "knn_before", "knn_after", "cka", "wer_before", "wer_after", "logme", "knn_transfer",
]  # fmt: skip


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def row_from_results(run: GridRun, results: RunRecord) -> dict[str, Any]:
    """The results.csv row of one finished run."""
    transfer = results.measurement("transferability")
    shift = results.measurement("shift")
    forgetting = results.measurement("forgetting")
    return {
        "modality": run.modality,
        "dataset": run.dataset,
        "backbone": run.backbone,
        "method": run.method,
        "shots_per_class": run.shots,
        "train_size": results.data.sizes.get("train"),
        "seed": run.seed,
        "test_accuracy": _number(results.test.get("accuracy")),
        "test_f1_macro": _number(results.test.get("f1_macro")),
        "trainable_params": results.params.get("trainable"),
        "total_params": results.params.get("total"),
        "train_runtime_s": _number(results.train.runtime_s),
        "shift_mean_accuracy": _number(shift.get("mean_accuracy")),
        "knn_before": _number(forgetting.get("knn_accuracy_before")),
        "knn_after": _number(forgetting.get("knn_accuracy_after")),
        "cka": _number(forgetting.get("cka")),
        "wer_before": _number(forgetting.get("wer_before")),
        "wer_after": _number(forgetting.get("wer_after")),
        "logme": _number(transfer.get("logme")),
        "knn_transfer": _number(transfer.get("knn_accuracy")),
        "run_dir": str(run.run_dir),
    }


def collect(runs: Iterable[GridRun]) -> list[dict[str, Any]]:
    """Rows of the runs that finished with the config the spec asks for (in grid order); the others are left out."""
    from hftl.compare.runner import run_state

    return [
        row_from_results(run, read_record(run.run_dir))
        for run in runs
        if run_state(run) == "done"
    ]


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


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per grid cell (first-seen order): the cell's keys, n (seeds), and MEASURE_mean / MEASURE_std."""
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
        out.append(cell)
    return out


def fmt_mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{round(value):,}"


TABLE_HEADER = ["modality", "dataset", "backbone", "method", "shots/class", "seeds", "train size", "test accuracy",
                "test F1 (macro)", "shifted accuracy", "trainable params", "train s"]  # fmt: skip


def table_rows(cell_list: list[dict[str, Any]]) -> list[list[str]]:
    """The summary table (mean ± std over seeds), as strings; shared by the markdown and HTML reports."""
    return [
        [
            c["modality"], c["dataset"], c["backbone"], c["method"], str(c["shots_per_class"]), str(c["n"]),
            _fmt_count(c["train_size_mean"]),
            fmt_mean_std(c["test_accuracy_mean"], c["test_accuracy_std"]),
            fmt_mean_std(c["test_f1_macro_mean"], c["test_f1_macro_std"]),
            fmt_mean_std(c["shift_mean_accuracy_mean"], c["shift_mean_accuracy_std"]),
            _fmt_count(c["trainable_params_mean"]),
            fmt_mean_std(c["train_runtime_s_mean"], c["train_runtime_s_std"], digits=1),
        ]
        for c in cell_list
    ]  # fmt: skip


def markdown_table(cell_list: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(cell_list)]
    return "\n".join(lines) + "\n"
