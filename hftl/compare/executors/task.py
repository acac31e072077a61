"""One grid run as a worker executes it, whatever the executor: ``python -m hftl.cli train CONFIG`` in a child process.

The driver writes REPORT_DIR/configs/NAME.yaml before it submits; a worker that cannot see that file is on other
storage than the driver, and the run fails with a message saying so instead of training into a folder nobody reads.
A task is plain paths and numbers, so it pickles small for Ray and submitit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hftl.run import rundir


@dataclass(frozen=True)
class RunTask:
    name: str
    config: Path  # absolute: REPORT_DIR/configs/NAME.yaml
    log: Path  # absolute: REPORT_DIR/logs/NAME.log
    run_dir: Path  # as the config says (relative paths are from cwd)
    cwd: Path  # the driver's working directory: relative paths in the config resolve from it
    threads: int
    keep_checkpoints: bool


@dataclass(frozen=True)
class TaskResult:
    ok: bool
    seconds: float  # wall clock
    cpu_seconds: float | None  # user + system time of the run's process: its cost on an idle machine
    host: str
    error: str | None = None


class StorageError(RuntimeError):
    """The worker does not see the driver's report directory."""


def check_shared(task: RunTask) -> None:
    host = socket.gethostname()
    if not task.cwd.is_dir() or not task.config.is_file():
        raise StorageError(
            f"worker {host} cannot see {task.config} (written by the driver): the report directory and the working "
            f"directory {task.cwd} must be on storage every worker mounts at the same path (NFS, Lustre, ...)"
        )


def _die_with_parent() -> None:
    """Linux: the training process is killed when the worker that started it dies (no orphan keeps writing)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _wait(proc: subprocess.Popen) -> tuple[int, float | None]:
    """Exit code and CPU seconds of the child (wait4 reports the child's own usage, whatever runs beside it)."""
    if not hasattr(os, "wait4"):  # not on a Unix
        return proc.wait(), None
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def last_error_line(log: Path) -> str:
    if not log.is_file():
        return "(no log)"
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(no output)"])[-1][:300]


def run_task(task: RunTask) -> TaskResult:
    """Train one run in a child process; its output goes to the task's log. Never raises for a failed run."""
    host = socket.gethostname()
    started = time.perf_counter()
    try:
        check_shared(task)
    except StorageError as err:
        return TaskResult(False, 0.0, None, host, str(err))
    task.log.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(task.threads),  # torch's intra-op threads: runs in parallel share the cores
        "MKL_NUM_THREADS": str(task.threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    with task.log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hftl.cli", "train", str(task.config)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=task.cwd,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
        returncode, cpu = _wait(proc)
    seconds = time.perf_counter() - started
    run_dir = task.run_dir if task.run_dir.is_absolute() else task.cwd / task.run_dir
    if returncode != 0 or not (run_dir / rundir.RESULTS).is_file():
        return TaskResult(False, seconds, cpu, host, f"exit code {returncode} on {host}: {last_error_line(task.log)}")
    if not task.keep_checkpoints:  # only resume needs them, and a finished run does not resume
        from hftl.run.lp_ft import PROBE_DIR

        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        shutil.rmtree(run_dir / PROBE_DIR, ignore_errors=True)
    return TaskResult(True, seconds, cpu, host)
