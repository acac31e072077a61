"""Run a grid: each run in its own process (``python -m hftl.cli train CONFIG``) on an executor (executors/).

A crash, an out-of-memory kill or Ctrl-C loses only the runs in flight: every finished run has its results.json.
A run is skipped when its results.json exists and its saved config.yaml is the config the spec generates now;
otherwise (a changed spec, a changed hftl default, a run cut short) it runs again from the start with
output.overwrite=true. A failed run is tried again up to ``retries`` times, then listed. The generated configs
go to REPORT_DIR/configs/, each run's output to REPORT_DIR/logs/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from hftl.compare.executors.base import Executor
from hftl.compare.executors.task import RunTask
from hftl.compare.grid import GridRun
from hftl.config import save_config
from hftl.run import rundir

State = Literal["done", "changed", "unfinished", "new"]


def run_status(run: GridRun) -> tuple[State, list[str]]:
    """The run's state and, for a changed run, the dotted keys where its saved config.yaml differs from the config
    the spec generates now, from one read of its folder (a report reads both for every run it shows).

    done: finished with the config the spec asks for now; changed: finished with another (keys empty: the saved
    config is missing or unreadable); unfinished: cut short; new: never started."""
    results, saved = run.run_dir / rundir.RESULTS, run.run_dir / rundir.CONFIG
    if not results.is_file():
        return ("unfinished" if run.run_dir.exists() else "new"), []
    try:
        recorded, wanted = yaml.safe_load(saved.read_text()), run.config.to_dict()
        # where the run lives is the folder its config was read from: the same folder named another way (an absolute
        # --report-dir, another working directory, a copied report) is no change of config
        for config in (recorded, wanted):
            if isinstance(config, dict) and isinstance(config.get("output"), dict):
                config["output"].pop("dir", None)
        changes = _differences(recorded, wanted)
    except (OSError, yaml.YAMLError):
        return "changed", []
    return ("changed" if changes else "done"), changes


def run_state(run: GridRun) -> State:
    """run_status's state alone (what the runner's skip rule and the selection read)."""
    return run_status(run)[0]


_ABSENT = object()  # a key one config has and the other lacks (e.g. one added to the schema since the run)


def _differences(a: object, b: object, prefix: str = "") -> list[str]:
    """The dotted keys where saved config ``a`` and current config ``b`` differ. A key the run's config lacks that is
    null now is no difference: it was added to the schema since, and null (unset) is the behaviour it had before
    (model.attn_implementation: null passes nothing to transformers, as the hftl that made the run did)."""
    if a is _ABSENT and b is None:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return [key for k in sorted(set(a) | set(b), key=str)
                for key in _differences(a.get(k, _ABSENT), b.get(k, _ABSENT), f"{prefix}{k}.")]  # fmt: skip
    return [] if a == b else [prefix.rstrip(".")]


@dataclass
class Outcome:
    run: GridRun
    ok: bool
    seconds: float  # wall clock
    cpu_seconds: float | None  # user + system time of the run's process: its cost on an idle machine
    log: Path
    error: str | None = None
    attempts: int = 1


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_task(run: GridRun, report_dir: Path, threads: int, keep_checkpoints: bool) -> RunTask:
    """Write the run's config where every worker reads it (REPORT_DIR/configs/NAME.yaml) and describe the task."""
    report_dir = report_dir.resolve()
    config_path = report_dir / "configs" / f"{run.name}.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    save_config(run.config, config_path)
    log = report_dir / "logs" / f"{run.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return RunTask(run.name, config_path, log, run.run_dir, Path.cwd(), threads, keep_checkpoints)


def run_grid(
    runs: list[GridRun],
    report_dir: Path,
    executor: Executor,
    threads: int,
    retries: int = 0,
    keep_checkpoints: bool = False,
    echo: Callable[[str], None] = print,
) -> list[Outcome]:
    """Run every run that is not done on the executor, retrying failures; returns each run's last outcome."""
    todo = [run for run in runs if run_state(run) != "done"]
    echo(f"{len(runs)} runs: {len(runs) - len(todo)} done already, {len(todo)} to run")
    if not todo:
        return []
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    by_name = {run.name: run for run in todo}
    final: dict[str, Outcome] = {}
    started = time.perf_counter()
    with executor:
        executor.open(report_dir, echo)
        echo(f"executor: {executor.describe()}, {threads} thread(s) a run")
        pending = todo
        for attempt in range(1, retries + 2):
            tasks = [make_task(run, report_dir, threads, keep_checkpoints) for run in pending]
            for i, (task, result) in enumerate(executor.run(tasks), start=1):
                outcome = Outcome(by_name[task.name], result.ok, result.seconds, result.cpu_seconds, task.log,
                                  result.error, attempt)  # fmt: skip
                final[task.name] = outcome
                _echo_progress(echo, outcome, i, len(tasks), attempt, started)
            pending = [final[run.name].run for run in pending if not final[run.name].ok]
            if not pending:
                break
            if attempt <= retries:
                echo(f"retrying {len(pending)} failed run(s) (attempt {attempt + 1} of {retries + 1})")
    outcomes = [final[run.name] for run in todo]
    cpu = sum(o.cpu_seconds or 0.0 for o in outcomes)
    echo(f"ran {len(outcomes)} runs in {(time.perf_counter() - started) / 60:.1f} min "
         f"({cpu / 60:.1f} CPU-minutes, {cpu / len(outcomes):.0f} CPU-seconds a run)")  # fmt: skip
    return outcomes


def _echo_progress(echo: Callable[[str], None], outcome: Outcome, i: int, n: int, attempt: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    left = elapsed / i * (n - i)
    status = "ok    " if outcome.ok else "FAILED"
    cpu = "" if outcome.cpu_seconds is None else f", cpu {outcome.cpu_seconds:.0f} s"
    again = f" (attempt {attempt})" if attempt > 1 else ""
    echo(
        f"[{i}/{n}] {status} {outcome.run.name}{again}  {outcome.seconds:.0f} s{cpu}"
        f"  (elapsed {elapsed / 60:.1f} min, ~{left / 60:.1f} min left)"
        + (f"\n    {outcome.error}  (log: {outcome.log})" if outcome.error else "")
    )
