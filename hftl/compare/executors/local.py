"""The embedded default: each run in a child process on this machine, ``max_parallel`` at a time."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

from hftl.compare.executors.base import Executor
from hftl.compare.executors.task import RunTask, TaskResult, run_task


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, max_parallel: int) -> None:
        self.max_parallel = max_parallel

    def describe(self) -> str:
        return f"local, {self.max_parallel} at a time"

    def run(self, tasks: list[RunTask]) -> Iterator[tuple[RunTask, TaskResult]]:
        with ThreadPoolExecutor(max_workers=self.max_parallel) as pool:
            futures = {pool.submit(run_task, task): task for task in tasks}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            except BaseException:  # Ctrl-C: start nothing more (the runs in flight got the same signal)
                for future in futures:
                    future.cancel()
                raise
