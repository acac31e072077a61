"""Runs as Slurm job arrays through submitit: one array task per run, at most ``array_parallelism`` at once.

partition/time/memory/GPUs/CPUs come from the spec's ``slurm`` and ``resources``. Each run logs to
REPORT_DIR/logs/NAME.log like everywhere else; submitit keeps each job's own stdout/stderr and pickles under
``slurm.logs_dir`` (default REPORT_DIR/slurm/JOBID/). ``slurm.cluster: local`` runs the same jobs as processes on
this machine (submitit's local executor), at most ``array_parallelism`` at a time.

The ids of submitted jobs are kept in REPORT_DIR/slurm/submitted.txt until the grid ends: a driver that died
leaves them there, and the next run of the grid cancels those still queued or running before it resubmits them,
so no two jobs ever train into one run folder.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from hftl.compare.executors.base import Executor
from hftl.compare.executors.task import RunTask, TaskResult, run_task
from hftl.compare.spec import Resources, SlurmSettings

POLL_SECONDS = 2.0


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, settings: SlurmSettings, resources: Resources) -> None:
        self.settings, self.resources = settings, resources

    def describe(self) -> str:
        where = "submitit local executor" if self.settings.cluster == "local" else "Slurm"
        return f"{where}, job arrays of at most {self.settings.array_parallelism} at once"

    def open(self, report_dir: Path, echo: Callable[[str], None]) -> None:
        import submitit

        self.folder = Path(self.settings.logs_dir or report_dir / "slurm").resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ledger = self.folder / "submitted.txt"
        self._cancel_leftovers(echo)
        s, r = self.settings, self.resources
        self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=s.cluster)
        self.executor.update_parameters(
            name="hftl-grid", timeout_min=r.time_min, cpus_per_task=r.cpus or 1, gpus_per_node=r.gpus, nodes=1,
            tasks_per_node=1, **({"mem_gb": r.memory_gb} if r.memory_gb else {}),
            slurm_array_parallelism=s.array_parallelism,
            **({"slurm_partition": s.partition} if s.partition else {}),
            **({"slurm_additional_parameters": dict(kv.split("=", 1) for kv in s.additional)} if s.additional else {}),
        )  # fmt: skip

    def _cancel_leftovers(self, echo: Callable[[str], None]) -> None:
        ids = self.ledger.read_text().split() if self.ledger.is_file() else []
        if ids and self.settings.cluster == "slurm":
            echo(f"cancelling {len(ids)} jobs an earlier, interrupted driver left behind: {' '.join(ids)}")
            subprocess.run(["scancel", *ids], check=False, capture_output=True)
        self.ledger.unlink(missing_ok=True)

    def _submit(self, tasks: list[RunTask]) -> list:
        jobs = self.executor.map_array(run_task, tasks)
        with self.ledger.open("a") as out:
            out.write("".join(f"{job.job_id}\n" for job in jobs))
        return jobs

    def run(self, tasks: list[RunTask]) -> Iterator[tuple[RunTask, TaskResult]]:
        import submitit

        # Slurm caps the array itself (--array=0-N%P); submitit's local executor has no cap, so it gets P at a time.
        window = len(tasks) if self.settings.cluster == "slurm" else self.settings.array_parallelism
        queue, running = list(tasks), {}
        try:
            while queue or running:
                batch, queue = queue[: window - len(running)], queue[window - len(running) :]
                if batch:
                    running.update(zip(self._submit(batch), batch, strict=True))
                job = next(submitit.helpers.as_completed(list(running), poll_frequency=POLL_SECONDS))
                task = running.pop(job)
                yield task, self._result(job, task)
        finally:
            for job in running:  # interrupted: nothing more starts, the runs in flight are lost
                job.cancel(check=False)
        self.ledger.unlink(missing_ok=True)

    @staticmethod
    def _result(job, task: RunTask) -> TaskResult:
        try:
            return job.result()
        except Exception as err:  # timeout, node failure, cancelled, killed: the job never returned a result
            first = (str(err).strip().splitlines() or [""])[0][:300]
            return TaskResult(False, 0.0, None, "?", f"job {job.job_id} {job.state}: {type(err).__name__}: {first} "
                                                      f"(job log: {job.paths.stderr})")  # fmt: skip
