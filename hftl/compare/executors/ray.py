"""Runs as Ray tasks: on the cluster at ``ray.address`` ('auto', HOST:PORT, ray://...), else a local one.

Each run is one task asking Ray for ``resources`` (num_cpus, num_gpus, memory): Ray places and queues them, so
the cluster's size sets the parallelism. Ray does not retry a task itself (max_retries=0): the driver retries
any failure the same way for every executor. Every node of the cluster has to see REPORT_DIR at the same path;
open() checks that on each node before anything runs.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from hftl.compare.executors.base import Executor
from hftl.compare.executors.task import RunTask, TaskResult, run_task
from hftl.compare.spec import RaySettings, Resources
from hftl.errors import HftlError


def _sees(path: str, token: str) -> tuple[str, bool]:
    marker = Path(path)
    return socket.gethostname(), marker.is_file() and marker.read_text() == token


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, settings: RaySettings, resources: Resources) -> None:
        self.settings, self.resources = settings, resources
        self.started_local = False

    def describe(self) -> str:
        import ray

        cpus = ray.cluster_resources().get("CPU", 0)
        where = "a local Ray cluster" if self.started_local else f"Ray cluster {self.settings.address or 'auto'}"
        return f"{where} ({cpus:.0f} CPUs, {len(ray.nodes())} nodes), {self.resources.cpus or 1} CPUs a run"

    def open(self, report_dir: Path, echo: Callable[[str], None]) -> None:
        import ray

        address = self.settings.address or os.environ.get("RAY_ADDRESS")
        # A worker imports hftl like the driver; OMP_NUM_THREADS is set per run by the task itself.
        init = {"log_to_driver": False, "configure_logging": False}
        if address is None:
            try:
                ray.init(address="auto", **init)
            except ConnectionError:
                ray.init(include_dashboard=False, **init)
                self.started_local = True
        else:
            try:
                ray.init(address=address, **init)
            except (ConnectionError, ValueError) as err:
                raise HftlError(f"ray.address={address}: cannot connect to a Ray cluster there: {err}") from err
        r = self.resources
        self.remote = ray.remote(
            num_cpus=r.cpus or 1, num_gpus=r.gpus, max_retries=0,
            **({"memory": int(r.memory_gb * 1024**3)} if r.memory_gb else {}),
        )(run_task)  # fmt: skip
        self._check_storage(report_dir)

    def _check_storage(self, report_dir: Path) -> None:
        """One probe per alive node: each must read the marker the driver just wrote into REPORT_DIR."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        marker, token = report_dir / f".shared-check-{uuid.uuid4().hex}", uuid.uuid4().hex
        marker.write_text(token)
        try:
            probe = ray.remote(num_cpus=0)(_sees)
            nodes = [n for n in ray.nodes() if n["Alive"]]
            answers = ray.get([
                probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                    str(marker.resolve()), token
                )
                for n in nodes
            ])  # fmt: skip
        finally:
            marker.unlink(missing_ok=True)
        blind = [host for host, sees in answers if not sees]
        if blind:
            raise HftlError(
                f"the report directory {report_dir.resolve()} is not visible on Ray node(s) {', '.join(blind)}: "
                "put it (and the recipes and data the runs read) on storage every node mounts at the same path"
            )

    def run(self, tasks: list[RunTask]) -> Iterator[tuple[RunTask, TaskResult]]:
        import ray

        refs = {self.remote.remote(task): task for task in tasks}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayError as err:  # the worker died, was killed, lost its node, ...
                    first = str(err).strip().splitlines()[0][:300]
                    result = TaskResult(False, 0.0, None, "?", f"{type(err).__name__}: {first}")
                yield refs[done[0]], result
        finally:
            for ref in pending:  # an interrupted driver: the runs in flight are lost, nothing more starts
                ray.cancel(ref, force=True)

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()  # disconnects; also stops the cluster when this driver started it
