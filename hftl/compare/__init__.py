"""`hftl compare SPEC.yaml`: a grid of ordinary runs (data sets x backbones x methods x sizes x seeds) and its report.

    spec.py       the spec schema (dataclasses, checked like run configs)
    grid.py       spec -> one run config per cell and seed, with deterministic names
    runner.py     the driver: skips finished runs with the same config, runs the rest on an executor, retries
    executors/    where runs execute: local (process pool), ray (Ray tasks), slurm (submitit job arrays)
    selection.py  a list of learning rates per method: each cell's rate chosen on validation before its seeds run
    tuning.py     the spec's `tune` section: each cell's hyper-parameters searched on validation before its runs
    aggregate.py  results.csv and each cell's mean with its 95% interval
    stats.py      intervals, paired differences, McNemar;  effects.py  the paired effects (gain, shift, forgetting)
    verdicts.py   published claims vs the measurements;  checklist.py  the reviewer's checklist
    plots.py      the figures;  findings.py  the written summary;  report.py  results.md and report.html
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hftl.compare.executors import make_executor
from hftl.compare.grid import GridRun, expand
from hftl.compare.report import write_report
from hftl.compare.runner import Outcome, run_grid, run_state, usable_cores
from hftl.compare.selection import curve_runs, select_cells
from hftl.compare.spec import EXECUTORS, load_spec
from hftl.errors import ConfigError, HftlError

# Run states a rebuild reads (runner.run_state): finished under the spec's config, or under an earlier one.
FINISHED = ("done", "changed")


def compare(
    spec_path: str | Path,
    report_dir: str | Path | None = None,
    max_parallel: int | None = None,
    executor: str | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> Path | None:
    """Run what the spec asks for that is not done yet, then write the report; returns report.html (None: dry run).

    Raises:
        ConfigError: the spec, or a run config it generates, is invalid (nothing has run).
        HftlError: some runs failed (the report of the others is written first).
    """
    spec = load_spec(spec_path)
    report_dir = Path(report_dir or spec.report_dir)
    parallel = max_parallel or spec.max_parallel
    if parallel < 1:
        raise ConfigError(f"--max-parallel must be >= 1, got {parallel}")
    where = executor or spec.executor
    if where not in EXECUTORS:
        raise ConfigError(f"--executor {where!r}: expected one of {list(EXECUTORS)}")
    # local: the machine's cores shared by the parallel runs; elsewhere each run gets what it asks the scheduler for
    threads = spec.resources.cpus or (max(1, usable_cores() // parallel) if where == "local" else 1)

    def run_all(runs: list[GridRun]) -> list[Outcome]:
        return run_grid(
            runs, report_dir, make_executor(where, spec, parallel), threads, retries=spec.retries,
            keep_checkpoints=spec.keep_checkpoints, echo=echo,
        )  # fmt: skip

    runs = expand(spec, report_dir)
    # each cell's hyper-parameters chosen on validation first; its seeds then train with the choice
    chosen = select_cells(spec, report_dir, None if dry_run else run_all, echo)
    if spec.tune is not None and not dry_run:
        from hftl.compare.tuning import tune_cells

        chosen.update(tune_cells(spec, runs, report_dir, where, echo))
    runs = expand(spec, report_dir, chosen)
    if dry_run:
        states = [run_state(run) for run in runs]
        for run, state in zip(runs, states, strict=True):
            echo(f"{state:<10} {run.name}  -> {run.run_dir}")
        echo(f"{len(runs)} runs, {states.count('done')} done; would run {len(runs) - states.count('done')}, "
             f"{parallel} at a time, and report to {report_dir}")  # fmt: skip
        return None
    curve = curve_runs(spec, report_dir, chosen)  # the learning-vs-forgetting curve's other rates, reported apart
    outcomes = run_all(runs + curve)
    page = write_report(spec, runs, report_dir, curve)
    echo(f"report: {page}  (tables: {report_dir / 'results.md'}, every run: {report_dir / 'results.csv'})")
    failed = [o for o in outcomes if not o.ok]
    if failed:
        logs = "\n".join(f"  {o.run.name}: {o.error} (log: {o.log})" for o in failed)
        raise HftlError(
            f"{len(failed)} of {len(outcomes)} runs failed (after {spec.retries + 1} attempts each); "
            f"the report covers the others:\n{logs}"
        )
    return page


def report_only(spec_path: str | Path, report_dir: str | Path | None = None, echo: Callable[[str], None] = print) -> Path:
    """`hftl compare SPEC --report-only`: rebuild the report from the runs already finished; runs nothing.

    New statistics or report code applied to measured runs without retraining them. Each cell's learning rate is the
    one its finished selection runs chose. Like --verdicts it also reads runs finished under
    another config than the one the spec generates now (made before a config default changed, or tuned by the spec's
    `tune` section, which is not searched again here): the report says how many.
    """
    spec = load_spec(spec_path)
    report_dir = Path(report_dir or spec.report_dir)
    chosen = select_cells(spec, report_dir, None, echo, states=FINISHED)
    runs = expand(spec, report_dir, chosen)
    if not any(run_state(run) in FINISHED for run in runs):  # a mistyped folder must not get an empty report
        raise HftlError(f"no finished runs of {spec.name} under {report_dir}: run `hftl compare {spec_path} "
                        f"--report-dir {report_dir}` first (or name the folder that holds its runs)")
    page = write_report(spec, runs, report_dir, curve_runs(spec, report_dir, chosen), states=FINISHED)
    echo(f"report: {page}  (tables: {report_dir / 'results.md'}, every run: {report_dir / 'results.csv'})")
    return page


def print_verdicts(spec_path: str | Path, report_dir: str | Path | None = None, echo: Callable[[str], None] = print) -> None:
    """`hftl compare SPEC --verdicts`: the verdict table of the spec's finished runs; runs nothing.

    Runs finished with another config than the untuned spec's (a tuned cell's) count too: they are the grid's runs.
    """
    from hftl.compare import aggregate
    from hftl.compare.report import verdict_markdown

    spec = load_spec(spec_path)
    report_dir = Path(report_dir or spec.report_dir)
    runs = expand(spec, report_dir)
    rows = aggregate.collect(runs, states=FINISHED)
    curve = aggregate.collect(curve_runs(spec, report_dir), states=FINISHED)
    echo(f"{len(rows)} of {len(runs)} runs finished" + (f" (and {len(curve)} learning-rate curve runs)" if curve else ""))
    echo(verdict_markdown(rows, curve))
