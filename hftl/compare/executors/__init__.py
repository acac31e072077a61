"""Where a grid's runs execute. Every executor runs the same task (executors/task.py: ``hftl train CONFIG`` in a
child process) and the driver (compare/runner.py) keeps the same skip rule, retries and report for all of them.

    local.py  the embedded default: a process pool on this machine, max_parallel at a time
    ray.py    Ray tasks on a running cluster (address=auto / HOST:PORT) or a local one
    slurm.py  Slurm job arrays through submitit (or submitit's local executor)
"""

from __future__ import annotations

from hftl.compare.executors.base import Executor
from hftl.compare.spec import CompareSpec


def make_executor(name: str, spec: CompareSpec, max_parallel: int) -> Executor:
    """The executor called `name`, configured from the spec's resources and its section of that name."""
    if name == "local":
        from hftl.compare.executors.local import LocalExecutor

        return LocalExecutor(max_parallel)
    if name == "ray":
        from hftl.compare.executors.ray import RayExecutor

        return RayExecutor(spec.ray, spec.resources)
    if name == "slurm":
        from hftl.compare.executors.slurm import SlurmExecutor

        return SlurmExecutor(spec.slurm, spec.resources)
    raise ValueError(f"unknown executor {name!r}")
