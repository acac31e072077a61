"""Hyper-parameters chosen on validation per (data set, backbone, method, size), before the seeds run.

A data set's ``learning_rates.METHOD`` may be a list: a declared grid. Each grid point of each cell is one
selection run -- the cell's run with that rate, at ``selection_seed`` (its own training subset), with test scoring
and every measurement off -- run on the grid's executor like any run. The rate with the best validation
``training.metric_for_best`` (read from results.json 'eval', the selected checkpoint's validation score; ties: the
first listed) is the cell's choice; every seed of the cell then trains with it, and records the selection in
``study.selection`` (searched, chosen, metric, split, value, trials, per trial). The selection cannot read test:
its runs never score the test split (``evaluation.test=false``) and the choice reads 'eval' only.

The linear probe's L2 strength is swept inside each run (method.probe.c_grid, hftl/evaluation/logistic_probe.py);
its runs record that sweep the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hftl.compare.grid import GridRun, _value, cell_name, cells, make_run, reads_transcripts, runs_dir_of
from hftl.compare.runner import run_state
from hftl.compare.spec import CompareSpec
from hftl.errors import HftlError
from hftl.run.record import read_record

# what the selection switches off: it scores validation only, and measures nothing else
SELECTION_ONLY = [
    "evaluation.test=false", "evaluation.transferability=false", "evaluation.shift=false",
    "evaluation.forgetting=false", "study.per_row=false", "export.enabled=false", "push.enabled=false",
]  # fmt: skip


@dataclass
class Trial:
    run: GridRun
    value: Any  # the learning rate it tried


def selection_trials(spec: CompareSpec, report_dir: Path) -> dict[str, list[Trial]]:
    """Per cell with a learning-rate grid, its selection runs (one per rate)."""
    runs_dir = runs_dir_of(spec, report_dir) / "selection"
    out: dict[str, list[Trial]] = {}
    for ds, backbone, method, shots in cells(spec):
        rates = getattr(ds.learning_rates, method)
        if not isinstance(rates, list):
            continue
        cell = cell_name(ds.name, backbone, method, shots, transcripts=reads_transcripts(spec, ds))
        trials = []
        for rate in rates:
            name = f"{cell}__lr-{rate:g}__select"
            extra = [f"training.learning_rate={_value(rate)}"]
            run = make_run(spec, ds, backbone, method, shots, spec.selection_seed, name, runs_dir / name, extra,
                           after=SELECTION_ONLY)  # fmt: skip
            trials.append(Trial(run, rate))
        out[cell] = trials
    return out


def curve_runs(spec: CompareSpec, report_dir: Path, chosen: dict[str, list[str]] | None = None) -> list[GridRun]:
    """Every seed at every listed rate of the spec's curve_methods, and at the data set's curve_rates (curve-only
    points, never selection candidates), but the rate chosen for the cell (``chosen``: select_cells' answer): the
    chosen rate's runs are the cells' own, so training them twice would only cost."""
    runs_dir = runs_dir_of(spec, report_dir) / "curve"
    out = []
    for seed in spec.seeds:
        for ds, backbone, method, shots in cells(spec):
            rates = getattr(ds.learning_rates, method)
            if method not in spec.curve_methods or not isinstance(rates, list):
                continue
            cell = cell_name(ds.name, backbone, method, shots, transcripts=reads_transcripts(spec, ds))
            picked = (chosen or {}).get(cell, [])
            beyond = getattr(ds.curve_rates, method) or []
            for rate in [r for r in [*rates, *beyond] if f"training.learning_rate={_value(r)}" not in picked]:
                name = f"{cell}__lr-{rate:g}__seed-{seed}"
                how = "learning-rate curve point" + (" beyond the selection grid" if rate in beyond else "")
                record = {"role": "curve", "searched": {"learning_rate": rates}, "chosen": {"learning_rate": rate},
                          "how": f"{how}: set, not selected"}  # fmt: skip
                extra = [f"training.learning_rate={_value(rate)}", f"study.selection={_value(json.dumps(record))}"]
                out.append(make_run(spec, ds, backbone, method, shots, seed, name, runs_dir / name, extra))
    return out


def validation_score(run: GridRun) -> float:
    """The selected checkpoint's validation score of a finished selection run (never its test score: it has none)."""
    record = read_record(run.run_dir)
    metric = run.config.training.metric_for_best
    if metric not in record.eval:
        raise HftlError(f"selection run {run.name} has no validation {metric} (eval: {sorted(record.eval)})")
    return float(record.eval[metric])


def choose(trials: list[Trial], score: Callable[[GridRun], float] = validation_score) -> tuple[list[str], dict[str, Any]]:
    """(the chosen overrides, the study.selection record) of one cell's finished selection runs."""
    cfg = trials[0].run.config
    greater = cfg.training.greater_is_better
    scores = [score(t.run) for t in trials]
    best = max(range(len(trials)), key=lambda i: (scores[i] if greater else -scores[i], -i))  # ties: the first listed
    rate = trials[best].value
    record = {
        "searched": {"learning_rate": [t.value for t in trials]},
        "chosen": {"learning_rate": rate},
        "metric": cfg.training.metric_for_best,
        "split": "validation",
        "value": scores[best],
        "trials": len(trials),
        "selection_seed": trials[0].run.seed,
        "per_trial": [{"learning_rate": t.value, "value": v, "run": t.run.name} for t, v in zip(trials, scores, strict=True)],
        "how": "declared grid, one run per value at the selection seed, chosen on validation",
    }
    return [f"training.learning_rate={_value(rate)}", f"study.selection={_value(json.dumps(record))}"], record


def select_cells(
    spec: CompareSpec, report_dir: Path, run_all: Callable[[list[GridRun]], list[Any]] | None,
    echo: Callable[[str], None] = print, states: tuple[str, ...] = ("done",),
) -> dict[str, list[str]]:
    """Run every cell's selection runs (``run_all``: the grid's executor, skip rule and retries; None: run nothing,
    choose from what finished, as a dry run does) and return, per cell, the overrides of its choice.
    states: the run states that count as finished (runner.run_state; a report-only rebuild adds "changed").

    Raises:
        HftlError: a cell none of whose selection runs finished (after run_all).
    """
    per_cell = selection_trials(spec, report_dir)
    if not per_cell:
        return {}
    runs = [t.run for trials in per_cell.values() for t in trials]
    done = sum(run_state(run) in states for run in runs)
    echo(f"selection: {len(runs)} runs ({len(per_cell)} cells x their learning-rate grids) on validation, {done} done")
    if run_all is not None:
        run_all(runs)
    chosen: dict[str, list[str]] = {}
    for cell, trials in per_cell.items():
        finished = [t for t in trials if run_state(t.run) in states]
        if run_all is None and len(finished) < len(trials):
            continue  # a dry run: this cell's choice is not made yet
        if not finished:
            raise HftlError(f"selection of {cell}: none of its {len(trials)} runs finished (logs: REPORT_DIR/logs)")
        chosen[cell], record = choose(finished)
        echo(f"  {cell}: learning_rate={record['chosen']['learning_rate']:g} "
             f"(validation {record['metric']}={record['value']:.4f} of {record['trials']} trials)")  # fmt: skip
    return chosen
