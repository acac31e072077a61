"""Real engines for the executor and tune tests, started and stopped by the test itself.

ray_head():      ``ray start --head --block`` on 127.0.0.1 with 2 CPUs, in its own process group; yields its address.
slurm_cluster(): munged + slurmctld + slurmd on this machine (Debian's slurm-wlm and munge, as root), a one-node
                 cluster with its own ports and state under a temp dir; yields the environment (SLURM_CONF) for
                 sbatch. Raises pytest.skip with the reason when it cannot run here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _short_tmp(prefix: str) -> Path:
    # Unix socket paths are limited to ~107 bytes: pytest's tmp_path is too deep for Ray's and munge's sockets.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@contextlib.contextmanager
def ray_head(num_cpus: int = 2) -> Iterator[str]:
    # A loopback-only test cluster: no token auth (Ray turns it on when ~/.ray/auth_token exists), for head and driver.
    auth_before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    tmp = proc = None
    try:
        # The ports are picked free but only bound by Ray later: another process can take one in between, and the
        # head then exits at start. One more try on fresh ports; a second failure shows Ray's own output.
        for attempt in (1, 2):
            tmp, port = _short_tmp("hftl-ray-"), free_port()
            log = tmp / "ray_start.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                     f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                     f"--temp-dir={tmp}", f"--ray-client-server-port={free_port()}", f"--node-manager-port={free_port()}",
                     f"--object-manager-port={free_port()}", f"--min-worker-port={free_port()}", "--max-worker-port=0"],
                    stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                )  # fmt: skip
            address = f"127.0.0.1:{port}"
            try:
                _wait_for_ray(address, proc)
                break
            except RuntimeError as err:
                if attempt == 2 or proc.poll() is None:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{err}; ray start said:\n{tail}") from err
                shutil.rmtree(tmp, ignore_errors=True)
        yield address
    finally:
        if auth_before is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth_before
        if proc is not None:
            _stop_group(proc)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # `ray start --block` stops the node's processes on SIGTERM
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left (workers)


def _wait_for_ray(address: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start --head exited with {proc.returncode}")
        status = subprocess.run([str(VENV_BIN / "ray"), "status", f"--address={address}"], capture_output=True, text=True)
        if status.returncode == 0 and "CPU" in status.stdout:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray head at {address} did not come up in {timeout:.0f} s")


SLURM_CONF = """\
ClusterName=hftltest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={tmp}/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.pid
SlurmdSpoolDir={tmp}/spool
StateSaveLocation={tmp}/state
SlurmUser=root
SlurmdUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _slurm_skip_reason() -> str | None:
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (Debian: apt-get install slurm-wlm munge; `make system-deps` as root)"
    if os.geteuid() != 0:
        return "a test Slurm cluster needs root (slurmd runs jobs as their users); CI runs as root"
    if not Path("/etc/munge/munge.key").is_file():
        return "/etc/munge/munge.key is missing (the munge package creates it on install)"
    return None


def _pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


@contextlib.contextmanager
def slurm_cluster() -> Iterator[dict[str, str]]:
    reason = _slurm_skip_reason()
    if reason:
        pytest.skip(f"Slurm: {reason}")
    tmp = _short_tmp("hftl-slurm-")
    for sub in ("spool", "state"):
        (tmp / sub).mkdir()
    os.chmod(tmp, 0o755)
    conf = tmp / "slurm.conf"
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    conf.write_text(SLURM_CONF.format(host=socket.gethostname(), ctld_port=free_port(), d_port=free_port(), tmp=tmp,
                                      cpus=os.cpu_count(), mem_mb=mem_mb))  # fmt: skip
    env = {**os.environ, "SLURM_CONF": str(conf)}
    pid_files = [tmp / "munged.pid", tmp / "slurmctld.pid", tmp / "slurmd.pid"]
    try:
        commands = [
            ["munged", f"--socket={tmp}/munge.socket", f"--pid-file={tmp}/munged.pid", f"--log-file={tmp}/munged.log",
             f"--seed-file={tmp}/munged.seed", "--force"],
            ["slurmctld", "-L", str(tmp / "slurmctld.log")],
            ["slurmd", "-L", str(tmp / "slurmd.log")],
        ]  # fmt: skip
        for command in commands:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                pytest.skip(f"Slurm: {command[0]} would not start here: {(done.stderr or done.stdout).strip()[:300]}")
            time.sleep(1)
        deadline = time.time() + 60
        while time.time() < deadline:
            info = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            if info.returncode == 0 and info.stdout.strip() in ("idle", "mixed"):
                break
            time.sleep(1)
        else:
            log = (tmp / "slurmd.log").read_text(errors="replace")[-500:] if (tmp / "slurmd.log").is_file() else ""
            pytest.skip(f"Slurm: the node did not become idle in 60 s (sinfo: {info.stdout.strip()!r}); slurmd.log: {log}")
        yield env
    finally:
        for pid_file in reversed(pid_files):
            pid = _pid(pid_file)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        time.sleep(1)
        shutil.rmtree(tmp, ignore_errors=True)
