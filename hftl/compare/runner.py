"""Run a grid: each run in its own process (``python -m hftl.cli train CONFIG``), ``max_parallel`` at a time.

A crash, an out-of-memory kill or Ctrl-C loses only the runs in flight: every finished run has its results.json.
A run is skipped when its results.json exists and its saved config.yaml is the config the spec generates now;
otherwise (a changed spec, a changed hftl default, a run cut short) it runs again from the start with
output.overwrite=true. The generated configs go to REPORT_DIR/configs/, each run's output to REPORT_DIR/logs/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from hftl.compare.grid import GridRun
from hftl.config import save_config
from hftl.run import rundir
from hftl.run.lp_ft import PROBE_DIR

State = Literal["done", "changed", "unfinished", "new"]


def run_state(run: GridRun) -> State:
    """done: finished with the config the spec asks for now; changed: finished with another; unfinished: cut short."""
    results, saved = run.run_dir / rundir.RESULTS, run.run_dir / rundir.CONFIG
    if results.is_file():
        try:
            same = saved.is_file() and yaml.safe_load(saved.read_text()) == run.config.to_dict()
        except yaml.YAMLError:
            same = False
        return "done" if same else "changed"
    return "unfinished" if run.run_dir.exists() else "new"


@dataclass
class Outcome:
    run: GridRun
    ok: bool
    seconds: float  # wall clock
    cpu_seconds: float | None  # user + system time of the run's process: its cost on an idle machine
    log: Path
    error: str | None = None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _last_error_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(no output)"])[-1][:300]


def run_one(run: GridRun, report_dir: Path, threads: int, keep_checkpoints: bool) -> Outcome:
    """Train one run in a child process; its output goes to REPORT_DIR/logs/NAME.log."""
    config_path = report_dir / "configs" / f"{run.name}.yaml"
    log = report_dir / "logs" / f"{run.name}.log"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    save_config(run.config, config_path)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),  # torch's intra-op threads: runs in parallel share the cores
        "MKL_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hftl.cli", "train", str(config_path)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
        returncode, cpu = _wait(proc)
    seconds = time.perf_counter() - started
    finished = (run.run_dir / rundir.RESULTS).is_file()
    if returncode != 0 or not finished:
        return Outcome(run, False, seconds, cpu, log, f"exit code {returncode}: {_last_error_line(log)}")
    if not keep_checkpoints:  # only resume needs them, and a finished run does not resume
        shutil.rmtree(run.run_dir / "checkpoints", ignore_errors=True)
        shutil.rmtree(run.run_dir / PROBE_DIR, ignore_errors=True)
    return Outcome(run, True, seconds, cpu, log)


def _wait(proc: subprocess.Popen) -> tuple[int, float | None]:
    """Exit code and CPU seconds of the child (wait4 reports the child's own usage, whatever runs beside it)."""
    if not hasattr(os, "wait4"):  # not on a Unix
        return proc.wait(), None
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def run_grid(
    runs: list[GridRun],
    report_dir: Path,
    max_parallel: int,
    keep_checkpoints: bool = False,
    echo: Callable[[str], None] = print,
) -> list[Outcome]:
    """Run every run that is not done, max_parallel at a time; returns the outcomes of those that ran."""
    todo = [run for run in runs if run_state(run) != "done"]
    echo(f"{len(runs)} runs: {len(runs) - len(todo)} done already, {len(todo)} to run, {max_parallel} at a time")
    if not todo:
        return []
    threads = max(1, usable_cores() // max_parallel)
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max_parallel) as pool:
        futures = [pool.submit(run_one, run, Path(report_dir), threads, keep_checkpoints) for run in todo]
        try:
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                elapsed = time.perf_counter() - started
                left = elapsed / len(outcomes) * (len(todo) - len(outcomes))
                status = "ok    " if outcome.ok else "FAILED"
                cpu = "" if outcome.cpu_seconds is None else f", cpu {outcome.cpu_seconds:.0f} s"
                echo(
                    f"[{len(outcomes)}/{len(todo)}] {status} {outcome.run.name}  {outcome.seconds:.0f} s{cpu}"
                    f"  (elapsed {elapsed / 60:.1f} min, ~{left / 60:.1f} min left)"
                    + (f"\n    {outcome.error}  (log: {outcome.log})" if outcome.error else "")
                )
        except BaseException:  # Ctrl-C: start nothing more (the runs in flight got the same signal)
            for future in futures:
                future.cancel()
            raise
    cpu = sum(o.cpu_seconds or 0.0 for o in outcomes)
    echo(f"ran {len(outcomes)} runs in {(time.perf_counter() - started) / 60:.1f} min "
         f"({cpu / 60:.1f} CPU-minutes, {cpu / len(outcomes):.0f} CPU-seconds a run)")  # fmt: skip
    return outcomes
