"""The one interface every grid executor implements: run tasks, yield each (task, result) as it finishes.

The driver (hftl/compare/runner.py) decides what runs, retries failures and prints progress; an executor only
places tasks somewhere (threads here, a Ray cluster, Slurm job arrays) and reports back. Stopping the iteration
early (Ctrl-C, an error) cancels what has not finished: a rerun of the grid redoes only those runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

from hftl.compare.executors.task import RunTask, TaskResult


class Executor(ABC):
    name: str = ""

    def open(self, report_dir: Path, echo: Callable[[str], None]) -> None:  # noqa: B027 - optional
        """Connect, start what is needed and check that workers see REPORT_DIR (HftlError if not)."""

    @abstractmethod
    def run(self, tasks: list[RunTask]) -> Iterator[tuple[RunTask, TaskResult]]:
        """Each task's result in the order they finish."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release what open() took (connections, a cluster it started)."""

    def describe(self) -> str:
        return self.name

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
